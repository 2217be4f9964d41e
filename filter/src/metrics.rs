//! Counters Envoy turns into labelled series. The proxy-wasm ABI has no
//! tags, so each label is written into the metric name as
//! `label=.=value;.;` (Istio's convention) and `warden envoy` renders the
//! `stats_tags` that extract them: Prometheus then shows
//! `warden_decisions_total{decision="deny",actor_type="agent",...}`.
//!
//! Counters are defined on first use (one per label combination, bounded
//! by the rules of the configuration) and their ids kept per VM.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hasher;

use policy_sdk::AuditRecord;
use policy_sdk::documents::{Document, OpsEvent};
use policy_sdk::hashing::{WordHasher, WordHashing};
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// Every decision: `decision`, `actor_type` (`none` without a verified
/// identity), `rule` (`none` when no rule decided) and `class`
/// ([`AuditRecord::outcome_class`]).
pub(crate) const DECISIONS: &str = "warden_decisions_total";
/// Every list result cut, and every response that could not be read:
/// `kind` (`tools`, …, or `none`) and `outcome` (`cut` or `failed`).
pub(crate) const LISTS: &str = "warden_lists_total";

/// Every decision rules in shadow would have made otherwise (or, with the
/// whole policy in shadow, every decision): `outcome` (`would_allow` or
/// `would_deny`) and `rule` (the rule that would have decided, or `none`).
pub(crate) const SHADOW: &str = "warden_shadow_total";

/// Every refused token (401, or 503 while its keys are missing): `class`
/// ([`policy_sdk::identity::TokenError::class`]: `expired`, `signature`,
/// `unknown_key`, …).
pub(crate) const TOKEN_REFUSALS: &str = "warden_token_refusals_total";

/// The configuration in force: 1 for its `policy` (content hash), 0 for
/// the ones it replaced; the value of `warden_policy_rules` is its rule
/// count.
pub(crate) const POLICY: &str = "warden_policy_loaded";
pub(crate) const RULES: &str = "warden_policy_rules";

/// Every fetch step of a document: `document` (`key_set`, `discovery`,
/// `revocation_list`), `issuer` (`none` for the revocation list),
/// `outcome` (`success` or `failure`) and `class`
/// ([`policy_sdk::documents::FetchError::class`], `none` on success).
pub(crate) const FETCHES: &str = "warden_fetches_total";

/// When the document in force was fetched, in Unix seconds (0 until a
/// fetch succeeds): `document` (`key_set` or `revocation_list`) and
/// `issuer`. Its age is `time() - warden_document_fetched_timestamp_seconds`.
pub(crate) const FETCHED_AT: &str = "warden_document_fetched_timestamp_seconds";

/// Lookups in the token verification cache: `outcome` (`hit` or `miss`).
/// Counted in each VM and added here on the root context's timer (once a
/// second), not per request.
pub(crate) const TOKEN_CACHE: &str = "warden_token_cache_lookups_total";

/// Every denial because the deciding rule could not be evaluated: `rule`.
pub(crate) const EVALUATION_ERRORS: &str = "warden_evaluation_errors_total";

/// Every refused session id, and every request id refused because it is
/// in flight in its session: `class` (`not_sealed`, `bad_seal`,
/// `another_principal`, …, `id_in_flight`).
pub(crate) const SESSION_REFUSALS: &str = "warden_session_refusals_total";

/// The Wasm linear memory of a Warden VM, in bytes, set when a
/// configuration loads and, in a VM that serves streams, on the root
/// context's one-second timer. Linear memory never shrinks, so this is the
/// most the VM has needed since it started. Each worker runs one VM and
/// they all write this one gauge: with several workers it shows the one
/// that reported last (they run the same code on similar traffic). The VM
/// of Envoy's main thread serves no stream and does not write it on the
/// timer.
pub(crate) const VM_MEMORY: &str = "warden_vm_memory_bytes";

/// The most HTTP streams a Warden VM has held at once since it started,
/// set beside [`VM_MEMORY`] on the timer. Each stream in flight holds its
/// judged request's state until its response is done, so memory follows
/// this peak: growth that comes with a new peak is concurrency, growth
/// without one is not.
pub(crate) const VM_STREAMS_PEAK: &str = "warden_vm_streams_peak";

/// The metric maps' hasher: SipHash made counting a decision cost about
/// 5,300 Wasm instructions, more than half of it writing the counter's
/// name (about 100 bytes) and hashing it. A hasher without a key is safe
/// here: the keys are label values from the configuration (rule ids,
/// issuers) and from Warden itself, never from a request.
type Hashing = WordHashing;

