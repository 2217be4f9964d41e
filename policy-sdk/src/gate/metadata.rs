//! RFC 9728 Protected Resource Metadata: served by the filter and named
//! in every challenge.

use super::*;

/// RFC 9728 metadata, ready to serve and to name in challenges.
#[derive(Debug)]
pub(super) struct ServedMetadata {
    /// Local paths the document is served at.
    paths: Vec<String>,
    /// `, resource_metadata="<absolute URL>"`, appended to challenges.
    challenge: String,
    /// The JSON document.
    document: String,
}

/// The RFC 9728 well-known path.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

impl Warden {
    /// `, resource_metadata="…"` for challenges, or nothing.
    pub(super) fn metadata_challenge(&self) -> &str {
        self.metadata.as_ref().map_or("", |m| m.challenge.as_str())
    }

    /// Protected Resource Metadata (RFC 9728), when configured and asked for.
    pub(super) fn serve_metadata(&self, method: &str, path: &str) -> Option<Reply> {
        let metadata = self.metadata.as_ref()?;
        if !metadata.paths.iter().any(|p| p == path) {
            return None;
        }
        if method != "GET" && method != "HEAD" {
            return Some(Reply::json(
                405,
                &[("allow", "GET, HEAD")],
                json!({"error": "method_not_allowed"}).to_string(),
            ));
        }
        Some(Reply::json(
            200,
            &[("cache-control", "max-age=300")],
            metadata.document.clone(),
        ))
    }
}

impl ServedMetadata {
    /// Checks the configuration and builds what is served.
    pub(super) fn new(metadata: &ResourceMetadata) -> Result<Self, ConfigError> {
        let field = "resource_metadata.resource";
        let (url, paths) =
            metadata_location(&metadata.resource).map_err(|m| filter_error(field, m))?;
        if metadata.authorization_servers.is_empty() {
            return Err(filter_error(
                "resource_metadata.authorization_servers",
                "name at least one authorization server (MCP clients need one)",
            ));
        }
        if unsafe_header_char(&url).is_some() {
            return Err(filter_error(
                field,
                "must not contain quotes, backslashes or control characters",
            ));
        }
        // The configured fields (absent optional ones are skipped), plus
        // the one way Warden accepts tokens.
        let mut document =
            serde_json::to_value(metadata).map_err(|e| filter_error(field, e.to_string()))?;
        if let Some(object) = document.as_object_mut() {
            object.insert("bearer_methods_supported".into(), json!(["header"]));
        }
        Ok(Self {
            paths,
            challenge: format!(", resource_metadata=\"{url}\""),
            document: document.to_string(),
        })
    }
}

/// Where RFC 9728 metadata for `resource` lives: its absolute URL (the
/// well-known segment inserted before the resource's path, §3.1) and the
/// local paths it is served at (the path-suffixed form and the bare one).
pub(super) fn metadata_location(resource: &str) -> Result<(String, Vec<String>), String> {
    let rest = resource
        .strip_prefix("https://")
        .map(|r| ("https://", r))
        .or_else(|| resource.strip_prefix("http://").map(|r| ("http://", r)));
    let Some((scheme, rest)) = rest else {
        return Err(format!("`{resource}` must be an absolute http(s) URL"));
    };
    if rest.contains(['?', '#']) {
        return Err(format!(
            "`{resource}` must not have a query or fragment (RFC 9728 §1.2)"
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("`{resource}` has no host"));
    }
    let path = path.trim_end_matches('/');
    let local = format!("{METADATA_PATH}{path}");
    let url = format!("{scheme}{authority}{local}");
    let mut paths = vec![local];
    if !path.is_empty() {
        paths.push(METADATA_PATH.to_owned());
    }
    Ok((url, paths))
}
