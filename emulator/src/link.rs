//! How hostcalls are linked. A hostcall is a plain function named after its
//! import, `fn proxy_log(caller: &mut Ctx<'_>, level: i32, …) -> R<Status>`;
//! each ABI area lists its functions once with [`hostcalls!`], which links
//! every one under its own name and puts Envoy's phase check ([`enter`]) in
//! front of it. Imports the host does not implement are linked last, to a
//! trap that names them (`hostcalls/unsupported.rs`).

use wasmtime::{Caller, Engine, Linker, Module, WasmTy};

use crate::abi::Status;
use crate::fault::HostFault;
use crate::state::{HostState, Phase};

/// What a hostcall gets: the store's state and the guest's exports.
pub(crate) type Ctx<'a> = Caller<'a, HostState>;
/// What a hostcall returns: a code for the guest, or a trap.
pub(crate) type R<T> = wasmtime::Result<T>;

/// Builds the linker for `module`: every hostcall the host implements, then
/// a trap for each other import it has.
pub(crate) fn linker(engine: &Engine, module: &Module) -> R<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    crate::hostcalls::define(&mut linker)?;
    crate::wasi::define(&mut linker)?;
    crate::hostcalls::unsupported::define(&mut linker, module)?;
    Ok(linker)
}

/// Links hostcalls, each under its own name, behind [`enter`]:
///
/// * `hostcalls!(linker, env: [proxy_log, …])` links the function
///   `proxy_log` in scope as `env.proxy_log`;
/// * `hostcalls!(linker, wasi: [fd_write, …])` links `fd_write` under both
///   `wasi_snapshot_preview1` and `wasi_unstable` (as Envoy does), checked
///   under its `wasi_snapshot_preview1` name;
/// * `name = function` links a function under another name (one
///   implementation behind several imports).
macro_rules! hostcalls {
    ($linker:expr, env: [$($list:tt)*]) => {
        $crate::link::hostcalls!(@in $linker, $crate::hostcalls::MODULES, "env", [$($list)*])
    };
    ($linker:expr, wasi: [$($list:tt)*]) => {
        $crate::link::hostcalls!(
            @in $linker, $crate::wasi::MODULES, "wasi_snapshot_preview1", [$($list)*]
        )
    };
    (@in $linker:expr, $modules:expr, $qualifier:literal,
        [$($name:ident $(= $function:path)?),* $(,)?]) => {
        for module in $modules {
            $(
                $crate::link::Hostcall::link_as(
                    $crate::link::hostcalls!(@function $name $($function)?),
                    &mut *$linker,
                    module,
                    stringify!($name),
                    concat!($qualifier, ".", stringify!($name)),
                )?;
            )*
        }
    };
    (@function $name:ident) => { $name };
    (@function $name:ident $function:path) => { $function };
}
pub(crate) use hostcalls;

/// Hostcalls Envoy allows while the module initialises (cpp-host
/// `WasmBase::startVm`).
const ALLOWED_WHILE_INITIALIZING: &[&str] = &[
    "env.proxy_log",
    "wasi_snapshot_preview1.fd_write",
    "wasi_snapshot_preview1.args_sizes_get",
    "wasi_snapshot_preview1.args_get",
    "wasi_snapshot_preview1.environ_sizes_get",
    "wasi_snapshot_preview1.environ_get",
    "wasi_snapshot_preview1.clock_time_get",
    "wasi_snapshot_preview1.clock_res_get",
    "wasi_snapshot_preview1.random_get",
    "wasi_snapshot_preview1.poll_oneoff",
    "wasi_snapshot_preview1.fd_fdstat_get",
    "wasi_snapshot_preview1.fd_fdstat_set_flags",
];

/// Hostcalls Envoy allows inside `proxy_on_memory_allocate` (cpp-host
/// `WasmBase::allocMemory`).
const ALLOWED_WHILE_ALLOCATING: &[&str] = &[
    "env.proxy_log",
    "wasi_snapshot_preview1.fd_write",
    "wasi_snapshot_preview1.clock_time_get",
    "wasi_snapshot_preview1.poll_oneoff",
];

/// Refuses hostcalls that Envoy refuses in the current phase: while
/// `_initialize`/`main` run and inside `proxy_on_memory_allocate` only the
/// few above are allowed; anything else traps with `restricted_callback`.
/// An allowed call is counted against the context it acts on.
pub(crate) fn enter(caller: &mut Ctx<'_>, hostcall: &'static str) -> R<()> {
    let (allowed, phase) = match caller.data().phase {
        Phase::Callback => (true, ""),
        Phase::Initializing => (
            ALLOWED_WHILE_INITIALIZING.contains(&hostcall),
            "`_initialize`/`main`",
        ),
        Phase::Allocating => (
            ALLOWED_WHILE_ALLOCATING.contains(&hostcall),
            "`proxy_on_memory_allocate`",
        ),
    };
    if allowed {
        caller.data_mut().count_hostcall(hostcall);
        Ok(())
    } else {
        Err(wasmtime::Error::new(HostFault::Restricted {
            hostcall: hostcall.to_owned(),
            phase,
        }))
    }
}

/// The code a hostcall hands back to the guest: a proxy-wasm [`Status`] or
/// a WASI errno.
pub(crate) trait Code: Copy {
    fn code(self) -> i32;
}

impl Code for Status {
    fn code(self) -> i32 {
        Status::code(self)
    }
}

/// A hostcall implementation, `fn(&mut Ctx<'_>, params…) -> R<impl Code>`
/// with wasm-typed params (implemented for up to ten).
pub(crate) trait Hostcall<Params, Returned>: Copy + Send + Sync + 'static {
    /// Links it as `module.name`; each call first passes [`enter`] under
    /// the name `hostcall`.
    fn link_as(
        self,
        linker: &mut Linker<HostState>,
        module: &str,
        name: &str,
        hostcall: &'static str,
    ) -> R<()>;
}

macro_rules! impl_hostcall {
    ($($param:ident: $ty:ident),*) => {
        impl<F, Returned, $($ty),*> Hostcall<($($ty,)*), Returned> for F
        where
            F: Fn(&mut Ctx<'_>, $($ty),*) -> R<Returned> + Copy + Send + Sync + 'static,
            Returned: Code,
            $($ty: WasmTy,)*
        {
            fn link_as(
                self,
                linker: &mut Linker<HostState>,
                module: &str,
                name: &str,
                hostcall: &'static str,
            ) -> R<()> {
                linker.func_wrap(
                    module,
                    name,
                    move |mut caller: Ctx<'_>, $($param: $ty),*| -> R<i32> {
                        enter(&mut caller, hostcall)?;
                        Ok(self(&mut caller, $($param),*)?.code())
                    },
                )?;
                Ok(())
            }
        }
    };
}

impl_hostcall!();
impl_hostcall!(a: A);
impl_hostcall!(a: A, b: B);
impl_hostcall!(a: A, b: B, c: C);
impl_hostcall!(a: A, b: B, c: C, d: D);
impl_hostcall!(a: A, b: B, c: C, d: D, e: E);
impl_hostcall!(a: A, b: B, c: C, d: D, e: E, f: G);
impl_hostcall!(a: A, b: B, c: C, d: D, e: E, f: G, g: H);
impl_hostcall!(a: A, b: B, c: C, d: D, e: E, f: G, g: H, h: I);
impl_hostcall!(a: A, b: B, c: C, d: D, e: E, f: G, g: H, h: I, i: J);
impl_hostcall!(a: A, b: B, c: C, d: D, e: E, f: G, g: H, h: I, i: J, j: K);
