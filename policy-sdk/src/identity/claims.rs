//! Reading a token's claims the way real identity providers issue them:
//! claim paths into nested objects, values as a string or an array, and the
//! actor type derived by ordered rules when no claim names it. Presets fill
//! these in from each provider's documented access-token format.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ActorType, TokenError};

/// A reference to a claim, as written in the configuration.
///
/// A reference that starts with `/` is a JSON Pointer (RFC 6901) into the
/// claims object: `/realm_access/roles`, `/resource_access/mcp/roles`;
/// `~1` stands for `/` and `~0` for `~` inside a name. Any other reference
/// is one top-level claim name, taken whole, so a namespaced claim such as
/// `https://example.com/roles` needs no escaping. A plain name with a dot
/// and no `/` (`realm_access.roles`) is refused as ambiguous: the pointer
/// says which one is meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    /// The reference as written, for messages.
    text: String,
    /// Object member names (or array indexes) from the top level down.
    segments: Vec<String>,
}

impl ClaimPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a claim reference must not be empty".into());
        }
        let segments = if let Some(pointer) = text.strip_prefix('/') {
            pointer
                .split('/')
                .map(|segment| unescape(segment).ok_or(()))
                .collect::<Result<Vec<_>, ()>>()
                .map_err(|()| {
                    format!("`{text}`: `~` must be followed by `0` or `1` in a JSON Pointer")
                })?
        } else if text.contains('.') && !text.contains('/') {
            let pointer = text.replace('~', "~0").replace('/', "~1").replace('.', "/");
            return Err(format!(
                "`{text}` is ambiguous: write `/{pointer}` for a nested claim, or `/{text}` for a top-level claim whose name has dots"
            ));
        } else {
            vec![text.to_owned()]
        };
        if segments.iter().any(String::is_empty) {
            return Err(format!("`{text}` has an empty claim name"));
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The reference as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path, `None` when any level is absent. A level
    /// that is present but cannot be descended into (a string where an
    /// object is expected) makes the claim malformed: it is refused rather
    /// than read as absent.
    pub fn get<'c>(&self, claims: &'c Map<String, Value>) -> Result<Option<&'c Value>, TokenError> {
        let mut segments = self.segments.iter();
        let Some(first) = segments.next() else {
            return Ok(None);
        };
        let mut current = match claims.get(first) {
            None | Some(Value::Null) => return Ok(None),
            Some(value) => value,
        };
        for segment in segments {
            let next = match current {
                Value::Object(members) => members.get(segment),
                Value::Array(items) => match segment.parse::<usize>() {
                    Ok(index) if segment == &index.to_string() => items.get(index),
                    _ => return Err(self.malformed()),
                },
                _ => return Err(self.malformed()),
            };
            current = match next {
                None | Some(Value::Null) => return Ok(None),
                Some(value) => value,
            };
        }
        Ok(Some(current))
    }

    fn malformed(&self) -> TokenError {
        TokenError::BadClaim(self.text.clone())
    }
}

fn unescape(segment: &str) -> Option<String> {
    let mut out = String::with_capacity(segment.len());
    let mut chars = segment.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// One claim reference, or several (read in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClaimRefs {
    One(String),
    Many(Vec<String>),
}

impl ClaimRefs {
    fn list(&self) -> Vec<&str> {
        match self {
            ClaimRefs::One(one) => vec![one.as_str()],
            ClaimRefs::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

impl From<&[&str]> for ClaimRefs {
    fn from(refs: &[&str]) -> Self {
        ClaimRefs::Many(refs.iter().map(|r| (*r).to_owned()).collect())
    }
}

/// Which party of a token a claims object describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Party {
    /// The token's subject (its top-level claims).
    Subject,
    /// An actor in `act` (the current one or an earlier one).
    Actor,
}

/// One test of an actor-type rule. Exactly one form per condition:
/// `{claim, equals}`, `{claim, prefix}`, `{claim, suffix}`,
/// `{claim, equals_claim}`, `{has}`, `{absent}` or `{party}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// A string, number or boolean; an array claim matches if any element
    /// equals it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// Another claim whose value must be the same (Okta: `sub` = `cid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals_claim: Option<String>,
    /// The claim is present (and not `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has: Option<String>,
    /// The claim is absent (or `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<Party>,
}

/// One condition, or several that must all hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Conditions {
    // A list first: serde would read `[]` as a condition of defaults.
    All(Vec<Condition>),
    One(Condition),
}

