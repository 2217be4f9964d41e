//! Reading a policy file and compiling it, so every error surfaces before a
//! proxy sees the configuration.

use std::path::Path;

use anyhow::anyhow;
use policy_sdk::{PolicyDocument, Warden};

pub struct LoadedPolicy {
    /// The document with `jwks` inlined: the filter's plugin configuration.
    pub document: PolicyDocument,
    pub warden: Warden,
}

pub fn load_policy(path: &Path) -> anyhow::Result<LoadedPolicy> {
    let document =
        PolicyDocument::load_file(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let warden = Warden::compile(&document).map_err(|e| {
        let help = e
            .help()
            .map(|h| format!("\n  help: {h}"))
            .unwrap_or_default();
        anyhow!("{}: {e}{help}", path.display())
    })?;
    Ok(LoadedPolicy { document, warden })
}
