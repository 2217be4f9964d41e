//! The policy language: source types, compilation and evaluation.
//! The language is documented for authors in `docs/policy.md`.

mod charset;
mod compile;
mod disclosure;
mod eval;
mod lax;
mod pointer;
pub mod source;
mod visibility;

use std::sync::Arc;

use serde::Serialize;

pub use compile::{CompileError, SESSION_RULE_ID};
pub use disclosure::{Disclosure, DisclosureError};
pub use source::{CharsetSource, Defaults, DenyAnswer, DenyMode, Effect, RuleSource};
pub use visibility::ListedItem;

use crate::identity::Identity;
use crate::mcp::McpRequest;
use compile::{Index, Rule};
use eval::{PassOutcome, PreparedTarget, candidates, evaluate_pass, passes, request_matches};

/// What Warden decided about one request, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub effect: Effect,
    /// The rule that decided (for a delegated request that was allowed: the
    /// rule that allowed the acting principal).
    pub rule: Option<Arc<str>>,
    pub owner: Option<Arc<str>>,
    /// Shared, not copied, into the audit record (an allow's is its rule's).
    pub reason: Arc<str>,
    /// For a delegated request, the rule that decided the subject's pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_rule: Option<Arc<str>>,
    /// How to answer a denial, when a rule chose (`None`: the policy's mode).
    #[serde(skip)]
    pub deny_answer: Option<DenyAnswer>,
    /// For a default deny: the allow rule whose `deny_mode` shapes the
    /// answer (the caller did not qualify for it).
    #[serde(skip)]
    pub mode_rule: Option<Arc<str>>,
    /// Who a denial shows its rule id and reason to, when a rule chose
    /// (`None`: the policy's `filter.disclose_reasons`). Chosen like
    /// `deny_answer`.
    #[serde(skip)]
    pub disclosure: Option<Disclosure>,
    /// The deciding rule could not be evaluated (an argument of the wrong
    /// type, a path that cannot be normalized): denied, and counted apart.
    #[serde(skip)]
    pub evaluation_error: bool,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// The decision of a policy in shadow mode: allowed, by no rule.
    pub(crate) fn not_enforced() -> Self {
        Self {
            effect: Effect::Allow,
            ..Self::deny("the policy is in shadow mode: not enforced")
        }
    }

    pub(crate) fn deny(reason: impl Into<Arc<str>>) -> Self {
        Self {
            effect: Effect::Deny,
            rule: None,
            owner: None,
            reason: reason.into(),
            subject_rule: None,
            deny_answer: None,
            mode_rule: None,
            disclosure: None,
            evaluation_error: false,
        }
    }
}

/// What a policy in shadow would have decided, where that differs from
/// what was enforced (with the whole policy in shadow: every decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shadow {
    /// `would_allow` or `would_deny`.
    pub outcome: &'static str,
    /// The rule that would have decided.
    pub rule: Option<Arc<str>>,
    pub reason: Arc<str>,
}

impl Shadow {
    fn of(decision: &Decision) -> Self {
        Self {
            outcome: if decision.is_allowed() {
                "would_allow"
            } else {
                "would_deny"
            },
            rule: decision.rule.clone(),
            reason: decision.reason.clone(),
        }
    }
}

/// A policy whose rules may be in shadow: rules with `shadow: true` (or
/// every rule, with `filter.shadow`) are evaluated and recorded but enforce
/// nothing.
#[derive(Debug, Clone)]
pub struct ShadowedPolicy {
    /// The rules in force (every rule when none is in shadow; with the
    /// whole policy in shadow, every rule, judging what would happen).
    enforced: CompiledPolicy,
    /// Every rule, shadow or not, when some but not all are in shadow.
    observed: Option<CompiledPolicy>,
    /// The whole policy is in shadow: every request the rules judge is
    /// allowed, and what they would decide is recorded.
    whole: bool,
}

impl ShadowedPolicy {
    pub fn compile(
        rules: &[RuleSource],
        defaults: &Defaults,
        whole: bool,
    ) -> Result<Self, CompileError> {
        // Every rule compiles, shadow or not, with its place in the document.
        let all = CompiledPolicy::compile(rules, defaults)?;
        // With the whole policy in shadow, every rule judges what would
        // happen and none is enforced: one compiled copy serves.
        if whole || !rules.iter().any(|rule| rule.shadow) {
            return Ok(Self {
                enforced: all,
                observed: None,
                whole,
            });
        }
        let in_force: Vec<RuleSource> = rules.iter().filter(|r| !r.shadow).cloned().collect();
        Ok(Self {
            enforced: CompiledPolicy::compile(&in_force, defaults)?,
            observed: Some(all),
            whole,
        })
    }

    /// Number of rules, built-ins and rules in shadow included.
    pub fn len(&self) -> usize {
        self.observed.as_ref().unwrap_or(&self.enforced).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rules in force: what lists are cut by.
    pub fn enforced(&self) -> &CompiledPolicy {
        &self.enforced
    }

    /// Whether the whole policy is in shadow.
    pub fn is_shadow(&self) -> bool {
        self.whole
    }

    /// Judges `request`: the decision enforced, and what the rules in
    /// shadow would have decided when it differs.
    pub fn decide(&self, identity: &Identity, request: &McpRequest) -> (Decision, Option<Shadow>) {
        if self.whole {
            let would = self.enforced.decide(identity, request);
            return (Decision::not_enforced(), Some(Shadow::of(&would)));
        }
        let decision = self.enforced.decide(identity, request);
        let shadow = self
            .observed
            .as_ref()
            .map(|observed| observed.decide(identity, request))
            .filter(|would| would.effect != decision.effect)
            .map(|would| Shadow::of(&would));
        (decision, shadow)
    }
}

/// Rules compiled and indexed, ready to judge requests.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    rules: Vec<Rule>,
    index: Index,
}

