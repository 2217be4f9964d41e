"""List responses rewritten to what the caller could use.

tools/list, prompts/list, resources/list and resources/templates/list
answers pass through Warden, which removes what no rule could allow the
caller (examples/policy.yaml: bob sees no internal roadmap resource;
research-agent, an agent, sees no summarize prompt since humans-use-prompts
needs a human). Checked with every client kind against both framings the
server has: SSE (its default; the 2.3 server answers 2026-07-28 requests
with JSON even then) and JSON (`--json-response`, the module's stack). When
entries are removed, a second audit line with the request's request_id says
which. A list response larger than `max_response_bytes` is replaced by a
JSON-RPC error for the request (a stack with a 1,000-byte limit: the
initialize and tool-call answers fit, the tool list does not).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from conftest import (
    CLIENT_KINDS,
    VISIBLE_TOOLS,
    call,
    http_client,
    jsonrpc_messages,
    legacy_headers,
    make_client,
    open_legacy_session,
    rpc_body,
    rpc_headers,
    token_for,
    tool_call,
    variant_stack,
)
from helpers import audits_where, tool_entries

ALL_KINDS = list(CLIENT_KINDS)
LIST_STEPS = [{"op": "list_tools"}, {"op": "list_prompts"}, {"op": "list_resources"}, {"op": "list_resource_templates"}]
# What each principal sees, per list op (the server has no resource templates).
SEES = {
    "bob": [VISIBLE_TOOLS["bob"], {"summarize"}, {"docs://public/intro"}, set()],
    "research-agent": [VISIBLE_TOOLS["research-agent"], set(), {"docs://public/intro"}, set()],
}
ALL_TOOLS = {"search_docs", "read_file", "deploy", "delete_repo", "rotate_keys", "export_customers"}
LIMIT = 1000
# A JSON body is held whole; an event stream event by event.
TOO_LARGE = {
    "json": f"response body is larger than the limit of {LIMIT} bytes",
    "sse": f"an event of the response stream is larger than the limit of {LIMIT} bytes",
}


def unfilterable(framing: str) -> dict:
    return {
        "code": -32603,
        "message": "the response could not be filtered for this caller",
        "data": {"reason": f"response could not be filtered: {TOO_LARGE[framing]}"},
    }


@pytest.fixture(scope="module")
def json_stack(e2e_workdir):
    with variant_stack(e2e_workdir, "lists-json", server_args=["--json-response"]) as instance:
        yield instance


@pytest.fixture(scope="module")
def small_stack(e2e_workdir):
    with variant_stack(e2e_workdir, "lists-small", filter={"max_response_bytes": LIMIT}) as instance:
        yield instance


@pytest.mark.parametrize("framing", ["sse", "json"])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_each_client_sees_filtered_lists(request, kind, framing):
    stack = request.getfixturevalue("stack" if framing == "sse" else "json_stack")
    client = make_client(kind, stack.url)
    sessions = client.sessions([(token_for(principal), LIST_STEPS) for principal in SEES])
    for principal, session in zip(SEES, sessions, strict=True):
        assert session["connected"], session
        results = session["results"]
        assert all(r["ok"] for r in results), (principal, results)
        seen = [set(r["names"]) for r in results]
        assert seen == SEES[principal], (principal, seen)
        # The framing the lists really came in.
        answered = {x["content_type"] for x in session["http"] if x["method"] == "POST" and x["status"] == 200}
        expected = "text/event-stream" if framing == "sse" and client.legacy else "application/json"
        assert answered == {expected}, (principal, session["http"])


# (list method, principal, names kept, names removed in the server's order)
AUDITED = {
    "tools": ("tools/list", "bob", 2, ["deploy", "delete_repo", "rotate_keys", "export_customers"]),
    "prompts": ("prompts/list", "research-agent", 0, ["summarize"]),
    "resources": ("resources/list", "bob", 1, ["docs://internal/roadmap"]),
}


@pytest.mark.parametrize("case", list(AUDITED))
def test_a_filtered_list_is_audited_with_what_was_removed(stack, http, case):
    method, principal, kept, removed = AUDITED[case]
    request_id = f"list-{uuid.uuid4().hex[:8]}"
    log_mark = stack.envoy_log.mark()
    response = http.post(
        "/mcp", headers=rpc_headers(method, token=token_for(principal)), content=json.dumps(rpc_body(method, id=request_id))
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == request_id and "error" not in body, body
    assert len(body["result"][case]) == kept, body  # the case is named after the result member
    decision, filtered = audits_where(stack.envoy_log, log_mark, count=2, jsonrpc_id=request_id)
    assert (decision["decision"], decision["rule"], decision["method"]) == ("allow", "list-catalogue", method)
    assert "list" not in decision, decision
    assert filtered["request_id"] == decision["request_id"], (decision, filtered)
    assert (filtered["decision"], filtered["rule"], filtered["method"]) == ("allow", "list-catalogue", method)
    assert filtered["list"] == {"kind": case, "kept": kept, "removed": removed}, filtered
    assert filtered["reason"] == f"allowed by rule `list-catalogue`; {case} filtered: {kept} kept, {len(removed)} removed"


def test_nothing_removed_means_no_list_line(stack, http):
    """Someone who could use every tool gets the server's list whole, and one audit line."""
    everything = token_for("alice", groups=["eng", "admins", "finance"], scope="ops:rotate")
    log_mark = stack.envoy_log.mark()
    response = http.post(
        "/mcp", headers=rpc_headers("tools/list", token=everything), content=json.dumps(rpc_body("tools/list", id="all"))
    )
    assert {tool["name"] for tool in response.json()["result"]["tools"]} == ALL_TOOLS, response.text
    # Audit lines are written in order: once a later request's line is there,
    # any second line for the list request would be too.
    tool_call(http, everything, "search_docs", {"query": "sentinel"}, id="sentinel")
    audits_where(stack.envoy_log, log_mark, jsonrpc_id="sentinel")
    lines = [r for r in stack.envoy_log.audits(log_mark) if r.get("jsonrpc_id") == "all"]
    assert [(r["decision"], r.get("list")) for r in lines] == [("allow", None)], lines


