//! A proxy-wasm host on wasmtime: runs a filter module the way Envoy's
//! cpp-host does (ABI v0.2.1, start-up order, restricted hostcalls while the
//! module initialises, exact-size allocations through
//! `proxy_on_memory_allocate`), and exposes the host's state to tests.
//!
//! The API follows the proxy-wasm Go SDK's `proxytest` emulator: start the
//! plugin, open HTTP contexts, drive headers and bodies, answer HTTP calls,
//! tick, then read what the host saw (local responses, forwarded headers,
//! logs, metrics, properties). Every guest callback runs with a fuel budget
//! and the linear memory is capped, so a runaway guest is stopped and
//! reported instead of hanging the caller.

pub mod abi;
mod env;
mod fault;
mod state;
mod wasi;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::{Config, Engine, ExternType, Instance, Linker, Module, Store, Trap, TypedFunc};

pub use abi::{Action, Headers, LogLevel, MetricType};
pub use fault::HostFault;
pub use state::{HttpCall, LocalResponse, LogEntry, MemoryCapExceeded, Metric};

use state::{Direction, HostState, MemoryCap, Phase, Stream};

/// The proxy-wasm ABI version a module declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbiVersion {
    /// `proxy_abi_version_0_2_0`: served with the 0.2.1 host (compatible).
    V0_2_0,
    /// `proxy_abi_version_0_2_1`.
    V0_2_1,
}

/// Why a guest callback was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrapCause {
    /// The callback used up its fuel budget (a runaway guest).
    OutOfFuel { fuel: u64 },
    /// Linear memory would grow past the cap.
    MemoryCap {
        wanted_bytes: usize,
        cap_bytes: usize,
    },
    /// The host refused a hostcall (unsupported, restricted, `proc_exit`).
    Host(HostFault),
    /// A trap inside the guest (`unreachable`, out-of-bounds access, a
    /// Rust panic with `panic = "abort"`, …).
    Wasm(String),
}

impl std::fmt::Display for TrapCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrapCause::OutOfFuel { fuel } => {
                write!(
                    f,
                    "out of fuel: the callback ran past its budget of {fuel} units"
                )
            }
            TrapCause::MemoryCap {
                wanted_bytes,
                cap_bytes,
            } => write!(
                f,
                "memory cap: linear memory would grow to {wanted_bytes} bytes (cap {cap_bytes})"
            ),
            TrapCause::Host(fault) => write!(f, "{fault}"),
            TrapCause::Wasm(message) => write!(f, "wasm trap: {message}"),
        }
    }
}

/// Everything that can go wrong while hosting a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HarnessError {
    /// The module could not be read, compiled or linked.
    Load(String),
    /// The module is not a proxy-wasm 0.2.x filter.
    NotProxyWasm(String),
    /// A guest callback trapped; the VM is now failed, as in Envoy.
    Trapped {
        callback: &'static str,
        cause: TrapCause,
    },
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false.
    Refused {
        callback: &'static str,
        /// Critical and error lines the guest logged while refusing.
        logs: Vec<String>,
    },
    /// The VM failed earlier; no more callbacks run.
    Failed(String),
    /// The emulator was driven in a way a proxy never would.
    Usage(String),
}

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HarnessError::Load(m) => write!(f, "cannot load the module: {m}"),
            HarnessError::NotProxyWasm(m) => write!(f, "not a proxy-wasm 0.2 module: {m}"),
            HarnessError::Trapped { callback, cause } => {
                write!(f, "`{callback}` was stopped: {cause}")
            }
            HarnessError::Refused { callback, logs } => {
                write!(f, "`{callback}` returned false")?;
                for line in logs {
                    write!(f, "\n  guest: {line}")?;
                }
                Ok(())
            }
            HarnessError::Failed(m) => write!(f, "the VM failed earlier: {m}"),
            HarnessError::Usage(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for HarnessError {}

/// What the host makes of a `Pause` returned from
/// `proxy_on_request_headers` / `proxy_on_response_headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderPause {
    /// Envoy's StopIteration, as with `allow_on_headers_stop_iteration:
    /// true` (Envoy ≥ 1.35): only the headers are held; body and trailers
    /// callbacks are delivered as the data arrives.
    #[default]
    Honoured,
    /// Envoy's default for ABI 0.2.x (cpp-host turns the `Pause` into
    /// StopAllIterationAndWatermark): the host delivers no body or trailers
    /// callbacks for that direction and keeps what arrives until the guest
    /// calls `proxy_continue_stream`; then the headers go on, one body
    /// callback carries everything buffered, then the trailers callback.
    /// Istio's `WasmPlugin` and Envoy Gateway cannot change this.
    StopAll,
}

/// One guest callback the host delivered on an HTTP context, as
/// [`Emulator::guest_calls`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCall {
    /// The export, e.g. `proxy_on_request_body`.
    pub callback: &'static str,
    /// The arguments after the context id (for a body callback: the
    /// buffered size and end of stream; for an HTTP call's answer: the
    /// token and the header, body and trailer sizes).
    pub args: Vec<i32>,
    /// What the guest returned, for callbacks that return a value.
    pub returned: Option<i32>,
}

/// How the host runs the guest.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Buffer type 6, read in `proxy_on_vm_start`.
    pub vm_configuration: Vec<u8>,
    /// Buffer type 7, read in `proxy_on_configure`.
    pub plugin_configuration: Vec<u8>,
    /// Fuel for each guest callback (about one unit per wasm instruction).
    pub fuel_per_callback: u64,
    /// Cap on the guest's linear memory, in bytes.
    pub memory_limit_bytes: usize,
    /// Wall-clock time the host reports, nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// What `proxy_get_log_level` answers (every line is recorded anyway).
    pub log_level: LogLevel,
    /// Seed of the deterministic `random_get`.
    pub random_seed: u64,
    /// What a `Pause` from a headers callback does (default
    /// [`HeaderPause::Honoured`]).
    pub header_pause: HeaderPause,
}

