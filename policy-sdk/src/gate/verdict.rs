//! What the gate answers: replies, verdicts, and the request facts it
//! judges.

use super::*;
use crate::identity::envoy_metadata::{MetadataError, NamespaceStruct};
use crate::sealing::{UnsealError, Unsealed};

/// A request header to set (`Some`) or remove (`None`) upstream. Shared
/// strings: the names are the configuration's and the identity headers'
/// values the cached identity's, so an edit is not a copy per request.
pub type HeaderEdit = (Arc<str>, Option<Arc<str>>);

/// What the proxy should answer instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// A plain-text reply (failures that are not a decision).
    pub fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.to_owned(),
        }
    }

    /// A reply with a JSON body and, besides its content type, `headers`.
    pub(super) fn json(status: u16, headers: &[(&str, &str)], body: String) -> Self {
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        all.push(("content-type".into(), "application/json".into()));
        Self {
            status,
            headers: all,
            body,
        }
    }
}

/// The facts of a request head Warden needs. Header values are as the
/// client sent them; `duplicated` names a routing header sent more than once.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub content_length: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    /// Warden's own id for the request (the client's when the host gave
    /// none): what audit lines and denials carry.
    pub request_id: Option<&'a str>,
    /// The `x-request-id` the request arrived with: the client may have
    /// chosen it.
    pub client_request_id: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub mcp_method: Option<&'a str>,
    pub mcp_name: Option<&'a str>,
    pub session_id: Option<&'a str>,
    /// `session_id` unsealed under the session keys (see
    /// [`crate::sealing::unseal`]); `None` when the host did not unseal it
    /// (refused if sessions are bound).
    pub session: Option<&'a Result<Unsealed, UnsealError>>,
    /// A header of [`ROUTING_HEADERS`] that appears more than once.
    pub duplicated: Option<&'a str>,
    /// The W3C `traceparent` the request carries, as sent (checked before
    /// it reaches an audit line).
    pub traceparent: Option<&'a str>,
    /// `verified_by: jwt_authn`: the `Struct` `jwt_authn` left in the
    /// stream's metadata, holding the payload it verified (`Ok(None)`:
    /// none). `None` in the other mode.
    pub verified_payload: Option<&'a Result<Option<NamespaceStruct>, MetadataError>>,
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub now_unix_nanos: u128,
}

/// A request let through, and what the host must do on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Forwarding {
    pub audit: AuditRecord,
    /// Request headers to set (`Some`) or remove (`None`) before the
    /// upstream sees the request, in order; none from
    /// [`Warden::judge_streamed_body`](crate::gate::Warden::judge_streamed_body),
    /// whose headers already went.
    pub header_edits: Vec<HeaderEdit>,
    /// Whose view every list result in the response is cut to
    /// ([`Warden::cut_json_response`], [`Warden::cut_events`]), joined with
    /// `audit` by [`ListPlan::audience`]; `None` when `filter.filter_lists`
    /// is off.
    pub lists: Option<Box<ListPlan>>,
    /// The binding of the caller ([`Warden::session_binding`]) when
    /// sessions are bound: an `Mcp-Session-Id` in the response is sealed
    /// to it before the client sees it.
    pub session_binding: Option<Arc<str>>,
}

/// The caller a response's list results will be cut for, as the gate plans
/// it. The request's audit record joins it once the decision line is
/// written ([`ListPlan::audience`]): it is moved, not copied, on every
/// forwarded request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPlan {
    pub identity: Rc<Identity>,
    /// The JSON-RPC id of the request the response answers, if it has one.
    pub request_id: Option<Value>,
}

impl ListPlan {
    /// The audience, with the request's audit record as the base of the
    /// lines about its response.
    pub fn audience(self, audit: AuditRecord) -> ListAudience {
        ListAudience {
            identity: self.identity,
            request_id: self.request_id,
            audit,
        }
    }
}

/// The caller a response's list results are cut for.
#[derive(Debug, Clone, PartialEq)]
pub struct ListAudience {
    pub identity: Rc<Identity>,
    /// The JSON-RPC id of the request the response answers, if it has one:
    /// a body that cannot be read is replaced by an error for it.
    pub request_id: Option<Value>,
    /// The request's audit record, the base of the lines about its response.
    pub audit: AuditRecord,
}

/// What to do after the head.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadVerdict {
    /// Not an MCP endpoint: forward untouched, record nothing.
    Pass,
    /// Answered locally without a decision to record (Protected Resource
    /// Metadata).
    Serve(Reply),
    /// Decided without a body (GET, DELETE): forward.
    Forward(Forwarding),
    /// Answer locally; the request never reaches the upstream.
    Respond(Reply, AuditRecord),
    /// A POST from this verified identity: buffer the body, then call
    /// [`Warden::judge_body`].
    ReadBody(Rc<Identity>),
    /// The token names an issuer whose fetched key set is missing or lacks
    /// the token's key. The host may fetch the set (within its rate limit)
    /// and judge the head again; otherwise it answers with `reply`.
    KeysMissing {
        issuer: String,
        reply: Reply,
        audit: AuditRecord,
    },
}

/// What to do after the body.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyVerdict {
    Forward(Forwarding),
    Respond(Reply, AuditRecord),
}

/// A response body (or chunk) read for lists.
#[derive(Debug, Clone, PartialEq)]
pub struct FilteredList {
    /// The bytes to send in place of those read; `None`: send them as they
    /// are.
    pub body: Option<Vec<u8>>,
    /// One line per list that lost entries, or one for a body that could
    /// not be read (the body is then an error).
    pub audits: Vec<AuditRecord>,
    /// The body could not be read: drop what follows it.
    pub failed: bool,
}