# --- a list too large to filter ---------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_a_list_too_large_to_filter_is_an_error_not_a_hang(small_stack, kind):
    """Every client gets the JSON-RPC error at once. And since every SDK client
    here lists the tools after a call (to check the result against the tool's
    output schema), a tool call then fails too, in the client, after the server
    has run it: fail closed on lists costs more than the list."""
    client = make_client(kind, small_stack.url)
    mark, log_mark = small_stack.call_log.mark(), small_stack.envoy_log.mark()
    started = time.monotonic()
    session = client.session(token_for("bob"), [{"op": "list_tools"}, call("search_docs", query="after the list")])
    elapsed = time.monotonic() - started
    assert session["connected"], session
    listed, called = session["results"]
    # A 2025 session's answers are event streams; 2026-07-28 ones JSON.
    framing = "sse" if client.legacy else "json"
    assert listed == {"op": "list_tools", "ok": False, "error": unfilterable(framing)}, listed
    assert called == {"op": "call_tool", "ok": False, "error": unfilterable(framing)}, called
    assert tool_entries(small_stack.call_log.entries(mark)) == [("search_docs", {"query": "after the list"})]
    posts = [x["mcp_method"] for x in session["http"] if x["method"] == "POST"]
    if not client.legacy:
        assert posts == ["tools/list", "tools/call", "tools/list"], session["http"]
    assert elapsed < 8, f"{kind} took {elapsed:.1f}s: the list response must not stall"
    audits = audits_where(small_stack.envoy_log, log_mark, count=2, method="tools/list", decision="deny")
    assert len(audits) == 2, audits
    for audit in audits:
        assert audit["list"] == {"error": TOO_LARGE[framing]}, audit
        assert (audit["rule"], audit["subject"]) == ("list-catalogue", "bob"), audit
        assert audit["reason"] == f"response could not be filtered: {TOO_LARGE[framing]}", audit


@pytest.mark.parametrize("framing", ["json", "sse"])
def test_a_list_too_large_to_filter_on_the_wire(small_stack, framing):
    """The error replaces the answer in the answer's own framing (JSON for a
    2026-07-28 request, an SSE event in a 2025 session)."""
    token = token_for("bob")
    with http_client(small_stack) as http:
        if framing == "json":
            response = http.post(
                "/mcp", headers=rpc_headers("tools/list", token=token), content=json.dumps(rpc_body("tools/list", id=9))
            )
        else:
            session_id = open_legacy_session(http, token)
            response = http.post(
                "/mcp",
                headers=legacy_headers(token, session_id),
                content=json.dumps(rpc_body("tools/list", id=9, modern=False)),
            )
    assert response.status_code == 200, response.text
    content_type = response.headers["content-type"]
    assert content_type.startswith("application/json" if framing == "json" else "text/event-stream"), content_type
    assert jsonrpc_messages(response) == [{"jsonrpc": "2.0", "id": 9, "error": unfilterable(framing)}], response.text