/// `claims.actor_type_rules[]`: when the conditions hold, the party is of
/// this type. The first rule that matches wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorTypeRule {
    pub when: Conditions,
    #[serde(rename = "type")]
    pub actor_type: ActorType,
}

/// Token formats of identity providers, as documented by each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    Keycloak,
    Entra,
    Auth0,
    Okta,
}

impl Preset {
    /// The claim settings of the provider's access tokens. Every preset
    /// classifies an actor in `act` as an agent first: in the providers'
    /// own formats `act` appears only after a token exchange, where a
    /// client acts for the subject.
    fn claims(self) -> ClaimNames {
        let rule = |when: Conditions, actor_type| ActorTypeRule { when, actor_type };
        let one = Conditions::One;
        let actors_are_agents = rule(
            one(Condition {
                party: Some(Party::Actor),
                ..Condition::default()
            }),
            ActorType::Agent,
        );
        let has = |claim: &str| Condition {
            has: Some(claim.into()),
            ..Condition::default()
        };
        let equals = |claim: &str, value: &str| Condition {
            claim: Some(claim.into()),
            equals: Some(Value::String(value.into())),
            ..Condition::default()
        };
        let refs = |r: &[&str]| Some(ClaimRefs::from(r));
        match self {
            // Service-account tokens (client credentials) carry the client's
            // id in `client_id` (`clientId` before Keycloak 25); user tokens
            // never do. `preferred_username` (`service-account-…`) is not
            // used: a realm may let users choose their usernames.
            Preset::Keycloak => ClaimNames {
                roles: refs(&["/realm_access/roles"]),
                groups: refs(&["groups"]),
                scope: refs(&["scope"]),
                client_id: refs(&["azp", "client_id"]),
                actor_type_rules: Some(vec![
                    actors_are_agents,
                    rule(one(has("client_id")), ActorType::Service),
                    rule(one(has("clientId")), ActorType::Service),
                ]),
                default_actor_type: Some(ActorType::Human),
                ..ClaimNames::default()
            },
            // v2 access tokens: `oid` is the stable object id (`sub` is
            // pairwise per application); `scp` is a space-separated string
            // present only in delegated (user) tokens; `idtyp` (an optional
            // claim) says `app` or `user`; app-only tokens have `oid` = `sub`.
            Preset::Entra => ClaimNames {
                subject: Some("oid".into()),
                roles: refs(&["roles"]),
                groups: refs(&["groups"]),
                scope: refs(&["scp"]),
                client_id: refs(&["azp", "appid"]),
                actor_type_rules: Some(vec![
                    actors_are_agents,
                    rule(one(equals("idtyp", "app")), ActorType::Service),
                    rule(one(equals("idtyp", "user")), ActorType::Human),
                    rule(one(has("scp")), ActorType::Human),
                    rule(
                        Conditions::All(vec![
                            Condition {
                                absent: Some("scp".into()),
                                ..Condition::default()
                            },
                            Condition {
                                claim: Some("oid".into()),
                                equals_claim: Some("sub".into()),
                                ..Condition::default()
                            },
                        ]),
                        ActorType::Service,
                    ),
                ]),
                ..ClaimNames::default()
            },
            // Client-credentials tokens carry `gty: client-credentials` and
            // a subject `<client id>@clients`; RBAC permissions are the
            // `permissions` array, read as scopes next to `scope`.
            Preset::Auth0 => ClaimNames {
                scope: refs(&["scope", "permissions"]),
                client_id: refs(&["azp", "client_id"]),
                actor_type_rules: Some(vec![
                    actors_are_agents,
                    rule(one(equals("gty", "client-credentials")), ActorType::Service),
                    rule(
                        one(Condition {
                            claim: Some("sub".into()),
                            suffix: Some("@clients".into()),
                            ..Condition::default()
                        }),
                        ActorType::Service,
                    ),
                ]),
                default_actor_type: Some(ActorType::Human),
                ..ClaimNames::default()
            },
            // Custom authorization servers: `scp` is an array, `cid` the
            // client; user tokens carry the user's id in `uid`, and
            // client-credentials tokens have `sub` = `cid`.
            Preset::Okta => ClaimNames {
                groups: refs(&["groups"]),
                scope: refs(&["scp"]),
                client_id: refs(&["cid"]),
                actor_type_rules: Some(vec![
                    actors_are_agents,
                    rule(
                        one(Condition {
                            claim: Some("sub".into()),
                            equals_claim: Some("cid".into()),
                            ..Condition::default()
                        }),
                        ActorType::Service,
                    ),
                    rule(one(has("uid")), ActorType::Human),
                ]),
                ..ClaimNames::default()
            },
        }
    }
}

