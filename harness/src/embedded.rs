//! Which filter module the CLI runs, and what it and the CLI are.
//!
//! The CLI carries the module it was built with (`build.rs` embeds it), so a
//! copied `warden` binary runs its own filter and never picks up another
//! build's file. `--wasm PATH` or `$WARDEN_WASM` names another module
//! explicitly; a CLI built before the filter embeds none and then refuses to
//! run a module it was not given.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::host::{Emulator, FilterModule, HarnessError, HostOptions};

/// The module embedded at build time, if there was one to embed.
pub const EMBEDDED_WASM: Option<&[u8]> = include!(concat!(env!("OUT_DIR"), "/embedded_wasm.rs"));

/// `warden VERSION (git HASH)`: this CLI.
pub const CLI_BUILD: &str = concat!(
    "warden ",
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("WARDEN_GIT_HASH"),
    ")"
);

/// Where the module the CLI runs comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleOrigin {
    /// `--wasm PATH`.
    Option(PathBuf),
    /// `$WARDEN_WASM`.
    Environment(PathBuf),
    /// Embedded in this CLI at build time.
    Embedded,
}

impl std::fmt::Display for ModuleOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Option(path) => write!(f, "{} (--wasm)", path.display()),
            Self::Environment(path) => write!(f, "{} ($WARDEN_WASM)", path.display()),
            Self::Embedded => f.write_str("embedded in this CLI"),
        }
    }
}

/// A module's bytes and where they came from.
pub struct ChosenModule {
    pub origin: ModuleOrigin,
    pub bytes: Cow<'static, [u8]>,
}

/// `--wasm`, else `$WARDEN_WASM`, else the embedded module; nothing else.
pub fn choose(explicit: Option<&Path>) -> Result<ChosenModule, HarnessError> {
    let origin = match (explicit, std::env::var_os("WARDEN_WASM")) {
        (Some(path), _) => ModuleOrigin::Option(path.to_owned()),
        (None, Some(path)) if !path.is_empty() => ModuleOrigin::Environment(PathBuf::from(path)),
        _ => ModuleOrigin::Embedded,
    };
    let bytes = match &origin {
        ModuleOrigin::Option(path) | ModuleOrigin::Environment(path) => Cow::Owned(
            std::fs::read(path)
                .map_err(|e| HarnessError::Load(format!("reading {origin}: {e}")))?,
        ),
        ModuleOrigin::Embedded => Cow::Borrowed(EMBEDDED_WASM.ok_or_else(|| {
            HarnessError::Load(
                "this warden was built without a filter module (the filter was not built \
                 first): give --wasm PATH or $WARDEN_WASM, or rebuild with `make cli`"
                    .to_owned(),
            )
        })?),
    };
    Ok(ChosenModule { origin, bytes })
}

impl ChosenModule {
    pub fn compile(&self) -> Result<FilterModule, HarnessError> {
        FilterModule::from_bytes(&self.bytes)
    }

    /// Lower-case hex SHA-256 of the module's bytes (what Envoy's
    /// `vm_config.code.remote.sha256` and `SHA256SUMS` hold).
    pub fn sha256(&self) -> String {
        sha256_hex(&self.bytes)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// What the module says it is: the `NAME VERSION (git HASH)` it logs when its
/// VM starts (filter/src/lib.rs), read by starting a VM in the emulator.
pub fn module_build(module: &FilterModule) -> Result<String, HarnessError> {
    let mut emulator = Emulator::new(module, HostOptions::default())?;
    emulator.start_vm()?;
    emulator
        .logs()
        .iter()
        .find_map(|entry| entry.message.strip_suffix(" starting"))
        .map(str::to_owned)
        .ok_or_else(|| {
            HarnessError::Load("the module logs no build identity when its VM starts".to_owned())
        })
}
