//! The policy language as authored (YAML or JSON): plain serde types, no
//! meaning attached yet. `compile` gives them meaning.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The effect of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// How a denied request is answered. The audit line always records the real
/// decision; the mode only shapes what the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyMode {
    /// A JSON-RPC error (`-31403`) in an HTTP 200: every client keeps its
    /// session. The caller learns the rule and reason only where
    /// `disclose_reasons` says so.
    Error,
    /// HTTP 403 with the same JSON-RPC error body. Some clients end their
    /// session on it.
    Forbidden,
    /// HTTP 403 with `WWW-Authenticate: Bearer error="insufficient_scope",
    /// scope="…"`, so the client can ask its authorization server for the
    /// scopes the rule requires and retry (MCP step-up authorization).
    StepUp,
    /// The error the MCP server itself gives for something that does not
    /// exist (unknown tool or prompt, resource not found, method not found),
    /// so a denied caller learns nothing about what exists.
    Disguise,
}

impl DenyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyMode::Error => "error",
            DenyMode::Forbidden => "forbidden",
            DenyMode::StepUp => "step_up",
            DenyMode::Disguise => "disguise",
        }
    }
}

/// How a denial is answered, with what that answer needs: the compiled form
/// of a rule's `deny_mode` (and its `step_up_scopes`), carried whole from
/// the rule to the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyAnswer {
    Error,
    Forbidden,
    /// 403 with an `insufficient_scope` challenge naming these scopes
    /// (never empty: the compiler refuses a `step_up` rule without them).
    StepUp {
        scopes: Vec<String>,
    },
    Disguise,
}

impl DenyAnswer {
    /// The policy-wide answer (`filter.deny_mode`). `step_up` there has no
    /// rule to take scopes from: nothing to ask for, so a plain 403 is the
    /// honest answer.
    pub fn for_policy(mode: DenyMode) -> Self {
        match mode {
            DenyMode::Error => Self::Error,
            DenyMode::Forbidden | DenyMode::StepUp => Self::Forbidden,
            DenyMode::Disguise => Self::Disguise,
        }
    }

    /// The mode's name, as audit lines record it.
    pub fn mode(&self) -> DenyMode {
        match self {
            Self::Error => DenyMode::Error,
            Self::Forbidden => DenyMode::Forbidden,
            Self::StepUp { .. } => DenyMode::StepUp,
            Self::Disguise => DenyMode::Disguise,
        }
    }
}

/// Built-in behaviour a policy may switch off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Allow the methods every session needs (`initialize`,
    /// `notifications/initialized`, `ping`, `server/discover`,
    /// `subscriptions/listen`, the GET stream and DELETE) to any
    /// authenticated, classifiable actor. Deny rules still override it.
    pub allow_session_methods: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            allow_session_methods: true,
        }
    }
}

/// Conditions on one party (the acting principal, or the one acted for).
/// Every field given must hold; within a list, any entry suffices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    /// Globs over the subject (`sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Any other claim: claim name → accepted values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<BTreeMap<String, Vec<Value>>>,
}

/// A numeric interval, both ends included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// Bounds on the delegation chain's length, both ends included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepthSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<usize>,
}

/// A condition on one tool argument: a JSON pointer into `arguments` and
/// exactly one test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgumentSource {
    pub pointer: String,
    /// `equals: null` is a test for `null`, not a missing test.
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub equals: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<CharsetSource>,
}

/// A field that is present holds a value, `null` included.
fn present_value<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// A condition on the characters of a string: exactly one of `only` (every
/// character is in the named set) and `some_outside` (at least one is not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CharsetSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub some_outside: Option<String>,
}

/// One rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSource {
    pub id: String,
    pub effect: Effect,
    /// The team accountable for this rule.
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<PrincipalSource>,
    /// The party the acting principal acts for (RFC 8693 delegation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<PrincipalSource>,
    /// `true`: only delegated requests; `false`: only direct ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegated: Option<bool>,
    /// Bounds on the number of actors in the delegation chain (0 = direct).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation_depth: Option<DepthSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_prefixes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Vec<ArgumentSource>>,
    /// A condition on the characters of the request's tool name, prompt name
    /// or resource URI, as sent; a request without one does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_charset: Option<CharsetSource>,
    /// How denials tied to this rule are answered, instead of the policy's
    /// `filter.deny_mode`. On a deny rule: the denials it decides. On an allow
    /// rule: denials of requests for its target that it does not allow (the
    /// caller lacks the principal conditions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_mode: Option<DenyMode>,
    /// Scopes a `step_up` denial asks for. An allow rule defaults to its
    /// `principal.scopes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up_scopes: Option<Vec<String>>,
    /// The actor types to whom denials tied to this rule (the same ones
    /// `deny_mode` shapes) show the rule id and reason, instead of the
    /// policy's `filter.disclose_reasons`. `[]` withholds them from everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclose_reasons: Option<Vec<String>>,
    /// Evaluated, audited and counted, never enforced: the decision the
    /// policy would make with this rule in force is recorded beside the one
    /// made without it (see [`crate::policy::Shadow`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}
