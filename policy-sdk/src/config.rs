//! The policy document: one file (YAML for authors, JSON for the filter)
//! holding identity settings, filter settings, defaults and rules.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::IdentityConfig;
use crate::json::{JsonLimits, parse_strict_str};
use crate::mcp::ToolNameFormat;
use crate::policy::{Defaults, DenyMode, RuleSource};
use crate::sealing::SessionKeySecret;

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
    /// How a policy denial is answered unless the deciding rule chooses.
    /// `error` (the default) keeps every client's session alive.
    pub deny_mode: DenyMode,
    /// The actor types (`human`, `service`, `agent`; of the acting party)
    /// whose denials show the deciding rule's id and the full reason. Empty
    /// (the default): every denial says only that the policy refused it,
    /// with Warden's request id; the audit line keeps the rule and reason.
    /// A rule's own `disclose_reasons` overrides this for its denials.
    pub disclose_reasons: Vec<String>,
    /// The MCP endpoints: exact paths (query string ignored) judged as MCP.
    /// Any other path is refused with 404 unless it is a passthrough path
    /// (or the RFC 9728 metadata): a request cannot reach the upstream on a
    /// path Warden did not judge as MCP.
    pub endpoints: Vec<String>,
    /// Exact paths (query string ignored) that are not MCP endpoints and pass
    /// through unjudged.
    pub passthrough_paths: Vec<String>,
    /// Copy tool arguments into audit lines. Off by default: arguments may
    /// hold personal data or secrets.
    pub audit_arguments: bool,
    /// Put each request's audit line in its filter state
    /// (`wasm.warden_audit`; after a filtered list, the list's line), where
    /// Envoy's access loggers read it with
    /// `%FILTER_STATE(wasm.warden_audit:PLAIN)%` whatever the log level.
    /// The line then goes to the proxy's own log at `debug` instead of
    /// `info`: one sink, and the cheaper one. For Envoy: other proxy-wasm
    /// hosts may not keep filter state.
    pub audit_filter_state: bool,
    /// The `realm` of `WWW-Authenticate` challenges.
    pub realm: String,
    /// The MCP revisions accepted in `MCP-Protocol-Version`.
    pub protocol_versions: ProtocolWindow,
    /// The tool names a `tools/call` may carry: `spec` (the default, the
    /// MCP specification's `A-Z a-z 0-9 _ - .`) or `printable_ascii` (`!`
    /// to `~`). Names outside the format get `-32602` and never reach the
    /// policy; no format admits a space or a control character.
    pub tool_names: ToolNameFormat,
    /// Browser origins allowed to call (exact `scheme://host[:port]`, or
    /// `*`). A request carrying any other `Origin` gets 403; requests without
    /// one (every non-browser client) are unaffected.
    pub allowed_origins: Vec<String>,
    /// Bind each MCP session to the principal that opened it: the server's
    /// `Mcp-Session-Id` reaches the client sealed to that principal
    /// ([`crate::sealing`]), and a session id that does not unseal for the
    /// caller is refused.
    pub bind_sessions: bool,
    /// The keys that seal session ids, base64url of 32 to 64 random bytes
    /// each: the first seals, every one unseals (list a new key first to
    /// rotate, drop the old one once its sessions are over). Give every
    /// proxy of a fleet the same keys so sessions survive load balancing
    /// and restarts. Empty: each proxy generates its own key, kept in
    /// shared data for its workers; sessions then end with the proxy and
    /// are known to it alone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub session_keys: Vec<SessionKeySecret>,
    /// Rewrite `tools/list`, `prompts/list`, `resources/list` and
    /// `resources/templates/list` responses to what the caller could use.
    pub filter_lists: bool,
    /// Largest list response Warden buffers to filter; a larger one is
    /// replaced by a JSON-RPC error (fail closed).
    pub max_response_bytes: usize,
    /// RFC 9728 Protected Resource Metadata served at
    /// `/.well-known/oauth-protected-resource[/path]` and named in every
    /// 401 challenge. Off when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_metadata: Option<ResourceMetadata>,
    /// What the upstream MCP server learns about the caller.
    pub upstream: UpstreamSettings,
    /// Whether the host holds request headers while Warden reads the body
    /// (see [`HeaderMode`]).
    pub header_mode: HeaderMode,
    /// The whole policy in shadow (dry run): every request the rules judge
    /// is allowed and its list results are not cut, and what the rules would
    /// have decided is audited (`shadow`) and counted. Tokens, request
    /// shapes and sessions are still enforced.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}

/// How a request whose decision needs the body travels while Warden reads
/// it. Both modes judge the whole body before any body byte goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderMode {
    /// The request headers go upstream at once, carrying the identity
    /// headers decided from the verified token; the body is held until it
    /// is complete and judged, and a denial resets the upstream request
    /// before any body byte is sent. Works on every proxy-wasm host
    /// (Istio, Envoy Gateway, Envoy before 1.35). Assumes the upstream
    /// never acts on a POST whose body did not arrive.
    #[default]
    Stream,
    /// The request headers are held too, so the upstream sees nothing of a
    /// request before it is judged. Needs a host that honours a pause from
    /// the request-headers callback: Envoy 1.35 or later with
    /// `allow_on_headers_stop_iteration: true`. On any other host every
    /// POST hangs.
    Hold,
}

impl Default for FilterSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_json_depth: 64,
            deny_mode: DenyMode::Error,
            disclose_reasons: Vec::new(),
            endpoints: vec!["/mcp".into()],
            passthrough_paths: Vec::new(),
            audit_arguments: false,
            audit_filter_state: false,
            realm: "warden".into(),
            protocol_versions: ProtocolWindow::default(),
            tool_names: ToolNameFormat::default(),
            allowed_origins: Vec::new(),
            bind_sessions: true,
            session_keys: Vec::new(),
            filter_lists: true,
            max_response_bytes: 1024 * 1024,
            resource_metadata: None,
            upstream: UpstreamSettings::default(),
            header_mode: HeaderMode::default(),
            shadow: false,
        }
    }
}

/// The oldest and newest MCP revision accepted, both included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolWindow {
    pub min: String,
    pub max: String,
}

impl Default for ProtocolWindow {
    fn default() -> Self {
        Self {
            min: "2025-03-26".into(),
            max: crate::mcp::MODERN_REVISION.into(),
        }
    }
}

/// RFC 9728 metadata about this protected resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceMetadata {
    /// The resource identifier: the MCP endpoint's absolute URL, which
    /// tokens must name as audience (e.g. `https://mcp.example.com/mcp`).
    pub resource: String,
    /// Issuer URLs of the authorization servers that grant tokens for it.
    pub authorization_servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
}

/// Token passthrough is forbidden by MCP: the option to keep the caller's
/// token from the upstream, and the verified identity headers sent instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSettings {
    /// Remove `Authorization` before the request goes upstream.
    pub strip_authorization: bool,
    /// Send the verified identity in headers named with this prefix
    /// (`subject`, `actor-type`, `actor`, `chain`, `client-id`, `issuer`).
    /// Client-sent headers with these names are always removed, so the
    /// upstream can trust them. Empty: no identity headers.
    pub identity_header_prefix: String,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            strip_authorization: false,
            identity_header_prefix: "x-warden-".into(),
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
