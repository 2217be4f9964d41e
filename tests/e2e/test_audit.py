"""One audit line per decision in Envoy's log: {"audit":"warden/v1", ...}."""

from __future__ import annotations

import json
import uuid

import pytest

from conftest import rpc_body, rpc_headers, token_for, tool_call
from helpers import AUDIT_FIELDS, audits_where


def _audits_for(stack, mark, jsonrpc_id):
    mine = audits_where(stack.envoy_log, mark, jsonrpc_id=jsonrpc_id)
    assert mine, (
        f"no audit line with jsonrpc_id {jsonrpc_id!r}; audit lines seen since the request: "
        f"{stack.envoy_log.audits(mark)}"
    )
    return mine


def _check_common(record):
    missing = [f for f in AUDIT_FIELDS if f not in record]
    assert not missing, f"audit line lacks {missing}: {record}"
    assert record["audit"] == "warden/v1"
    assert record["decision"] in ("allow", "deny"), record
    assert isinstance(record["reason"], str) and record["reason"], record
    assert record["request_id"], record
    assert record["policy"], record


def test_denied_call_is_audited_once(stack, http):
    request_id = f"audit-{uuid.uuid4().hex[:10]}"
    mark = stack.envoy_log.mark()
    response = tool_call(http, token_for("research-agent"), "delete_repo", {"name": "warden"}, id=request_id)
    assert response.status_code == 200
    [record] = _audits_for(stack, mark, request_id)
    _check_common(record)
    assert record["decision"] == "deny"
    assert record["rule"] == "no-agent-deletes"
    assert record["owner"] == "team-security"
    assert record["actor_type"] == "agent"
    assert record["subject"] == "research-agent"
    assert record["method"] == "tools/call"
    assert record["tool"] == "delete_repo"
    assert not record["resource"] and not record["prompt"], record


def test_allowed_service_call_is_audited(stack, http):
    request_id = 900_000 + uuid.uuid4().int % 1000
    mark = stack.envoy_log.mark()
    response = tool_call(
        http, token_for("ci-deployer"), "deploy", {"environment": "staging", "replicas": 2}, id=request_id
    )
    assert response.status_code == 200 and "result" in response.json(), response.text
    [record] = _audits_for(stack, mark, request_id)
    _check_common(record)
    assert record["decision"] == "allow"
    assert record["rule"] == "ci-deploys-staging"
    assert record["owner"] == "team-release"
    assert record["actor_type"] == "service"
    assert record["subject"] == "ci-deployer"
    assert record["tool"] == "deploy"


def test_delegated_call_audits_subject_actor_and_chain(stack, http):
    request_id = f"audit-{uuid.uuid4().hex[:10]}"
    mark = stack.envoy_log.mark()
    response = tool_call(
        http, token_for("agent-for-alice"), "deploy", {"environment": "staging", "replicas": 1}, id=request_id
    )
    assert response.status_code == 200 and "result" in response.json(), response.text
    [record] = _audits_for(stack, mark, request_id)
    _check_common(record)
    assert record["decision"] == "allow"
    assert record["rule"] == "agents-deploy-staging-for-eng"
    assert record["subject"] == "alice"
    assert record["actor"] == "research-agent"
    assert "research-agent" in json.dumps(record["chain"]), record


def test_delegated_denial_is_audited(stack, http):
    request_id = f"audit-{uuid.uuid4().hex[:10]}"
    mark = stack.envoy_log.mark()
    response = tool_call(
        http, token_for("agent-for-alice"), "deploy", {"environment": "production", "replicas": 1}, id=request_id
    )
    assert "error" in response.json(), response.text
    [record] = _audits_for(stack, mark, request_id)
    _check_common(record)
    assert record["decision"] == "deny"
    assert record["subject"] == "alice" and record["actor"] == "research-agent", record


