//! Validation and compilation of rules into an indexed form.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::Disclosure;
use super::charset::{CHARSET_NAMES, Charset, CharsetTest};
use super::pointer::Pointer;
use super::source::{
    ArgumentSource, CharsetSource, Defaults, DenyAnswer, DenyMode, Effect, PrincipalSource,
    RuleSource,
};
use crate::glob::{self, Glob, PatternChar};
use crate::hashing::WordHashing;
use crate::identity::ActorType;
use crate::mcp::{HTTP_DELETE_METHOD, HTTP_GET_METHOD, MethodFacts, TargetKind};
use crate::normalize::{normalize_path, normalize_uri};

/// Why a policy does not compile. Every message names the rule and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule `{rule}` ({field}): {message}")]
pub struct CompileError {
    pub rule: String,
    pub field: String,
    pub message: String,
    /// What the author can do about it.
    pub help: Option<String>,
}

/// Built-in rule id of the session-methods default.
pub const SESSION_RULE_ID: &str = "warden:session-methods";
/// What every MCP client needs to start, keep and end a session: the
/// session methods of the method table (the 2025 handshake and the
/// 2026-07-28 discovery and stream methods that replace it), and the GET
/// stream and DELETE.
fn session_methods() -> impl Iterator<Item = &'static str> {
    MethodFacts::session_methods().chain([HTTP_GET_METHOD, HTTP_DELETE_METHOD])
}

#[derive(Debug, Clone)]
pub(crate) struct PrincipalMatch {
    pub types: Option<Vec<ActorType>>,
    pub subjects: Option<Vec<Glob>>,
    pub groups: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub claims: BTreeMap<String, Vec<Value>>,
}

#[derive(Debug, Clone)]
pub(crate) enum TargetMatch {
    Any,
    Tools(Vec<Glob>),
    Resources {
        globs: Vec<Glob>,
        prefixes: Vec<String>,
    },
    Prompts(Vec<Glob>),
}

#[derive(Debug, Clone)]
pub(crate) enum ArgumentTest {
    Equals(Value),
    OneOf(Vec<Value>),
    Range {
        min: Option<f64>,
        max: Option<f64>,
    },
    /// Tests only a string can pass.
    Text(TextTest),
}

#[derive(Debug, Clone)]
pub(crate) enum TextTest {
    PathPrefix(String),
    Glob(Glob),
    Charset(CharsetTest),
}

#[derive(Debug, Clone)]
pub(crate) struct ArgumentCondition {
    pub pointer: Pointer,
    pub test: ArgumentTest,
}

#[derive(Debug, Clone)]
pub(crate) enum MethodMatch {
    Any,
    Globs(Vec<Glob>),
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// Shared with every decision and audit record the rule makes: a
    /// request copies no rule names.
    pub id: Arc<str>,
    pub effect: Effect,
    pub owner: Arc<str>,
    /// The reason an allow by this rule gives, written once.
    pub allow_reason: Arc<str>,
    pub principal: Option<PrincipalMatch>,
    pub on_behalf_of: Option<PrincipalMatch>,
    pub delegated: Option<bool>,
    /// Inclusive bounds on the number of actors in the chain.
    pub delegation_depth: Option<(usize, usize)>,
    pub methods: MethodMatch,
    pub target: TargetMatch,
    pub arguments: Vec<ArgumentCondition>,
    /// A condition on the characters of the target's name or URI, as sent.
    pub target_charset: Option<CharsetTest>,
    /// How a denial tied to this rule is answered, if it chooses.
    pub deny_answer: Option<DenyAnswer>,
    /// Who a denial tied to this rule shows its rule id and reason to, if
    /// it chooses.
    pub disclosure: Option<Disclosure>,
}

/// Rules reachable from one method key, split by target name. The maps'
/// keys come from the configuration alone (a request's method and target
/// only look up), so they hash without a key (`crate::hashing`): SipHash
/// of the two lookups was about 1.4% of an allowed call's Wasm work.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bucket {
    pub by_target: HashMap<String, Vec<usize>, WordHashing>,
    pub other: Vec<usize>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    pub by_method: HashMap<String, Bucket, WordHashing>,
    pub any_method: Bucket,
}

