"""The official MCP TypeScript SDK client (@modelcontextprotocol/sdk, pinned in
clients/ts/package-lock.json) through real Envoy + Warden.

The client runs under node as a subprocess (clients/ts/mcp_ts_client.mjs) with
the same JSON plan and result format as mcp2_client.py. This SDK speaks the
2025 revisions: `initialize` (it negotiates 2025-11-25 with the example
server), `Mcp-Session-Id`, a GET SSE stream, DELETE at the end. The bearer
token is a plain Authorization header and no OAuth provider is configured, so a
401 is an error the SDK raises at connect time, with no discovery requests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, VISIBLE_TOOLS, call, token_for
from helpers import assert_allowed, assert_denied, tool_entries

TS_DIR = Path(__file__).resolve().parent / "clients" / "ts"
TS_CLIENT = TS_DIR / "mcp_ts_client.mjs"
TS_TIMEOUT = 15.0

# What @modelcontextprotocol/sdk 1.32 negotiates with the example server: its
# newest revision (it does not know 2026-07-28).
TS_PROTOCOL = "2025-11-25"

# alice's filtered tool listing: export_customers (finance only, disguised),
# delete_repo and rotate_keys are hidden from her.
ALICE_TOOLS = VISIBLE_TOOLS["alice"]


def run_ts(url: str, sessions: list[dict[str, Any]], timeout: float = TS_TIMEOUT) -> list[dict[str, Any]]:
    """The TS SDK client under node, as a subprocess taking the plan on stdin."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (the TypeScript SDK client needs node >= 20)", pytrace=False)
    if not (TS_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir():
        pytest.fail(f"{TS_DIR.relative_to(REPO_ROOT)}/node_modules is missing: run `make venv`", pytrace=False)
    plan = {"url": url, "timeout": timeout, "sessions": sessions}
    proc = subprocess.run(
        [node, str(TS_CLIENT)],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=timeout * (len(sessions) + 1) * 2,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, f"TS client failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)["sessions"]


def ts_session(url: str, token: str | None, steps: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    [session] = run_ts(url, [{"token": token, "steps": steps}], **kwargs)
    return session


def assert_whole_session(session: dict[str, Any]) -> None:
    """Connected in TS_PROTOCOL, one session id throughout, no HTTP error, DELETE at the end."""
    assert session["connected"], f"could not connect: {session}"
    assert session["protocol_version"] == TS_PROTOCOL, session
    assert session["session_id"], session
    assert session["session_id_after"] == session["session_id"], "the session changed"
    assert not session.get("teardown_error"), session
    assert not session.get("transport_errors"), session
    exchanges = [(x["method"], x["rpc_method"], x["status"]) for x in session["http"]]
    assert all(status < 400 for _, _, status in exchanges), f"an HTTP error reached the client: {exchanges}"
    assert ("GET", None, 200) in exchanges, exchanges
    assert exchanges[-1] == ("DELETE", None, 200), exchanges


def test_ts_tool_listing_is_filtered(stack):
    session = ts_session(stack.url, token_for("alice"), [{"op": "list_tools"}])
    assert_whole_session(session)
    [result] = session["results"]
    assert result["ok"], result
    assert set(result["names"]) == ALICE_TOOLS, result["names"]
    assert len(result["names"]) == len(ALICE_TOOLS), result["names"]


def test_ts_allowed_call_reaches_the_server(stack):
    mark = stack.call_log.mark()
    session = ts_session(stack.url, token_for("alice"), [call("search_docs", query="tokens")])
    assert_whole_session(session)
    [result] = session["results"]
    assert_allowed(result, "Tokens are verified")
    assert tool_entries(stack.call_log.entries(mark)) == [("search_docs", {"query": "tokens"})]


def test_ts_session_survives_a_denial(stack):
    """A denial is a JSON-RPC error (-31403) in HTTP 200: McpError, and the same session goes on."""
    mark = stack.call_log.mark()
    steps = [call("delete_repo", name="warden"), call("search_docs", query="agents"), {"op": "ping"}]
    session = ts_session(stack.url, token_for("research-agent"), steps)
    assert_whole_session(session)
    denied, allowed, ping = session["results"]
    assert_denied(denied, "no-agent-deletes")
    assert denied["sdk_message"].startswith("MCP error -31403: "), denied
    assert_allowed(allowed, "Agents acting for")
    assert ping["ok"], ping
    calls = [x for x in session["http"] if x["rpc_method"] == "tools/call"]
    assert [x["status"] for x in calls] == [200, 200], session["http"]
    assert tool_entries(stack.call_log.entries(mark)) == [("search_docs", {"query": "agents"})]


def test_ts_no_token_fails_to_connect_with_401(stack):
    """Without an auth provider the SDK does no OAuth discovery: `initialize` gets the
    401 and connect() rejects with StreamableHTTPError (code 401, the body in its message)."""
    session = ts_session(stack.url, None, [{"op": "list_tools"}], timeout=5.0)
    assert not session["connected"], session
    assert session["results"] == [], session
    error = session["connect_error"]
    assert error["http_status"] == 401, error
    assert error["exception"].startswith("StreamableHTTPError: Streamable HTTP error: Error POSTing to endpoint:"), error
    assert '"code":-31401' in error["exception"], error
    [exchange] = session["http"]  # one request: no retry, no .well-known look-up
    assert (exchange["method"], exchange["rpc_method"], exchange["status"]) == ("POST", "initialize", 401), exchange
    challenge = exchange["www_authenticate"] or ""
    assert challenge.startswith("Bearer ") and "resource_metadata=" in challenge, challenge


def test_ts_disguised_tool_is_reported_unknown(stack):
    """export_customers (finance only, deny_mode: disguise) called by alice: -32602
    `Unknown tool: export_customers` in HTTP 200, never forwarded. The text is the one
    the example server writes for a tool it does not have (asked directly, without
    Warden); the server sends it as a tool result with isError, not a JSON-RPC error."""
    mark = stack.call_log.mark()
    session = ts_session(stack.url, token_for("alice"), [call("export_customers", region="eu")])
    assert_whole_session(session)
    [disguised] = session["results"]
    assert not disguised["ok"], disguised
    assert disguised["error"] == {"code": -32602, "message": "Unknown tool: export_customers", "data": None}
    assert stack.call_log.entries(mark) == [], "a disguised denial reached the server"

    direct = ts_session(stack.upstream_url, None, [call("no_such_tool", region="eu")])
    [unknown] = direct["results"]
    assert unknown == {"op": "call_tool", "ok": True, "text": "Unknown tool: no_such_tool", "is_error": True}
    assert disguised["error"]["message"].replace("export_customers", "no_such_tool") == unknown["text"]


def test_ts_policy_wide_disguise_matches_a_truly_unknown_tool(disguise_stack):
    """A per-rule disguise can be told from a missing tool (the missing one is a
    default deny in the policy's mode, docs/policy.md); with disguise as the
    policy-wide mode a hidden tool and a missing one answer alike (disguise_stack,
    conftest)."""
    mark = disguise_stack.call_log.mark()
    session = ts_session(
        disguise_stack.url,
        token_for("alice"),
        [call("export_customers", region="eu"), call("no_such_tool", region="eu")],
    )
    assert_whole_session(session)
    disguised, unknown = session["results"]
    assert disguised["ok"] is False and unknown["ok"] is False, (disguised, unknown)
    assert disguised["error"]["code"] == unknown["error"]["code"] == -32602, (disguised, unknown)
    assert disguised["error"]["message"] == "Unknown tool: export_customers"
    assert unknown["error"]["message"] == "Unknown tool: no_such_tool"
    assert tool_entries(disguise_stack.call_log.entries(mark)) == []
