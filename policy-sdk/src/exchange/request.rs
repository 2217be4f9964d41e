//! The request facts an exchange keeps between callbacks.

use super::host::{HostError, StreamHost};
use super::session::session_keys;
use crate::audit::AuditRecord;
use crate::gate::{ROUTING_HEADERS, Reply, RequestHead, Warden};
use crate::identity::VerifiedBy;
use crate::identity::envoy_metadata::{
    JWT_AUTHN_NAMESPACE, MetadataError, NamespaceStruct, namespace_struct,
};
use crate::sealing::{UnsealError, Unsealed, unseal};

/// The request headers as the client sent them (one hostcall), plus what
/// Warden looked up for them.
#[derive(Debug, Default, Clone)]
pub struct RequestHeaders {
    /// Name (lower case, as the proxy hands them over) and value.
    headers: Vec<(String, String)>,
    /// Where in `headers` the first value of each of [`Viewed::ALL`] is:
    /// found in one pass when the headers arrive, since the gate asks for
    /// the view several times per request.
    viewed: [Option<usize>; Viewed::ALL.len()],
    /// The presented session, unsealed (when sessions are bound).
    session: Option<Result<Unsealed, UnsealError>>,
    duplicated: Option<&'static str>,
    /// `verified_by: jwt_authn`: what `jwt_authn` left in the metadata.
    verified_payload: Option<Result<Option<NamespaceStruct>, MetadataError>>,
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
        let (viewed, repeated) = first_of_viewed(&headers);
        let mut head = Self {
            viewed,
            headers,
            now_unix_nanos: host.now_unix_nanos(),
            ..Self::default()
        };
        // Counted in the same pass that found them.
        head.duplicated = Viewed::ROUTING
            .into_iter()
            .find(|known| repeated.get(*known as usize).copied().unwrap_or(true))
            .map(Viewed::name);
        if warden.settings().bind_sessions
            && let Some(id) = head.get("mcp-session-id")
        {
            let keys = session_keys(warden, host)?;
            head.session = Some(unseal(&keys, id));
        }
        if warden.verifier().verified_by() == VerifiedBy::JwtAuthn {
            // One hostcall: the whole metadata message (see
            // `envoy_metadata` for why not a path into it).
            // The payload in it is decoded when the identity is wanted
            // (`TokenVerifier::accept_verified`).
            let metadata = host.dynamic_metadata()?.unwrap_or_default();
            head.verified_payload = Some(namespace_struct(&metadata, JWT_AUTHN_NAMESPACE));
        }
        Ok(head)
    }

    /// The facts of a request whose headers could not be read: only the
    /// time, for the audit line of its refusal.
    pub(super) fn unread(host: &mut dyn StreamHost) -> Self {
        Self {
            now_unix_nanos: host.now_unix_nanos(),
            ..Self::default()
        }
    }

    /// With Warden's own request id (see [`super::Exchange::with_request_id`]).
    pub(super) fn identified(mut self, request_id: Option<String>) -> Self {
        self.own_request_id = request_id;
        self
    }

    /// Once the request is judged, keeps only what a later audit line of
    /// this stream reads (the viewed headers' first values, as found on
    /// arrival): the bearer token, the verified payload and every other
    /// header go. A stream can wait long for its response, and a worker's
    /// VM holds one of these per request in flight.
    pub(super) fn settle(&mut self) {
        let kept = Viewed::ALL.map(|which| match which {
            Viewed::Authorization => None,
            _ => self.viewed.get(which as usize).copied().flatten(),
        });
        let mut headers = Vec::with_capacity(kept.iter().flatten().count());
        let mut viewed = [None; Viewed::ALL.len()];
        for (which, at) in Viewed::ALL.into_iter().zip(kept) {
            let header = at.and_then(|at| self.headers.get_mut(at));
            if let (Some(header), Some(slot)) = (header, viewed.get_mut(which as usize)) {
                *slot = Some(headers.len());
                headers.push(std::mem::take(header));
            }
        }
        self.headers = headers;
        self.viewed = viewed;
        self.verified_payload = None;
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

    /// The first value of a viewed header, as found on arrival.
    fn viewed(&self, which: Viewed) -> Option<&str> {
        let at = self.viewed.get(which as usize).copied().flatten()?;
        self.headers.get(at).map(|(_, value)| value.as_str())
    }

    /// The view the gate judges.
    pub fn view(&self) -> RequestHead<'_> {
        RequestHead {
            method: self.viewed(Viewed::Method).unwrap_or_default(),
            path: self.viewed(Viewed::Path).unwrap_or_default(),
            authorization: self.viewed(Viewed::Authorization),
            content_length: self.viewed(Viewed::ContentLength),
            content_type: self.viewed(Viewed::ContentType),
            content_encoding: self.viewed(Viewed::ContentEncoding),
            request_id: self
                .own_request_id
                .as_deref()
                .or(self.viewed(Viewed::XRequestId)),
            client_request_id: self.viewed(Viewed::XRequestId),
            origin: self.viewed(Viewed::Origin),
            protocol_version: self.viewed(Viewed::McpProtocolVersion),
            mcp_method: self.viewed(Viewed::McpMethod),
            mcp_name: self.viewed(Viewed::McpName),
            session_id: self.viewed(Viewed::McpSessionId),
            session: self.session.as_ref(),
            duplicated: self.duplicated,
            traceparent: self.viewed(Viewed::Traceparent),
            verified_payload: self.verified_payload.as_ref(),
            now_unix_nanos: self.now_unix_nanos,
        }
    }
}

