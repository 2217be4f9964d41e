"""Deny modes, as each SDK client experiences them: the 1.30 client (2025,
sessions), the 2.3 client in its 2025 (`legacy`) mode and in 2026-07-28 mode.

The decision is the same in every mode; only what the client gets differs,
and the audit line always records the real rule and the mode:

* `error` (the default): HTTP 200 + JSON-RPC -31403. Every client goes on.
* `forbidden`: HTTP 403 + the same body. The 1.30 client tears the whole
  session down; 2.3 surfaces the error and goes on.
* `step_up` (rule ops-rotate-keys): 403 + an insufficient_scope challenge
  naming the scope; with the scope the call works.
* `disguise` (rule finance-exports): HTTP 200 + -32602 "Unknown tool: NAME",
  as the MCP specification has a server answer for a tool that does not
  exist. The example server (SDK 2.3) itself answers an unknown tool with a
  tool result flagged isError instead (docs/policy.md, "What disguise hides").

The session stack serves examples/policy.yaml. The `disguise_stack`
(conftest) makes `disguise` policy-wide and gives rule no-agent-deletes
`deny_mode: forbidden`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from conftest import (
    CLIENT_KINDS,
    call,
    http_client,
    jsonrpc_messages,
    make_client,
    open_legacy_session,
    rpc_body,
    rpc_headers,
    token_for,
    tool_call,
)
from helpers import (
    METADATA_URL,
    assert_allowed,
    assert_denied,
    assert_jsonrpc_denial,
    audits_where,
    no_rule_allows,
    tool_entries,
)
from mcp.client.auth.utils import extract_resource_metadata_from_www_auth, extract_scope_from_www_auth

STEP_UP_CHALLENGE = (
    'Bearer realm="warden", error="insufficient_scope", scope="ops:rotate", '
    f'resource_metadata="{METADATA_URL}", error_description="the request needs scope ops:rotate"'
)
ALL_KINDS = list(CLIENT_KINDS)


def unknown_tool(name: str) -> dict:
    """What a client reports for Warden's disguised answer."""
    return {"op": "call_tool", "ok": False, "error": {"code": -32602, "message": f"Unknown tool: {name}", "data": None}}


def exchanges(session: dict) -> list[tuple[str, int]]:
    return [(x["method"], x["status"]) for x in session["http"]]


def assert_torn_down_by_403(session: dict, done_before: int) -> None:
    """mcp 1.30: an HTTP 403 on a POST ends the whole session. The steps before
    it have results, the denied one and every later one never completed, and
    the session is never DELETEd."""
    assert session["connected"], session
    assert len(session["results"]) == done_before, session["results"]
    assert "403 Forbidden" in session.get("teardown_error", ""), session
    assert exchanges(session)[-1] == ("POST", 403), exchanges(session)
    assert ("DELETE", 200) not in exchanges(session), exchanges(session)


@pytest.fixture
def modes_http(disguise_stack):
    with http_client(disguise_stack) as client:
        yield client


# --- error -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_error_mode_every_client_goes_on(stack, kind):
    client = make_client(kind, stack.url)
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    session = client.session(
        token_for("alice"),
        [call("search_docs", query="before"), call("delete_repo", name="warden"), call("search_docs", query="after")],
    )
    assert session["connected"], session
    before, denied, after = session["results"]
    assert_allowed(before)
    data = assert_denied(denied, rule=None)
    assert data["reason"] == no_rule_allows("alice", "delete_repo")
    assert_allowed(after)
    assert all(status < 400 for _, status in exchanges(session)), exchanges(session)
    if client.legacy:
        assert session.get("teardown_error") is None, session
        assert exchanges(session)[-1] == ("DELETE", 200), exchanges(session)
    assert tool_entries(stack.call_log.entries(mark)) == [
        ("search_docs", {"query": "before"}),
        ("search_docs", {"query": "after"}),
    ]
    [audit] = audits_where(stack.envoy_log, log_mark, tool="delete_repo")
    assert (audit["decision"], audit["status"], audit["rule"], audit["deny_mode"]) == ("deny", 200, None, "error")


# --- step_up ---------------------------------------------------------------


