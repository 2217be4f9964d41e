//! Compiling a policy document into a [`Warden`]: every mistake a
//! document can hold is found here, with the field it is in.

use super::*;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error("version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    Version { found: u32 },
    #[error(transparent)]
    Keys(#[from] KeyConfigError),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("filter.{field}: {message}")]
    Filter {
        field: &'static str,
        message: String,
    },
}

impl ConfigError {
    /// Advice for the author, where there is some.
    pub fn help(&self) -> Option<&str> {
        match self {
            ConfigError::Compile(e) => e.help.as_deref(),
            _ => None,
        }
    }
}

pub(super) fn filter_error(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Filter {
        field,
        message: message.into(),
    }
}

/// The first character that cannot stand in a quoted header parameter.
pub(super) fn unsafe_header_char(text: &str) -> Option<char> {
    text.chars()
        .find(|c| *c == '"' || *c == '\\' || c.is_control())
}

impl Warden {
    /// Compiles the filter's plugin configuration (the JSON document).
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        Self::compile(&PolicyDocument::from_json(text)?)
    }

    /// Compiles a document; everything that can be wrong with it is found here.
    pub fn compile(document: &PolicyDocument) -> Result<Self, ConfigError> {
        if document.version != FORMAT_VERSION {
            return Err(ConfigError::Version {
                found: document.version,
            });
        }
        let settings = document.filter.clone();
        if settings.max_body_bytes == 0 {
            return Err(filter_error("max_body_bytes", "must be greater than 0"));
        }
        let session_keys = sessions::compile_keys(&settings.session_keys)?;
        if settings.max_response_bytes == 0 {
            return Err(filter_error("max_response_bytes", "must be greater than 0"));
        }
        if settings.max_json_depth < 4 {
            return Err(filter_error(
                "max_json_depth",
                "must be at least 4 (MCP requests nest params and arguments)",
            ));
        }
        if let Some(bad) = unsafe_header_char(&settings.realm) {
            return Err(filter_error(
                "realm",
                format!("must not contain `{}`", bad.escape_default()),
            ));
        }
        transport::check_window(&settings)
            .map_err(|(field, message)| filter_error(field, message))?;
        if settings.endpoints.is_empty() {
            return Err(filter_error(
                "endpoints",
                "name at least one MCP endpoint path",
            ));
        }
        for path in &settings.endpoints {
            if !path.starts_with('/') || path.contains(['?', '#']) {
                return Err(filter_error(
                    "endpoints",
                    format!("`{path}` is not a path: write it as `/mcp`, without query"),
                ));
            }
            if settings.passthrough_paths.contains(path) {
                return Err(filter_error(
                    "endpoints",
                    format!("`{path}` is also a passthrough path: it would never be judged"),
                ));
            }
        }
        for origin in &settings.allowed_origins {
            if origin != "*" && (origin.ends_with('/') || !origin.contains("://")) {
                return Err(filter_error(
                    "allowed_origins",
                    format!("`{origin}` is not an origin: write `scheme://host[:port]` or `*`"),
                ));
            }
        }
        let prefix = &settings.upstream.identity_header_prefix;
        if !prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(filter_error(
                "upstream.identity_header_prefix",
                "use lower-case letters, digits and `-` only",
            ));
        }
        let disclosure = Disclosure::parse(&settings.disclose_reasons).map_err(|e| {
            filter_error(
                "disclose_reasons",
                format!(
                    "entry {}: {e} (list actor types `human`, `service`, `agent` once each)",
                    e.index()
                ),
            )
        })?;
        let metadata = settings
            .resource_metadata
            .as_ref()
            .map(ServedMetadata::new)
            .transpose()?;
        let upstream_names = UpstreamNames::new(&settings.upstream.identity_header_prefix);
        Ok(Self {
            verifier: TokenVerifier::new(&document.identity)?,
            policy: ShadowedPolicy::compile(&document.rules, &document.defaults, settings.shadow)?,
            settings,
            disclosure,
            version: document.content_hash()?.into(),
            metadata,
            session_keys,
            upstream_names,
        })
    }
}