impl Default for HostOptions {
    fn default() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        Self {
            vm_configuration: Vec::new(),
            plugin_configuration: Vec::new(),
            fuel_per_callback: 2_000_000_000,
            memory_limit_bytes: 128 * 1024 * 1024,
            time_unix_nanos: now,
            log_level: LogLevel::Trace,
            random_seed: 0x5eed,
            header_pause: HeaderPause::default(),
        }
    }
}

impl HostOptions {
    pub fn with_plugin_configuration(mut self, config: impl Into<Vec<u8>>) -> Self {
        self.plugin_configuration = config.into();
        self
    }

    pub fn with_time_unix_seconds(mut self, seconds: u64) -> Self {
        self.time_unix_nanos = seconds.saturating_mul(1_000_000_000);
        self
    }

    pub fn with_fuel_per_callback(mut self, fuel: u64) -> Self {
        self.fuel_per_callback = fuel;
        self
    }

    pub fn with_memory_limit_bytes(mut self, bytes: usize) -> Self {
        self.memory_limit_bytes = bytes;
        self
    }

    /// Chooses what a `Pause` from a headers callback does: Envoy's default
    /// is [`HeaderPause::StopAll`].
    pub fn with_header_pause(mut self, header_pause: HeaderPause) -> Self {
        self.header_pause = header_pause;
        self
    }
}

fn blank_state(options: &HostOptions) -> HostState {
    HostState {
        cap: MemoryCap {
            max_bytes: options.memory_limit_bytes,
            exceeded: None,
        },
        phase: Phase::Initializing,
        callback: "",
        context_id: 0,
        root_id: 1,
        vm_configuration: options.vm_configuration.clone(),
        plugin_configuration: options.plugin_configuration.clone(),
        in_vm_start: false,
        in_configure: false,
        streams: Default::default(),
        logs: Vec::new(),
        log_level: options.log_level,
        metrics: Vec::new(),
        properties: Default::default(),
        shared_data: Default::default(),
        http_calls: Default::default(),
        next_token: 0,
        call_response: None,
        tick_period_ms: 0,
        realtime_nanos: options.time_unix_nanos,
        monotonic_nanos: 1_000_000_000,
        rng: options.random_seed,
        done_called: false,
        memory: None,
        allocate: None,
    }
}

/// A compiled filter module with its host imports linked; cheap to clone,
/// so one compilation serves many emulators.
#[derive(Clone)]
pub struct FilterModule {
    engine: Engine,
    module: Module,
    linker: std::sync::Arc<Linker<HostState>>,
    abi: AbiVersion,
}

impl FilterModule {
    /// Compiles a `.wasm` file.
    pub fn from_file(path: &Path) -> Result<Self, HarnessError> {
        let bytes = std::fs::read(path)
            .map_err(|e| HarnessError::Load(format!("reading {}: {e}", path.display())))?;
        Self::from_bytes(&bytes)
    }

    /// Compiles a module from its binary or text (`.wat`) form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HarnessError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        config.cranelift_opt_level(wasmtime::OptLevel::None);
        let engine = Engine::new(&config).map_err(|e| HarnessError::Load(format!("{e:#}")))?;
        let module =
            Module::new(&engine, bytes).map_err(|e| HarnessError::Load(format!("{e:#}")))?;
        let names: HashSet<&str> = module.exports().map(|e| e.name()).collect();
        let abi = if names.contains("proxy_abi_version_0_2_1") {
            AbiVersion::V0_2_1
        } else if names.contains("proxy_abi_version_0_2_0") {
            AbiVersion::V0_2_0
        } else {
            return Err(HarnessError::NotProxyWasm(
                "it exports neither `proxy_abi_version_0_2_1` nor `proxy_abi_version_0_2_0`".into(),
            ));
        };
        for required in [
            "memory",
            "proxy_on_memory_allocate",
            "proxy_on_context_create",
        ] {
            if !names.contains(required) {
                return Err(HarnessError::NotProxyWasm(format!(
                    "it does not export `{required}`"
                )));
            }
        }
        let linker = link(&engine, &module).map_err(|e| HarnessError::Load(format!("{e:#}")))?;
        Ok(Self {
            engine,
            module,
            linker: std::sync::Arc::new(linker),
            abi,
        })
    }

    pub fn abi_version(&self) -> AbiVersion {
        self.abi
    }

    /// The module's imports, as `module.name`.
    pub fn imports(&self) -> Vec<String> {
        self.module
            .imports()
            .map(|i| format!("{}.{}", i.module(), i.name()))
            .collect()
    }
}

/// Links the implemented hostcalls, then a trap for every other import the
/// module has: an unsupported hostcall traps with its name when called,
/// never answers OK.
fn link(engine: &Engine, module: &Module) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    env::define(&mut linker)?;
    wasi::define(&mut linker)?;
    let mut probe = Store::new(engine, blank_state(&HostOptions::default()));
    let mut missing = Vec::new();
    for import in module.imports() {
        if linker.get_by_import(&mut probe, &import).is_some() {
            continue;
        }
        match import.ty() {
            ExternType::Func(ty) => missing.push((
                import.module().to_owned(),
                import.name().to_owned(),
                ty.clone(),
            )),
            other => wasmtime::bail!(
                "import `{}.{}` ({other:?}) cannot be provided",
                import.module(),
                import.name()
            ),
        }
    }
    for (module_name, name, ty) in missing {
        let hostcall = format!("{module_name}.{name}");
        linker.func_new(
            &module_name,
            &name,
            ty,
            move |_caller, _params, _results| {
                Err(wasmtime::Error::new(HostFault::Unsupported {
                    hostcall: hostcall.clone(),
                }))
            },
        )?;
    }
    Ok(linker)
}