def test_resource_and_prompt_are_audited(stack, http):
    mark = stack.envoy_log.mark()
    rid = f"res-{uuid.uuid4().hex[:8]}"
    body = rpc_body("resources/read", {"uri": "docs://public/intro"}, id=rid)
    response = http.post(
        "/mcp",
        headers=rpc_headers("resources/read", "docs://public/intro", token=token_for("bob")),
        content=json.dumps(body),
    )
    assert response.status_code == 200, response.text
    [record] = _audits_for(stack, mark, rid)
    _check_common(record)
    assert record["method"] == "resources/read"
    assert record["resource"] == "docs://public/intro"
    assert record["decision"] == "allow" and record["rule"] == "public-docs-resources"
    assert record["owner"] == "team-docs"

    pid = f"prm-{uuid.uuid4().hex[:8]}"
    body = rpc_body("prompts/get", {"name": "summarize", "arguments": {"text": "x"}}, id=pid)
    response = http.post(
        "/mcp",
        headers=rpc_headers("prompts/get", "summarize", token=token_for("research-agent")),
        content=json.dumps(body),
    )
    assert response.status_code == 200, response.text
    [record] = _audits_for(stack, mark, pid)
    _check_common(record)
    assert record["method"] == "prompts/get"
    assert record["prompt"] == "summarize"
    assert record["decision"] == "deny"


def test_each_tool_call_of_a_client_session_has_exactly_one_audit_line(stack, client):
    """Counts audit lines for tools/call in a client session: one per call."""
    mark = stack.envoy_log.mark()
    steps = [
        {"op": "call_tool", "name": "search_docs", "arguments": {"query": "count"}},
        {"op": "call_tool", "name": "delete_repo", "arguments": {"name": "x"}},
        {"op": "call_tool", "name": "read_file", "arguments": {"path": "/srv/public/faq.txt"}},
    ]
    session = client.session(token_for("bob"), steps)
    assert [r["ok"] for r in session["results"]] == [True, False, True], session
    records = stack.envoy_log.wait_for_audits(
        mark, lambda rs: len([r for r in rs if r.get("method") == "tools/call"]) >= 3, timeout=5
    )
    calls = [r for r in records if r.get("method") == "tools/call"]
    assert [(r["tool"], r["decision"]) for r in calls] == [
        ("search_docs", "allow"),
        ("delete_repo", "deny"),
        ("read_file", "allow"),
    ], calls
    for record in records:
        _check_common(record)
        assert record["subject"] == "bob" and record["actor_type"] == "human", record


def test_the_client_cannot_choose_the_audit_request_id(stack, http):
    """The audit line is keyed by Warden's own id, never by the client's
    `x-request-id`, and the denial names Warden's. (`warden envoy` renders an
    edge proxy, `use_remote_address: true`, so Envoy replaces the client's
    id too; the id Envoy passed on goes beside Warden's.)"""
    chosen = f"spoofed-{uuid.uuid4().hex[:8]}"
    records = []
    for n in range(2):
        jsonrpc_id = f"spoof-{n}-{uuid.uuid4().hex[:6]}"
        mark = stack.envoy_log.mark()
        response = tool_call(
            http,
            token_for("research-agent"),
            "delete_repo",
            {"name": "warden"},
            id=jsonrpc_id,
            extra_headers={"x-request-id": chosen},
        )
        assert response.status_code == 200, response.text
        [record] = _audits_for(stack, mark, jsonrpc_id)
        assert record["request_id"] != chosen and chosen not in record["request_id"], record
        assert record.get("client_request_id") != record["request_id"], record
        assert chosen not in response.text, response.text
        assert record["request_id"] in response.text, (record, response.text)
        records.append(record)
    assert records[0]["request_id"] != records[1]["request_id"], records


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "traceparent, expected",
    [
        (TRACEPARENT, ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")),
        ('00-","decision":"allow-00f067aa0ba902b7-01', None),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
    ],
    ids=["well-formed", "injection", "zero-trace"],
)
def test_audit_lines_carry_the_requests_trace_context(stack, http, traceparent, expected):
    """A well-formed W3C `traceparent` puts the line in the request's trace;
    anything else leaves no trace fields (the client chose the header)."""
    rid = f"trace-{uuid.uuid4().hex[:8]}"
    mark = stack.envoy_log.mark()
    response = tool_call(
        http, token_for("alice"), "search_docs", {"query": "trace"}, id=rid, extra_headers={"traceparent": traceparent}
    )
    assert response.status_code == 200, response.text
    [audit] = audits_where(stack.envoy_log, mark, jsonrpc_id=rid)
    if expected is None:
        assert "trace_id" not in audit and "span_id" not in audit, audit
        assert audit["decision"] == "allow", audit
    else:
        assert (audit["trace_id"], audit["span_id"]) == expected, audit
