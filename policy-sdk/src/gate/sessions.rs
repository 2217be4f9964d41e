//! Sessions bound to the principal that opened them, with no table: the
//! server's `Mcp-Session-Id` goes to the client sealed to the principal
//! ([`crate::sealing`]), and comes back checked against the caller.

use super::*;
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
    pub fn session_binding(identity: &Identity) -> String {
        json!([
            identity.issuer,
            identity.subject.subject,
            identity.acting().subject
        ])
        .to_string()
    }

    /// A presented session must belong to the caller, whatever revision
    /// the request claims: a server that looks sessions up by header would
    /// serve another principal's session.
    pub(super) fn check_session(
        &self,
        head: &RequestHead<'_>,
        identity: &Identity,
    ) -> Result<(), transport::Refusal> {
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
        Err(transport::Refusal::new(
            404,
            codes::INVALID_REQUEST,
            "Session not found",
            error.to_string(),
        ))
    }

    /// The upstream's own id for the presented session, once
    /// [`Self::check_session`] accepted it: the sealed id is replaced by it
    /// before the request goes upstream. Anything else is removed rather
    /// than passed on sealed.
    pub(super) fn session_edit(&self, head: &RequestHead<'_>) -> Option<(String, Option<String>)> {
        if head.session_id.is_none() || !self.settings.bind_sessions {
            return None;
        }
        let server_id = match head.session {
            Some(Ok(Unsealed { server_id, .. })) => Some(server_id.clone()),
            _ => None,
        };
        Some(("mcp-session-id".to_owned(), server_id))
    }
}
