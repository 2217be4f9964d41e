//! The emulator: one plugin (root context) in one VM, driven like a proxy
//! drives it. Starting the plugin, opening contexts, ticks and HTTP calls
//! live here; the HTTP stream callbacks in `delivery`, what a test reads
//! back in `inspect`.

mod delivery;
mod inspect;

use std::collections::BTreeMap;
use std::time::Duration;

use wasmtime::Store;

use crate::abi::{Headers, LogLevel};
use crate::error::{HarnessError, classify, classify_cause};
use crate::exports::{Callback, Cb1, Cb3R, Exports};
use crate::module::FilterModule;
use crate::options::{HeaderPause, HostOptions};
use crate::state::{HostState, HttpCall, Phase, Stream};

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
    /// Fuel used by every callback so far.
    fuel_used_total: u64,
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
        let mut store = Store::new(&module.engine, HostState::new(&options));
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
            fuel_used_total: 0,
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
        self.fuel_used_total = self.fuel_used_total.saturating_add(self.last_fuel_used);
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