/// How an issuer's claims are read (`identity.issuers[].claims`). Every
/// setting is optional: an unset one comes from the issuer's `preset`, or
/// else from Warden's own defaults (shown in `docs/policy.md`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimNames {
    /// The principal's identifier (`sub`), at the top level and in each
    /// `act` object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A string claim naming the actor type (`actor_type`). When present,
    /// it decides; the rules apply only when it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_type: Option<String>,
    /// Value of the actor-type claim → actor type; by default each type's
    /// own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_type_values: Option<BTreeMap<String, ActorType>>,
    /// Ordered rules deriving the actor type from other claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_type_rules: Option<Vec<ActorTypeRule>>,
    /// The type of a token's subject that neither the claim nor a rule
    /// classifies. Never applies to actors in `act`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_actor_type: Option<ActorType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<ClaimRefs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<ClaimRefs>,
    /// Space-separated strings (OAuth `scope`, Entra `scp`) or arrays
    /// (Okta `scp`, Auth0 `permissions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ClaimRefs>,
    /// Claims tried in order for the OAuth client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<ClaimRefs>,
}

impl ClaimNames {
    /// `self` where set, else `base`.
    fn over(self, base: ClaimNames) -> ClaimNames {
        ClaimNames {
            subject: self.subject.or(base.subject),
            actor_type: self.actor_type.or(base.actor_type),
            actor_type_values: self.actor_type_values.or(base.actor_type_values),
            actor_type_rules: self.actor_type_rules.or(base.actor_type_rules),
            default_actor_type: self.default_actor_type.or(base.default_actor_type),
            groups: self.groups.or(base.groups),
            roles: self.roles.or(base.roles),
            scope: self.scope.or(base.scope),
            client_id: self.client_id.or(base.client_id),
        }
    }
}

/// A condition, checked.
#[derive(Debug, Clone, PartialEq)]
enum Test {
    Equals(ClaimPath, Value),
    Prefix(ClaimPath, String),
    Suffix(ClaimPath, String),
    EqualsClaim(ClaimPath, ClaimPath),
    Has(ClaimPath),
    Absent(ClaimPath),
    Party(Party),
}

