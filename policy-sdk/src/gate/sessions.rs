//! Sessions of the 2025 revisions, bound to the principal that opened
//! them: slot keys, records, bindings and the check.

use super::*;

/// Prefix of the shared-data keys that hold session bindings.
pub const SESSION_KEY_PREFIX: &str = "warden:session:";

/// Longest `Mcp-Session-Id` Warden binds (ids are visible ASCII).
pub(super) const MAX_SESSION_ID_BYTES: usize = 256;

impl Warden {
    /// The shared-data key of the slot that holds a session's binding, or
    /// `None` for an id Warden does not bind (empty, longer than 256 bytes
    /// or not visible ASCII; such a session is refused).
    ///
    /// Bindings live in a fixed number of slots (`filter.session_slots`), a
    /// direct-mapped table: proxy-wasm cannot delete shared data, so keys
    /// per session would grow without bound, one per `initialize` any
    /// authenticated caller sends. A new session evicts the one in its slot;
    /// that session then gets 404 and its client starts a new one.
    pub fn session_key(&self, session_id: &str) -> Option<String> {
        let id = session_id.trim();
        let valid = !id.is_empty()
            && id.len() <= MAX_SESSION_ID_BYTES
            && id.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !valid {
            return None;
        }
        // FNV-1a: cheap, and spreading ids over slots needs no secret (an
        // attacker who could aim at a slot would need the victim's id).
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let slot = hash % u64::from(self.settings.session_slots.max(1));
        Some(format!("{SESSION_KEY_PREFIX}{slot}"))
    }

    /// What the slot of `session_id` stores: the id, then its binding.
    pub fn session_record(session_id: &str, binding: &str) -> String {
        format!("{}\n{binding}", session_id.trim())
    }

    /// The binding of `session_id` in a slot's record, if the slot holds
    /// that session (and not another that shares the slot, or nothing).
    pub fn binding_in_record<'r>(session_id: &str, record: &'r str) -> Option<&'r str> {
        let (id, binding) = record.split_once('\n')?;
        (id == session_id.trim()).then_some(binding)
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

    /// A presented session must belong to the caller (sessions exist in the
    /// 2025 revisions; a 2026-07-28 request carrying one is held to it too).
    pub(super) fn check_session(
        &self,
        head: &RequestHead<'_>,
        identity: &Identity,
    ) -> Result<(), transport::Refusal> {
        let Some(session_id) = head.session_id else {
            return Ok(());
        };
        // Whatever revision the request claims: a server that looks
        // sessions up by header would serve another principal's session.
        if !self.settings.bind_sessions {
            return Ok(());
        }
        let not_found = |reason: String| transport::Refusal {
            status: 404,
            code: codes::INVALID_REQUEST,
            message: "Session not found",
            reason,
            data: None,
            headers: Vec::new(),
        };
        if self.session_key(session_id).is_none() {
            return Err(not_found(
                "Mcp-Session-Id is not 1 to 256 visible ASCII characters".into(),
            ));
        }
        match head.session_binding {
            None => Err(not_found(
                "Mcp-Session-Id was not opened through Warden (or its binding was lost): start a new session".into(),
            )),
            Some(bound) if bound == Self::session_binding(identity) => Ok(()),
            Some(_) => Err(not_found(
                "Mcp-Session-Id belongs to another principal".into(),
            )),
        }
    }
}
