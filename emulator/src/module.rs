//! A compiled filter module, checked for the proxy-wasm ABI and linked
//! against the host.

use std::collections::HashSet;
use std::path::Path;

use wasmtime::{Config, Engine, Linker, Module};

use crate::error::HarnessError;
use crate::link;
use crate::state::HostState;

/// The proxy-wasm ABI version a module declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbiVersion {
    /// `proxy_abi_version_0_2_0`: served with the 0.2.1 host (compatible).
    V0_2_0,
    /// `proxy_abi_version_0_2_1`.
    V0_2_1,
}

/// A compiled filter module with its host imports linked; cheap to clone,
/// so one compilation serves many emulators.
#[derive(Clone)]
pub struct FilterModule {
    pub(crate) engine: Engine,
    pub(crate) module: Module,
    pub(crate) linker: std::sync::Arc<Linker<HostState>>,
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
        // For a sampling profiler (`perf`): the compiled functions written
        // to /tmp/perf-<pid>.map under their names in the module.
        if std::env::var_os("WARDEN_WASM_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
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
        let linker =
            link::linker(&engine, &module).map_err(|e| HarnessError::Load(format!("{e:#}")))?;
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