/// A guest export the host calls, under the name it was found by (which
/// diagnostics report).
struct Callback<P, R> {
    name: &'static str,
    func: TypedFunc<P, R>,
}

impl<P, R> Clone for Callback<P, R> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            func: self.func.clone(),
        }
    }
}

type Cb0 = Callback<(), ()>;
type Cb1 = Callback<i32, ()>;
type Cb1R = Callback<i32, i32>;
type Cb2 = Callback<(i32, i32), ()>;
type Cb2R = Callback<(i32, i32), i32>;
type Cb3R = Callback<(i32, i32, i32), i32>;
type Cb5 = Callback<(i32, i32, i32, i32, i32), ()>;

/// The guest callbacks the host calls; absent ones are skipped (as Envoy
/// does), stream callbacks then count as `Continue`.
struct Exports {
    initialize: Option<Cb0>,
    start: Option<Cb0>,
    main: Option<Cb2R>,
    context_create: Option<Cb2>,
    vm_start: Option<Cb2R>,
    configure: Option<Cb2R>,
    request_headers: Option<Cb3R>,
    request_body: Option<Cb3R>,
    request_trailers: Option<Cb2R>,
    response_headers: Option<Cb3R>,
    response_body: Option<Cb3R>,
    response_trailers: Option<Cb2R>,
    done: Option<Cb1R>,
    log: Option<Cb1>,
    delete: Option<Cb1>,
    tick: Option<Cb1>,
    http_call_response: Option<Cb5>,
}

impl Exports {
    fn find(store: &mut Store<HostState>, instance: &Instance) -> Self {
        macro_rules! get {
            ($name:literal) => {
                instance
                    .get_typed_func(&mut *store, $name)
                    .ok()
                    .map(|func| Callback { name: $name, func })
            };
        }
        Self {
            initialize: get!("_initialize"),
            start: get!("_start"),
            main: get!("main"),
            context_create: get!("proxy_on_context_create"),
            vm_start: get!("proxy_on_vm_start"),
            configure: get!("proxy_on_configure"),
            request_headers: get!("proxy_on_request_headers"),
            request_body: get!("proxy_on_request_body"),
            request_trailers: get!("proxy_on_request_trailers"),
            response_headers: get!("proxy_on_response_headers"),
            response_body: get!("proxy_on_response_body"),
            response_trailers: get!("proxy_on_response_trailers"),
            done: get!("proxy_on_done"),
            log: get!("proxy_on_log"),
            delete: get!("proxy_on_delete"),
            tick: get!("proxy_on_tick"),
            http_call_response: get!("proxy_on_http_call_response"),
        }
    }
}