@pytest.mark.parametrize("modern", [True, False], ids=["2026-07-28", "2025-06-18"])
def test_step_up_on_the_wire(stack, http, modern):
    """The 2025 variant steps up inside one session: it is bound to alice,
    not to her token, so the token with the new scope goes on in it."""
    request_id = f"rot-{uuid.uuid4().hex[:8]}"
    session = {} if modern else {"Mcp-Session-Id": open_legacy_session(http, token_for("alice"))}
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    response = tool_call(
        http, token_for("alice"), "rotate_keys", {"service": "payments"}, id=request_id, modern=modern, extra_headers=session
    )
    assert response.status_code == 403, response.text
    assert response.headers["www-authenticate"] == STEP_UP_CHALLENGE
    # What an MCP client reads from it (the 1.30 SDK's own parsers).
    assert extract_scope_from_www_auth(response) == "ops:rotate"
    assert extract_resource_metadata_from_www_auth(response) == METADATA_URL
    data = assert_jsonrpc_denial(response.json(), request_id, rule=None)
    assert data["reason"] == no_rule_allows("alice", "rotate_keys")
    assert stack.call_log.entries(mark) == []
    [audit] = audits_where(stack.envoy_log, log_mark, jsonrpc_id=request_id)
    assert (audit["decision"], audit["status"], audit["rule"], audit["deny_mode"]) == ("deny", 403, None, "step_up")

    # With the scope the same call goes through, allowed by the rule that asked for it.
    request_id += "-scoped"
    scoped = token_for("alice", scope="ops:rotate")
    response = tool_call(
        http, scoped, "rotate_keys", {"service": "payments"}, id=request_id, modern=modern, extra_headers=session
    )
    assert response.status_code == 200, response.text
    [answer] = jsonrpc_messages(response)
    assert answer["result"]["content"][0]["text"] == "keys of payments rotated", answer
    [audit] = audits_where(stack.envoy_log, log_mark, jsonrpc_id=request_id)
    assert (audit["decision"], audit["rule"], audit["owner"]) == ("allow", "ops-rotate-keys", "team-security")
    assert tool_entries(stack.call_log.entries(mark)) == [("rotate_keys", {"service": "payments"})]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_step_up_as_each_client_sees_it(stack, kind):
    client = make_client(kind, stack.url)
    mark = stack.call_log.mark()
    without_scope, with_scope = client.sessions(
        [
            (
                token_for("alice"),
                [
                    call("search_docs", query="before"),
                    call("rotate_keys", service="payments"),
                    call("search_docs", query="after"),
                ],
            ),
            (token_for("alice", scope="ops:rotate"), [call("rotate_keys", service="payments")]),
        ]
    )
    assert_allowed(without_scope["results"][0])
    if kind == "mcp1.30-2025":
        assert_torn_down_by_403(without_scope, done_before=1)
        reached_before_step_up = [("search_docs", {"query": "before"})]
    else:
        # 2.3 has no OAuth provider configured here: it surfaces the 403's
        # JSON-RPC error and the session goes on.
        _, denied, after = without_scope["results"]
        data = assert_denied(denied, rule=None)
        assert data["reason"] == no_rule_allows("alice", "rotate_keys")
        assert_allowed(after)
        assert ("POST", 403) in exchanges(without_scope), exchanges(without_scope)
        reached_before_step_up = [("search_docs", {"query": "before"}), ("search_docs", {"query": "after"})]
    [rotated] = with_scope["results"]
    assert_allowed(rotated, "keys of payments rotated")
    assert tool_entries(stack.call_log.entries(mark)) == reached_before_step_up + [("rotate_keys", {"service": "payments"})]


# --- disguise (one rule) ---------------------------------------------------


