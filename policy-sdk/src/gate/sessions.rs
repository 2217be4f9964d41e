//! Sessions bound to the principal that opened them, with no table: the
//! server's `Mcp-Session-Id` goes to the client sealed to the principal
//! ([`crate::sealing`]), and comes back checked against the caller.

use super::*;
use sha2::{Digest, Sha256};

use crate::sealing::{MAX_KEYS, SessionKey, SessionKeySecret, UnsealError, Unsealed};

/// Compiles the configured session keys (`filter.session_keys`).
pub(super) fn compile_keys(secrets: &[SessionKeySecret]) -> Result<Vec<SessionKey>, ConfigError> {
    if secrets.len() > MAX_KEYS {
        return Err(filter_error(
            "session_keys",
            format!(
                "{} keys listed; at most {MAX_KEYS} (the first seals, the others only unseal)",
                secrets.len()
            ),
        ));
    }
    secrets
        .iter()
        .enumerate()
        .map(|(index, secret)| {
            SessionKey::from_base64url(secret.expose())
                .map_err(|error| filter_error("session_keys", format!("entry {index} {error}")))
        })
        .collect()
}

impl Warden {
    /// The configured session keys (the first seals). Empty: the host's own
    /// key, kept in shared data, seals and unseals.
    pub fn session_keys(&self) -> &[SessionKey] {
        &self.session_keys
    }

    /// What a session is bound to: the issuer, the subject and the acting
    /// party. A refreshed token of the same principal keeps its session.
    /// Worked out once per identity and kept with it (every forwarded
    /// request of a bound policy needs it).
    pub fn session_binding(identity: &Identity) -> Arc<str> {
        let binding = identity.session_binding.get_or_init(|| {
            let parts = [
                identity.issuer.as_str(),
                identity.subject.subject.as_str(),
                identity.acting().subject.as_str(),
            ];
            // Serialized straight from the strings: the same compact JSON
            // array as through a `Value`, without copying each part first.
            // Writing strings cannot fail; were it to, the `Value` path
            // gives the same text, never an empty binding that every caller
            // would share.
            serde_json::to_string(&parts)
                .unwrap_or_else(|_| Value::from(parts.to_vec()).to_string())
                .into()
        });
        Arc::clone(binding)
    }

    /// A presented session must belong to the caller, whatever revision
    /// the request claims: a server that looks sessions up by header would
    /// serve another principal's session.
    pub(super) fn check_session(
        &self,
        head: &RequestHead<'_>,
        identity: &Identity,
    ) -> Result<(), UnsealError> {
        if head.session_id.is_none() || !self.settings.bind_sessions {
            return Ok(());
        }
        let error = match head.session {
            Some(Ok(unsealed)) if unsealed.belongs_to(&Self::session_binding(identity)) => {
                return Ok(());
            }
            Some(Ok(_)) => UnsealError::AnotherPrincipal,
            Some(Err(error)) => error.clone(),
            // The host did not unseal it: unknown, so refused.
            None => UnsealError::BadSeal,
        };
        Err(error)
    }

    /// The answer to a session [`Self::check_session`] refused.
    pub(super) fn session_not_found(error: &UnsealError) -> transport::Refusal {
        transport::Refusal::new(
            404,
            codes::INVALID_REQUEST,
            "Session not found",
            error.to_string(),
        )
    }

    /// The upstream's own id for the presented session, once
    /// [`Self::check_session`] accepted it: the sealed id is replaced by it
    /// before the request goes upstream. Anything else is removed rather
    /// than passed on sealed.
    pub(super) fn session_edit(&self, head: &RequestHead<'_>) -> Option<HeaderEdit> {
        if head.session_id.is_none() || !self.settings.bind_sessions {
            return None;
        }
        let server_id = match head.session {
            Some(Ok(Unsealed { server_id, .. })) => Some(Arc::from(server_id.as_str())),
            _ => None,
        };
        Some((Arc::clone(&self.upstream_names.session_id), server_id))
    }
}

/// Prefix of the shared-data keys that hold requests in flight.
pub const IN_FLIGHT_KEY_PREFIX: &str = "warden:inflight:";

/// How many in-flight slots a host keeps (each about 300 bytes at most,
/// created on first use): a request in flight takes the slot its session
/// and id hash to.
const IN_FLIGHT_SLOTS: u64 = 16_384;

/// A request in flight in a session: the shared-data slot it holds and
/// what the slot says while it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub key: String,
    pub record: String,
}

impl Warden {
    /// The in-flight claim of a forwarded request that carries a session id
    /// and a JSON-RPC id, if it is a request (not a notification or a
    /// response). Ids alias when a server would route them to one stream:
    /// the MCP Python SDK keys streams by `str(id)`, so `7` and `"7"` are
    /// one id here.
    pub fn in_flight(&self, head: &RequestHead<'_>, audit: &AuditRecord) -> Option<InFlight> {
        let session = head.session_id?.trim();
        audit.method.as_ref()?;
        let alias = match audit.jsonrpc_id.as_ref()? {
            Value::String(text) => text.clone(),
            // The decoder admits integers only: `7` and `"7"` alias.
            Value::Number(number) => number.to_string(),
            _ => return None,
        };
        let record = format!("{session}\n{alias}");
        let digest = Sha256::digest(record.as_bytes());
        let slot = digest
            .get(..8)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map_or(0, u64::from_be_bytes)
            % IN_FLIGHT_SLOTS;
        Some(InFlight {
            key: format!("{IN_FLIGHT_KEY_PREFIX}{slot}"),
            record,
        })
    }

    /// The refusal of a request whose id aliases one still in flight in its
    /// session: a server routing by id would hand one's answer to the other.
    pub fn refuse_aliased_id(
        &self,
        head: &RequestHead<'_>,
        audit: AuditRecord,
    ) -> (Reply, AuditRecord) {
        let id = audit.jsonrpc_id.clone();
        let shown = id.as_ref().map(Value::to_string).unwrap_or_default();
        let refusal = transport::Refusal::new(
            400,
            codes::INVALID_REQUEST,
            "Invalid request",
            format!("the id {shown} is already in use by a request in flight in this session"),
        );
        let (reply, mut audit) = self.refuse(refusal, id.as_ref(), head, audit);
        audit.session_refusal = Some("id_in_flight");
        (reply, audit)
    }
}