impl CompiledPolicy {
    pub fn compile(rules: &[RuleSource], defaults: &Defaults) -> Result<Self, CompileError> {
        let (rules, index) = compile::compile_rules(rules, defaults)?;
        Ok(Self { rules, index })
    }

    /// Number of rules, built-ins included.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Judges `request` made by `identity`. See `eval` for the combining rule.
    pub fn decide(&self, identity: &Identity, request: &McpRequest) -> Decision {
        let contexts = passes(identity);
        for ctx in contexts.iter() {
            if ctx.principal.actor_type.is_none() {
                let why = ctx
                    .principal
                    .unclassified_reason
                    .as_deref()
                    .map_or_else(String::new, |why| format!(": {why}"));
                return Decision::deny(format!(
                    "`{}` has no recognised actor type (human, service or agent){why}",
                    ctx.principal.subject
                ));
            }
        }
        let target = PreparedTarget::new(request);
        let candidates = candidates(&self.index, &request.method, target.index_key());
        // At most one allow per pass, and at most two passes.
        let mut allowed_by = [None; 2];
        for (ctx, allowed) in contexts.iter().zip(&mut allowed_by) {
            // Only a denial names who was refused: an allowed request does
            // not pay for the text.
            let who = || match ctx.on_behalf_of {
                Some(subject) => format!(
                    "`{}` acting for `{}`",
                    ctx.principal.subject, subject.subject
                ),
                None if ctx.delegated => format!(
                    "`{}` (on whose behalf an agent acts)",
                    ctx.principal.subject
                ),
                None => format!("`{}`", ctx.principal.subject),
            };
            match evaluate_pass(&self.rules, &candidates, ctx, &target) {
                PassOutcome::Allow { rule } => *allowed = Some(rule),
                PassOutcome::Deny { rule } => {
                    return self.rule_decision(
                        Effect::Deny,
                        rule,
                        format!("{}: denied by rule `{}`", who(), self.rule_id(rule)),
                    );
                }
                PassOutcome::Error { rule, message } => {
                    let mut decision = self.rule_decision(
                        Effect::Deny,
                        rule,
                        format!(
                            "{}: evaluation error in rule `{}`: {message}",
                            who(),
                            self.rule_id(rule)
                        ),
                    );
                    decision.evaluation_error = true;
                    return decision;
                }
                PassOutcome::NoMatch => {
                    let mut decision = Decision::deny(format!(
                        "{}: no rule allows `{}`{}",
                        who(),
                        request.method,
                        describe_target(request)
                    ));
                    // The first allow rule for this very request that the
                    // caller did not qualify for chooses how it is refused
                    // (e.g. step-up naming the scopes it requires), and the
                    // first one that chooses says who learns why.
                    let unqualified =
                        candidates
                            .iter()
                            .filter_map(|&i| self.rules.get(i))
                            .filter(|r| {
                                r.effect == Effect::Allow
                                    && (r.deny_answer.is_some() || r.disclosure.is_some())
                                    && request_matches(r, &target).unwrap_or(false)
                            });
                    for rule in unqualified {
                        if decision.deny_answer.is_none() && rule.deny_answer.is_some() {
                            decision.deny_answer.clone_from(&rule.deny_answer);
                            decision.mode_rule = Some(Arc::clone(&rule.id));
                        }
                        if decision.disclosure.is_none() {
                            decision.disclosure = rule.disclosure;
                        }
                        if decision.deny_answer.is_some() && decision.disclosure.is_some() {
                            break;
                        }
                    }
                    return decision;
                }
            }
        }
        let mut allowed_by = allowed_by.into_iter().flatten();
        let Some(first) = allowed_by.next() else {
            return Decision::deny("no evaluation pass ran");
        };
        // Every allowed request: the rule's own reason, shared.
        let reason = self.rules.get(first).map_or_else(
            || Arc::from("allowed by rule `?`"),
            |rule| Arc::clone(&rule.allow_reason),
        );
        let mut decision = self.rule_decision(Effect::Allow, first, reason);
        if let Some(subject_rule) = allowed_by.next() {
            let subject_id = self.rules.get(subject_rule).map(|r| Arc::clone(&r.id));
            decision.reason = format!(
                "{}; subject allowed by rule `{}`",
                decision.reason,
                subject_id.as_deref().unwrap_or("?")
            )
            .into();
            decision.subject_rule = subject_id;
        }
        decision
    }

    fn rule_id(&self, index: usize) -> &str {
        self.rules.get(index).map_or("?", |r| &*r.id)
    }

    fn rule_decision(&self, effect: Effect, index: usize, reason: impl Into<Arc<str>>) -> Decision {
        let rule = self.rules.get(index);
        Decision {
            effect,
            rule: rule.map(|r| Arc::clone(&r.id)),
            owner: rule.map(|r| Arc::clone(&r.owner)),
            reason: reason.into(),
            subject_rule: None,
            deny_answer: rule.and_then(|r| r.deny_answer.clone()),
            mode_rule: None,
            disclosure: rule.and_then(|r| r.disclosure),
            evaluation_error: false,
        }
    }
}

fn describe_target(request: &McpRequest) -> String {
    if let Some(name) = request.tool_name() {
        format!(" on tool `{name}`")
    } else if let Some(uri) = request.resource_uri() {
        format!(" on resource `{uri}`")
    } else if let Some(name) = request.prompt_name() {
        format!(" on prompt `{name}`")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests;