fn raw(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn id_raw(id: u32) -> i32 {
    id as i32
}

/// Header pairs as the host stores them: names in lower case, as HTTP/2
/// and Envoy carry them.
fn lowercase_names(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
        .collect()
}

/// One plugin (root context) in one VM, driven like a proxy drives it.
pub struct Emulator {
    store: Store<HostState>,
    exports: Exports,
    fuel: u64,
    last_fuel_used: u64,
    next_id: u32,
    failed: Option<String>,
    header_pause: HeaderPause,
    /// The callbacks delivered per HTTP context, kept after the stream ends
    /// until [`Emulator::clear_logs`].
    calls: BTreeMap<u32, Vec<GuestCall>>,
}

impl Emulator {
    /// Instantiates the module and runs `_initialize`, then `main(0, 0)` if
    /// exported (or `_start` for a WASI command), with only the hostcalls
    /// Envoy allows at that stage.
    pub fn new(module: &FilterModule, options: HostOptions) -> Result<Self, HarnessError> {
        let mut store = Store::new(&module.engine, blank_state(&options));
        store.limiter(|state| &mut state.cap);
        let load = |e: wasmtime::Error| HarnessError::Load(format!("{e:#}"));
        store.set_fuel(options.fuel_per_callback).map_err(load)?;
        let instance = module
            .linker
            .instantiate(&mut store, &module.module)
            .map_err(|e| classify("instantiate", &options, &e, store.data()))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| HarnessError::NotProxyWasm("no exported `memory`".into()))?;
        let allocate = instance
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .map_err(|e| HarnessError::NotProxyWasm(format!("`proxy_on_memory_allocate`: {e}")))?;
        store.data_mut().memory = Some(memory);
        store.data_mut().allocate = Some(allocate);
        let exports = Exports::find(&mut store, &instance);
        let mut emulator = Self {
            store,
            exports,
            fuel: options.fuel_per_callback,
            last_fuel_used: 0,
            next_id: 2,
            failed: None,
            header_pause: options.header_pause,
            calls: BTreeMap::new(),
        };
        if let Some(initialize) = emulator.exports.initialize.clone() {
            emulator.run(Phase::Initializing, 0, initialize, ())?;
            if let Some(main) = emulator.exports.main.clone() {
                emulator.run(Phase::Initializing, 0, main, (0, 0))?;
            }
        } else if let Some(start) = emulator.exports.start.clone() {
            emulator.run(Phase::Initializing, 0, start, ())?;
        }
        Ok(emulator)
    }

    /// Creates the root context and starts the plugin: `new`, then
    /// [`start_vm`](Self::start_vm) and [`configure`](Self::configure).
    /// A `false` from either is [`HarnessError::Refused`].
    pub fn start(module: &FilterModule, options: HostOptions) -> Result<Self, HarnessError> {
        let mut emulator = Self::new(module, options)?;
        for (callback, step) in [
            ("proxy_on_vm_start", Self::start_vm as fn(&mut Self) -> _),
            ("proxy_on_configure", Self::configure),
        ] {
            let before = emulator.store.data().logs.len();
            if !step(&mut emulator)? {
                let logs = emulator
                    .store
                    .data()
                    .logs
                    .iter()
                    .skip(before)
                    .filter(|l| l.level >= LogLevel::Error)
                    .map(|l| l.message.clone())
                    .collect();
                return Err(HarnessError::Refused { callback, logs });
            }
        }
        Ok(emulator)
    }

    /// Runs `proxy_on_context_create(root, 0)` then `proxy_on_vm_start(root,
    /// size)`; the guest reads the VM configuration (buffer type 6).
    pub fn start_vm(&mut self) -> Result<bool, HarnessError> {
        let root = self.root_id();
        if let Some(create) = self.exports.context_create.clone() {
            self.run(Phase::Callback, root, create, (id_raw(root), 0))?;
        }
        let Some(vm_start) = self.exports.vm_start.clone() else {
            return Ok(true);
        };
        let size = raw(self.store.data().vm_configuration.len());
        self.store.data_mut().in_vm_start = true;
        let result = self.run(Phase::Callback, root, vm_start, (id_raw(root), size));
        self.store.data_mut().in_vm_start = false;
        Ok(result? != 0)
    }

    /// Runs `proxy_on_configure(root, size)`; the guest reads the plugin
    /// configuration (buffer type 7).
    pub fn configure(&mut self) -> Result<bool, HarnessError> {
        let root = self.root_id();
        let Some(configure) = self.exports.configure.clone() else {
            return Ok(true);
        };
        let size = raw(self.store.data().plugin_configuration.len());
        self.store.data_mut().in_configure = true;
        let result = self.run(Phase::Callback, root, configure, (id_raw(root), size));
        self.store.data_mut().in_configure = false;
        Ok(result? != 0)
    }

    /// Replaces the plugin configuration and runs `proxy_on_configure`
    /// again, as Envoy does on a configuration update.
    pub fn reconfigure(&mut self, config: impl Into<Vec<u8>>) -> Result<bool, HarnessError> {
        self.store.data_mut().plugin_configuration = config.into();
        self.configure()
    }

    pub fn root_id(&self) -> u32 {
        self.store.data().root_id
    }

    /// Opens an HTTP stream: runs `proxy_on_context_create(id, root)`.
    pub fn open_http(&mut self) -> Result<u32, HarnessError> {
        let id = self.next_id;
        self.next_id += 1;
        self.store.data_mut().streams.insert(id, Stream::default());
        self.calls.insert(id, Vec::new());
        if let Some(create) = self.exports.context_create.clone() {
            let root = id_raw(self.root_id());
            self.record(id, create.name, vec![root]);
            self.run(Phase::Callback, id, create, (id_raw(id), root))?;
        }
        Ok(id)
    }

    fn stream(&self, id: u32) -> Result<&Stream, HarnessError> {
        self.store
            .data()
            .streams
            .get(&id)
            .ok_or_else(|| HarnessError::Usage(format!("no open HTTP context {id}")))
    }

    fn stream_mut(&mut self, id: u32) -> Result<&mut Stream, HarnessError> {
        self.store
            .data_mut()
            .streams
            .get_mut(&id)
            .ok_or_else(|| HarnessError::Usage(format!("no open HTTP context {id}")))
    }

    fn ensure_open(&self, id: u32) -> Result<(), HarnessError> {
        let stream = self.stream(id)?;
        if stream.local_response.is_some() {
            return Err(HarnessError::Usage(format!(
                "HTTP context {id} was already answered locally"
            )));
        }
        if stream.reset {
            return Err(HarnessError::Usage(format!("HTTP context {id} was reset")));
        }
        Ok(())
    }

    /// Notes a callback about to be delivered on HTTP context `id`.
    fn record(&mut self, id: u32, callback: &'static str, args: Vec<i32>) {
        self.calls.entry(id).or_default().push(GuestCall {
            callback,
            args,
            returned: None,
        });
    }

    /// Notes what the last recorded callback on `id` returned.
    fn record_return(&mut self, id: u32, value: i32) {
        if let Some(last) = self.calls.get_mut(&id).and_then(|c| c.last_mut()) {
            last.returned = Some(value);
        }
    }

    /// Runs a stream callback `(id, a, b) -> action` and records it.
    fn call3(&mut self, id: u32, callback: Cb3R, a: i32, b: i32) -> Result<i32, HarnessError> {
        self.record(id, callback.name, vec![a, b]);
        let value = self.run(Phase::Callback, id, callback, (id_raw(id), a, b))?;
        self.record_return(id, value);
        Ok(value)
    }

    /// Runs a stream callback `(id) -> ()` and records it.
    fn call1(&mut self, id: u32, callback: Option<Cb1>) -> Result<(), HarnessError> {
        if let Some(callback) = callback {
            self.record(id, callback.name, Vec::new());
            self.run(Phase::Callback, id, callback, id_raw(id))?;
        }
        Ok(())
    }

    /// Delivers the request headers: runs `proxy_on_request_headers(id,
    /// count, end_of_stream)`. `Continue` forwards them upstream (see
    /// [`upstream_request_headers`](Self::upstream_request_headers)); `Pause`
    /// holds them until a body or trailers callback continues or the guest
    /// calls `proxy_continue_stream(0)`. Under [`HeaderPause::StopAll`] a
    /// `Pause` also stops the body and trailers callbacks until then (see
    /// [`request_stopped`](Self::request_stopped)).
    ///
    /// After any callback, the host acts on the guest's
    /// `proxy_continue_stream` calls, as Envoy does once the callback
    /// returns (for a stopped stream that runs the owed body and trailers
    /// callbacks).
    pub fn request_headers(
        &mut self,
        id: u32,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        let callback = self.exports.request_headers.clone();
        self.deliver_headers(Direction::Request, callback, id, headers, end_of_stream)
    }

    /// Delivers a request body chunk: the host appends it to what it
    /// buffered and runs `proxy_on_request_body(id, buffered_size,
    /// end_of_stream)`. `Pause` keeps buffering (Envoy's
    /// StopIterationAndBuffer); `Continue` forwards held headers and the
    /// buffered body. While the request is stopped
    /// ([`HeaderPause::StopAll`]) the host only keeps the chunk, runs
    /// nothing and answers `Pause`.
    pub fn request_body(
        &mut self,
        id: u32,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        self.deliver_body(Direction::Request, id, chunk, end_of_stream)
    }

    /// Delivers request trailers (the end of the request): runs
    /// `proxy_on_request_trailers(id, count)`; `Continue` forwards held
    /// headers, the buffered body and the trailers (see
    /// [`upstream_request_trailers`](Self::upstream_request_trailers)),
    /// `Pause` holds the trailers too. While the request is stopped the host
    /// keeps them, runs nothing and answers `Pause`.
    pub fn request_trailers(
        &mut self,
        id: u32,
        trailers: &[(&str, &str)],
    ) -> Result<Action, HarnessError> {
        self.deliver_trailers(Direction::Request, id, trailers)
    }

    /// Delivers the upstream's response headers: runs
    /// `proxy_on_response_headers(id, count, end_of_stream)`. `Continue`
    /// forwards them to the client (see
    /// [`downstream_response_headers`](Self::downstream_response_headers));
    /// `Pause` holds them as for the request (continued by
    /// `proxy_continue_stream(1)`).
    pub fn response_headers(
        &mut self,
        id: u32,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        let callback = self.exports.response_headers.clone();
        self.deliver_headers(Direction::Response, callback, id, headers, end_of_stream)
    }

    /// Delivers a response body chunk: runs `proxy_on_response_body(id,
    /// buffered_size, end_of_stream)`, buffering while the guest pauses
    /// (nothing runs while the response is stopped).
    pub fn response_body(
        &mut self,
        id: u32,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        self.deliver_body(Direction::Response, id, chunk, end_of_stream)
    }

    /// Delivers response trailers: runs `proxy_on_response_trailers(id,
    /// count)`, as for the request.
    pub fn response_trailers(
        &mut self,
        id: u32,
        trailers: &[(&str, &str)],
    ) -> Result<Action, HarnessError> {
        self.deliver_trailers(Direction::Response, id, trailers)
    }

    /// The host side of a headers callback of either direction: the map is
    /// stored (lower-case names) for the guest, `callback(id, count,
    /// end_of_stream)` runs (an absent export counts as `Continue`), then
    /// `Continue` lets the headers go on and `Pause` holds them (with
    /// [`HeaderPause::StopAll`], the body and trailers too).
    fn deliver_headers(
        &mut self,
        direction: Direction,
        callback: Option<Cb3R>,
        id: u32,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        self.ensure_open(id)?;
        let headers = lowercase_names(headers);
        let count = raw(headers.len());
        let flow = self.stream_mut(id)?.flow(direction);
        flow.headers = Some(headers);
        flow.headers_live = true;
        flow.ended = end_of_stream;
        let action = match callback {
            Some(f) => Action::from_raw(self.call3(id, f, count, i32::from(end_of_stream))?),
            None => Action::Continue,
        };
        let stop_all = self.header_pause == HeaderPause::StopAll;
        let stream = self.stream_mut(id)?;
        match action {
            Action::Continue => {
                // Envoy drops its pointer to the map once headers continue.
                stream.flow(direction).headers_live = false;
                stream.release(direction);
            }
            Action::Pause => stream.hold(direction, stop_all),
        }
        self.settle()?;
        Ok(action)
    }

    /// The host side of a body chunk of either direction: the chunk is
    /// appended to the host's buffer; while the headers are stopped
    /// ([`HeaderPause::StopAll`]) the host keeps it and runs nothing
    /// (answering `Pause`), otherwise the body callback runs.
    fn deliver_body(
        &mut self,
        direction: Direction,
        id: u32,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        self.ensure_open(id)?;
        let flow = self.stream_mut(id)?.flow(direction);
        flow.buffer.extend_from_slice(chunk);
        flow.ended |= end_of_stream;
        if flow.stopped_all {
            flow.body_waiting = true;
            return Ok(Action::Pause);
        }
        let action = self.body_callback(direction, id, end_of_stream)?;
        self.settle()?;
        Ok(action)
    }

    /// Runs `callback(id, buffered_size, end_of_stream)` over the host's
    /// buffer, which the guest can read and edit meanwhile; `Continue` lets
    /// held headers and the buffer go on, `Pause` keeps buffering (Envoy's
    /// StopIterationAndBuffer; the guest can then reach the buffer from
    /// other callbacks too).
    fn body_callback(
        &mut self,
        direction: Direction,
        id: u32,
        end_of_stream: bool,
    ) -> Result<Action, HarnessError> {
        let callback = match direction {
            Direction::Request => self.exports.request_body.clone(),
            Direction::Response => self.exports.response_body.clone(),
        };
        let flow = self.stream_mut(id)?.flow(direction);
        let size = raw(flow.buffer.len());
        flow.in_body = true;
        let result = match callback {
            Some(f) => self.call3(id, f, size, i32::from(end_of_stream)),
            None => Ok(0),
        };
        let stream = self.stream_mut(id)?;
        stream.flow(direction).in_body = false;
        let action = Action::from_raw(result?);
        match action {
            Action::Continue => stream.release(direction),
            Action::Pause => stream.buffer_body(direction),
        }
        Ok(action)
    }

    /// The host side of trailers of either direction: the map is stored;
    /// while the headers are stopped the host keeps it and runs nothing
    /// (answering `Pause`), otherwise the trailers callback runs.
    fn deliver_trailers(
        &mut self,
        direction: Direction,
        id: u32,
        trailers: &[(&str, &str)],
    ) -> Result<Action, HarnessError> {
        self.ensure_open(id)?;
        let flow = self.stream_mut(id)?.flow(direction);
        flow.trailers = Some(lowercase_names(trailers));
        flow.ended = true;
        if flow.stopped_all {
            flow.trailers_waiting = true;
            return Ok(Action::Pause);
        }
        let action = self.trailers_callback(direction, id)?;
        self.settle()?;
        Ok(action)
    }

    /// Runs `callback(id, count)`; the guest reaches the trailer map, and a
    /// body it buffers. `Continue` lets held headers, the buffered body and
    /// the trailers go on; `Pause` holds the trailers too.
    fn trailers_callback(&mut self, direction: Direction, id: u32) -> Result<Action, HarnessError> {
        let callback = match direction {
            Direction::Request => self.exports.request_trailers.clone(),
            Direction::Response => self.exports.response_trailers.clone(),
        };
        let flow = self.stream_mut(id)?.flow(direction);
        flow.trailers_live = true;
        let count = raw(flow.trailers.as_ref().map_or(0, Vec::len));
        let action = match callback {
            Some(f) => {
                self.record(id, f.name, vec![count]);
                let value = self.run(Phase::Callback, id, f, (id_raw(id), count))?;
                self.record_return(id, value);
                Action::from_raw(value)
            }
            None => Action::Continue,
        };
        let stream = self.stream_mut(id)?;
        match action {
            Action::Continue => {
                stream.flow(direction).trailers_live = false;
                stream.release(direction);
            }
            Action::Pause => stream.hold_trailers(direction),
        }
        Ok(action)
    }

    /// Acts on every `proxy_continue_stream` the last callback made, as
    /// Envoy does right after the callback returns (lowest context first).
    fn settle(&mut self) -> Result<(), HarnessError> {
        loop {
            let next = self
                .store
                .data()
                .streams
                .iter()
                .filter_map(|(id, s)| {
                    if s.request.continue_requested {
                        Some((*id, 0))
                    } else if s.response.continue_requested {
                        Some((*id, 1))
                    } else {
                        None
                    }
                })
                .min();
            let Some((id, direction)) = next else {
                return Ok(());
            };
            let direction = if direction == 0 {
                Direction::Request
            } else {
                Direction::Response
            };
            self.continue_flow(id, direction)?;
        }
    }

    /// Envoy's `continueDecoding`/`continueEncoding`: a filter stopped for
    /// all frames gets its headers sent on, then one body callback with
    /// everything buffered (end of stream only if the body ended without
    /// trailers), then the trailers callback; otherwise held headers, the
    /// buffered body and held trailers go on.
    fn continue_flow(&mut self, id: u32, direction: Direction) -> Result<(), HarnessError> {
        let stream = self.stream_mut(id)?;
        stream.flow(direction).continue_requested = false;
        if stream.answered() {
            return Ok(());
        }
        let flow = stream.flow(direction);
        if !flow.stopped_all {
            stream.release(direction);
            return Ok(());
        }
        flow.stopped_all = false;
        flow.release_headers();
        let body = std::mem::take(&mut flow.body_waiting);
        let trailers = std::mem::take(&mut flow.trailers_waiting);
        let end_of_stream = flow.ended && !trailers;
        if body {
            self.body_callback(direction, id, end_of_stream)?;
            self.settle()?;
        }
        if trailers && !self.stream(id)?.answered() {
            self.trailers_callback(direction, id)?;
            self.settle()?;
        }
        Ok(())
    }

    /// Ends the stream: runs `proxy_on_done(id)`, `proxy_on_log(id)` and
    /// `proxy_on_delete(id)`, then forgets the context. Read the stream's
    /// state before calling this.
    pub fn complete(&mut self, id: u32) -> Result<(), HarnessError> {
        self.stream(id)?;
        self.finish(id)
    }

    /// Resets the stream, as when the client or the upstream resets it:
    /// nothing more goes on either way and no more body or trailers
    /// callbacks run; then `proxy_on_done(id)`, `proxy_on_log(id)` and
    /// `proxy_on_delete(id)` run and the context is forgotten. HTTP calls
    /// the context dispatched stay pending (Envoy makes them on the root
    /// context).
    pub fn reset(&mut self, id: u32) -> Result<(), HarnessError> {
        self.stream_mut(id)?.reset();
        self.finish(id)
    }

    fn finish(&mut self, id: u32) -> Result<(), HarnessError> {
        if let Some(done) = self.exports.done.clone() {
            self.record(id, done.name, Vec::new());
            let value = self.run(Phase::Callback, id, done, id_raw(id))?;
            self.record_return(id, value);
        }
        self.call1(id, self.exports.log.clone())?;
        self.call1(id, self.exports.delete.clone())?;
        self.store.data_mut().streams.remove(&id);
        self.settle()
    }

    /// Runs `proxy_on_tick(root)`, as the host's timer does every tick
    /// period. Returns false (and runs nothing) when the guest set no period.
    pub fn tick(&mut self) -> Result<bool, HarnessError> {
        if self.store.data().tick_period_ms == 0 {
            return Ok(false);
        }
        let root = self.root_id();
        if let Some(tick) = self.exports.tick.clone() {
            self.run(Phase::Callback, root, tick, id_raw(root))?;
            self.settle()?;
        }
        Ok(true)
    }

    /// The tick period the guest asked for (`proxy_set_tick_period_milliseconds`).
    pub fn tick_period(&self) -> Option<Duration> {
        let ms = self.store.data().tick_period_ms;
        (ms > 0).then(|| Duration::from_millis(u64::from(ms)))
    }

    /// Moves the host clocks (wall clock and monotonic) forward. Runs no
    /// callback.
    pub fn advance_time(&mut self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let state = self.store.data_mut();
        state.realtime_nanos = state.realtime_nanos.saturating_add(nanos);
        state.monotonic_nanos = state.monotonic_nanos.saturating_add(nanos);
    }

    /// Sets the wall clock. Runs no callback.
    pub fn set_time_unix_nanos(&mut self, nanos: u64) {
        self.store.data_mut().realtime_nanos = nanos;
    }

    /// The HTTP calls the guest dispatched and nobody answered yet.
    pub fn pending_http_calls(&self) -> Vec<HttpCall> {
        self.store.data().http_calls.values().cloned().collect()
    }

    /// Answers an HTTP call: runs `proxy_on_http_call_response(context,
    /// token, header_count, body_size, trailer_count)` in the context that
    /// dispatched it; the guest reads the answer as map types 6 and 7 and
    /// buffer type 4.
    pub fn respond_http_call(
        &mut self,
        token: u32,
        headers: &[(&str, &str)],
        body: &[u8],
        trailers: &[(&str, &str)],
    ) -> Result<(), HarnessError> {
        let call = self
            .store
            .data_mut()
            .http_calls
            .remove(&token)
            .ok_or_else(|| HarnessError::Usage(format!("no pending HTTP call {token}")))?;
        let own = |pairs: &[(&str, &str)]| -> Headers {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let (headers, trailers) = (own(headers), own(trailers));
        let counts = (raw(headers.len()), raw(body.len()), raw(trailers.len()));
        self.store.data_mut().call_response = Some((headers, body.to_vec(), trailers));
        // cpp-host makes the call on the root context and answers it there;
        // the SDK moves to the dispatching context itself
        // (`proxy_set_effective_context`).
        let root = self.root_id();
        let result = match self.exports.http_call_response.clone() {
            Some(f) => {
                if self.calls.contains_key(&call.context_id) {
                    self.record(
                        call.context_id,
                        f.name,
                        vec![id_raw(token), counts.0, counts.1, counts.2],
                    );
                }
                self.run(
                    Phase::Callback,
                    root,
                    f,
                    (id_raw(root), id_raw(token), counts.0, counts.1, counts.2),
                )
            }
            None => Ok(()),
        };
        self.store.data_mut().call_response = None;
        result?;
        self.settle()
    }

    /// The local response the guest sent on this stream, if any. Envoy sends
    /// it in place of the upstream's response as long as no response
    /// headers went to the client (it then shows in
    /// [`downstream_response_headers`](Self::downstream_response_headers)
    /// and [`downstream_response_body`](Self::downstream_response_body));
    /// after that it can only reset the stream (see
    /// [`was_reset`](Self::was_reset)) and this stays `None`.
    pub fn local_response(&self, id: u32) -> Option<&LocalResponse> {
        self.stream(id).ok()?.local_response.as_ref()
    }

    /// The request headers as forwarded upstream (what the guest left in the
    /// map when the request continued); `None` while held or after a local
    /// response.
    pub fn upstream_request_headers(&self, id: u32) -> Option<&Headers> {
        self.stream(id).ok()?.request.sent_headers.as_ref()
    }

    /// The request trailers as forwarded upstream; `None` while held or
    /// when there were none.
    pub fn upstream_request_trailers(&self, id: u32) -> Option<&Headers> {
        self.stream(id).ok()?.request.sent_trailers.as_ref()
    }

    /// The response trailers as forwarded to the client.
    pub fn downstream_response_trailers(&self, id: u32) -> Option<&Headers> {
        self.stream(id).ok()?.response.sent_trailers.as_ref()
    }

    /// True while the response headers are held (the guest paused).
    pub fn response_held(&self, id: u32) -> bool {
        self.stream(id).is_ok_and(|s| s.response.held)
    }

    /// True while the host holds the request for a headers `Pause` under
    /// [`HeaderPause::StopAll`]: no body or trailers callbacks run until
    /// the guest continues.
    pub fn request_stopped(&self, id: u32) -> bool {
        self.stream(id).is_ok_and(|s| s.request.stopped_all)
    }

    /// True while the host holds the response that way.
    pub fn response_stopped(&self, id: u32) -> bool {
        self.stream(id).is_ok_and(|s| s.response.stopped_all)
    }

    /// True once the guest reset the stream: with `proxy_close_stream`, or
    /// with a local reply after the response headers had gone to the client
    /// (all Envoy can do then). Nothing more goes on either way; end the
    /// stream with [`complete`](Self::complete) or [`reset`](Self::reset).
    pub fn was_reset(&self, id: u32) -> bool {
        self.stream(id).is_ok_and(|s| s.reset)
    }

    /// The callbacks the host delivered on HTTP context `id`, in order, by
    /// export name (`proxy_on_context_create`, `proxy_on_request_headers`,
    /// …, `proxy_on_http_call_response` for calls it dispatched, …,
    /// `proxy_on_delete`). Kept after the stream ends, until
    /// [`clear_logs`](Self::clear_logs).
    pub fn callbacks(&self, id: u32) -> Vec<&'static str> {
        self.guest_calls(id).iter().map(|c| c.callback).collect()
    }

    /// The callbacks delivered on HTTP context `id`, with their arguments
    /// and what the guest returned.
    pub fn guest_calls(&self, id: u32) -> &[GuestCall] {
        self.calls.get(&id).map(Vec::as_slice).unwrap_or_default()
    }

    /// What a `Pause` from a headers callback does in this host.
    pub fn header_pause(&self) -> HeaderPause {
        self.header_pause
    }

    /// The request body bytes forwarded upstream so far.
    pub fn upstream_request_body(&self, id: u32) -> Option<&[u8]> {
        Some(&self.stream(id).ok()?.request.sent_body)
    }

    /// The response headers the client got: the upstream's as the guest
    /// forwarded them, or those of a local reply that replaced them.
    pub fn downstream_response_headers(&self, id: u32) -> Option<&Headers> {
        self.stream(id).ok()?.response.sent_headers.as_ref()
    }

    /// The response body bytes the client got so far (a local reply's body
    /// once one replaced the upstream's response).
    pub fn downstream_response_body(&self, id: u32) -> Option<&[u8]> {
        Some(&self.stream(id).ok()?.response.sent_body)
    }

    /// The request headers as the host holds them now.
    pub fn request_header_map(&self, id: u32) -> Option<&Headers> {
        self.stream(id).ok()?.request.headers.as_ref()
    }

    /// True while the request headers are held (the guest paused).
    pub fn request_held(&self, id: u32) -> bool {
        self.stream(id).is_ok_and(|s| s.request.held)
    }

    /// Every line the guest logged (`proxy_log`, stdout, stderr), in order.
    pub fn logs(&self) -> &[LogEntry] {
        &self.store.data().logs
    }

    /// The messages logged at exactly `level`.
    pub fn logs_at(&self, level: LogLevel) -> Vec<&str> {
        self.logs()
            .iter()
            .filter(|l| l.level == level)
            .map(|l| l.message.as_str())
            .collect()
    }

    /// Forgets the recorded log lines, and the callbacks recorded for HTTP
    /// contexts that have ended.
    pub fn clear_logs(&mut self) {
        self.store.data_mut().logs.clear();
        let streams = &self.store.data().streams;
        self.calls.retain(|id, _| streams.contains_key(id));
    }

    /// The value of the metric named `name`, if the guest defined it.
    pub fn metric(&self, name: &str) -> Option<i128> {
        self.metrics()
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    pub fn metrics(&self) -> &[Metric] {
        &self.store.data().metrics
    }

    /// A property, as the guest set it or as the test provided it.
    pub fn property(&self, path: &[&str]) -> Option<&[u8]> {
        let key: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        self.store.data().properties.get(&key).map(Vec::as_slice)
    }

    /// Provides a property the guest can read with `proxy_get_property`.
    pub fn set_property(&mut self, path: &[&str], value: impl Into<Vec<u8>>) {
        let key = path.iter().map(|s| (*s).to_owned()).collect();
        self.store.data_mut().properties.insert(key, value.into());
    }

    /// Fuel the last guest callback used (about one unit per instruction).
    pub fn last_fuel_used(&self) -> u64 {
        self.last_fuel_used
    }

    /// The guest's linear memory size in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.store
            .data()
            .memory
            .map(|m| m.data_size(&self.store))
            .unwrap_or_default()
    }

    /// Why the VM failed, once it has.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn run<P, R>(
        &mut self,
        phase: Phase,
        context_id: u32,
        callback: Callback<P, R>,
        params: P,
    ) -> Result<R, HarnessError>
    where
        P: wasmtime::WasmParams,
        R: wasmtime::WasmResults,
    {
        if let Some(reason) = &self.failed {
            return Err(HarnessError::Failed(reason.clone()));
        }
        let state = self.store.data_mut();
        state.phase = phase;
        state.callback = callback.name;
        state.context_id = context_id;
        state.cap.exceeded = None;
        self.store
            .set_fuel(self.fuel)
            .map_err(|e| HarnessError::Load(format!("{e:#}")))?;
        let result = callback.func.call(&mut self.store, params);
        self.last_fuel_used = self.fuel - self.store.get_fuel().unwrap_or(0);
        let state = self.store.data_mut();
        state.phase = Phase::Callback;
        state.callback = "";
        match result {
            Ok(value) => Ok(value),
            Err(error) => {
                let cause = classify_cause(self.fuel, &error, self.store.data());
                let failure = HarnessError::Trapped {
                    callback: callback.name,
                    cause,
                };
                self.failed = Some(failure.to_string());
                Err(failure)
            }
        }
    }
}