impl Bucket {
    /// Rules are added in policy order, so each list stays strictly
    /// increasing (a name or method given twice adds the rule once): a
    /// request that reaches one list only can evaluate it as it is.
    fn add(&mut self, rule: usize, literal_targets: Option<&[String]>) {
        let add_to = |list: &mut Vec<usize>| {
            if list.last() != Some(&rule) {
                list.push(rule);
            }
        };
        match literal_targets {
            Some(names) => {
                for name in names {
                    add_to(self.by_target.entry(name.clone()).or_default());
                }
            }
            None => add_to(&mut self.other),
        }
    }
}

fn err(rule: &str, field: &str, message: impl Into<String>) -> CompileError {
    CompileError {
        rule: rule.to_owned(),
        field: field.to_owned(),
        message: message.into(),
        help: None,
    }
}

/// Which methods carry which target, from the method table: "tools go
/// with `tools/call`, …".
fn target_methods_help() -> String {
    let kinds: Vec<String> = TargetKind::ALL
        .iter()
        .map(|kind| {
            let noun = match kind {
                TargetKind::Tool => "tools",
                TargetKind::Resource => "resources",
                TargetKind::Prompt => "prompts",
            };
            let methods: Vec<String> = kind.methods().map(|m| format!("`{m}`")).collect();
            format!("{noun} go with {}", methods.join(", "))
        })
        .collect();
    kinds.join("; ")
}

fn with_help(mut e: CompileError, help: &str) -> CompileError {
    e.help = Some(help.to_owned());
    e
}

fn non_empty<'a, T>(
    rule: &str,
    field: &str,
    list: &'a Option<Vec<T>>,
) -> Result<Option<&'a [T]>, CompileError> {
    match list {
        Some(items) if items.is_empty() => Err(with_help(
            err(rule, field, "an empty list can never match"),
            "remove the field to match anything, or list at least one value",
        )),
        Some(items) => Ok(Some(items.as_slice())),
        None => Ok(None),
    }
}