def test_disguise_on_the_wire(stack, http):
    request_id = f"exp-{uuid.uuid4().hex[:8]}"
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    response = tool_call(http, token_for("alice"), "export_customers", {"region": "eu"}, id=request_id)
    assert response.status_code == 200, response.text
    assert "www-authenticate" not in response.headers
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": -32602, "message": "Unknown tool: export_customers"},
    }
    assert stack.call_log.entries(mark) == []
    # The audit line tells the truth the client does not get.
    [audit] = audits_where(stack.envoy_log, log_mark, jsonrpc_id=request_id)
    assert (audit["decision"], audit["status"], audit["rule"], audit["deny_mode"]) == ("deny", 200, None, "disguise")
    assert audit["reason"] == no_rule_allows("alice", "export_customers")

    # Finance may export: the tool is real.
    response = tool_call(http, token_for("bob", groups=["finance"]), "export_customers", {"region": "eu"})
    assert response.json()["result"]["content"][0]["text"] == "exported customers of eu", response.text
    assert tool_entries(stack.call_log.entries(mark)) == [("export_customers", {"region": "eu"})]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_disguise_as_each_client_sees_it(stack, kind):
    """Through Warden, export_customers reads like a tool that does not
    exist, and the session goes on. The same client asking the server itself
    for a tool that really does not exist gets the same words in another
    frame: a tool result flagged isError, where Warden answers (as the MCP
    specification does) with a JSON-RPC -32602 error."""
    mark = stack.call_log.mark()
    through_warden = make_client(kind, stack.url).session(
        token_for("alice"), [call("export_customers", region="eu"), call("search_docs", query="still here")]
    )
    disguised, after = through_warden["results"]
    assert disguised == unknown_tool("export_customers"), disguised
    assert_allowed(after)
    assert all(status < 400 for _, status in exchanges(through_warden)), exchanges(through_warden)
    assert tool_entries(stack.call_log.entries(mark)) == [("search_docs", {"query": "still here"})]

    direct = make_client(kind, stack.upstream_url).session(None, [call("no_such_tool", region="eu")])
    [servers_own] = direct["results"]
    assert servers_own == {"op": "call_tool", "ok": True, "text": "Unknown tool: no_such_tool", "is_error": True}
    assert servers_own["text"].replace("no_such_tool", "export_customers") == disguised["error"]["message"]


# --- forbidden, and disguise policy-wide (disguise_stack) ------------------


def test_forbidden_on_the_wire(disguise_stack, modes_http):
    request_id = f"del-{uuid.uuid4().hex[:8]}"
    mark, log_mark = disguise_stack.call_log.mark(), disguise_stack.envoy_log.mark()
    response = tool_call(modes_http, token_for("research-agent"), "delete_repo", {"name": "warden"}, id=request_id)
    assert response.status_code == 403, response.text
    assert "www-authenticate" not in response.headers
    assert_jsonrpc_denial(response.json(), request_id, rule="no-agent-deletes")
    assert disguise_stack.call_log.entries(mark) == []
    [audit] = audits_where(disguise_stack.envoy_log, log_mark, jsonrpc_id=request_id)
    assert (audit["decision"], audit["status"], audit["rule"], audit["deny_mode"]) == (
        "deny",
        403,
        "no-agent-deletes",
        "forbidden",
    )


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_forbidden_as_each_client_sees_it(disguise_stack, kind):
    mark = disguise_stack.call_log.mark()
    session = make_client(kind, disguise_stack.url).session(
        token_for("research-agent"),
        [call("search_docs", query="before"), call("delete_repo", name="warden"), call("search_docs", query="after")],
    )
    assert_allowed(session["results"][0])
    if kind == "mcp1.30-2025":
        assert_torn_down_by_403(session, done_before=1)
        assert tool_entries(disguise_stack.call_log.entries(mark)) == [("search_docs", {"query": "before"})]
        return
    _, denied, after = session["results"]
    assert_denied(denied, rule="no-agent-deletes")
    assert_allowed(after)
    assert ("POST", 403) in exchanges(session), exchanges(session)
    assert tool_entries(disguise_stack.call_log.entries(mark)) == [
        ("search_docs", {"query": "before"}),
        ("search_docs", {"query": "after"}),
    ]


# (method, params, Mcp-Name, principal, expected error) with disguise policy-wide.
POLICY_WIDE = {
    "tool-of-a-disguise-rule": (
        "tools/call",
        {"name": "export_customers", "arguments": {"region": "eu"}},
        "export_customers",
        "alice",
        {"code": -32602, "message": "Unknown tool: export_customers"},
    ),
    "existing-tool-no-rule-allows": (
        "tools/call",
        {"name": "delete_repo", "arguments": {"name": "warden"}},
        "delete_repo",
        "alice",
        {"code": -32602, "message": "Unknown tool: delete_repo"},
    ),
    "tool-that-does-not-exist": (
        "tools/call",
        {"name": "no_such_tool", "arguments": {}},
        "no_such_tool",
        "alice",
        {"code": -32602, "message": "Unknown tool: no_such_tool"},
    ),
    "prompt": (
        "prompts/get",
        {"name": "summarize", "arguments": {"text": "t"}},
        "summarize",
        "research-agent",
        {"code": -32602, "message": "Unknown prompt: summarize"},
    ),
    "resource": (
        "resources/read",
        {"uri": "docs://internal/roadmap"},
        "docs://internal/roadmap",
        "bob",
        {"code": -32602, "message": "Unknown resource: docs://internal/roadmap"},
    ),
    "method": ("logging/setLevel", {"level": "debug"}, None, "alice", {"code": -32601, "message": "Method not found"}),
}


