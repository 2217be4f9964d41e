//! `identity.verified_by: jwt_authn`: Envoy's own JWT filter ahead of
//! Warden, rendered from the same issuers. It verifies signatures (with
//! its own key fetching and cache) and leaves each verified payload in the
//! stream's dynamic metadata, where Warden reads it.

use std::collections::BTreeMap;

use anyhow::anyhow;
use policy_sdk::config::PolicyDocument;
use serde::Serialize;

use super::{Cluster, DataSource, TypeUrl, Typed};

/// `extensions.filters.http.jwt_authn.v3.JwtAuthentication`.
#[derive(Serialize)]
pub struct JwtAuthentication {
    pub providers: BTreeMap<String, JwtProvider>,
    pub rules: Vec<RequirementRule>,
}

impl TypeUrl for JwtAuthentication {
    const TYPE_URL: &'static str =
        "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
}

/// `JwtProvider`: one per issuer.
#[derive(Serialize)]
pub struct JwtProvider {
    pub issuer: String,
    pub audiences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_jwks: Option<DataSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_jwks: Option<RemoteJwks>,
    /// Only `Authorization: Bearer`: not the `access_token` query
    /// parameter jwt_authn reads by default (MCP forbids tokens in URLs,
    /// and they end up in logs).
    pub from_headers: Vec<JwtHeader>,
    /// Where Warden reads the verified payload.
    pub payload_in_metadata: String,
    pub clock_skew_seconds: u64,
    pub jwt_cache_config: JwtCacheConfig,
}

#[derive(Serialize)]
pub struct JwtHeader {
    pub name: &'static str,
    pub value_prefix: &'static str,
}

#[derive(Serialize)]
pub struct JwtCacheConfig {
    pub jwt_cache_size: usize,
}

/// `RemoteJwks`: the key set URL, fetched through a cluster.
#[derive(Serialize)]
pub struct RemoteJwks {
    pub http_uri: HttpUri,
    pub cache_duration: String,
}

#[derive(Serialize)]
pub struct HttpUri {
    pub uri: String,
    pub cluster: String,
    pub timeout: String,
}

#[derive(Serialize)]
pub struct RequirementRule {
    #[serde(rename = "match")]
    pub route_match: PrefixMatch,
    pub requires: Requirement,
}

#[derive(Serialize)]
pub struct PrefixMatch {
    pub prefix: &'static str,
}

/// `JwtRequirement`: any provider, or none. A missing or failed token goes
/// on without a payload, so Warden answers it (the MCP 401 with its
/// resource metadata) and refuses any token that has no verified payload.
#[derive(Serialize)]
pub struct Requirement {
    pub requires_any: RequirementList,
}

#[derive(Serialize)]
pub struct RequirementList {
    pub requirements: Vec<OneRequirement>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum OneRequirement {
    Provider { provider_name: String },
    AllowMissingOrFailed { allow_missing_or_failed: Empty },
}

#[derive(Serialize)]
pub struct Empty {}

/// The filter, or `None` when Warden verifies tokens itself.
pub fn filter(
    document: &PolicyDocument,
    clusters: &[Cluster],
) -> anyhow::Result<Option<Typed<JwtAuthentication>>> {
    let identity = &document.identity;
    if identity.verified_by != policy_sdk::identity::VerifiedBy::JwtAuthn {
        return Ok(None);
    }
    let mut providers = BTreeMap::new();
    let mut requirements = Vec::new();
    for (index, issuer) in identity.issuers.iter().enumerate() {
        let name = format!("issuer_{index}");
        let (local_jwks, remote_jwks) = match (&issuer.jwks, &issuer.jwks_fetch) {
            (Some(jwks), _) => (Some(DataSource::InlineString(jwks.to_string())), None),
            (None, Some(fetch)) => {
                if fetch.discovery {
                    return Err(anyhow!(
                        "identity.issuers[{index}].jwks_fetch.discovery: jwt_authn fetches a key set URL, not an OpenID configuration; give the `jwks_uri` path (and its cluster) instead"
                    ));
                }
                let tls = clusters
                    .iter()
                    .find(|c| c.name == fetch.cluster)
                    .is_none_or(|c| c.tls.is_some());
                let scheme = if tls { "https" } else { "http" };
                (
                    None,
                    Some(RemoteJwks {
                        http_uri: HttpUri {
                            uri: format!("{scheme}://{}{}", fetch.authority(), fetch.path),
                            cluster: fetch.cluster.clone(),
                            timeout: format!("{}s", fetch.timeout_ms.div_ceil(1000).max(1)),
                        },
                        cache_duration: format!("{}s", fetch.refresh_seconds),
                    }),
                )
            }
            (None, None) => {
                return Err(anyhow!(
                    "identity.issuers[{index}]: jwt_authn needs the key set: `jwks`, `jwks_file` or `jwks_fetch`"
                ));
            }
        };
        providers.insert(
            name.clone(),
            JwtProvider {
                issuer: issuer.issuer.clone(),
                audiences: issuer.audiences.clone(),
                local_jwks,
                remote_jwks,
                from_headers: vec![JwtHeader {
                    name: "Authorization",
                    value_prefix: "Bearer ",
                }],
                payload_in_metadata: identity.jwt_authn.payload_in_metadata.clone(),
                clock_skew_seconds: identity.clock_skew_seconds,
                jwt_cache_config: JwtCacheConfig {
                    jwt_cache_size: identity.cache.max_entries.max(1),
                },
            },
        );
        requirements.push(OneRequirement::Provider {
            provider_name: name,
        });
    }
    requirements.push(OneRequirement::AllowMissingOrFailed {
        allow_missing_or_failed: Empty {},
    });
    Ok(Some(Typed::new(JwtAuthentication {
        providers,
        rules: vec![RequirementRule {
            route_match: PrefixMatch { prefix: "/" },
            requires: Requirement {
                requires_any: RequirementList { requirements },
            },
        }],
    })))
}