fn classify(
    callback: &'static str,
    options: &HostOptions,
    error: &wasmtime::Error,
    state: &HostState,
) -> HarnessError {
    if error.downcast_ref::<Trap>().is_some()
        || error.downcast_ref::<HostFault>().is_some()
        || state.cap.exceeded.is_some()
    {
        return HarnessError::Trapped {
            callback,
            cause: classify_cause(options.fuel_per_callback, error, state),
        };
    }
    HarnessError::Load(format!("{error:#}"))
}

fn classify_cause(fuel: u64, error: &wasmtime::Error, state: &HostState) -> TrapCause {
    if let Some(fault) = error.downcast_ref::<HostFault>() {
        return TrapCause::Host(fault.clone());
    }
    if let Some(cap) = error.downcast_ref::<MemoryCapExceeded>() {
        return TrapCause::MemoryCap {
            wanted_bytes: cap.wanted_bytes,
            cap_bytes: cap.cap_bytes,
        };
    }
    if let Some(wanted) = state.cap.exceeded {
        return TrapCause::MemoryCap {
            wanted_bytes: wanted,
            cap_bytes: state.cap.max_bytes,
        };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) {
        return TrapCause::OutOfFuel { fuel };
    }
    let mut message = format!("{error}");
    if let Some(trap) = error.downcast_ref::<Trap>() {
        message = trap.to_string();
    }
    if let Some(last) = state
        .logs
        .iter()
        .rev()
        .find(|l| l.level == LogLevel::Critical)
    {
        message.push_str(&format!(" (guest logged: {})", last.message));
    }
    TrapCause::Wasm(message)
}
