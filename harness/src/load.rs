//! Reading a policy file: YAML or JSON, `jwks_file` resolved relative to the
//! policy, then compiled so every error surfaces before a proxy sees it.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use policy_sdk::{PolicyDocument, Warden};

pub struct LoadedPolicy {
    /// The document with `jwks` inlined: the filter's plugin configuration.
    pub document: PolicyDocument,
    pub warden: Warden,
}

pub fn load_policy(path: &Path) -> anyhow::Result<LoadedPolicy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let parsed = if is_json {
        PolicyDocument::from_json(&text)
    } else {
        PolicyDocument::from_yaml(&text)
    };
    let mut document = parsed.map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if let Some(file) = document.identity.jwks_file.take() {
        if document.identity.jwks.is_some() {
            return Err(anyhow!(
                "{}: identity: give `jwks` or `jwks_file`, not both",
                path.display()
            ));
        }
        let jwks_path = path.parent().unwrap_or(Path::new(".")).join(&file);
        let jwks_text = std::fs::read_to_string(&jwks_path).with_context(|| {
            format!(
                "{}: identity.jwks_file: reading {}",
                path.display(),
                jwks_path.display()
            )
        })?;
        let jwks = serde_json::from_str(&jwks_text).with_context(|| {
            format!(
                "{}: identity.jwks_file: {} is not JSON",
                path.display(),
                jwks_path.display()
            )
        })?;
        document.identity.jwks = Some(jwks);
    }
    let warden = Warden::compile(&document).map_err(|e| {
        let help = e
            .help()
            .map(|h| format!("\n  help: {h}"))
            .unwrap_or_default();
        anyhow!("{}: {e}{help}", path.display())
    })?;
    Ok(LoadedPolicy { document, warden })
}