impl Test {
    fn compile(condition: &Condition) -> Result<Self, String> {
        let path = |text: &String| ClaimPath::parse(text);
        let c = condition;
        let test = match (
            &c.claim,
            &c.equals,
            &c.prefix,
            &c.suffix,
            &c.equals_claim,
            &c.has,
            &c.absent,
            c.party,
        ) {
            (Some(claim), Some(value), None, None, None, None, None, None) => {
                if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    return Err("`equals` must be a string, number or boolean".into());
                }
                Test::Equals(path(claim)?, value.clone())
            }
            (Some(claim), None, Some(prefix), None, None, None, None, None) => {
                Test::Prefix(path(claim)?, prefix.clone())
            }
            (Some(claim), None, None, Some(suffix), None, None, None, None) => {
                Test::Suffix(path(claim)?, suffix.clone())
            }
            (Some(claim), None, None, None, Some(other), None, None, None) => {
                Test::EqualsClaim(path(claim)?, path(other)?)
            }
            (None, None, None, None, None, Some(claim), None, None) => Test::Has(path(claim)?),
            (None, None, None, None, None, None, Some(claim), None) => Test::Absent(path(claim)?),
            (None, None, None, None, None, None, None, Some(party)) => Test::Party(party),
            _ => {
                return Err("a condition is one of `{claim, equals}`, `{claim, prefix}`, `{claim, suffix}`, `{claim, equals_claim}`, `{has}`, `{absent}` or `{party}`".into());
            }
        };
        Ok(test)
    }

    fn holds(&self, claims: &Map<String, Value>, party: Party) -> Result<bool, TokenError> {
        Ok(match self {
            Test::Party(p) => *p == party,
            Test::Has(path) => path.get(claims)?.is_some(),
            Test::Absent(path) => path.get(claims)?.is_none(),
            Test::Equals(path, wanted) => scalars(path, claims)?.contains(&wanted),
            Test::Prefix(path, prefix) => scalars(path, claims)?
                .iter()
                .any(|v| v.as_str().is_some_and(|s| s.starts_with(prefix.as_str()))),
            Test::Suffix(path, suffix) => scalars(path, claims)?
                .iter()
                .any(|v| v.as_str().is_some_and(|s| s.ends_with(suffix.as_str()))),
            Test::EqualsClaim(a, b) => {
                let (a_values, b_values) = (scalars(a, claims)?, scalars(b, claims)?);
                match (a_values.as_slice(), b_values.as_slice()) {
                    ([a], [b]) => a == b,
                    _ => false,
                }
            }
        })
    }
}

/// The scalar values of a claim: none when absent, one for a string,
/// number or boolean, each element of an array of scalars. An object (or
/// an array holding one) is a malformed claim.
fn scalars<'c>(
    path: &ClaimPath,
    claims: &'c Map<String, Value>,
) -> Result<Vec<&'c Value>, TokenError> {
    let scalar = |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
    match path.get(claims)? {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) if items.iter().all(scalar) => Ok(items.iter().collect()),
        Some(value) if scalar(value) => Ok(vec![value]),
        Some(_) => Err(path.malformed()),
    }
}

#[derive(Debug, Clone, PartialEq)]
struct CompiledRule {
    tests: Vec<Test>,
    actor_type: ActorType,
}

/// An issuer's claim settings, resolved (preset, then explicit settings,
/// then defaults) and checked at load time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClaimMap {
    issuer: String,
    pub subject: ClaimPath,
    actor_type: ClaimPath,
    actor_type_values: BTreeMap<String, ActorType>,
    rules: Vec<CompiledRule>,
    default_actor_type: Option<ActorType>,
    groups: Vec<ClaimPath>,
    roles: Vec<ClaimPath>,
    scope: Vec<ClaimPath>,
    client_id: Vec<ClaimPath>,
}

/// The lists a principal carries.
pub(crate) struct Lists {
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
}

