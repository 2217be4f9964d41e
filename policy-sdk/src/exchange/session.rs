//! The session keys as a stream finds them, and sealing the upstream's
//! `Mcp-Session-Id` on the way to the client.
//!
//! Without configured keys, each proxy generates one key and keeps it in
//! shared data, where every worker VM reads it. Workers read it on each
//! use and never keep a copy: two workers may both find it missing and
//! both write one, and the last write is the key from then on. A worker
//! that kept the key it wrote would go on sealing with a key no other
//! worker holds.

use std::borrow::Cow;

use super::Exchange;
use super::host::{Flow, HostError, LogLevel, StreamHost};
use crate::gate::{Reply, Warden};
use crate::sealing::{KEY_BYTES, SessionKey, seal};

/// The shared-data key of the host's generated session key (32 bytes).
pub const HOST_SESSION_KEY: &str = "warden:session-key:v1";

/// The host's session key: the one in shared data, or (none there yet, or
/// not a key) a fresh one, stored, then read back, so that the key used is
/// always the one every worker reads.
pub fn host_session_key(host: &mut dyn StreamHost) -> Result<SessionKey, HostError> {
    if let Some(key) = stored_key(host)? {
        return Ok(key);
    }
    let mut fresh = [0_u8; KEY_BYTES];
    host.random_bytes(&mut fresh)?;
    host.set_shared_data(HOST_SESSION_KEY, &fresh)?;
    stored_key(host)?.ok_or_else(|| {
        HostError::new(
            "reading back the session key",
            "the stored value is not a key",
        )
    })
}

fn stored_key(host: &mut dyn StreamHost) -> Result<Option<SessionKey>, HostError> {
    Ok(host
        .shared_data(HOST_SESSION_KEY)?
        .filter(|bytes| bytes.len() == KEY_BYTES)
        .and_then(|bytes| SessionKey::new(&bytes).ok()))
}

/// The keys that seal and unseal on this stream: the configured ones, or
/// the host's.
pub(super) fn session_keys<'w>(
    warden: &'w Warden,
    host: &mut dyn StreamHost,
) -> Result<Cow<'w, [SessionKey]>, HostError> {
    if warden.session_keys().is_empty() {
        Ok(Cow::Owned(vec![host_session_key(host)?]))
    } else {
        Ok(Cow::Borrowed(warden.session_keys()))
    }
}

impl Exchange {
    /// Replaces the upstream's `Mcp-Session-Id` with its sealed form,
    /// bound to `binding`. If that fails the client gets 502 instead of
    /// the server's own id.
    pub(super) fn seal_response_session(
        &mut self,
        warden: &Warden,
        host: &mut dyn StreamHost,
        headers: &Result<Vec<(String, String)>, String>,
        binding: &str,
    ) -> Result<(), Flow> {
        let server_id = headers.as_ref().map_err(Clone::clone).and_then(|headers| {
            let ids: Vec<&String> = headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case("mcp-session-id"))
                .map(|(_, id)| id)
                .collect();
            match ids.as_slice() {
                [] => Ok(None),
                [id] => Ok(Some((*id).clone())),
                // Which one would the client keep? Neither is sealed.
                _ => Err(format!("the upstream sent {} session ids", ids.len())),
            }
        });
        let sealed = match server_id {
            Ok(None) => return Ok(()),
            Ok(Some(server_id)) => session_keys(warden, host)
                .map_err(|error| error.to_string())
                .and_then(|keys| match keys.first() {
                    Some(key) => seal(key, &server_id, binding).map_err(|e| e.to_string()),
                    None => Err("no session key".to_owned()),
                }),
            Err(error) => Err(error.to_string()),
        }
        .and_then(|sealed| {
            host.set_response_header("mcp-session-id", Some(&sealed))
                .map_err(|error| error.to_string())
        });
        match sealed {
            Ok(()) => Ok(()),
            Err(why) => {
                host.log(
                    LogLevel::Error,
                    &format!("warden: the session id could not be sealed: {why}"),
                );
                let reply = Reply::text(
                    502,
                    "warden: the upstream's session id could not be sealed\n",
                );
                Err(self.reply(host, &reply, None))
            }
        }
    }
}
