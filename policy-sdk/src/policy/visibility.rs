//! Partial evaluation for list filtering (see `crate::listing`).
//!
//! A `*/list` response names things the caller might go on to use. Warden
//! shows an entry only when some request for it could be allowed: the answer
//! over-approximates `decide` (it never hides something the caller can
//! actually use) and hides what no request could unlock.
//!
//! It follows the combining rule of `eval`, with what the listing does not
//! know left open:
//! 1. an unclassifiable principal (in any pass) sees nothing;
//! 2. a delegated identity runs both passes; each must could-allow;
//! 3. within a pass, a matching `deny` rule without argument conditions
//!    hides the entry: no request escapes it (a charset condition on the
//!    target is decided on a name, and left open on a template);
//! 4. a `deny` rule with argument conditions does not: some arguments escape it;
//! 5. a matching `allow` rule shows the entry, its argument conditions
//!    ignored (some arguments could satisfy them);
//! 6. no matching `allow` rule hides it.
//!
//! Resources carry no arguments, so for them the answer is `decide` itself.

use super::CompiledPolicy;
use super::compile::{MethodMatch, Rule, TargetMatch};
use super::eval::{PassContext, party_matches, passes};
use super::source::Effect;
use crate::identity::Identity;
use crate::listing::ListKind;
use crate::mcp::{McpRequest, MessageKind, Target, TargetKind};
use crate::normalize::{normalize_uri, within_prefix};

