"""The exact shape of a denial on the wire: HTTP 200 carrying a JSON-RPC error
with the request's id, code -31403 and data {decision, request_id}, plus
{rule, reason} only for the callers the policy discloses them to.

examples/policy.yaml discloses to humans (`filter.disclose_reasons: [human]`)
and rule no-agent-deletes also to agents; the `quiet` stack is the example
policy without any `disclose_reasons`, Warden's default."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import http_client, rpc_body, rpc_headers, token_for, tool_call, variant_stack
from helpers import assert_jsonrpc_denial, audits_where, no_rule_allows, tool_entries


@pytest.mark.parametrize("request_id", [7, "req-abc", 0], ids=["int-id", "string-id", "zero-id"])
@pytest.mark.parametrize("modern", [True, False], ids=["2026-07-28", "2025-06-18"])
def test_denied_tool_call_is_a_jsonrpc_error_in_200(stack, http, request_id, modern):
    mark = stack.call_log.mark()
    response = tool_call(
        http, token_for("research-agent"), "delete_repo", {"name": "warden"}, id=request_id, modern=modern
    )
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    data = assert_jsonrpc_denial(response.json(), request_id, rule="no-agent-deletes")
    assert data["reason"]
    assert stack.call_log.entries(mark) == []


def test_denied_resource_read_is_a_jsonrpc_error(stack, http):
    mark = stack.call_log.mark()
    body = rpc_body("resources/read", {"uri": "docs://internal/roadmap"}, id=42)
    headers = rpc_headers("resources/read", "docs://internal/roadmap", token=token_for("bob"))
    response = http.post("/mcp", headers=headers, content=json.dumps(body))
    assert response.status_code == 200, (response.status_code, response.text)
    assert_jsonrpc_denial(response.json(), 42, rule=None)
    assert stack.call_log.entries(mark) == []


def test_allowed_call_is_forwarded_untouched(stack, http):
    mark = stack.call_log.mark()
    response = tool_call(
        http, token_for("ci-deployer"), "deploy", {"environment": "staging", "replicas": 7}, id="fwd-1"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "fwd-1" and "error" not in body, body
    assert body["result"]["content"][0]["text"] == "deployed to staging with 7 replica(s)"
    assert tool_entries(stack.call_log.entries(mark)) == [("deploy", {"environment": "staging", "replicas": 7})]


# --- what a denied caller learns --------------------------------------------


def _without_disclosure(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for rule in rules:
        rule.pop("disclose_reasons", None)
    return rules


@pytest.fixture(scope="module")
def quiet_http(e2e_workdir: Path) -> Iterator[Any]:
    """The example policy without `disclose_reasons` anywhere: Warden's default."""
    with variant_stack(e2e_workdir, "quiet", filter={"disclose_reasons": []}, rules=_without_disclosure) as quiet:
        with http_client(quiet) as client:
            yield quiet, client


# What the example policy's rules and reasons would give away; none of it may
# reach a caller the policy does not disclose to.
SECRETS = ["no-agent-deletes", "eng-read-all-files", "read-public-files", "no rule allows", "rule", "reason", "/path"]


def assert_nothing_leaks(response: Any) -> None:
    raw = response.text + "".join(f"\n{k}: {v}" for k, v in response.headers.items())
    for secret in SECRETS:
        assert secret not in raw, f"{secret!r} leaked to the caller: {raw}"


def withheld_then_audited(stack: Any, http: Any, principal: str, tool: str, arguments: dict) -> dict:
    """A call denied without disclosure: the answer names nothing, and its
    request id finds the audit line, which has the whole truth."""
    rid = f"quiet-{uuid.uuid4().hex[:8]}"
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    response = tool_call(http, token_for(principal), tool, arguments, id=rid)
    assert response.status_code == 200, response.text
    data = assert_jsonrpc_denial(response.json(), rid, disclosed=False)
    assert_nothing_leaks(response)
    assert stack.call_log.entries(mark) == []
    [audit] = audits_where(stack.envoy_log, log_mark, request_id=data["request_id"])
    assert (audit["decision"], audit["jsonrpc_id"], audit["tool"]) == ("deny", rid, tool), audit
    return audit


@pytest.mark.parametrize(
    ("principal", "tool", "arguments"),
    [
        ("research-agent", "read_file", {"path": "/srv/internal/roadmap.md"}),
        ("ci-deployer", "deploy", {"environment": "staging", "replicas": 50}),
        ("agent-for-alice", "deploy", {"environment": "production", "replicas": 1}),
        ("agent-for-alice", "read_file", {"path": "/etc/passwd"}),
    ],
    ids=["agent", "service", "agent-for-human", "agent-for-human-path"],
)
def test_agents_and_services_learn_only_that_the_policy_refused(stack, http, principal, tool, arguments):
    """The example policy discloses to humans only: an agent (also one acting
    for a human) and a service are told nothing of the rules."""
    audit = withheld_then_audited(stack, http, principal, tool, arguments)
    assert "no rule allows" in audit["reason"], audit


def test_a_human_is_told_the_rule_and_reason(stack, http):
    rid = f"told-{uuid.uuid4().hex[:8]}"
    response = tool_call(http, token_for("alice"), "delete_repo", {"name": "warden"}, id=rid)
    data = assert_jsonrpc_denial(response.json(), rid, rule=None)
    assert data["reason"] == no_rule_allows("alice", "delete_repo")


def test_a_rule_can_tell_agents_why(stack, http):
    """Rule no-agent-deletes overrides the policy's list with `[agent]`."""
    rid = f"rule-{uuid.uuid4().hex[:8]}"
    response = tool_call(http, token_for("agent-for-alice"), "delete_repo", {"name": "warden"}, id=rid)
    data = assert_jsonrpc_denial(response.json(), rid, rule="no-agent-deletes")
    assert data["reason"] == "`research-agent` acting for `alice`: denied by rule `no-agent-deletes`"


@pytest.mark.parametrize("principal", ["alice", "research-agent", "ci-deployer"])
def test_by_default_nobody_learns_the_rule_or_reason(quiet_http, principal):
    quiet, http = quiet_http
    audit = withheld_then_audited(quiet, http, principal, "delete_repo", {"name": "warden"})
    expected_rule = "no-agent-deletes" if principal == "research-agent" else None
    assert audit["rule"] == expected_rule, audit
