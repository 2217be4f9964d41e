//! The policy document: one file (YAML for authors, JSON for the filter)
//! holding identity settings, filter settings, defaults and rules.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::IdentityConfig;
use crate::json::{JsonLimits, parse_strict_str};
use crate::policy::{Defaults, RuleSource};

/// The document format this build understands.
pub const FORMAT_VERSION: u32 = 1;

/// How the filter treats requests, independent of who makes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterSettings {
    /// Largest request body Warden buffers; larger ones get 413.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a body.
    pub max_json_depth: usize,
    /// HTTP status of a policy denial that answers a JSON-RPC request. 200
    /// (the default) keeps every client's session alive; 403 ends the session
    /// of some widely deployed clients.
    pub deny_status: u16,
    /// Exact paths (query string ignored) that are not MCP endpoints and pass
    /// through unjudged. Everything else is judged: unknown means MCP.
    pub passthrough_paths: Vec<String>,
    /// Copy tool arguments into audit lines. Off by default: arguments may
    /// hold personal data or secrets.
    pub audit_arguments: bool,
    /// The `realm` of `WWW-Authenticate` challenges.
    pub realm: String,
}

impl Default for FilterSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_json_depth: 64,
            deny_status: 200,
            passthrough_paths: Vec::new(),
            audit_arguments: false,
            realm: "warden".into(),
        }
    }
}

/// A whole policy document as authored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    pub version: u32,
    pub identity: IdentityConfig,
    #[serde(default)]
    pub filter: FilterSettings,
    #[serde(default)]
    pub defaults: Defaults,
    pub rules: Vec<RuleSource>,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("configuration is not valid JSON: {0}")]
    Json(String),
    #[error("configuration is not valid YAML: {0}")]
    Yaml(String),
    #[error("{0}")]
    Shape(String),
    #[error("{0}")]
    Io(String),
}

impl PolicyDocument {
    /// Reads the JSON form (the filter's plugin configuration). Duplicate
    /// keys are refused, as everywhere in Warden.
    pub fn from_json(text: &str) -> Result<Self, DocumentError> {
        let limits = JsonLimits {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 32,
        };
        parse_strict_str(text, limits).map_err(|e| DocumentError::Json(e.to_string()))?;
        serde_json::from_str(text).map_err(|e| DocumentError::Shape(e.to_string()))
    }

    /// Reads the YAML form (what authors write).
    #[cfg(feature = "yaml")]
    pub fn from_yaml(text: &str) -> Result<Self, DocumentError> {
        serde_yaml_ng::from_str(text).map_err(|e| DocumentError::Yaml(e.to_string()))
    }

    /// Reads a policy file (YAML, or JSON when it ends in `.json` or starts
    /// with `{`) and inlines `identity.jwks_file`, read relative to the file.
    #[cfg(feature = "yaml")]
    pub fn load_file(path: &std::path::Path) -> Result<Self, DocumentError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| DocumentError::Io(format!("reading {shown}: {e}")))?;
        let is_json =
            path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
        let mut document = if is_json {
            Self::from_json(&text)
        } else {
            Self::from_yaml(&text)
        }?;
        for (index, issuer) in document.identity.issuers.iter_mut().enumerate() {
            let Some(file) = issuer.jwks_file.take() else {
                continue;
            };
            let field = format!("identity.issuers[{index}].jwks_file");
            if issuer.jwks.is_some() {
                return Err(DocumentError::Shape(format!(
                    "{field}: give `jwks` or `jwks_file`, not both"
                )));
            }
            let jwks_path = path
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(&file);
            let jwks_text = std::fs::read_to_string(&jwks_path).map_err(|e| {
                DocumentError::Io(format!("{field}: reading {}: {e}", jwks_path.display()))
            })?;
            let jwks =
                crate::json::parse_strict_str(&jwks_text, JsonLimits::default()).map_err(|e| {
                    DocumentError::Json(format!("{field}: {}: {e}", jwks_path.display()))
                })?;
            issuer.jwks = Some(jwks);
        }
        Ok(document)
    }

    /// The canonical JSON form: keys sorted, so equal documents hash equally.
    pub fn canonical_json(&self) -> Result<String, DocumentError> {
        let value = serde_json::to_value(self).map_err(|e| DocumentError::Shape(e.to_string()))?;
        serde_json::to_string(&value).map_err(|e| DocumentError::Shape(e.to_string()))
    }

    /// The policy version recorded in audit lines: a short content hash of
    /// the canonical form.
    pub fn content_hash(&self) -> Result<String, DocumentError> {
        let digest = Sha256::digest(self.canonical_json()?.as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Ok(format!("sha256:{hex}"))
    }
}