/// A header [`RequestHeaders::view`] reads; its discriminant is where its
/// first value's position is kept.
#[derive(Clone, Copy)]
enum Viewed {
    Method,
    Path,
    Authorization,
    ContentLength,
    ContentType,
    ContentEncoding,
    XRequestId,
    Origin,
    McpProtocolVersion,
    McpMethod,
    McpName,
    McpSessionId,
    Traceparent,
}

impl Viewed {
    /// [`ROUTING_HEADERS`], in order: sent twice, each is refused.
    const ROUTING: [Self; ROUTING_HEADERS.len()] = [
        Self::Authorization,
        Self::McpProtocolVersion,
        Self::McpMethod,
        Self::McpName,
        Self::McpSessionId,
    ];

    const ALL: [Self; 13] = [
        Self::Method,
        Self::Path,
        Self::Authorization,
        Self::ContentLength,
        Self::ContentType,
        Self::ContentEncoding,
        Self::XRequestId,
        Self::Origin,
        Self::McpProtocolVersion,
        Self::McpMethod,
        Self::McpName,
        Self::McpSessionId,
        Self::Traceparent,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Method => ":method",
            Self::Path => ":path",
            Self::Authorization => "authorization",
            Self::ContentLength => "content-length",
            Self::ContentType => "content-type",
            Self::ContentEncoding => "content-encoding",
            Self::XRequestId => "x-request-id",
            Self::Origin => "origin",
            Self::McpProtocolVersion => "mcp-protocol-version",
            Self::McpMethod => "mcp-method",
            Self::McpName => "mcp-name",
            Self::McpSessionId => "mcp-session-id",
            Self::Traceparent => "traceparent",
        }
    }
}

/// Where the first value of each of [`Viewed::ALL`] is in `headers`, and
/// which of them came more than once (names compared as
/// [`RequestHeaders::get`] compares them): one pass over the headers.
fn first_of_viewed(
    headers: &[(String, String)],
) -> (
    [Option<usize>; Viewed::ALL.len()],
    [bool; Viewed::ALL.len()],
) {
    let mut first = [None; Viewed::ALL.len()];
    let mut repeated = [false; Viewed::ALL.len()];
    for (at, (name, _)) in headers.iter().enumerate() {
        let Some(known) = Viewed::ALL
            .into_iter()
            .find(|known| name.eq_ignore_ascii_case(known.name()))
        else {
            continue;
        };
        let index = known as usize;
        match first.get_mut(index) {
            Some(slot @ None) => *slot = Some(at),
            Some(Some(_)) => {
                if let Some(twice) = repeated.get_mut(index) {
                    *twice = true;
                }
            }
            None => {}
        }
    }
    (first, repeated)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The view found once on arrival reads what a lookup by name reads:
    /// the first value, whatever the case, for every header it holds.
    #[test]
    fn the_view_reads_the_first_value_of_each_header_as_get_does() {
        let pairs = [
            ("Content-Type", "text/plain"),
            (":method", "POST"),
            ("x-request-id", "first"),
            ("content-type", "application/json"),
            ("X-Request-ID", "second"),
            ("mcp-session-id", "s1"),
            ("MCP-Session-Id", "s2"),
            ("authorization", "Bearer a"),
            ("other", "x"),
            (":path", "/mcp"),
            ("content-length", "12"),
            ("Content-Encoding", "gzip"),
            ("origin", "https://a.example"),
            ("MCP-Protocol-Version", "2025-11-25"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "deploy"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("Origin", "https://b.example"),
        ];
        let headers: Vec<_> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (viewed, repeated) = first_of_viewed(&headers);
        let head = RequestHeaders {
            viewed,
            headers,
            ..RequestHeaders::default()
        };
        for viewed in Viewed::ALL {
            let name = viewed.name();
            // Counted in the same pass: sent more than once, by any case.
            let sent = head
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .count();
            assert_eq!(repeated.get(viewed as usize), Some(&(sent > 1)), "{name}");
            let found = head
                .viewed
                .get(viewed as usize)
                .copied()
                .flatten()
                .and_then(|at| head.headers.get(at))
                .map(|(_, value)| value.as_str());
            assert_eq!(found, head.get(name), "{name}");
        }
        let view = head.view();
        let fields = [
            (Some(view.method), ":method"),
            (Some(view.path).filter(|p| !p.is_empty()), ":path"),
            (view.authorization, "authorization"),
            (view.content_length, "content-length"),
            (view.content_type, "content-type"),
            (view.content_encoding, "content-encoding"),
            (view.request_id, "x-request-id"),
            (view.client_request_id, "x-request-id"),
            (view.origin, "origin"),
            (view.protocol_version, "mcp-protocol-version"),
            (view.mcp_method, "mcp-method"),
            (view.mcp_name, "mcp-name"),
            (view.session_id, "mcp-session-id"),
            (view.traceparent, "traceparent"),
        ];
        for (field, name) in fields {
            assert_eq!(field, head.get(name), "{name}");
        }
        assert_eq!(view.content_type, Some("text/plain"));
        assert_eq!(view.request_id, Some("first"));
        assert_eq!(view.session_id, Some("s1"));
    }

    #[test]
    fn the_routing_headers_are_viewed_in_their_order() {
        assert_eq!(Viewed::ROUTING.map(Viewed::name), ROUTING_HEADERS);
    }
}
