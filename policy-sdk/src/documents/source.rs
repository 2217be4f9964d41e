//! Where each fetched document comes from, and the shared-data keys that
//! carry it between workers.

use std::time::Duration;

use crate::gate::Warden;

/// What a fetched document is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The key set (JWKS) of one token issuer.
    Keys { issuer: String },
    /// The polled revocation list.
    Revocations,
}

/// One document and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub kind: Kind,
    /// The proxy cluster that reaches the server.
    pub cluster: String,
    /// `:authority` of the request.
    pub authority: String,
    /// Path of the document, or of the OpenID configuration with
    /// `discovery`.
    pub path: String,
    /// `path` is an OpenID configuration: fetch its `jwks_uri` next.
    pub discovery: bool,
    /// Seconds between scheduled fetches.
    pub refresh_seconds: u64,
    /// Seconds between fetches triggered on demand (unknown key ids), and
    /// between scheduled attempts while nothing has loaded yet.
    pub min_interval_seconds: u64,
    pub timeout: Duration,
    /// With `discovery`: the cluster each `jwks_uri` host (or `host:port`,
    /// lower case) is fetched through; this source's own authority maps to
    /// its cluster.
    pub key_set_hosts: Vec<(String, String)>,
    /// With `discovery`: seconds a discovered `jwks_uri` is used before the
    /// configuration is read again.
    pub discovery_refresh_seconds: u64,
    /// Shared-data keys, built once at configuration time: the latest good
    /// copy, the discovered key-set location, and the stamp of each trigger.
    document_key: String,
    discovered_key: String,
    scheduled_stamp_key: String,
    unknown_key_stamp_key: String,
}

/// Why a fetch starts. Each trigger has its own stamp, so scheduled
/// refreshes never use up the allowance for unknown key ids (a rotation is
/// then followed at once) and a flood of unknown key ids never delays the
/// schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Scheduled,
    UnknownKey,
}

impl Source {
    /// A source with its shared-data keys.
    #[allow(clippy::too_many_arguments)]
    fn new(
        kind: Kind,
        cluster: &str,
        authority: Option<&String>,
        path: &str,
        discovery: bool,
        refresh_seconds: u64,
        min_interval_seconds: u64,
        timeout_ms: u64,
    ) -> Self {
        let id = match &kind {
            Kind::Keys { issuer } => format!("keys:{issuer}"),
            Kind::Revocations => "revocations".to_owned(),
        };
        Source {
            kind,
            cluster: cluster.to_owned(),
            authority: authority.map_or(cluster, String::as_str).to_owned(),
            path: path.to_owned(),
            discovery,
            refresh_seconds: refresh_seconds.max(1),
            min_interval_seconds: min_interval_seconds.max(1),
            timeout: Duration::from_millis(timeout_ms),
            key_set_hosts: Vec::new(),
            discovery_refresh_seconds: 1,
            document_key: format!("warden:doc:{id}"),
            discovered_key: format!("warden:discovered:{id}"),
            scheduled_stamp_key: format!("warden:fetched-at:scheduled:{id}"),
            unknown_key_stamp_key: format!("warden:fetched-at:unknown-key:{id}"),
        }
    }

    /// What the document is, for the log.
    pub fn label(&self) -> String {
        match &self.kind {
            Kind::Keys { issuer } => format!("keys of `{issuer}`"),
            Kind::Revocations => "revocation list".to_owned(),
        }
    }

    /// The shared-data key of the latest good copy.
    pub fn document_key(&self) -> &str {
        &self.document_key
    }

    /// The shared-data key of the key-set location discovery found, and
    /// when.
    pub fn discovered_key(&self) -> &str {
        &self.discovered_key
    }

    /// The cluster that reaches `authority` (lower case, default port
    /// removed): a `key_set_hosts` entry for it or for its host.
    pub fn cluster_for(&self, authority: &str) -> Option<&str> {
        let host = host_of(authority);
        self.key_set_hosts
            .iter()
            .find(|(h, _)| h == authority)
            .or_else(|| self.key_set_hosts.iter().find(|(h, _)| h == host))
            .map(|(_, cluster)| cluster.as_str())
    }

    /// The shared-data key of the time (Unix milliseconds) of the last
    /// fetch started for `trigger`.
    pub fn stamp_key(&self, trigger: Trigger) -> &str {
        match trigger {
            Trigger::Scheduled => &self.scheduled_stamp_key,
            Trigger::UnknownKey => &self.unknown_key_stamp_key,
        }
    }

    /// Whether the document is for `issuer`'s keys.
    pub fn is_keys_of(&self, issuer: &str) -> bool {
        matches!(&self.kind, Kind::Keys { issuer: i } if i == issuer)
    }

    /// Seconds between scheduled fetches: the refresh period once loaded,
    /// the shorter interval while `warden` has nothing yet.
    pub fn scheduled_interval(&self, warden: &Warden) -> u64 {
        let loaded = match &self.kind {
            Kind::Keys { issuer } => warden.verifier().has_keys(issuer),
            Kind::Revocations => true,
        };
        if loaded {
            self.refresh_seconds
        } else {
            self.min_interval_seconds
        }
    }
}

/// The fetched documents of a configuration: each issuer whose keys are
/// fetched, then the polled revocation list.
pub fn sources(warden: &Warden) -> Vec<Source> {
    let verifier = warden.verifier();
    let mut out: Vec<Source> = verifier
        .remote_key_sources()
        .into_iter()
        .map(|(issuer, r)| {
            let mut source = Source::new(
                Kind::Keys {
                    issuer: issuer.to_owned(),
                },
                &r.cluster,
                r.authority.as_ref(),
                &r.path,
                r.discovery,
                r.refresh_seconds,
                r.min_refresh_interval_seconds,
                r.timeout_ms,
            );
            if r.discovery {
                // Explicit entries first: they may also name the
                // discovery host, on purpose.
                source.key_set_hosts = r
                    .key_set_hosts
                    .iter()
                    .map(|(host, cluster)| (host.to_ascii_lowercase(), cluster.clone()))
                    .chain(std::iter::once((
                        r.authority().to_ascii_lowercase(),
                        r.cluster.clone(),
                    )))
                    .collect();
                source.discovery_refresh_seconds = r.discovery_refresh_seconds.max(1);
            }
            source
        })
        .collect();
    if let Some(r) = verifier.revocation_source() {
        out.push(Source::new(
            Kind::Revocations,
            &r.cluster,
            r.authority.as_ref(),
            &r.path,
            false,
            r.refresh_seconds,
            r.refresh_seconds,
            r.timeout_ms,
        ));
    }
    out
}

/// The host of `host[:port]` (an IPv6 literal keeps its brackets).
fn host_of(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            host
        }
        _ => authority,
    }
}
