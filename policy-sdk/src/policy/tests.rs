//! One test per branch of the combining rule, plus validation errors.

use serde_json::{Value, json};

use super::*;
use crate::identity::ActorType;
use crate::mcp::{HTTP_GET_METHOD, McpRequest, MessageKind, Target};
use crate::testing::{agent, alice, bob, delegated, direct, principal};

fn tool(name: &str, arguments: Value) -> McpRequest {
    McpRequest {
        kind: MessageKind::Request,
        method: "tools/call".into(),
        id: Some(json!(1)),
        target: Target::Tool {
            name: name.into(),
            arguments,
        },
        meta_protocol_version: None,
    }
}

fn method(m: &str) -> McpRequest {
    McpRequest {
        kind: MessageKind::Request,
        method: m.into(),
        id: Some(json!(1)),
        target: Target::None,
        meta_protocol_version: None,
    }
}

fn resource(uri: &str) -> McpRequest {
    McpRequest {
        kind: MessageKind::Request,
        method: "resources/read".into(),
        id: Some(json!(1)),
        target: Target::Resource { uri: uri.into() },
        meta_protocol_version: None,
    }
}

fn compile(yaml: &str) -> CompiledPolicy {
    try_compile(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn try_compile(yaml: &str) -> Result<CompiledPolicy, CompileError> {
    let rules: Vec<RuleSource> = serde_yaml_ng::from_str(yaml).unwrap();
    CompiledPolicy::compile(&rules, &Defaults::default())
}

const BASE: &str = r#"
- id: search
  effect: allow
  owner: docs
  tools: [search_docs]
- id: read-public
  effect: allow
  owner: platform
  tools: [read_file]
  arguments:
    - pointer: /path
      path_prefix: /srv/public/
- id: eng-read
  effect: allow
  owner: platform
  principal: {types: [human], groups: [eng]}
  tools: [read_file]
  arguments:
    - pointer: /path
      path_prefix: /srv/
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
    - pointer: /environment
      equals: staging
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
    - pointer: /name
      glob: "scratch-*"
- id: sized-deploys
  effect: allow
  owner: release
  principal: {subjects: ["ci-*"]}
  tools: [deploy]
  arguments:
    - pointer: /replicas
      range: {min: 1, max: 10}
- id: public-docs
  effect: allow
  owner: docs
  resource_prefixes: ["docs://public/"]
"#;

#[test]
fn matching_allow_rule_allows() {
    let d = compile(BASE).decide(&direct(bob()), &tool("search_docs", json!({})));
    assert!(d.is_allowed(), "{d:?}");
    assert_eq!(d.rule.as_deref(), Some("search"));
    assert_eq!(d.owner.as_deref(), Some("docs"));
    assert_eq!(&*d.reason, "allowed by rule `search`");
}

#[test]
fn allows_share_their_rule_names_and_reason_instead_of_copying_them() {
    // Every allowed request used to copy the rule's id and owner and write
    // its reason; they are the compiled rule's own now.
    let p = compile(BASE);
    let first = p.decide(&direct(bob()), &tool("search_docs", json!({})));
    let second = p.decide(&direct(alice()), &tool("search_docs", json!({})));
    assert!(first.is_allowed() && second.is_allowed());
    let shared = |a: &Option<std::sync::Arc<str>>, b: &Option<std::sync::Arc<str>>| matches!((a, b), (Some(a), Some(b)) if std::sync::Arc::ptr_eq(a, b));
    assert!(shared(&first.rule, &second.rule));
    assert!(shared(&first.owner, &second.owner));
    assert!(std::sync::Arc::ptr_eq(&first.reason, &second.reason));
}

#[test]
fn no_matching_allow_denies_by_default() {
    let d = compile(BASE).decide(&direct(bob()), &tool("deploy", json!({})));
    assert!(!d.is_allowed());
    assert_eq!(d.rule, None);
    assert!(
        d.reason
            .contains("no rule allows `tools/call` on tool `deploy`"),
        "{}",
        d.reason
    );
}

#[test]
fn deny_overrides_an_earlier_or_later_allow() {
    // `anyone-delete-scratch` would allow, `no-agent-deletes` denies.
    let p = compile(BASE);
    let d = p.decide(
        &direct(agent()),
        &tool("delete_repo", json!({"name": "scratch-1"})),
    );
    assert!(!d.is_allowed());
    assert_eq!(d.rule.as_deref(), Some("no-agent-deletes"));
    // Reversed order: the deny still wins.
    let reversed = compile(
        r#"
- id: allow-all-deletes
  effect: allow
  owner: a
  tools: ["delete_*"]
- id: deny-agents
  effect: deny
  owner: b
  principal: {types: [agent]}
  tools: [delete_repo]
"#,
    );
    let d = reversed.decide(&direct(agent()), &tool("delete_repo", json!({})));
    assert_eq!(d.rule.as_deref(), Some("deny-agents"));
    assert!(!d.is_allowed());
    // Humans are unaffected by the agent deny.
    assert!(
        p.decide(
            &direct(bob()),
            &tool("delete_repo", json!({"name": "scratch-1"}))
        )
        .is_allowed()
    );
}

#[test]
fn evaluation_error_denies() {
    let p = compile(BASE);
    // `range` on a string is an error, not a silent mismatch.
    let d = p.decide(
        &direct(principal("ci-bot", Some(ActorType::Service), &[])),
        &tool("deploy", json!({"replicas": "5"})),
    );
    assert!(!d.is_allowed());
    assert_eq!(d.rule.as_deref(), Some("sized-deploys"));
    assert!(d.reason.contains("evaluation error"), "{}", d.reason);
    // A path that climbs above the root cannot be judged: denied.
    let d = p.decide(
        &direct(bob()),
        &tool("read_file", json!({"path": "/../../etc/passwd"})),
    );
    assert!(!d.is_allowed());
    assert!(d.reason.contains("dot segment `..`"), "{}", d.reason);
    // A resource URI that escapes: denied with the reason.
    let d = p.decide(&direct(bob()), &resource("docs://public/../../x"));
    assert!(!d.is_allowed());
}

#[test]
fn unclassifiable_actor_is_denied_before_rules() {
    let p = compile(BASE);
    let d = p.decide(
        &direct(principal("x", None, &["eng"])),
        &tool("search_docs", json!({})),
    );
    assert!(!d.is_allowed());
    assert!(
        d.reason.contains("no recognised actor type"),
        "{}",
        d.reason
    );
    let d = p.decide(
        &delegated(alice(), principal("bot", None, &[])),
        &tool("search_docs", json!({})),
    );
    assert!(!d.is_allowed());
}

#[test]
fn delegation_gives_the_intersection() {
    let p = compile(BASE);
    let for_alice = delegated(alice(), agent());
    // Both allow: staging deploy.
    let d = p.decide(
        &for_alice,
        &tool("deploy", json!({"environment": "staging"})),
    );
    assert!(d.is_allowed(), "{d:?}");
    assert_eq!(d.rule.as_deref(), Some("agents-deploy-staging-for-eng"));
    assert_eq!(d.subject_rule.as_deref(), Some("eng-deploy"));
    assert_eq!(
        &*d.reason,
        "allowed by rule `agents-deploy-staging-for-eng`; subject allowed by rule `eng-deploy`"
    );
    // The human may, the agent may not: production.
    let d = p.decide(
        &for_alice,
        &tool("deploy", json!({"environment": "production"})),
    );
    assert!(!d.is_allowed());
    assert!(
        d.reason.contains("`research-agent` acting for `alice`"),
        "{}",
        d.reason
    );
    // Alice may read /srv/internal, the agent only /srv/public.
    assert!(
        !p.decide(
            &for_alice,
            &tool("read_file", json!({"path": "/srv/internal/x"}))
        )
        .is_allowed()
    );
    assert!(
        p.decide(
            &for_alice,
            &tool("read_file", json!({"path": "/srv/public/x"}))
        )
        .is_allowed()
    );
    // The agent rule needs an engineer: acting for bob, denied.
    let for_bob = delegated(bob(), agent());
    assert!(
        !p.decide(&for_bob, &tool("deploy", json!({"environment": "staging"})))
            .is_allowed()
    );
}

#[test]
fn subject_pass_denial_is_reported() {
    // The agent is allowed to search everything, the subject is not allowed at all.
    let p = compile(
        r#"
- id: agents-search
  effect: allow
  owner: a
  principal: {types: [agent]}
  tools: [search]
"#,
    );
    let d = p.decide(&delegated(bob(), agent()), &tool("search", json!({})));
    assert!(!d.is_allowed());
    assert!(
        d.reason.contains("`bob` (on whose behalf an agent acts)"),
        "{}",
        d.reason
    );
}

#[test]
fn delegated_flag_and_on_behalf_of() {
    let p = compile(
        r#"
- id: no-delegated-writes
  effect: deny
  owner: sec
  delegated: true
  tools: [write]
- id: anyone-writes
  effect: allow
  owner: a
  tools: [write]
- id: only-direct-admin
  effect: allow
  owner: a
  delegated: false
  tools: [admin]
"#,
    );
    assert!(
        p.decide(&direct(alice()), &tool("write", json!({})))
            .is_allowed()
    );
    assert!(
        !p.decide(&delegated(alice(), agent()), &tool("write", json!({})))
            .is_allowed()
    );
    assert!(
        p.decide(&direct(agent()), &tool("admin", json!({})))
            .is_allowed()
    );
    assert!(
        !p.decide(&delegated(alice(), agent()), &tool("admin", json!({})))
            .is_allowed()
    );
}

#[test]
fn delegation_depth_bounds_the_chain() {
    let p = compile(
        r#"
- id: no-long-chains
  effect: deny
  owner: sec
  delegation_depth: {min: 2}
- id: search
  effect: allow
  owner: a
  tools: [search]
"#,
    );
    let mut via_two = delegated(alice(), agent());
    assert!(p.decide(&via_two, &tool("search", json!({}))).is_allowed());
    via_two
        .prior_actors
        .push(principal("orchestrator", Some(ActorType::Service), &[]));
    let d = p.decide(&via_two, &tool("search", json!({})));
    assert_eq!(d.rule.as_deref(), Some("no-long-chains"));
    assert!(!d.is_allowed());
}

#[test]
fn argument_tests() {
    let p = compile(BASE);
    let ci = direct(principal("ci-bot", Some(ActorType::Service), &[]));
    assert!(
        p.decide(&ci, &tool("deploy", json!({"replicas": 10})))
            .is_allowed()
    );
    assert!(
        p.decide(&ci, &tool("deploy", json!({"replicas": 1.0})))
            .is_allowed()
    );
    assert!(
        !p.decide(&ci, &tool("deploy", json!({"replicas": 11})))
            .is_allowed()
    );
    assert!(
        !p.decide(&ci, &tool("deploy", json!({}))).is_allowed(),
        "a missing argument matches nothing"
    );
    let b = direct(bob());
    for (path, allowed) in [
        ("/srv/public/a.txt", true),
        ("/srv/public/../secret.txt", false),
        ("/srv/public/%2e%2e/secret.txt", false),
        ("/srv/public/..\\secret.txt", false),
        ("//srv//public//a.txt", false),
        ("/srv/publicity/a.txt", false),
    ] {
        assert_eq!(
            p.decide(&b, &tool("read_file", json!({"path": path})))
                .is_allowed(),
            allowed,
            "{path}"
        );
    }
    assert!(
        !p.decide(&b, &tool("read_file", json!({"path": 7})))
            .is_allowed()
    );
    let one_of = compile(
        r#"
- id: envs
  effect: allow
  owner: a
  tools: [deploy]
  arguments:
    - {pointer: /env, one_of: [staging, qa]}
    - {pointer: /opts/force, equals: false}
"#,
    );
    assert!(
        one_of
            .decide(
                &b,
                &tool("deploy", json!({"env": "qa", "opts": {"force": false}}))
            )
            .is_allowed()
    );
    assert!(
        !one_of
            .decide(
                &b,
                &tool("deploy", json!({"env": "prod", "opts": {"force": false}}))
            )
            .is_allowed()
    );
    assert!(
        !one_of
            .decide(
                &b,
                &tool("deploy", json!({"env": "qa", "opts": {"force": true}}))
            )
            .is_allowed()
    );
}

#[test]
fn resources_prefixes_and_globs_are_normalized() {
    let p = compile(
        r#"
- id: public-docs
  effect: allow
  owner: docs
  resource_prefixes: ["docs://public/"]
- id: md-files
  effect: allow
  owner: docs
  resources: ["file:///srv/**.md"]
"#,
    );
    let b = direct(bob());
    for (uri, allowed) in [
        ("docs://public/intro", true),
        ("DOCS://public/intro", true),
        ("docs://public/../internal/roadmap", false),
        ("docs://public/%2e%2e/internal/roadmap", false),
        ("docs://public//intro", false),
        ("docs:\\\\public\\intro", false),
        ("docs://publicity/x", false),
        ("docs://internal/roadmap", false),
        ("file:///srv/a/b.md", true),
        ("file:///srv/a/../../etc/x.md", false),
    ] {
        assert_eq!(p.decide(&b, &resource(uri)).is_allowed(), allowed, "{uri}");
    }
}

#[test]
fn session_methods_are_allowed_by_default_and_can_be_switched_off() {
    let p = compile(BASE);
    for m in [
        "initialize",
        "ping",
        "notifications/initialized",
        HTTP_GET_METHOD,
    ] {
        let d = p.decide(&direct(agent()), &method(m));
        assert!(d.is_allowed(), "{m}");
        assert_eq!(d.rule.as_deref(), Some(SESSION_RULE_ID));
    }
    assert!(
        !p.decide(&direct(agent()), &method("tools/list"))
            .is_allowed()
    );
    let rules: Vec<RuleSource> = serde_yaml_ng::from_str(BASE).unwrap();
    let off = CompiledPolicy::compile(
        &rules,
        &Defaults {
            allow_session_methods: false,
        },
    )
    .unwrap();
    assert!(
        !off.decide(&direct(agent()), &method("initialize"))
            .is_allowed()
    );
    // A deny rule overrides the default.
    let deny_ping = compile("- {id: no-ping, effect: deny, owner: a, methods: [ping]}");
    assert_eq!(
        deny_ping
            .decide(&direct(alice()), &method("ping"))
            .rule
            .as_deref(),
        Some("no-ping")
    );
}

#[test]
fn principal_conditions() {
    let p = compile(
        r#"
- id: scoped
  effect: allow
  owner: a
  principal:
    scopes: ["mcp:write"]
    roles: [operator]
    claims: {tenant: [acme, 42]}
  methods: ["tools/*"]
"#,
    );
    let mut op = principal("op", Some(ActorType::Service), &[]);
    op.scopes = vec!["mcp:read".into(), "mcp:write".into()];
    op.roles = vec!["operator".into()];
    op.claims.insert("tenant".into(), json!("acme"));
    assert!(
        p.decide(&direct(op.clone()), &method("tools/list"))
            .is_allowed()
    );
    op.claims.insert("tenant".into(), json!([1, 42]));
    assert!(
        p.decide(&direct(op.clone()), &method("tools/list"))
            .is_allowed()
    );
    op.claims.insert("tenant".into(), json!("other"));
    assert!(
        !p.decide(&direct(op.clone()), &method("tools/list"))
            .is_allowed()
    );
    op.claims.insert("tenant".into(), json!("acme"));
    op.scopes = vec!["mcp:read".into()];
    assert!(!p.decide(&direct(op), &method("tools/list")).is_allowed());
}

/// A request that reaches one index list borrows it; several are merged.
/// Either way the candidates are the reached lists' rules in policy order,
/// each once (the merge every request used to pay for is the reference),
/// a name or method given twice included.
#[test]
fn candidates_are_the_reached_rules_in_policy_order_each_once() {
    let p = compile(
        r#"
- {id: twice, effect: allow, owner: a, methods: [tools/call, tools/call], tools: [deploy, deploy]}
- {id: any-call, effect: deny, owner: a, methods: [tools/call]}
- {id: deploy-anywhere, effect: allow, owner: a, tools: [deploy]}
- {id: everything, effect: deny, owner: a, principal: {subjects: [mallory]}}
- {id: globbed, effect: allow, owner: a, tools: ["dep*"]}
- {id: listing, effect: allow, owner: a, methods: [tools/list]}
"#,
    );
    let merged = |method: &str, target: Option<&str>| {
        let mut out = Vec::new();
        for bucket in p
            .index
            .by_method
            .get(method)
            .into_iter()
            .chain(std::iter::once(&p.index.any_method))
        {
            if let Some(list) = target.and_then(|t| bucket.by_target.get(t)) {
                out.extend_from_slice(list);
            }
            out.extend_from_slice(&bucket.other);
        }
        out.sort_unstable();
        out.dedup();
        out
    };
    for (method, target) in [
        ("tools/call", Some("deploy")),
        ("tools/call", Some("other")),
        ("tools/call", None),
        ("tools/list", None),
        ("prompts/get", Some("deploy")),
        ("unknown/method", None),
    ] {
        let found = eval::candidates(&p.index, method, target);
        assert_eq!(
            &*found,
            merged(method, target).as_slice(),
            "{method} {target:?}"
        );
        assert!(
            found.windows(2).all(|w| w[0] < w[1]),
            "{method} {target:?}: {found:?}"
        );
    }
    // Without rules for every method, a call reaches one list only, and
    // borrows it: the rule that names `deploy` twice is in it once.
    let p = compile(
        "- {id: twice, effect: allow, owner: a, methods: [tools/call, tools/call], tools: [deploy, deploy]}\n",
    );
    let found = eval::candidates(&p.index, "tools/call", Some("deploy"));
    assert!(matches!(found, std::borrow::Cow::Borrowed(_)));
    assert_eq!(&*found, &[0]);
}

#[test]
fn index_only_visits_rules_that_can_match() {
    let mut yaml = String::new();
    for i in 0..500 {
        yaml.push_str(&format!(
            "- {{id: r{i}, effect: allow, owner: a, tools: [tool_{i}]}}\n"
        ));
    }
    yaml.push_str("- {id: globbed, effect: allow, owner: a, tools: [\"x_*\"]}\n- {id: listing, effect: allow, owner: a, methods: [tools/list]}\n");
    let p = compile(&yaml);
    let c = eval::candidates(&p.index, "tools/call", Some("tool_7"));
    // tool_7's rule and the glob rule; not the other 499 tools nor `listing`.
    assert_eq!(c.len(), 2, "{c:?}");
    assert!(
        p.decide(&direct(bob()), &tool("tool_7", json!({})))
            .is_allowed()
    );
    assert!(
        p.decide(&direct(bob()), &tool("x_1", json!({})))
            .is_allowed()
    );
    assert!(
        !p.decide(&direct(bob()), &tool("tool_999", json!({})))
            .is_allowed()
    );
}

fn compile_error(yaml: &str) -> CompileError {
    match try_compile(yaml) {
        Ok(_) => panic!("expected an error for {yaml}"),
        Err(e) => e,
    }
}

#[test]
fn validation_names_rule_and_field() {
    let cases = [
        (
            "- {id: a, effect: allow, owner: o, principal: {types: [robot]}}",
            "principal.types[0]",
            "unknown actor type `robot`",
        ),
        (
            "- {id: a, effect: allow, owner: o, tools: []}",
            "tools",
            "an empty list can never match",
        ),
        (
            "- {id: a, effect: allow, owner: o, tools: [\"a[b]\"]}",
            "tools[0]",
            "not supported",
        ),
        (
            "- {id: a, effect: allow, owner: o, methods: [tools/list], tools: [x]}",
            "methods[0]",
            "never carries this rule's target",
        ),
        (
            "- {id: a, effect: allow, owner: o, tools: [x], prompts: [y]}",
            "prompts",
            "can never match",
        ),
        (
            "- {id: a, effect: allow, owner: o, prompts: [y], arguments: [{pointer: /a, equals: 1}]}",
            "arguments",
            "only exist on `tools/call`",
        ),
        (
            "- {id: a, effect: allow, owner: o, tools: [x], arguments: [{pointer: a, equals: 1}]}",
            "arguments[0].pointer",
            "not a JSON pointer",
        ),
        (
            "- {id: a, effect: allow, owner: o, tools: [x], arguments: [{pointer: /a}]}",
            "arguments[0]",
            "no test given",
        ),
        (
            "- {id: a, effect: allow, owner: o, tools: [x], arguments: [{pointer: /a, equals: 1, glob: b}]}",
            "arguments[0]",
            "more than one test",
        ),
        (
            "- {id: a, effect: allow, owner: o, tools: [x], arguments: [{pointer: /a, range: {min: 5, max: 1}}]}",
            "arguments[0].range",
            "can never match",
        ),
        (
            "- {id: a, effect: allow, owner: o, tools: [x], arguments: [{pointer: /a, path_prefix: /../x}]}",
            "arguments[0].path_prefix",
            "dot segment",
        ),
        (
            "- {id: a, effect: allow, owner: o, delegated: false, on_behalf_of: {types: [human]}}",
            "delegated",
            "can never match",
        ),
        (
            "- {id: a, effect: allow, owner: \" \"}",
            "owner",
            "must not be empty",
        ),
        ("- {id: \"a b\", effect: allow, owner: o}", "id", "rule ids"),
        (
            "- {id: a, effect: allow, owner: o, delegation_depth: {min: 3, max: 1}}",
            "delegation_depth",
            "can never match",
        ),
        (
            "- {id: a, effect: allow, owner: o, delegation_depth: {}}",
            "delegation_depth",
            "give `min`",
        ),
        (
            "- {id: \"warden:x\", effect: allow, owner: o}",
            "id",
            "reserved",
        ),
        (
            "- {id: a, effect: allow, owner: o}\n- {id: a, effect: deny, owner: o}",
            "id",
            "same id",
        ),
        (
            "- {id: a, effect: allow, owner: o, principal: {claims: {tenant: []}}}",
            "principal.claims.tenant",
            "empty list",
        ),
    ];
    for (yaml, field, message) in cases {
        let e = compile_error(yaml);
        assert!(!e.rule.is_empty());
        assert_eq!(e.field, field, "{yaml}: {e}");
        assert!(e.message.contains(message), "{yaml}: {e}");
    }
    let e = compile_error("- {id: a, effect: allow, owner: o, principal: {types: [robot]}}");
    assert_eq!(
        e.to_string(),
        "rule `a` (principal.types[0]): unknown actor type `robot`"
    );
    assert_eq!(
        e.help.as_deref(),
        Some("actor types are `human`, `service` and `agent`")
    );
}

#[test]
fn unknown_fields_are_refused_when_reading() {
    let err = serde_yaml_ng::from_str::<Vec<RuleSource>>(
        "- {id: a, effect: allow, owner: o, toolz: [x]}",
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `toolz`"), "{err}");
    let err = serde_yaml_ng::from_str::<Vec<RuleSource>>("- {id: a, effect: maybe, owner: o}")
        .unwrap_err();
    assert!(err.to_string().contains("unknown variant `maybe`"), "{err}");
}

/// Deny rules on a boolean, a number and a nested option, next to an allow
/// rule that lets everything else through.
const LENIENT: &str = r#"
- id: anyone-deploys
  effect: allow
  owner: release
  tools: [deploy]
- id: no-forced-deploys
  effect: deny
  owner: security
  tools: [deploy]
  arguments:
    - {pointer: /force, equals: true}
- id: no-empty-deploys
  effect: deny
  owner: security
  tools: [deploy]
  arguments:
    - {pointer: /replicas, one_of: [0]}
- id: no-forced-options
  effect: deny
  owner: security
  tools: [deploy]
  arguments:
    - {pointer: /options/force, equals: true}
- id: no-huge-deploys
  effect: deny
  owner: security
  tools: [deploy]
  arguments:
    - {pointer: /size, range: {min: 100}}
"#;

#[test]
fn deny_rules_read_arguments_as_a_lenient_server_does() {
    let p = compile(LENIENT);
    let b = direct(bob());
    for (arguments, rule) in [
        (json!({"force": true}), "no-forced-deploys"),
        (json!({"force": "true"}), "no-forced-deploys"),
        (json!({"force": "True"}), "no-forced-deploys"),
        (json!({"force": "yes"}), "no-forced-deploys"),
        (json!({"force": "on"}), "no-forced-deploys"),
        (json!({"force": 1}), "no-forced-deploys"),
        (json!({"force": 1.0}), "no-forced-deploys"),
        (json!({"replicas": "0"}), "no-empty-deploys"),
        (json!({"replicas": " 0 "}), "no-empty-deploys"),
        (json!({"replicas": "0.0"}), "no-empty-deploys"),
        (json!({"replicas": false}), "no-empty-deploys"),
        (json!({"options": {"force": "1"}}), "no-forced-options"),
        (json!({"options": "{\"force\": true}"}), "no-forced-options"),
        (
            json!({"options": "{\"force\": \"y\"}"}),
            "no-forced-options",
        ),
        (
            json!({"options": "{\"force\": false, \"force\": true}"}),
            "no-forced-options",
        ),
        (json!({"size": "1e3"}), "no-huge-deploys"),
        (json!({"size": "nan"}), "no-huge-deploys"),
    ] {
        let d = p.decide(&b, &tool("deploy", arguments.clone()));
        assert!(!d.is_allowed(), "{arguments}");
        assert_eq!(d.rule.as_deref(), Some(rule), "{arguments}: {}", d.reason);
    }
    for arguments in [
        json!({}),
        json!({"force": false}),
        json!({"force": "false"}),
        json!({"force": "maybe"}),
        json!({"force": 2}),
        json!({"replicas": 3}),
        json!({"replicas": "3"}),
        json!({"options": {"force": "no"}}),
        json!({"options": "{\"force\": false}"}),
        json!({"options": "not json"}),
        json!({"options": {}}),
        json!({"size": "99"}),
    ] {
        let d = p.decide(&b, &tool("deploy", arguments.clone()));
        assert!(d.is_allowed(), "{arguments}: {}", d.reason);
    }
    // What no reading makes a number is still an evaluation error.
    let d = p.decide(&b, &tool("deploy", json!({"size": "big"})));
    assert!(
        !d.is_allowed() && d.reason.contains("evaluation error"),
        "{}",
        d.reason
    );
}

/// A relative path is resolved against the server's working directory:
/// from `/`, `etc/passwd` is `/etc/passwd` (found by the reader differential
/// test, `tests/readers/test_target_readings.py`). A deny `path_prefix`
/// holds for every relative path; an allow `path_prefix` never covers one.
#[test]
fn deny_path_prefixes_hold_for_relative_paths() {
    let p = compile(
        r#"
- id: files
  effect: allow
  owner: platform
  tools: [read_file]
- id: no-etc
  effect: deny
  owner: security
  tools: [read_file]
  arguments:
    - {pointer: /path, path_prefix: /etc/}
- id: public
  effect: allow
  owner: platform
  tools: [read_public]
  arguments:
    - {pointer: /path, path_prefix: /srv/public/}
"#,
    );
    let b = direct(bob());
    for path in [
        "etc/passwd",
        "etc",
        "passwd",
        "",
        "C:/etc/passwd",
        "/etc/passwd",
    ] {
        let d = p.decide(&b, &tool("read_file", json!({"path": path})));
        assert!(!d.is_allowed(), "{path:?}");
        assert_eq!(d.rule.as_deref(), Some("no-etc"), "{path:?}: {}", d.reason);
    }
    for path in ["/srv/etc/passwd", "/etcetera", "/tmp/etc"] {
        let d = p.decide(&b, &tool("read_file", json!({"path": path})));
        assert!(d.is_allowed(), "{path:?}: {}", d.reason);
    }
    for path in ["srv/public/a", "public/a", "a"] {
        let d = p.decide(&b, &tool("read_public", json!({"path": path})));
        assert!(!d.is_allowed(), "{path:?}");
    }
    assert!(
        p.decide(&b, &tool("read_public", json!({"path": "/srv/public/a"})))
            .is_allowed()
    );
}

#[test]
fn allow_rules_still_compare_exactly() {
    let p = compile(
        r#"
- id: dry-runs
  effect: allow
  owner: release
  tools: [deploy]
  arguments:
    - {pointer: /dry_run, equals: true}
    - {pointer: /replicas, range: {min: 1, max: 3}}
"#,
    );
    let b = direct(bob());
    assert!(
        p.decide(&b, &tool("deploy", json!({"dry_run": true, "replicas": 2})))
            .is_allowed()
    );
    for arguments in [
        json!({"dry_run": "true", "replicas": 2}),
        json!({"dry_run": 1, "replicas": 2}),
        json!({"dry_run": true, "replicas": "2"}),
        json!({"dry_run": true}),
    ] {
        assert!(
            !p.decide(&b, &tool("deploy", arguments.clone()))
                .is_allowed(),
            "{arguments}"
        );
    }
}

#[test]
fn charset_conditions_on_arguments_and_targets() {
    let p = compile(
        r#"
- id: plain-tools
  effect: allow
  owner: security
  tools: ["*"]
  target_charset: {only: tool_name}
  arguments:
    - {pointer: /query, charset: {only: printable_ascii}}
- id: no-odd-prompts
  effect: deny
  owner: security
  methods: [prompts/get]
  target_charset: {some_outside: printable_ascii}
- id: prompts
  effect: allow
  owner: docs
  prompts: ["**"]
"#,
    );
    let b = direct(bob());
    let call = |name: &str, query: Value| {
        p.decide(&b, &tool(name, json!({"query": query})))
            .is_allowed()
    };
    assert!(call("search", json!("envoy filters")));
    assert!(!call("search", json!("envoy\u{200b}filters")));
    assert!(!call("search", json!("tab\there")));
    assert!(!call("se arch", json!("x")));
    assert!(!call("search", json!(7)), "a number is no string");
    assert!(!p.decide(&b, &tool("search", json!({}))).is_allowed());
    let prompt = |name: &str| {
        p.decide(
            &b,
            &McpRequest {
                kind: MessageKind::Request,
                method: "prompts/get".into(),
                id: Some(json!(1)),
                target: Target::Prompt { name: name.into() },
                meta_protocol_version: None,
            },
        )
    };
    assert!(prompt("summarize").is_allowed());
    let d = prompt("summar\u{456}ze");
    assert_eq!(d.rule.as_deref(), Some("no-odd-prompts"), "{}", d.reason);
}

#[test]
fn escaped_glob_characters_are_literal_in_targets() {
    let p = compile(
        r#"
- id: faq-one
  effect: allow
  owner: docs
  resources: ["DOCS://faq\\?id=1"]
- id: star-tool
  effect: allow
  owner: docs
  tools: ["beta\\*"]
"#,
    );
    let b = direct(bob());
    assert!(p.decide(&b, &resource("docs://faq?id=1")).is_allowed());
    assert!(!p.decide(&b, &resource("docs://faqXid=1")).is_allowed());
    assert!(p.decide(&b, &tool("beta*", json!({}))).is_allowed());
    assert!(!p.decide(&b, &tool("beta1", json!({}))).is_allowed());
}

#[test]
fn charset_and_escape_errors_name_rule_and_field() {
    for (yaml, field, message) in [
        (
            "- {id: a, effect: allow, owner: o, tools: [x], target_charset: {only: utf8}}",
            "target_charset.only",
            "unknown character set `utf8`",
        ),
        (
            "- {id: a, effect: allow, owner: o, tools: [x], target_charset: {}}",
            "target_charset",
            "exactly one of `only` and `some_outside`",
        ),
        (
            "- {id: a, effect: allow, owner: o, tools: [x], arguments: [{pointer: /q, charset: {only: ascii, some_outside: ascii}}]}",
            "arguments[0].charset",
            "exactly one of",
        ),
        (
            "- {id: a, effect: allow, owner: o, tools: [x], arguments: [{pointer: /q, charset: {some_outside: emoji}}]}",
            "arguments[0].charset.some_outside",
            "unknown character set",
        ),
        (
            "- {id: a, effect: deny, owner: o, methods: [tools/list], target_charset: {only: tool_name}}",
            "target_charset",
            "can never match",
        ),
        (
            "- {id: a, effect: allow, owner: o, tools: [\"a\\\\b\"]}",
            "tools[0]",
            "escapes only",
        ),
        (
            "- {id: a, effect: allow, owner: o, resources: [\"docs://a\\\\b\"]}",
            "resources[0]",
            "escapes only",
        ),
    ] {
        let e = compile_error(yaml);
        assert_eq!(e.field, field, "{yaml}: {e}");
        assert!(e.message.contains(message), "{yaml}: {e}");
    }
    let e = compile_error(
        "- {id: a, effect: allow, owner: o, tools: [x], target_charset: {only: utf8}}",
    );
    assert_eq!(
        e.help.as_deref(),
        Some("character sets are `printable_ascii`, `ascii_graphic` and `tool_name`")
    );
}

#[test]
fn equals_null_is_a_test_for_null() {
    let p = compile(
        r#"
- id: anyone
  effect: allow
  owner: a
  tools: [assign]
- id: no-unowned
  effect: deny
  owner: a
  tools: [assign]
  arguments:
    - {pointer: /owner, equals: null}
"#,
    );
    let b = direct(bob());
    for owner in [json!(null), json!("null")] {
        let d = p.decide(&b, &tool("assign", json!({"owner": owner})));
        assert_eq!(d.rule.as_deref(), Some("no-unowned"), "{owner}");
    }
    assert!(p.decide(&b, &tool("assign", json!({}))).is_allowed());
    assert!(
        p.decide(&b, &tool("assign", json!({"owner": "bob"})))
            .is_allowed()
    );
    // The compiled form the filter reads keeps the test.
    let rules: Vec<RuleSource> = serde_yaml_ng::from_str(
        "- {id: a, effect: deny, owner: o, tools: [x], arguments: [{pointer: /o, equals: null}]}",
    )
    .unwrap();
    let json = serde_json::to_string(&rules).unwrap();
    assert!(json.contains(r#""equals":null"#), "{json}");
    let back: Vec<RuleSource> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rules);
}

/// A deny rule on a path prefix holds for every spelling a server could
/// open as that path: relative paths (resolved against a directory Warden
/// does not know), other letter cases (case-insensitive file systems) and
/// Windows spellings (`secret.`, `secret:$DATA`, `SECRET~1`).
#[test]
fn a_path_deny_holds_for_relative_case_and_windows_spellings() {
    let p = compile(
        r#"
- id: no-secrets
  effect: deny
  owner: security
  tools: [read_file]
  arguments:
    - pointer: /path
      path_prefix: /srv/secret/
- id: read-anything
  effect: allow
  owner: platform
  tools: [read_file]
"#,
    );
    let b = direct(bob());
    for (path, allowed) in [
        ("/srv/public/a.txt", true),
        ("/srv/secretary/a.txt", true),
        ("/srv/secret/key", false),
        ("/SRV/Secret/key", false),
        ("/srv/SECRET", false),
        ("srv/secret/key", false),
        ("secret/key", false),
        ("~/secret", false),
        ("/srv/secret./key", false),
        ("/srv/secret /key", false),
        ("/srv/SECRE~1/key", false),
        ("/srv/secret:stream", false),
    ] {
        assert_eq!(
            p.decide(&b, &tool("read_file", json!({"path": path})))
                .is_allowed(),
            allowed,
            "{path}"
        );
    }
    // An allow rule compares the case exactly: `/SRV/PUBLIC` is not
    // `/srv/public` to a case-sensitive server.
    let allow = compile(BASE);
    assert!(
        !allow
            .decide(&b, &tool("read_file", json!({"path": "/SRV/PUBLIC/a"})))
            .is_allowed()
    );
}

fn shadowed(yaml: &str, whole: bool) -> ShadowedPolicy {
    let rules: Vec<RuleSource> = serde_yaml_ng::from_str(yaml).unwrap();
    ShadowedPolicy::compile(&rules, &Defaults::default(), whole).unwrap()
}

const SHADOW_RULES: &str = r#"
- id: search
  effect: allow
  owner: docs
  tools: [search_docs]
- id: new-no-search-for-sales
  effect: deny
  owner: security
  shadow: true
  principal: {groups: [sales]}
  tools: [search_docs]
- id: new-deploy
  effect: allow
  owner: release
  shadow: true
  tools: [deploy]
"#;

/// A rule in shadow decides nothing, and what it would have decided is
/// reported exactly where it differs from what was enforced.
#[test]
fn a_rule_in_shadow_is_reported_not_enforced() {
    let policy = shadowed(SHADOW_RULES, false);
    let b = direct(bob());

    let (decision, shadow) = policy.decide(&b, &tool("search_docs", json!({})));
    assert!(decision.is_allowed(), "{decision:?}");
    assert_eq!(decision.rule.as_deref(), Some("search"));
    let shadow = shadow.expect("the shadow deny differs");
    assert_eq!(shadow.outcome, "would_deny");
    assert_eq!(shadow.rule.as_deref(), Some("new-no-search-for-sales"));

    let (decision, shadow) = policy.decide(&b, &tool("deploy", json!({})));
    assert!(!decision.is_allowed(), "{decision:?}");
    let shadow = shadow.expect("the shadow allow differs");
    assert_eq!(
        (shadow.outcome, shadow.rule.as_deref()),
        ("would_allow", Some("new-deploy"))
    );

    // Same outcome either way: nothing to report.
    let (decision, shadow) = policy.decide(&b, &tool("delete_repo", json!({})));
    assert!(!decision.is_allowed());
    assert_eq!(shadow, None);
    // The rules in force are the ones lists are cut by.
    assert_eq!(policy.enforced().len() + 2, policy.len());
}

#[test]
fn a_policy_without_shadow_rules_reports_nothing() {
    let policy = shadowed(BASE, false);
    let (decision, shadow) = policy.decide(&direct(bob()), &tool("deploy", json!({})));
    assert!(!decision.is_allowed());
    assert_eq!(shadow, None);
}

/// The whole policy in shadow: everything is allowed, and every decision
/// the rules (shadow ones included) would make is reported.
#[test]
fn a_policy_in_shadow_allows_and_reports_every_decision() {
    let policy = shadowed(SHADOW_RULES, true);
    assert!(policy.is_shadow());
    let b = direct(bob());
    for (name, outcome, rule) in [
        ("search_docs", "would_deny", Some("new-no-search-for-sales")),
        ("deploy", "would_allow", Some("new-deploy")),
        ("delete_repo", "would_deny", None),
    ] {
        let (decision, shadow) = policy.decide(&b, &tool(name, json!({})));
        assert!(decision.is_allowed(), "{name}: {decision:?}");
        assert_eq!(decision.rule, None, "{name}");
        let shadow = shadow.unwrap();
        assert_eq!(
            (shadow.outcome, shadow.rule.as_deref()),
            (outcome, rule),
            "{name}"
        );
    }
}