impl ClaimMap {
    /// Resolves `names` over `preset` for `issuer`; the error says which
    /// setting is wrong (relative to `claims.`).
    pub fn resolve(
        issuer: &str,
        preset: Option<Preset>,
        names: &ClaimNames,
    ) -> Result<Self, String> {
        let names = match preset {
            Some(preset) => names.clone().over(preset.claims()),
            None => names.clone(),
        };
        let one = |field: &str, value: Option<String>, default: &str| {
            ClaimPath::parse(value.as_deref().unwrap_or(default))
                .map_err(|e| format!("{field}: {e}"))
        };
        let many = |field: &str, value: Option<ClaimRefs>, default: &[&str]| {
            let refs = value.unwrap_or_else(|| ClaimRefs::from(default));
            refs.list()
                .into_iter()
                .map(|r| ClaimPath::parse(r).map_err(|e| format!("{field}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        let mut rules = Vec::new();
        for (i, rule) in names
            .actor_type_rules
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let conditions = match &rule.when {
                Conditions::One(c) => std::slice::from_ref(c),
                Conditions::All(list) => list.as_slice(),
            };
            if conditions.is_empty() {
                return Err(format!("actor_type_rules[{i}].when: no conditions"));
            }
            let tests = conditions
                .iter()
                .map(Test::compile)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("actor_type_rules[{i}].when: {e}"))?;
            rules.push(CompiledRule {
                tests,
                actor_type: rule.actor_type,
            });
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            subject: one("subject", names.subject, "sub")?,
            actor_type: one("actor_type", names.actor_type, "actor_type")?,
            actor_type_values: names.actor_type_values.unwrap_or_else(|| {
                ActorType::ALL
                    .iter()
                    .map(|t| (t.as_str().to_owned(), *t))
                    .collect()
            }),
            rules,
            default_actor_type: names.default_actor_type,
            groups: many("groups", names.groups, &["groups"])?,
            roles: many("roles", names.roles, &["roles"])?,
            scope: many("scope", names.scope, &["scope"])?,
            client_id: many("client_id", names.client_id, &["client_id", "azp"])?,
        })
    }

    /// The party's subject: a non-empty string.
    pub fn subject<'c>(
        &self,
        claims: &'c Map<String, Value>,
    ) -> Result<Option<&'c str>, TokenError> {
        Ok(self
            .subject
            .get(claims)?
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty()))
    }

    /// The first client-id claim present; one that is not a string is
    /// malformed (revocation by client id must not be dodged by shape).
    pub fn client_id(&self, claims: &Map<String, Value>) -> Result<Option<String>, TokenError> {
        for path in &self.client_id {
            match path.get(claims)? {
                Some(Value::String(id)) => return Ok(Some(id.clone())),
                Some(_) => return Err(path.malformed()),
                None => {}
            }
        }
        Ok(None)
    }

    pub fn lists(&self, claims: &Map<String, Value>) -> Result<Lists, TokenError> {
        Ok(Lists {
            groups: string_list(claims, &self.groups, false)?,
            roles: string_list(claims, &self.roles, false)?,
            scopes: string_list(claims, &self.scope, true)?,
        })
    }

    /// The party's actor type, or why it has none (for the audit line:
    /// it names the issuer and the setting to add).
    pub fn classify(
        &self,
        claims: &Map<String, Value>,
        party: Party,
    ) -> Result<Result<ActorType, String>, TokenError> {
        match self.actor_type.get(claims)? {
            Some(Value::String(value)) => {
                return Ok(self.actor_type_values.get(value).copied().ok_or_else(|| {
                    format!(
                        "issuer `{}`: `{}` value `{value}` is not in `claims.actor_type_values`",
                        self.issuer,
                        self.actor_type.as_str()
                    )
                }));
            }
            Some(_) => return Err(self.actor_type.malformed()),
            None => {}
        }
        for rule in &self.rules {
            let mut all = true;
            for test in &rule.tests {
                if !test.holds(claims, party)? {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(Ok(rule.actor_type));
            }
        }
        Ok(match (party, self.default_actor_type) {
            (Party::Subject, Some(default)) => Ok(default),
            (Party::Subject, None) => Err(format!(
                "issuer `{}`: no `{}` claim and no rule in `claims.actor_type_rules` classifies the token's subject; add a rule that matches it, or set `claims.default_actor_type`",
                self.issuer,
                self.actor_type.as_str()
            )),
            (Party::Actor, _) => Err(format!(
                "issuer `{}`: no `{}` claim and no rule in `claims.actor_type_rules` classifies this actor in `act`; add a rule that matches it (`when: {{party: actor}}` matches every actor)",
                self.issuer,
                self.actor_type.as_str()
            )),
        })
    }
}

/// The strings of the claims at `paths`, in order: a string is one value
/// (split on whitespace with `split_spaces`), an array must hold strings
/// only; anything else refuses the token.
fn string_list(
    claims: &Map<String, Value>,
    paths: &[ClaimPath],
    split_spaces: bool,
) -> Result<Vec<String>, TokenError> {
    let mut out = Vec::new();
    for path in paths {
        match path.get(claims)? {
            None => {}
            Some(Value::String(s)) if split_spaces => {
                out.extend(s.split_whitespace().map(str::to_owned));
            }
            Some(Value::String(s)) => out.push(s.clone()),
            Some(Value::Array(items)) => {
                for item in items {
                    out.push(item.as_str().ok_or_else(|| path.malformed())?.to_owned());
                }
            }
            Some(_) => return Err(path.malformed()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
