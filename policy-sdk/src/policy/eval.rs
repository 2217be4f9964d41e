//! Evaluation of compiled rules against one request.
//!
//! The combining rule, in one place:
//! 1. an unclassifiable principal is denied before any rule is read;
//! 2. within a pass, the first matching `deny` rule (in policy order) decides;
//! 3. an error while evaluating a rule (an argument of the wrong type, a path
//!    that cannot be normalized) denies, naming that rule;
//! 4. otherwise the first matching `allow` rule allows;
//! 5. no matching rule denies (default deny);
//! 6. a delegated request runs two passes, one for the current actor (acting
//!    for the subject) and one for the subject itself, and is allowed only
//!    when both allow: an agent never gets more than the person it acts for.
//!
//! Argument conditions read the arguments two ways: an allow rule takes them
//! exactly as sent (an unexpected spelling fails closed), a deny rule as a
//! server validating leniently may read them (`lax`: `"true"` as `true`, a
//! JSON string as an object), so no spelling the server accepts escapes it.

use std::borrow::Cow;

use serde_json::Value;

use super::compile::{
    ArgumentCondition, ArgumentTest, Index, MethodMatch, PrincipalMatch, Rule, TargetMatch,
    TextTest,
};
use super::lax::{self, Lookup, Reading, json_equal};
use super::source::Effect;
use crate::identity::{Identity, Principal};
use crate::mcp::{McpRequest, Target};
use crate::normalize::{normalize_path, normalize_uri, within_path_prefix, within_prefix};

/// Who a pass evaluates, and on whose behalf.
pub(crate) struct PassContext<'a> {
    pub principal: &'a Principal,
    pub on_behalf_of: Option<&'a Principal>,
    pub delegated: bool,
    /// Actors in the request's delegation chain.
    pub depth: usize,
}

/// The outcome of one pass.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PassOutcome {
    Allow { rule: usize },
    Deny { rule: usize },
    Error { rule: usize, message: String },
    NoMatch,
}

/// The request's target, prepared once for all rules.
pub(crate) struct PreparedTarget<'a> {
    request: &'a McpRequest,
    /// Canonical URI of a resource request, or why it has none.
    canonical_uri: Option<Result<String, String>>,
}

impl<'a> PreparedTarget<'a> {
    pub(crate) fn new(request: &'a McpRequest) -> Self {
        let canonical_uri = request
            .resource_uri()
            .map(|uri| normalize_uri(uri).map_err(|e| format!("resource URI `{uri}`: {e}")));
        Self {
            request,
            canonical_uri,
        }
    }

    /// The name used to look rules up in the index.
    pub(crate) fn index_key(&self) -> Option<&str> {
        match &self.request.target {
            Target::Tool { name, .. } | Target::Prompt { name } => Some(name),
            Target::Resource { .. } => self.canonical_uri.as_ref().and_then(|r| r.as_deref().ok()),
            Target::None => None,
        }
    }
}

/// Candidate rules for a request, in policy order, each once. A request
/// that reaches one index list only (the common case: its method and
/// target name one) borrows it, already in that order.
pub(crate) fn candidates<'i>(
    index: &'i Index,
    method: &str,
    target: Option<&str>,
) -> Cow<'i, [usize]> {
    let mut reached = index
        .by_method
        .get(method)
        .into_iter()
        .chain(std::iter::once(&index.any_method))
        .flat_map(|bucket| {
            let by_target = target.and_then(|key| bucket.by_target.get(key));
            [
                by_target.map_or(&[][..], Vec::as_slice),
                bucket.other.as_slice(),
            ]
        })
        .filter(|list| !list.is_empty());
    match (reached.next(), reached.next()) {
        (None, _) => Cow::Borrowed(&[]),
        (Some(only), None) => Cow::Borrowed(only),
        (Some(first), Some(second)) => {
            let mut out = [first, second].concat();
            for list in reached {
                out.extend_from_slice(list);
            }
            out.sort_unstable();
            out.dedup();
            Cow::Owned(out)
        }
    }
}

pub(crate) fn evaluate_pass(
    rules: &[Rule],
    candidates: &[usize],
    ctx: &PassContext<'_>,
    target: &PreparedTarget<'_>,
) -> PassOutcome {
    let mut first_allow = None;
    for &i in candidates {
        let Some(rule) = rules.get(i) else { continue };
        match rule_matches(rule, ctx, target) {
            // Deny overrides allow, and an error denies: stop at the first.
            Ok(true) if rule.effect == Effect::Deny => return PassOutcome::Deny { rule: i },
            Err(message) => return PassOutcome::Error { rule: i, message },
            Ok(true) => {
                first_allow.get_or_insert(i);
            }
            Ok(false) => {}
        }
    }
    match first_allow {
        Some(rule) => PassOutcome::Allow { rule },
        None => PassOutcome::NoMatch,
    }
}