/// Decision counter ids by a hash of their label values.
type DecisionIds = HashMap<u64, Vec<(DecisionLabels, u32)>, Hashing>;

/// The label values of a decision counter.
struct DecisionLabels([String; 4]);

impl DecisionLabels {
    fn of(labels: &[(&str, &str); 4]) -> Self {
        Self(labels.map(|(_, value)| value.to_owned()))
    }

    fn is(&self, labels: &[(&str, &str); 4]) -> bool {
        self.0
            .iter()
            .zip(labels)
            .all(|(seen, (_, value))| seen == value)
    }
}

#[derive(Default)]
pub(crate) struct Metrics {
    ids: RefCell<HashMap<String, u32, Hashing>>,
    /// The decision counters by a hash of their label values, each bucket
    /// compared value by value: a request's counter is found without
    /// writing its name (about 840 instructions instead of 5,300).
    decisions: RefCell<DecisionIds>,
    /// The gauge of the policy in force.
    loaded: RefCell<Option<String>>,
}

impl Metrics {
    /// A configuration was loaded: its gauge goes to 1, the previous one's
    /// to 0.
    pub(crate) fn policy_loaded(&self, version: &str, rules: usize) {
        let hash = version.strip_prefix("sha256:").unwrap_or(version);
        let name = tagged(POLICY, &[("policy", hash)]);
        let previous = self
            .loaded
            .try_borrow_mut()
            .ok()
            .and_then(|mut loaded| loaded.replace(name.clone()));
        if let Some(previous) = previous.filter(|previous| *previous != name) {
            self.set(&previous, MetricType::Gauge, 0);
        }
        self.set(&name, MetricType::Gauge, 1);
        self.set(
            RULES,
            MetricType::Gauge,
            u64::try_from(rules).unwrap_or(u64::MAX),
        );
    }
    /// The VM's linear memory now.
    pub(crate) fn vm_memory(&self, bytes: u64) {
        self.set(VM_MEMORY, MetricType::Gauge, bytes);
    }

    /// The most streams the VM has held at once.
    pub(crate) fn vm_streams_peak(&self, streams: u32) {
        self.set(VM_STREAMS_PEAK, MetricType::Gauge, u64::from(streams));
    }

    /// Counts one decision.
    pub(crate) fn decision(&self, record: &AuditRecord) {
        let labels = [
            ("decision", record.decision),
            ("actor_type", record.actor_type.unwrap_or("none")),
            ("rule", record.rule.as_deref().unwrap_or("none")),
            ("class", record.outcome_class()),
        ];
        if let Some(id) = self.decision_id(&labels) {
            let _ = hostcalls::increment_metric(id, 1);
        }
        if let Some(class) = record.token_failure {
            self.increment(&tagged(TOKEN_REFUSALS, &[("class", class)]));
        }
        if record.evaluation_error {
            let rule = record.rule.as_deref().unwrap_or("none");
            self.increment(&tagged(EVALUATION_ERRORS, &[("rule", rule)]));
        }
        if let Some(class) = record.session_refusal {
            self.increment(&tagged(SESSION_REFUSALS, &[("class", class)]));
        }
        if let Some(shadow) = &record.shadow {
            let name = tagged(
                SHADOW,
                &[
                    ("outcome", shadow.outcome),
                    ("rule", shadow.rule.as_deref().unwrap_or("none")),
                ],
            );
            self.increment(&name);
        }
    }

    /// Counts one list outcome (an audit line about a response).
    pub(crate) fn list(&self, record: &AuditRecord) {
        let kind = record
            .list
            .as_ref()
            .and_then(|list| list.get("kind"))
            .and_then(|kind| kind.as_str())
            .unwrap_or("none");
        let outcome = if record.is_allowed() { "cut" } else { "failed" };
        self.increment(&tagged(LISTS, &[("kind", kind), ("outcome", outcome)]));
    }