fn globs(
    rule: &str,
    field: &str,
    list: &Option<Vec<String>>,
) -> Result<Option<Vec<Glob>>, CompileError> {
    let Some(items) = non_empty(rule, field, list)? else {
        return Ok(None);
    };
    items
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Glob::new(p).map_err(|e| err(rule, &format!("{field}[{i}]"), format!("`{p}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn compile_principal(
    rule: &str,
    field: &str,
    source: &PrincipalSource,
) -> Result<PrincipalMatch, CompileError> {
    let types = match non_empty(rule, &format!("{field}.types"), &source.types)? {
        None => None,
        Some(names) => Some(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    ActorType::parse(n).ok_or_else(|| {
                        with_help(
                            err(
                                rule,
                                &format!("{field}.types[{i}]"),
                                format!("unknown actor type `{n}`"),
                            ),
                            "actor types are `human`, `service` and `agent`",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let strings =
        |name: &str, list: &Option<Vec<String>>| -> Result<Option<Vec<String>>, CompileError> {
            Ok(non_empty(rule, &format!("{field}.{name}"), list)?.map(<[String]>::to_vec))
        };
    let mut claims = BTreeMap::new();
    if let Some(map) = &source.claims {
        if map.is_empty() {
            return Err(err(
                rule,
                &format!("{field}.claims"),
                "an empty map can never match",
            ));
        }
        for (name, values) in map {
            if values.is_empty() {
                return Err(err(
                    rule,
                    &format!("{field}.claims.{name}"),
                    "an empty list can never match",
                ));
            }
            if let Some(bad) = values
                .iter()
                .find(|v| v.is_object() || v.is_array() || v.is_null())
            {
                return Err(err(
                    rule,
                    &format!("{field}.claims.{name}"),
                    format!("`{bad}`: claim values must be strings, numbers or booleans"),
                ));
            }
            claims.insert(name.clone(), values.clone());
        }
    }
    Ok(PrincipalMatch {
        types,
        subjects: globs(rule, &format!("{field}.subjects"), &source.subjects)?,
        groups: strings("groups", &source.groups)?,
        roles: strings("roles", &source.roles)?,
        scopes: strings("scopes", &source.scopes)?,
        claims,
    })
}

fn compile_argument(
    rule: &str,
    index: usize,
    source: &ArgumentSource,
) -> Result<ArgumentCondition, CompileError> {
    let field = format!("arguments[{index}]");
    let Some(pointer) = Pointer::parse(&source.pointer) else {
        return Err(with_help(
            err(
                rule,
                &format!("{field}.pointer"),
                format!("`{}` is not a JSON pointer", source.pointer),
            ),
            "a JSON pointer starts with `/`, e.g. `/path` or `/options/0/name`",
        ));
    };
    let mut tests = Vec::new();
    if let Some(v) = &source.equals {
        tests.push(ArgumentTest::Equals(v.clone()));
    }
    if let Some(vs) = non_empty(rule, &format!("{field}.one_of"), &source.one_of)? {
        tests.push(ArgumentTest::OneOf(vs.to_vec()));
    }
    if let Some(p) = &source.path_prefix {
        let normalized = normalize_path(p)
            .map_err(|e| err(rule, &format!("{field}.path_prefix"), format!("`{p}`: {e}")))?;
        if !normalized.starts_with('/') {
            return Err(err(
                rule,
                &format!("{field}.path_prefix"),
                format!("`{p}` must be an absolute path"),
            ));
        }
        tests.push(ArgumentTest::Text(TextTest::PathPrefix(normalized)));
    }
    if let Some(g) = &source.glob {
        let glob =
            Glob::new(g).map_err(|e| err(rule, &format!("{field}.glob"), format!("`{g}`: {e}")))?;
        tests.push(ArgumentTest::Text(TextTest::Glob(glob)));
    }
    if let Some(c) = &source.charset {
        let test = compile_charset(rule, &format!("{field}.charset"), c)?;
        tests.push(ArgumentTest::Text(TextTest::Charset(test)));
    }
    if let Some(r) = &source.range {
        match (r.min, r.max) {
            (None, None) => {
                return Err(err(
                    rule,
                    &format!("{field}.range"),
                    "give `min`, `max` or both",
                ));
            }
            (Some(min), Some(max)) if min > max => {
                return Err(err(
                    rule,
                    &format!("{field}.range"),
                    format!("min {min} is greater than max {max}: the range can never match"),
                ));
            }
            (min, max) => tests.push(ArgumentTest::Range { min, max }),
        }
    }
    let mut tests = tests.into_iter();
    match (tests.next(), tests.next()) {
        (Some(test), None) => Ok(ArgumentCondition { pointer, test }),
        (None, _) => Err(with_help(
            err(rule, &field, "no test given"),
            "give exactly one of `equals`, `one_of`, `path_prefix`, `glob`, `range`, `charset`",
        )),
        (Some(_), Some(_)) => Err(with_help(
            err(rule, &field, "more than one test given"),
            "write one condition per test; all conditions of a rule must hold",
        )),
    }
}

/// A resource glob in canonical form: the URI with its escapes removed is
/// normalized like a requested URI, and the escapes are put back on the
/// characters they marked. Normalizing lowercases the scheme and host and
/// drops default ports, `localhost` and a trailing `/`, so each character of
/// the canonical form is found again in order, ignoring ASCII case.
fn resource_glob(pattern: &str) -> Result<Glob, String> {
    let chars = glob::unescape(pattern).map_err(|e| e.to_string())?;
    let plain: String = chars.iter().map(|c| c.char).collect();
    let normalized = normalize_uri(&plain).map_err(|e| e.to_string())?;
    let mut source = chars.iter().peekable();
    let mut canonical = Vec::with_capacity(normalized.len());
    for char in normalized.chars() {
        loop {
            match source.next() {
                Some(c) if c.char.eq_ignore_ascii_case(&char) => {
                    canonical.push(PatternChar {
                        char,
                        escaped: c.escaped,
                    });
                    break;
                }
                // Dropped by normalization; an escaped character never is.
                Some(c) if !c.escaped => {}
                Some(_) | None => {
                    return Err("an escaped character does not survive normalization".into());
                }
            }
        }
    }
    if source.any(|c| c.escaped) {
        return Err("an escaped character does not survive normalization".into());
    }
    Glob::new(&glob::escape(canonical)).map_err(|e| e.to_string())
}

/// A `{only: NAME}` or `{some_outside: NAME}` condition.
fn compile_charset(
    rule: &str,
    field: &str,
    source: &CharsetSource,
) -> Result<CharsetTest, CompileError> {
    let (name, only, subfield) = match (&source.only, &source.some_outside) {
        (Some(name), None) => (name, true, "only"),
        (None, Some(name)) => (name, false, "some_outside"),
        _ => {
            return Err(with_help(
                err(rule, field, "give exactly one of `only` and `some_outside`"),
                "`only: printable_ascii` holds when every character is in the set, `some_outside: printable_ascii` when one is not",
            ));
        }
    };
    let charset = Charset::parse(name).ok_or_else(|| {
        with_help(
            err(
                rule,
                &format!("{field}.{subfield}"),
                format!("unknown character set `{name}`"),
            ),
            &format!("character sets are {CHARSET_NAMES}"),
        )
    })?;
    Ok(CharsetTest { charset, only })
}

fn compile_rule(source: &RuleSource, seen: &mut HashSet<String>) -> Result<Rule, CompileError> {
    let id = source.id.as_str();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(with_help(
            err(
                id,
                "id",
                "rule ids must be non-empty and use only letters, digits, `-`, `_`, `.` and `:`",
            ),
            "ids appear in audit lines and error responses; keep them short and stable",
        ));
    }
    if id.starts_with("warden:") {
        return Err(err(
            id,
            "id",
            "the `warden:` prefix is reserved for built-in rules",
        ));
    }
    if !seen.insert(id.to_owned()) {
        return Err(err(id, "id", "another rule has the same id"));
    }
    if source.owner.trim().is_empty() {
        return Err(with_help(
            err(id, "owner", "owner must not be empty"),
            "name the team accountable for this rule",
        ));
    }
    let principal = source
        .principal
        .as_ref()
        .map(|p| compile_principal(id, "principal", p))
        .transpose()?;
    let on_behalf_of = source
        .on_behalf_of
        .as_ref()
        .map(|p| compile_principal(id, "on_behalf_of", p))
        .transpose()?;
    if on_behalf_of.is_some() && source.delegated == Some(false) {
        return Err(err(
            id,
            "delegated",
            "`delegated: false` with `on_behalf_of` can never match: direct requests act for nobody",
        ));
    }

    let delegation_depth = match &source.delegation_depth {
        None => None,
        Some(d) => {
            let (min, max) = (d.min.unwrap_or(0), d.max.unwrap_or(usize::MAX));
            if d.min.is_none() && d.max.is_none() {
                return Err(err(id, "delegation_depth", "give `min`, `max` or both"));
            }
            if min > max {
                return Err(err(
                    id,
                    "delegation_depth",
                    format!("min {min} is greater than max {max}: can never match"),
                ));
            }
            if min > 0 && source.delegated == Some(false) {
                return Err(err(
                    id,
                    "delegation_depth",
                    "a direct request has depth 0: can never match with `delegated: false`",
                ));
            }
            Some((min, max))
        }
    };
    let tools = globs(id, "tools", &source.tools)?;
    let resources = globs(id, "resources", &source.resources)?;
    let resource_prefixes = match non_empty(id, "resource_prefixes", &source.resource_prefixes)? {
        None => None,
        Some(prefixes) => Some(
            prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    normalize_uri(p).map_err(|e| {
                        err(
                            id,
                            &format!("resource_prefixes[{i}]"),
                            format!("`{p}`: {e}"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let resource_globs = resources
        .map(|globs| {
            globs
                .into_iter()
                .enumerate()
                .map(|(i, g)| {
                    resource_glob(g.as_str()).map_err(|e| {
                        err(
                            id,
                            &format!("resources[{i}]"),
                            format!("`{}`: {e}", g.as_str()),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let prompts = globs(id, "prompts", &source.prompts)?;

    let mut kinds = Vec::new();
    if tools.is_some() {
        kinds.push((TargetKind::Tool, "tools"));
    }
    if resource_globs.is_some() || resource_prefixes.is_some() {
        kinds.push((TargetKind::Resource, "resources"));
    }
    if prompts.is_some() {
        kinds.push((TargetKind::Prompt, "prompts"));
    }
    if source.arguments.is_some() && !kinds.iter().any(|(k, _)| *k == TargetKind::Tool) {
        if kinds.is_empty() {
            kinds.push((TargetKind::Tool, "arguments"));
        } else {
            return Err(err(
                id,
                "arguments",
                format!(
                    "tool arguments only exist on `{}`; this rule names no tools",
                    TargetKind::Tool.use_method().name
                ),
            ));
        }
    }
    let target_kind = match kinds.as_slice() {
        [] => None,
        [(kind, _)] => Some(*kind),
        [(_, a), (_, b), ..] => {
            return Err(with_help(
                err(
                    id,
                    b,
                    format!("a request has one target; `{a}` and `{b}` together can never match"),
                ),
                "split this into one rule per kind of target",
            ));
        }
    };

    let methods = match globs(id, "methods", &source.methods)? {
        None => match target_kind {
            None => MethodMatch::Any,
            Some(kind) => MethodMatch::Globs(
                kind.methods()
                    .map(Glob::new)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| err(id, "methods", e.to_string()))?,
            ),
        },
        Some(list) => {
            if let Some(kind) = target_kind {
                for (i, g) in list.iter().enumerate() {
                    let possible = kind.methods().any(|m| g.matches(m));
                    if !possible {
                        return Err(with_help(
                            err(
                                id,
                                &format!("methods[{i}]"),
                                format!("`{}` never carries this rule's target", g.as_str()),
                            ),
                            &target_methods_help(),
                        ));
                    }
                }
            }
            MethodMatch::Globs(list)
        }
    };

    let target = match target_kind {
        None => TargetMatch::Any,
        Some(TargetKind::Tool) => match tools {
            Some(t) => TargetMatch::Tools(t),
            None => TargetMatch::Any,
        },
        Some(TargetKind::Resource) => TargetMatch::Resources {
            globs: resource_globs.unwrap_or_default(),
            prefixes: resource_prefixes.unwrap_or_default(),
        },
        Some(TargetKind::Prompt) => TargetMatch::Prompts(prompts.unwrap_or_default()),
    };

    let arguments = match non_empty(id, "arguments", &source.arguments)? {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, a)| compile_argument(id, i, a))
            .collect::<Result<Vec<_>, _>>()?,
    };

    let target_charset = source
        .target_charset
        .as_ref()
        .map(|c| compile_charset(id, "target_charset", c))
        .transpose()?;
    if target_charset.is_some()
        && let MethodMatch::Globs(list) = &methods
        && !list.iter().any(|g| {
            TargetKind::ALL
                .iter()
                .any(|kind| kind.methods().any(|m| g.matches(m)))
        })
    {
        return Err(with_help(
            err(
                id,
                "target_charset",
                "none of this rule's methods carries a tool, prompt or resource: can never match",
            ),
            &format!("{} (or leave `methods` out)", target_methods_help()),
        ));
    }

    let deny_answer = compile_deny_answer(source, principal.as_ref())?;
    let disclosure = compile_disclosure(source)?;

    Ok(Rule {
        id: Arc::from(id),
        effect: source.effect,
        owner: Arc::from(source.owner.as_str()),
        allow_reason: allow_reason(id),
        principal,
        on_behalf_of,
        delegated: source.delegated,
        delegation_depth,
        methods,
        target,
        arguments,
        target_charset,
        deny_answer,
        disclosure,
    })
}

/// The rule's own `disclose_reasons`, if it has one.
fn compile_disclosure(source: &RuleSource) -> Result<Option<Disclosure>, CompileError> {
    source
        .disclose_reasons
        .as_deref()
        .map(Disclosure::parse)
        .transpose()
        .map_err(|e| {
            with_help(
                err(
                    &source.id,
                    &format!("disclose_reasons[{}]", e.index()),
                    e.to_string(),
                ),
                "list actor types (`human`, `service`, `agent`) once each; `[]` discloses to nobody",
            )
        })
}

/// How a denial tied to this rule is answered, with the scopes a
/// `step_up` answer names.
fn compile_deny_answer(
    source: &RuleSource,
    principal: Option<&PrincipalMatch>,
) -> Result<Option<DenyAnswer>, CompileError> {
    let scopes = compile_step_up(source, principal)?;
    Ok(source.deny_mode.map(|mode| match mode {
        DenyMode::Error => DenyAnswer::Error,
        DenyMode::Forbidden => DenyAnswer::Forbidden,
        DenyMode::StepUp => DenyAnswer::StepUp { scopes },
        DenyMode::Disguise => DenyAnswer::Disguise,
    }))
}

/// The scopes a `step_up` denial tied to this rule names.
fn compile_step_up(
    source: &RuleSource,
    principal: Option<&PrincipalMatch>,
) -> Result<Vec<String>, CompileError> {
    let id = source.id.as_str();
    let explicit = non_empty(id, "step_up_scopes", &source.step_up_scopes)?;
    if source.deny_mode != Some(DenyMode::StepUp) {
        if explicit.is_some() {
            return Err(with_help(
                err(id, "step_up_scopes", "only used with `deny_mode: step_up`"),
                "set `deny_mode: step_up` on this rule, or remove `step_up_scopes`",
            ));
        }
        return Ok(Vec::new());
    }
    let scopes = match (explicit, source.effect) {
        (Some(list), _) => list.to_vec(),
        (None, Effect::Allow) => principal.and_then(|p| p.scopes.clone()).unwrap_or_default(),
        (None, Effect::Deny) => Vec::new(),
    };
    if scopes.is_empty() {
        return Err(with_help(
            err(
                id,
                "deny_mode",
                "`step_up` needs scopes to ask for, and this rule names none",
            ),
            "list them in `step_up_scopes` (or, on an allow rule, in `principal.scopes`)",
        ));
    }
    for (i, scope) in scopes.iter().enumerate() {
        // RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`.
        if scope.is_empty()
            || !scope
                .chars()
                .all(|c| ('!'..='~').contains(&c) && c != '"' && c != '\\')
        {
            return Err(err(
                id,
                &format!("step_up_scopes[{i}]"),
                format!("`{scope}` is not a valid OAuth scope token"),
            ));
        }
    }
    Ok(scopes)
}

/// What an allow by rule `id` says in its audit line.
fn allow_reason(id: &str) -> Arc<str> {
    Arc::from(["allowed by rule `", id, "`"].concat())
}

fn session_rule() -> Result<Rule, CompileError> {
    let methods = session_methods()
        .map(Glob::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(SESSION_RULE_ID, "methods", e.to_string()))?;
    Ok(Rule {
        id: Arc::from(SESSION_RULE_ID),
        effect: Effect::Allow,
        owner: Arc::from("warden"),
        allow_reason: allow_reason(SESSION_RULE_ID),
        principal: None,
        on_behalf_of: None,
        delegated: None,
        delegation_depth: None,
        methods: MethodMatch::Globs(methods),
        target: TargetMatch::Any,
        arguments: Vec::new(),
        target_charset: None,
        deny_answer: None,
        disclosure: None,
    })
}

/// Compiles rules (in order) plus the enabled built-in defaults, and builds
/// the index.
pub(crate) fn compile_rules(
    sources: &[RuleSource],
    defaults: &Defaults,
) -> Result<(Vec<Rule>, Index), CompileError> {
    let mut seen = HashSet::new();
    let mut rules = sources
        .iter()
        .map(|s| compile_rule(s, &mut seen))
        .collect::<Result<Vec<_>, _>>()?;
    if defaults.allow_session_methods {
        rules.push(session_rule()?);
    }
    let mut index = Index::default();
    for (i, rule) in rules.iter().enumerate() {
        let literal_targets: Option<Vec<String>> = match &rule.target {
            TargetMatch::Tools(globs) | TargetMatch::Prompts(globs) => globs
                .iter()
                .map(|g| g.literal().map(str::to_owned))
                .collect(),
            TargetMatch::Resources { globs, prefixes } if prefixes.is_empty() => globs
                .iter()
                .map(|g| g.literal().map(str::to_owned))
                .collect(),
            _ => None,
        };
        let literal_methods: Option<Vec<&str>> = match &rule.methods {
            MethodMatch::Any => None,
            MethodMatch::Globs(globs) => globs.iter().map(Glob::literal).collect(),
        };
        match literal_methods {
            Some(methods) => {
                for m in methods {
                    index
                        .by_method
                        .entry(m.to_owned())
                        .or_default()
                        .add(i, literal_targets.as_deref());
                }
            }
            None => index.any_method.add(i, literal_targets.as_deref()),
        }
    }
    Ok((rules, index))
}