@pytest.mark.parametrize("case", list(POLICY_WIDE))
def test_policy_wide_disguise_answers_alike_whatever_exists(disguise_stack, modes_http, case):
    method, params, name, principal, error = POLICY_WIDE[case]
    request_id = f"pw-{uuid.uuid4().hex[:8]}"
    mark, log_mark = disguise_stack.call_log.mark(), disguise_stack.envoy_log.mark()
    response = modes_http.post(
        "/mcp",
        headers=rpc_headers(method, name, token=token_for(principal)),
        content=json.dumps(rpc_body(method, params, id=request_id)),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"jsonrpc": "2.0", "id": request_id, "error": error}
    assert disguise_stack.call_log.entries(mark) == []
    [audit] = audits_where(disguise_stack.envoy_log, log_mark, jsonrpc_id=request_id)
    assert (audit["decision"], audit["rule"], audit["deny_mode"]) == ("deny", None, "disguise"), audit


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_policy_wide_disguise_an_existing_tool_looks_like_a_missing_one(disguise_stack, kind):
    """Through each client, a hidden tool and a tool that does not exist are
    answered alike, and a rule's own mode (step_up) still wins."""
    session = make_client(kind, disguise_stack.url).session(
        token_for("alice"),
        [
            call("export_customers", region="eu"),
            call("no_such_tool"),
            call("delete_repo", name="warden"),
            call("search_docs", query="visible"),
        ],
    )
    hidden, missing, unlisted, allowed = session["results"]
    assert hidden == unknown_tool("export_customers")
    assert missing == unknown_tool("no_such_tool")
    assert unlisted == unknown_tool("delete_repo")
    assert_allowed(allowed)
    assert all(status < 400 for _, status in exchanges(session)), exchanges(session)


def test_a_rules_own_mode_wins_over_the_policy_wide_one(modes_http):
    response = tool_call(modes_http, token_for("alice"), "rotate_keys", {"service": "payments"}, id="rot")
    assert response.status_code == 403, response.text
    assert response.headers["www-authenticate"] == STEP_UP_CHALLENGE
    assert_jsonrpc_denial(response.json(), "rot", rule=None)


# --- decode-time refusals follow the policy-wide mode ----------------------


def nameless_call(http: Any, request_id: str) -> Any:
    """A tools/call without `params.name`: refused before any rule is read."""
    body = rpc_body("tools/call", {"arguments": {}}, id=request_id, modern=False)
    headers = rpc_headers("tools/call", token=token_for("research-agent"), modern=False)
    return http.post("/mcp", headers=headers, content=json.dumps(body))


def test_a_nameless_call_in_error_mode_is_invalid_params_in_200(stack, http):
    request_id = f"nameless-{uuid.uuid4().hex[:8]}"
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    response = nameless_call(http, request_id)
    assert response.status_code == 200, response.text
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (-32602, "Invalid params"), error
    assert error["data"]["reason"] == "invalid params for `tools/call`: `params.name` is required", error
    assert stack.call_log.entries(mark) == []
    [audit] = audits_where(stack.envoy_log, log_mark, jsonrpc_id=request_id)
    assert (audit["decision"], audit["status"], audit["deny_mode"]) == ("deny", 200, "error"), audit


def test_a_nameless_call_in_disguise_mode_gets_the_bare_server_error(disguise_stack, modes_http):
    """Policy-wide `disguise`: the -32602 a server gives, without Warden's
    reason and request id."""
    request_id = f"nameless-{uuid.uuid4().hex[:8]}"
    mark, log_mark = disguise_stack.call_log.mark(), disguise_stack.envoy_log.mark()
    response = nameless_call(modes_http, request_id)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": -32602, "message": "Invalid params"},
    }
    assert disguise_stack.call_log.entries(mark) == []
    [audit] = audits_where(disguise_stack.envoy_log, log_mark, jsonrpc_id=request_id)
    assert (audit["status"], audit["deny_mode"]) == (200, "disguise"), audit
    assert "`params.name` is required" in audit["reason"], audit