    /// Counts an operational event of the documents or the verifier.
    pub(crate) fn ops(&self, event: &OpsEvent<'_>) {
        match event {
            OpsEvent::Fetched {
                document,
                issuer,
                outcome,
                at_unix_seconds,
            } => {
                let issuer = issuer.unwrap_or("none");
                let (result, class) = match outcome {
                    Ok(()) => ("success", "none"),
                    Err(error) => ("failure", error.class()),
                };
                let labels = [
                    ("document", document.as_str()),
                    ("issuer", issuer),
                    ("outcome", result),
                    ("class", class),
                ];
                self.increment(&tagged(FETCHES, &labels));
                // The discovery document is a step, not a document in force.
                if outcome.is_ok() && *document != Document::Discovery {
                    let labels = [("document", document.as_str()), ("issuer", issuer)];
                    self.set(
                        &tagged(FETCHED_AT, &labels),
                        MetricType::Gauge,
                        *at_unix_seconds,
                    );
                }
            }
            OpsEvent::TokenCache { hits, misses } => {
                for (outcome, count) in [("hit", *hits), ("miss", *misses)] {
                    if count > 0 {
                        self.add(&tagged(TOKEN_CACHE, &[("outcome", outcome)]), count);
                    }
                }
            }
        }
    }

    /// The id of the decision counter with `labels`, defined on first use.
    fn decision_id(&self, labels: &[(&str, &str); 4]) -> Option<u32> {
        let mut hasher = WordHasher::default();
        for (_, value) in labels {
            hasher.write(value.as_bytes());
        }
        let hash = hasher.finish();
        let mut decisions = self.decisions.try_borrow_mut().ok()?;
        let bucket = decisions.entry(hash).or_default();
        if let Some((_, id)) = bucket.iter().find(|(seen, _)| seen.is(labels)) {
            return Some(*id);
        }
        let id = self.id(&tagged(DECISIONS, labels), MetricType::Counter)?;
        bucket.push((DecisionLabels::of(labels), id));
        Some(id)
    }

    fn increment(&self, name: &str) {
        self.add(name, 1);
    }

    fn add(&self, name: &str, count: u64) {
        if let Some(id) = self.id(name, MetricType::Counter) {
            // A failed increment must not affect the request.
            let _ = hostcalls::increment_metric(id, i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    fn set(&self, name: &str, kind: MetricType, value: u64) {
        if let Some(id) = self.id(name, kind) {
            let _ = hostcalls::record_metric(id, value);
        }
    }

    /// The id of a metric, defined on first use.
    fn id(&self, name: &str, kind: MetricType) -> Option<u32> {
        match self.ids.try_borrow_mut() {
            Ok(mut ids) => match ids.get(name) {
                Some(id) => Some(*id),
                None => match hostcalls::define_metric(kind, name) {
                    Ok(id) => {
                        ids.insert(name.to_owned(), id);
                        Some(id)
                    }
                    Err(status) => {
                        let _ = hostcalls::log(
                            proxy_wasm::types::LogLevel::Warn,
                            &format!("warden: cannot define metric `{name}`: {status:?}"),
                        );
                        None
                    }
                },
            },
            Err(_) => None,
        }
    }
}

/// `label=.=value;.;` for each label, then the metric's name. Values keep
/// only characters that survive Envoy's stat names and Prometheus labels
/// unchanged (`[A-Za-z0-9_.-]`); any other becomes `_`.
pub(crate) fn tagged(metric: &str, labels: &[(&str, &str)]) -> String {
    fn kept(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
    }
    let length = labels
        .iter()
        .map(|(label, value)| label.len() + value.len() + 6)
        .sum::<usize>()
        + metric.len();
    let mut name = String::with_capacity(length);
    for (label, value) in labels {
        name.push_str(label);
        name.push_str("=.=");
        if value.chars().all(kept) {
            name.push_str(value);
        } else {
            name.extend(value.chars().map(|c| if kept(c) { c } else { '_' }));
        }
        name.push_str(";.;");
    }
    name.push_str(metric);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_labels_match_only_the_same_values() {
        let labels = [
            ("decision", "allow"),
            ("actor_type", "agent"),
            ("rule", "deploy-staging"),
            ("class", "policy"),
        ];
        let seen = DecisionLabels::of(&labels);
        assert!(seen.is(&labels));
        let mut other = labels;
        other[2] = ("rule", "deploy-stagin");
        assert!(!seen.is(&other));
        other = labels;
        other[1] = ("actor_type", "human");
        assert!(!seen.is(&other));
    }

    #[test]
    fn labels_are_written_into_the_name_and_values_kept_safe() {
        assert_eq!(
            tagged(DECISIONS, &[("decision", "deny"), ("rule", "no agent;.;x")]),
            "decision=.=deny;.;rule=.=no_agent_._x;.;warden_decisions_total"
        );
    }
}
