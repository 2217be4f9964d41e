//! The request facts an exchange keeps between callbacks.

use super::host::{HostError, StreamHost};
use super::session::session_keys;
use crate::audit::AuditRecord;
use crate::gate::{ROUTING_HEADERS, Reply, RequestHead, Warden};
use crate::identity::VerifiedBy;
use crate::identity::envoy_metadata::{
    JWT_AUTHN_NAMESPACE, MetadataError, VerifiedPayload, verified_payload,
};
use crate::sealing::{UnsealError, Unsealed, unseal};

/// The request headers as the client sent them (one hostcall), plus what
/// Warden looked up for them.
#[derive(Debug, Default, Clone)]
pub struct RequestHeaders {
    /// Name (lower case, as the proxy hands them over) and value.
    headers: Vec<(String, String)>,
    /// The presented session, unsealed (when sessions are bound).
    session: Option<Result<Unsealed, UnsealError>>,
    duplicated: Option<&'static str>,
    /// `verified_by: jwt_authn`: the payload read from the metadata.
    verified_payload: Option<Result<Option<VerifiedPayload>, MetadataError>>,
    pub(super) now_unix_nanos: u128,
    /// Warden's own id for the request, when the host gave one.
    own_request_id: Option<String>,
}

impl RequestHeaders {
    /// Reads the request headers, and unseals the presented session.
    pub(super) fn read(warden: &Warden, host: &mut dyn StreamHost) -> Result<Self, HostError> {
        let headers = host.request_headers()?;
        Self::from_headers(warden, host, headers)
    }

    /// Builds the facts from headers already read.
    pub fn from_headers(
        warden: &Warden,
        host: &mut dyn StreamHost,
        headers: Vec<(String, String)>,
    ) -> Result<Self, HostError> {
        let mut head = Self {
            headers,
            now_unix_nanos: host.now_unix_nanos(),
            ..Self::default()
        };
        head.duplicated = ROUTING_HEADERS
            .into_iter()
            .find(|name| head.count(name) > 1);
        if warden.settings().bind_sessions
            && let Some(id) = head.get("mcp-session-id")
        {
            let keys = session_keys(warden, host)?;
            head.session = Some(unseal(&keys, id));
        }
        if warden.verifier().verified_by() == VerifiedBy::JwtAuthn {
            // One hostcall: the whole metadata message (see
            // `envoy_metadata` for why not a path into it).
            let metadata = host.dynamic_metadata()?.unwrap_or_default();
            head.verified_payload = Some(verified_payload(
                &metadata,
                JWT_AUTHN_NAMESPACE,
                &warden.verifier().jwt_authn().payload_in_metadata,
            ));
        }
        Ok(head)
    }

    /// With Warden's own request id (see [`super::Exchange::with_request_id`]).
    pub(super) fn identified(mut self, request_id: Option<String>) -> Self {
        self.own_request_id = request_id;
        self
    }

    /// The first value of one header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The method-override header the client sent, in any spelling a
    /// server reads as one, if any: frameworks that honour one run another
    /// method than the request's own.
    pub fn method_override(&self) -> Option<&'static str> {
        METHOD_OVERRIDES.into_iter().find(|name| {
            self.headers
                .iter()
                .any(|(sent, _)| sent.len() == name.len() && reads_as_prefix(sent, name))
        })
    }

    /// The client's header names that a server reads as a name under
    /// `prefix` (see [`reads_as_prefix`]). None when `prefix` is empty.
    pub fn spellings_under(&self, prefix: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .headers
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| !prefix.is_empty() && reads_as_prefix(name, prefix))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// How many times the client sent one header.
    fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }

    /// The view the gate judges.
    pub fn view(&self) -> RequestHead<'_> {
        RequestHead {
            method: self.get(":method").unwrap_or_default(),
            path: self.get(":path").unwrap_or_default(),
            authorization: self.get("authorization"),
            content_length: self.get("content-length"),
            content_type: self.get("content-type"),
            content_encoding: self.get("content-encoding"),
            request_id: self.own_request_id.as_deref().or(self.get("x-request-id")),
            client_request_id: self.get("x-request-id"),
            origin: self.get("origin"),
            protocol_version: self.get("mcp-protocol-version"),
            mcp_method: self.get("mcp-method"),
            mcp_name: self.get("mcp-name"),
            session_id: self.get("mcp-session-id"),
            session: self.session.as_ref(),
            duplicated: self.duplicated,
            traceparent: self.get("traceparent"),
            verified_payload: self.verified_payload.as_ref(),
            now_unix_nanos: self.now_unix_nanos,
        }
    }
}

/// Whether a server reads header `name` as starting with `prefix`: case
/// folded and `_` taken for `-`, as CGI, WSGI and many frameworks do.
fn reads_as_prefix(name: &str, prefix: &str) -> bool {
    let fold = |byte: u8| {
        if byte == b'_' {
            b'-'
        } else {
            byte.to_ascii_lowercase()
        }
    };
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(a, b)| fold(a) == fold(b))
}

/// Headers that ask a server to run another HTTP method than the request's.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// A token whose issuer's key set lacks its key: what to answer if the set
/// cannot be fetched.
#[derive(Debug)]
pub(super) struct MissingKeys {
    pub issuer: String,
    pub reply: Reply,
    pub audit: AuditRecord,
}
