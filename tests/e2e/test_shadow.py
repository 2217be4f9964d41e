"""Shadow mode through real Envoy: a rule in shadow (and a whole policy in
shadow) decides nothing, and what it would have decided is in the audit line
(`shadow`) and counted (`warden_shadow_total{outcome, rule}`).

Variants of the example policy: `no-agent-search-shadow` (a deny in shadow:
agents still search) and `humans-rotate-keys-shadow` (an allow in shadow:
humans are still refused); and the whole example policy with
`filter.shadow: true`, under which an agent's `delete_repo` reaches the tool
and bob's tool list is not cut, while a request without a token is still
refused.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from conftest import VISIBLE_TOOLS, http_client, rpc_body, rpc_headers, token_for, tool_call, variant_stack
from helpers import audits_where
from test_metrics import scrape, value

SHADOW_RULES = [
    {
        "id": "no-agent-search-shadow",
        "effect": "deny",
        "owner": "team-security",
        "shadow": True,
        "principal": {"types": ["agent"]},
        "tools": ["search_docs"],
    },
    {
        "id": "humans-rotate-keys-shadow",
        "effect": "allow",
        "owner": "team-security",
        "shadow": True,
        "principal": {"types": ["human"]},
        "tools": ["rotate_keys"],
    },
]


def _with_shadow_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*SHADOW_RULES, *rules]


@pytest.fixture(scope="module")
def shadow_rules_stack(e2e_workdir):
    with variant_stack(e2e_workdir, "shadow-rules", rules=_with_shadow_rules) as instance:
        yield instance


@pytest.fixture(scope="module")
def shadow_policy_stack(e2e_workdir):
    with variant_stack(e2e_workdir, "shadow-policy", filter={"shadow": True}) as instance:
        yield instance


def call(stack, principal: str, tool: str, arguments: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """One tools/call; the response and its audit line."""
    rid = f"shadow-{uuid.uuid4().hex[:10]}"
    mark = stack.envoy_log.mark()
    with http_client(stack) as http:
        response = tool_call(http, token_for(principal), tool, arguments, id=rid)
    [audit] = audits_where(stack.envoy_log, mark, jsonrpc_id=rid)
    return response, audit


def shadow_count(stack, **labels: str) -> float:
    return value(scrape(stack), "warden_shadow_total", **labels)


def test_a_deny_in_shadow_is_recorded_and_not_enforced(shadow_rules_stack):
    stack = shadow_rules_stack
    labels = {"outcome": "would_deny", "rule": "no-agent-search-shadow"}
    before = shadow_count(stack, **labels)
    calls = stack.call_log.mark()
    response, audit = call(stack, "research-agent", "search_docs", {"query": "shadow"})
    assert "result" in response.json(), response.text
    assert len(stack.call_log.entries(calls)) == 1, "the tool did not run"
    assert (audit["decision"], audit["rule"]) == ("allow", "search-docs"), audit
    assert audit["shadow"]["outcome"] == "would_deny", audit
    assert audit["shadow"]["rule"] == "no-agent-search-shadow", audit
    assert shadow_count(stack, **labels) - before == 1


def test_an_allow_in_shadow_is_recorded_and_not_enforced(shadow_rules_stack):
    stack = shadow_rules_stack
    labels = {"outcome": "would_allow", "rule": "humans-rotate-keys-shadow"}
    before = shadow_count(stack, **labels)
    calls = stack.call_log.mark()
    response, audit = call(stack, "bob", "rotate_keys", {})
    assert "error" in response.json(), response.text
    assert stack.call_log.entries(calls) == []
    assert audit["decision"] == "deny", audit
    assert (audit["shadow"]["outcome"], audit["shadow"]["rule"]) == ("would_allow", "humans-rotate-keys-shadow")
    assert shadow_count(stack, **labels) - before == 1


def test_a_decision_the_shadow_agrees_with_records_nothing(shadow_rules_stack):
    response, audit = call(shadow_rules_stack, "alice", "search_docs", {"query": "same"})
    assert "result" in response.json(), response.text
    assert "shadow" not in audit, audit


def test_a_policy_in_shadow_enforces_no_rule(shadow_policy_stack):
    stack = shadow_policy_stack
    labels = {"outcome": "would_deny", "rule": "no-agent-deletes"}
    before = shadow_count(stack, **labels)
    calls = stack.call_log.mark()
    response, audit = call(stack, "research-agent", "delete_repo", {"name": "scratch"})
    assert "result" in response.json(), response.text
    assert len(stack.call_log.entries(calls)) == 1, "the tool did not run"
    assert (audit["decision"], audit.get("rule")) == ("allow", None), audit
    assert (audit["shadow"]["outcome"], audit["shadow"]["rule"]) == ("would_deny", "no-agent-deletes"), audit
    assert shadow_count(stack, **labels) - before == 1


def test_a_policy_in_shadow_cuts_no_list(shadow_policy_stack):
    body = rpc_body("tools/list", id="shadow-list")
    with http_client(shadow_policy_stack) as http:
        response = http.post("/mcp", headers=rpc_headers("tools/list", token=token_for("bob")), content=json.dumps(body))
    text = response.text
    names = {tool["name"] for tool in json.loads(text[text.index("{") :])["result"]["tools"]} if "{" in text else set()
    assert names > VISIBLE_TOOLS["bob"], names


def test_a_policy_in_shadow_still_checks_tokens(shadow_policy_stack):
    calls = shadow_policy_stack.call_log.mark()
    with http_client(shadow_policy_stack) as http:
        response = tool_call(http, None, "search_docs", {"query": "x"})
    assert response.status_code == 401, response.text
    assert shadow_policy_stack.call_log.entries(calls) == []
