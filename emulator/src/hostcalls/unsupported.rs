//! Every import the host does not implement: gRPC (`proxy_grpc_call`,
//! `proxy_grpc_stream`, `proxy_grpc_send`, `proxy_grpc_cancel`,
//! `proxy_grpc_close`), shared queues (`proxy_register_shared_queue`,
//! `proxy_resolve_shared_queue`, `proxy_enqueue_shared_queue`,
//! `proxy_dequeue_shared_queue`), `proxy_get_status`, the other WASI calls,
//! and whatever else a module imports. Each is linked to a trap that names
//! it ([`HostFault::Unsupported`]) when called; none answers OK.

use wasmtime::{ExternType, Linker, Module, Store};

use crate::fault::HostFault;
use crate::link::R;
use crate::options::HostOptions;
use crate::state::HostState;

/// Links a trap for each import of `module` that `linker` does not provide
/// yet (so this runs after every implemented hostcall is linked). An import
/// that is not a function cannot be provided at all.
pub(crate) fn define(linker: &mut Linker<HostState>, module: &Module) -> R<()> {
    let mut probe = Store::new(module.engine(), HostState::new(&HostOptions::default()));
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
    Ok(())
}