fn rule_matches(
    rule: &Rule,
    ctx: &PassContext<'_>,
    target: &PreparedTarget<'_>,
) -> Result<bool, String> {
    if !party_matches(rule, ctx) {
        return Ok(false);
    }
    request_matches(rule, target)
}

/// Whether the rule's principal, delegation and `on_behalf_of` conditions
/// hold for the pass, whatever is asked.
pub(crate) fn party_matches(rule: &Rule, ctx: &PassContext<'_>) -> bool {
    if rule.delegated.is_some_and(|d| d != ctx.delegated) {
        return false;
    }
    if rule
        .delegation_depth
        .is_some_and(|(min, max)| ctx.depth < min || ctx.depth > max)
    {
        return false;
    }
    if let Some(m) = &rule.principal
        && !principal_matches(m, ctx.principal)
    {
        return false;
    }
    match (&rule.on_behalf_of, ctx.on_behalf_of) {
        (None, _) => true,
        (Some(m), Some(p)) => principal_matches(m, p),
        (Some(_), None) => false,
    }
}

/// Whether the rule's method, target and argument conditions hold, whoever
/// asks.
pub(crate) fn request_matches(rule: &Rule, target: &PreparedTarget<'_>) -> Result<bool, String> {
    let request = target.request;
    if let MethodMatch::Globs(globs) = &rule.methods
        && !globs.iter().any(|g| g.matches(&request.method))
    {
        return Ok(false);
    }
    if !target_matches(&rule.target, target)? {
        return Ok(false);
    }
    if let Some(test) = rule.target_charset
        && !target_name(request).is_some_and(|name| test.holds(name))
    {
        return Ok(false);
    }
    if !rule.arguments.is_empty() {
        let arguments = request.arguments().unwrap_or(&Value::Null);
        for condition in &rule.arguments {
            if !argument_matches(condition, arguments, rule.effect)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The tool or prompt name, or the resource URI, as sent.
fn target_name(request: &McpRequest) -> Option<&str> {
    match &request.target {
        Target::Tool { name, .. } | Target::Prompt { name } => Some(name),
        Target::Resource { uri } => Some(uri),
        Target::None => None,
    }
}

fn target_matches(m: &TargetMatch, target: &PreparedTarget<'_>) -> Result<bool, String> {
    let request = target.request;
    Ok(match m {
        TargetMatch::Any => true,
        TargetMatch::Tools(globs) => request
            .tool_name()
            .is_some_and(|n| globs.iter().any(|g| g.matches(n))),
        TargetMatch::Prompts(globs) => request
            .prompt_name()
            .is_some_and(|n| globs.iter().any(|g| g.matches(n))),
        TargetMatch::Resources { globs, prefixes } => match &target.canonical_uri {
            None => false,
            Some(Err(message)) => return Err(message.clone()),
            Some(Ok(uri)) => {
                globs.iter().any(|g| g.matches(uri))
                    || prefixes.iter().any(|p| within_prefix(uri, p))
            }
        },
    })
}

pub(crate) fn principal_matches(m: &PrincipalMatch, p: &Principal) -> bool {
    let any_of = |wanted: &Option<Vec<String>>, held: &[String]| {
        wanted
            .as_ref()
            .is_none_or(|w| w.iter().any(|x| held.contains(x)))
    };
    m.types
        .as_ref()
        .is_none_or(|types| p.actor_type.is_some_and(|t| types.contains(&t)))
        && m.subjects
            .as_ref()
            .is_none_or(|s| s.iter().any(|g| g.matches(&p.subject)))
        && any_of(&m.groups, &p.groups)
        && any_of(&m.roles, &p.roles)
        && any_of(&m.scopes, &p.scopes)
        && m.claims
            .iter()
            .all(|(name, wanted)| claim_matches(p.claims.get(name), wanted))
}

fn claim_matches(held: Option<&Value>, wanted: &[Value]) -> bool {
    match held {
        Some(Value::Array(items)) => items
            .iter()
            .any(|v| wanted.iter().any(|w| json_equal(v, w))),
        Some(v) => wanted.iter().any(|w| json_equal(v, w)),
        None => false,
    }
}

fn argument_matches(
    condition: &ArgumentCondition,
    arguments: &Value,
    effect: Effect,
) -> Result<bool, String> {
    match effect {
        Effect::Allow => strict_argument_matches(condition, arguments),
        Effect::Deny => lenient_argument_matches(condition, arguments),
    }
}

/// An allow rule's reading: the argument exactly as sent, so a spelling the
/// rule did not expect fails closed.
fn strict_argument_matches(
    condition: &ArgumentCondition,
    arguments: &Value,
) -> Result<bool, String> {
    // A missing argument satisfies no test; it is not an error, since tools
    // have optional arguments.
    let Some(value) = condition.pointer.get(arguments) else {
        return Ok(false);
    };
    let pointer = condition.pointer.as_str();
    match &condition.test {
        ArgumentTest::Equals(expected) => Ok(json_equal(value, expected)),
        ArgumentTest::OneOf(options) => Ok(options.iter().any(|o| json_equal(value, o))),
        ArgumentTest::Range { min, max } => {
            let number = value
                .as_f64()
                .ok_or_else(|| format!("argument `{pointer}` must be a number for `range`"))?;
            Ok(in_range(number, *min, *max))
        }
        ArgumentTest::Text(test) => test.matches(pointer, value, Effect::Allow),
    }
}

/// A deny rule's reading: the argument as a server validating leniently may
/// read it (`lax`), so no spelling it accepts slips past the deny. Where the
/// reading is unsure, the deny holds.
fn lenient_argument_matches(
    condition: &ArgumentCondition,
    arguments: &Value,
) -> Result<bool, String> {
    let pointer = condition.pointer.as_str();
    let value = match lax::lookup(arguments, &condition.pointer) {
        Lookup::Found(value) => value,
        Lookup::Absent => return Ok(false),
        Lookup::Unsure => return Ok(true),
    };
    match &condition.test {
        ArgumentTest::Equals(expected) => Ok(lax::could_equal(&value, expected)),
        ArgumentTest::OneOf(options) => Ok(options.iter().any(|o| lax::could_equal(&value, o))),
        ArgumentTest::Range { min, max } => match lax::read_number(&value) {
            // No bound places a NaN: the tool may still act on it.
            Reading::Read(number) if number.is_nan() => Ok(true),
            Reading::Read(number) => Ok(in_range(number, *min, *max)),
            Reading::Unsure => Ok(true),
            Reading::Refused => Err(format!("argument `{pointer}` must be a number for `range`")),
        },
        ArgumentTest::Text(test) => test.matches(pointer, &value, Effect::Deny),
    }
}

fn in_range(number: f64, min: Option<f64>, max: Option<f64>) -> bool {
    min.is_none_or(|m| number >= m) && max.is_none_or(|m| number <= m)
}

impl TextTest {
    /// Tests on strings are read alike by allow and deny rules (a lenient
    /// server gives a `str` parameter only strings, and any other type is
    /// an evaluation error, which denies), except the letter case of paths.
    fn matches(&self, pointer: &str, value: &Value, effect: Effect) -> Result<bool, String> {
        let text = value.as_str().ok_or_else(|| {
            format!(
                "argument `{pointer}` must be a string for `{}`",
                self.name()
            )
        })?;
        Ok(match self {
            TextTest::PathPrefix(prefix) => {
                let normalized =
                    normalize_path(text).map_err(|e| format!("argument `{pointer}`: {e}"))?;
                match effect {
                    // Prefixes are absolute: an allow never covers a
                    // relative path.
                    Effect::Allow => within_path_prefix(&normalized, prefix),
                    // A relative path (`etc/passwd`, `~/key`) is resolved
                    // against a working directory Warden does not know, so
                    // it may land under the prefix. A case-insensitive file
                    // system (Windows, macOS) opens `/SRV/Secret` as
                    // `/srv/secret`. The deny holds for both. (Only ASCII is
                    // left after normalising.)
                    Effect::Deny => {
                        !normalized.starts_with('/')
                            || within_path_prefix(
                                &normalized.to_ascii_lowercase(),
                                &prefix.to_ascii_lowercase(),
                            )
                    }
                }
            }
            TextTest::Glob(glob) => glob.matches(text),
            TextTest::Charset(test) => test.holds(text),
        })
    }

    fn name(&self) -> &'static str {
        match self {
            TextTest::PathPrefix(_) => "path_prefix",
            TextTest::Glob(_) => "glob",
            TextTest::Charset(_) => "charset",
        }
    }
}

/// The contexts a request is judged in: the acting principal's, then
/// (when someone acts for a subject) the subject's. Held inline: every
/// decision asks for them.
pub(crate) struct Passes<'a> {
    acting: PassContext<'a>,
    subject: Option<PassContext<'a>>,
}

impl<'a> Passes<'a> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &PassContext<'a>> {
        std::iter::once(&self.acting).chain(self.subject.as_ref())
    }
}

pub(crate) fn passes(identity: &Identity) -> Passes<'_> {
    let depth = identity.delegation_depth();
    match &identity.actor {
        None => Passes {
            acting: PassContext {
                principal: &identity.subject,
                on_behalf_of: None,
                delegated: false,
                depth,
            },
            subject: None,
        },
        Some(actor) => Passes {
            acting: PassContext {
                principal: actor,
                on_behalf_of: Some(&identity.subject),
                delegated: true,
                depth,
            },
            subject: Some(PassContext {
                principal: &identity.subject,
                on_behalf_of: None,
                delegated: true,
                depth,
            }),
        },
    }
}