/// Something a list response names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedItem<'a> {
    /// A tool, by name (`tools/list`).
    Tool(&'a str),
    /// A prompt, by name (`prompts/list`).
    Prompt(&'a str),
    /// A resource, by URI (`resources/list`).
    Resource(&'a str),
    /// A resource template, by RFC 6570 URI template (`resources/templates/list`).
    ResourceTemplate(&'a str),
}

impl CompiledPolicy {
    /// Whether `identity` could be allowed to use `item` for some request:
    /// tools → `tools/call` with that name and some arguments; prompts →
    /// `prompts/get`; resources → `resources/read` on that URI; templates →
    /// `resources/read` on some URI the template can expand to.
    pub fn could_allow(&self, identity: &Identity, item: ListedItem<'_>) -> bool {
        if let ListedItem::Resource(uri) = item {
            // No arguments to leave open: the exact decision.
            return self.decide(identity, &read_request(uri)).is_allowed();
        }
        let contexts = passes(identity);
        // Rule 1: checked for every pass before any rule is read.
        if contexts.iter().any(|c| c.principal.actor_type.is_none()) {
            return false;
        }
        let item = PreparedItem::new(item);
        // Rule 2: every pass must could-allow.
        contexts
            .iter()
            .all(|ctx| pass_could_allow(&self.rules, ctx, &item))
    }
}

impl ListKind {
    /// The item an entry of this list names by `key` (its `name`, `uri` or
    /// `uriTemplate`).
    pub(crate) fn item(self, key: &str) -> ListedItem<'_> {
        match self {
            ListKind::Tools => ListedItem::Tool(key),
            ListKind::Prompts => ListedItem::Prompt(key),
            ListKind::Resources => ListedItem::Resource(key),
            ListKind::ResourceTemplates => ListedItem::ResourceTemplate(key),
        }
    }
}

/// The `resources/read` request for `uri`.
fn read_request(uri: &str) -> McpRequest {
    let mut request = McpRequest::http(TargetKind::Resource.use_method().name);
    request.kind = MessageKind::Request;
    request.target = Target::Resource {
        uri: uri.to_owned(),
    };
    request
}

/// A listed item, ready to compare with rule targets.
enum PreparedItem<'a> {
    Tool(&'a str),
    Prompt(&'a str),
    /// The template's canonical literal prefix (see `template_prefix`).
    Template(String),
}

impl<'a> PreparedItem<'a> {
    fn new(item: ListedItem<'a>) -> Self {
        match item {
            ListedItem::Tool(name) => Self::Tool(name),
            ListedItem::Prompt(name) => Self::Prompt(name),
            // Handled exactly by `could_allow`; kept total for safety.
            ListedItem::Resource(uri) | ListedItem::ResourceTemplate(uri) => {
                Self::Template(template_prefix(uri))
            }
        }
    }

    /// The tool or prompt name.
    fn name(&self) -> Option<&str> {
        match self {
            Self::Tool(name) | Self::Prompt(name) => Some(name),
            Self::Template(_) => None,
        }
    }

    fn method(&self) -> &'static str {
        let kind = match self {
            Self::Tool(_) => TargetKind::Tool,
            Self::Prompt(_) => TargetKind::Prompt,
            Self::Template(_) => TargetKind::Resource,
        };
        kind.use_method().name
    }

    /// Whether some request for this item could match `target`.
    fn overlaps(&self, target: &TargetMatch) -> bool {
        match (self, target) {
            (_, TargetMatch::Any) => true,
            (Self::Tool(name), TargetMatch::Tools(globs))
            | (Self::Prompt(name), TargetMatch::Prompts(globs)) => {
                globs.iter().any(|g| g.matches(name))
            }
            (Self::Template(prefix), TargetMatch::Resources { globs, prefixes }) => {
                let compatible =
                    |other: &str| other.starts_with(prefix.as_str()) || prefix.starts_with(other);
                prefixes.iter().any(|p| compatible(p))
                    || globs.iter().any(|g| compatible(g.literal_prefix()))
            }
            _ => false,
        }
    }

    /// Whether every request for this item matches `target`.
    fn covered_by(&self, target: &TargetMatch) -> bool {
        match (self, target) {
            (_, TargetMatch::Any) => true,
            // A name either matches or not: overlap is coverage.
            (Self::Tool(_) | Self::Prompt(_), _) => self.overlaps(target),
            // Every expansion of the template lies below its prefix; a deny
            // prefix covering that prefix covers them all. Globs are not
            // analysed: a deny glob never hides a template.
            (Self::Template(prefix), TargetMatch::Resources { prefixes, .. }) => {
                prefixes.iter().any(|p| within_prefix(prefix, p))
            }
            (Self::Template(_), _) => false,
        }
    }
}

/// Rules 3 to 6 for one pass.
fn pass_could_allow(rules: &[Rule], ctx: &PassContext<'_>, item: &PreparedItem<'_>) -> bool {
    let method = item.method();
    let mut allowed = false;
    for rule in rules {
        if !applies_to(rule, ctx, method) {
            continue;
        }
        // A charset condition on the target: decided for a name, left open
        // for a template (its expansions are not known).
        let charset = match (rule.target_charset, item.name()) {
            (None, _) => Some(true),
            (Some(test), Some(name)) => Some(test.holds(name)),
            (Some(_), None) => None,
        };
        if charset == Some(false) {
            continue;
        }
        match rule.effect {
            Effect::Deny => {
                if rule.arguments.is_empty()
                    && charset == Some(true)
                    && item.covered_by(&rule.target)
                {
                    return false;
                }
            }
            Effect::Allow => {
                if item.overlaps(&rule.target) {
                    allowed = true;
                }
            }
        }
    }
    allowed
}

/// The principal, delegation and method parts of a rule (as `eval` checks
/// them), without its target and arguments.
fn applies_to(rule: &Rule, ctx: &PassContext<'_>, method: &str) -> bool {
    party_matches(rule, ctx)
        && match &rule.methods {
            MethodMatch::Any => true,
            MethodMatch::Globs(globs) => globs.iter().any(|g| g.matches(method)),
        }
}

/// The canonical form of the part of an RFC 6570 template every expansion
/// shares, cut back to its last complete segment: an expression can join the
/// segment it starts in (`file:///logs/da{x}` may expand to `.`, `..` or
/// `date`), and a trailing partial escape could complete into another
/// character. The canonical form drops the trailing `/`, so comparing it with
/// rule prefixes by `starts_with` errs on the side of showing. A prefix with
/// no canonical form (or none at all) is empty: compatible with every rule.
fn template_prefix(template: &str) -> String {
    let literal = template.split('{').next().unwrap_or_default();
    let complete = match literal.rfind('/') {
        Some(slash) => literal.get(..=slash).unwrap_or_default(),
        None => "",
    };
    if complete.is_empty() {
        return String::new();
    }
    normalize_uri(complete).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Defaults, RuleSource};
    use crate::testing::{agent, alice, bob, delegated, direct, principal};

    fn compile(yaml: &str) -> CompiledPolicy {
        let rules: Vec<RuleSource> = serde_yaml_ng::from_str(yaml).unwrap();
        CompiledPolicy::compile(&rules, &Defaults::default()).unwrap()
    }

    const POLICY: &str = r#"
- id: search
  effect: allow
  owner: docs
  tools: [search_docs]
- id: eng-deploy
  effect: allow
  owner: release
  principal: {types: [human], groups: [eng]}
  tools: [deploy]
- id: agents-deploy-staging-for-eng
  effect: allow
  owner: release
  principal: {types: [agent]}
  on_behalf_of: {types: [human], groups: [eng]}
  tools: [deploy]
  arguments:
    - {pointer: /environment, equals: staging}
- id: read-public
  effect: allow
  owner: platform
  tools: [read_file]
  arguments:
    - {pointer: /path, path_prefix: /srv/public/}
- id: no-agent-deletes
  effect: deny
  owner: security
  principal: {types: [agent]}
  tools: ["delete_*"]
- id: anyone-delete-scratch
  effect: allow
  owner: security
  tools: ["delete_*"]
  arguments:
    - {pointer: /name, glob: "scratch-*"}
- id: no-prod-restarts
  effect: deny
  owner: security
  tools: [restart]
  arguments:
    - {pointer: /environment, equals: production}
- id: restart
  effect: allow
  owner: ops
  tools: [restart]
- id: agents-search
  effect: allow
  owner: docs
  principal: {types: [agent]}
  tools: [agent_search]
- id: public-docs
  effect: allow
  owner: docs
  resource_prefixes: ["docs://public/"]
- id: logs
  effect: allow
  owner: ops
  principal: {groups: [eng]}
  resource_prefixes: ["file:///var/log/app/"]
- id: reports
  effect: allow
  owner: ops
  resources: ["reports://*/summary.pdf"]
- id: no-secret-logs
  effect: deny
  owner: security
  resource_prefixes: ["file:///var/log/secret/"]
- id: greet
  effect: allow
  owner: docs
  prompts: ["greet_*"]
- id: eng-prompts
  effect: allow
  owner: docs
  principal: {groups: [eng]}
  prompts: [incident_review]
"#;

    fn tools(identity: &Identity, names: &[&'static str]) -> Vec<&'static str> {
        let policy = compile(POLICY);
        names
            .iter()
            .copied()
            .filter(|n| policy.could_allow(identity, ListedItem::Tool(n)))
            .collect()
    }

    #[test]
    fn allowed_tool_is_kept() {
        assert_eq!(tools(&direct(bob()), &["search_docs"]), ["search_docs"]);
    }

    #[test]
    fn tool_without_an_allow_rule_is_hidden() {
        assert!(tools(&direct(bob()), &["deploy", "unknown_tool"]).is_empty());
        assert_eq!(tools(&direct(alice()), &["deploy"]), ["deploy"]);
    }

    #[test]
    fn tool_allowed_for_some_arguments_is_kept() {
        assert_eq!(tools(&direct(bob()), &["read_file"]), ["read_file"]);
        assert_eq!(tools(&direct(bob()), &["delete_repo"]), ["delete_repo"]);
    }

    #[test]
    fn unconditional_deny_hides() {
        // `no-agent-deletes` has no argument condition: no request escapes it,
        // although `anyone-delete-scratch` would allow some.
        let agent_alone = direct(agent());
        assert!(tools(&agent_alone, &["delete_repo"]).is_empty());
        assert_eq!(tools(&agent_alone, &["agent_search"]), ["agent_search"]);
    }

    #[test]
    fn conditional_deny_keeps() {
        // `no-prod-restarts` only catches `environment: production`.
        assert_eq!(tools(&direct(bob()), &["restart"]), ["restart"]);
    }

    #[test]
    fn unconditional_deny_matched_by_method_hides_every_tool() {
        let policy = compile(
            r#"
- id: search
  effect: allow
  owner: docs
  tools: [search_docs]
- id: no-tools-for-agents
  effect: deny
  owner: security
  principal: {types: [agent]}
  methods: ["tools/*"]
"#,
        );
        let item = ListedItem::Tool("search_docs");
        assert!(policy.could_allow(&direct(bob()), item));
        assert!(!policy.could_allow(&direct(agent()), item));
    }

    #[test]
    fn delegated_agent_gets_only_what_both_may_use() {
        let for_alice = delegated(alice(), agent());
        let for_bob = delegated(bob(), agent());
        // Agent allowed (staging) and alice allowed.
        assert_eq!(tools(&for_alice, &["deploy"]), ["deploy"]);
        // Agent's rule needs an eng subject; bob is not, and bob may not deploy.
        assert!(tools(&for_bob, &["deploy"]).is_empty());
        // The agent may use `agent_search`, but no rule allows alice to.
        assert!(tools(&for_alice, &["agent_search"]).is_empty());
        // Alice may delete scratch repos; her agent may not delete at all.
        assert_eq!(tools(&direct(alice()), &["delete_repo"]), ["delete_repo"]);
        assert!(tools(&for_alice, &["delete_repo"]).is_empty());
        // Both may search.
        assert_eq!(tools(&for_alice, &["search_docs"]), ["search_docs"]);
    }

    #[test]
    fn unclassifiable_actor_sees_nothing() {
        let policy = compile(POLICY);
        let nobody = direct(principal("x", None, &["eng"]));
        let unclassified_agent = delegated(alice(), principal("bot", None, &[]));
        for identity in [&nobody, &unclassified_agent] {
            assert!(!policy.could_allow(identity, ListedItem::Tool("search_docs")));
            assert!(!policy.could_allow(identity, ListedItem::Prompt("greet_user")));
            assert!(!policy.could_allow(identity, ListedItem::Resource("docs://public/a")));
            assert!(
                !policy.could_allow(identity, ListedItem::ResourceTemplate("docs://public/{id}"))
            );
        }
    }

    #[test]
    fn resources_are_judged_exactly() {
        let policy = compile(POLICY);
        let (alice, bob) = (direct(alice()), direct(bob()));
        let read = |who: &Identity, uri: &str| policy.could_allow(who, ListedItem::Resource(uri));
        assert!(read(&bob, "docs://public/intro"));
        assert!(!read(&bob, "DOCS://public/./intro"));
        assert!(!read(&bob, "docs://public/../internal/x"));
        assert!(!read(&bob, "docs://internal/x"));
        assert!(read(&alice, "file:///var/log/app/today.txt"));
        assert!(!read(&bob, "file:///var/log/app/today.txt"));
        assert!(read(&bob, "reports://q1/summary.pdf"));
        assert!(!read(&bob, "reports://q1/raw.csv"));
        for uri in [
            "docs://public/a",
            "docs://internal/a",
            "file:///var/log/app/x",
        ] {
            assert_eq!(
                read(&alice, uri),
                policy.decide(&alice, &read_request(uri)).is_allowed(),
                "{uri}"
            );
        }
    }

    #[test]
    fn templates_are_judged_by_their_literal_prefix() {
        let policy = compile(POLICY);
        let (alice, bob) = (direct(alice()), direct(bob()));
        let template =
            |who: &Identity, t: &str| policy.could_allow(who, ListedItem::ResourceTemplate(t));
        // Template below a rule prefix.
        assert!(template(&bob, "docs://public/{id}"));
        assert!(template(&bob, "docs://public/guides/{id}.md"));
        // Rule prefix below the template's prefix: some expansion reaches it.
        assert!(template(&bob, "docs://{path}"));
        assert!(template(&alice, "file:///var/{+path}"));
        // The expression may complete the segment it starts in.
        assert!(template(&bob, "docs://pub{suffix}/x"));
        // A glob's literal prefix.
        assert!(template(&bob, "reports://{quarter}/summary.pdf"));
        // Unrelated prefixes, and rules for someone else.
        assert!(!template(&bob, "docs://internal/{id}"));
        assert!(!template(&bob, "file:///var/log/app/{date}.txt"));
        assert!(template(&alice, "file:///var/log/app/{date}.txt"));
        assert!(!template(&alice, "file:///etc/{name}"));
        // No literal prefix at all: any resource rule could match.
        assert!(template(&bob, "{+uri}"));
    }

    #[test]
    fn templates_hidden_only_by_a_deny_covering_every_expansion() {
        let policy = compile(
            r#"
- id: all-files
  effect: allow
  owner: ops
  resource_prefixes: ["file:///"]
- id: no-secrets
  effect: deny
  owner: security
  resource_prefixes: ["file:///var/secret/"]
- id: agents-read-nothing
  effect: deny
  owner: security
  principal: {types: [agent]}
  methods: [resources/read]
"#,
        );
        let bob = direct(bob());
        let template =
            |who: &Identity, t: &str| policy.could_allow(who, ListedItem::ResourceTemplate(t));
        assert!(!template(&bob, "file:///var/secret/{name}"));
        assert!(!template(&bob, "file:///var/secret/keys/{name}"));
        // Some expansions lie outside the denied prefix.
        assert!(template(&bob, "file:///var/{dir}/x"));
        assert!(template(&bob, "file:///var/secretive/{name}"));
        assert!(!template(&direct(agent()), "file:///tmp/{name}"));
    }

    #[test]
    fn prompts_follow_their_rules() {
        let policy = compile(POLICY);
        let prompt = |who: &Identity, name: &str| policy.could_allow(who, ListedItem::Prompt(name));
        assert!(prompt(&direct(bob()), "greet_user"));
        assert!(!prompt(&direct(bob()), "incident_review"));
        assert!(prompt(&direct(alice()), "incident_review"));
        assert!(!prompt(&direct(alice()), "search_docs"));
        // A tool rule of the same name does not unlock a prompt.
        assert!(!prompt(&direct(bob()), "search_docs"));
        assert!(!prompt(&delegated(bob(), agent()), "incident_review"));
    }

    #[test]
    fn charset_conditions_on_targets_are_decided_on_names() {
        let policy = compile(
            r#"
- id: tools
  effect: allow
  owner: a
  tools: ["*"]
  target_charset: {only: tool_name}
- id: no-odd-names
  effect: deny
  owner: a
  methods: [tools/call, resources/read]
  target_charset: {some_outside: printable_ascii}
- id: escaped-reports
  effect: allow
  owner: a
  resources: ["reports://a\\?b/*"]
"#,
        );
        let bob = direct(bob());
        let shown = |item| policy.could_allow(&bob, item);
        assert!(shown(ListedItem::Tool("search")));
        assert!(
            !shown(ListedItem::Tool("se arch")),
            "the allow rule's charset"
        );
        assert!(
            !shown(ListedItem::Tool("search\u{200b}")),
            "the deny rule's"
        );
        // A template's expansions are unknown: the deny does not hide it,
        // and the escaped glob's literal prefix overlaps it.
        assert!(shown(ListedItem::ResourceTemplate("reports://a?b/{id}")));
    }

    #[test]
    fn template_prefixes_are_canonical_and_complete() {
        assert_eq!(template_prefix("docs://public/{id}"), "docs://public");
        assert_eq!(template_prefix("docs://pub{x}/y"), "docs://");
        assert_eq!(template_prefix("{+uri}"), "");
        assert_eq!(template_prefix("DOCS://a/%2e%2e/b/{x}"), "");
    }
}
