"""A response whose framing headers come twice is never read one way by
Warden and another way by the client.

Envoy hands a proxy-wasm filter the first copy of a header asked for by
name; an HTTP client may take the last copy, or join them. A `tools/list`
answer with `Content-Type: text/plain` and `Content-Type: application/json`
(or an SSE and a JSON type) could be cut as one framing and read as the
other. Envoy 1.40 itself joins the copies of these headers with commas
(`application/json,text/plain`), which Warden refuses as no type a client
reads; a host that keeps the copies apart gives Warden two, which it refuses
as such (the native tests drive that). Either way the body is replaced with
an error (audited as a deny); a real `wsgiref` upstream (`wsgi_upstream.py`)
sends the repeated headers through real Envoy. The same holds for two
`Mcp-Session-Id` headers: neither reaches the client unsealed.

Warden reads header names as text through the proxy-wasm SDK, which panics
on one that is not UTF-8 (values are read as bytes). It relies on Envoy's
codecs: an upstream answer with a non-ASCII header name is an upstream
protocol error (502) that Warden never sees, and the worker's VM serves the
next request.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from conftest import HEADER_MODE, VISIBLE_TOOLS, rpc_body, rpc_headers, running, token_for
from helpers import audits_where
from warden_stack import Stack
from wsgi_upstream import WsgiUpstream

ALL_TOOLS = ["search_docs", "read_file", "deploy", "delete_repo", "rotate_keys", "export_customers"]
HIDDEN_FROM_BOB = set(ALL_TOOLS) - VISIBLE_TOOLS["bob"]

# Each case: the headers the upstream answers `tools/list` with (beside
# Content-Length), and what Warden's refusal names: the repeated header, or
# the joined value Envoy made of the copies.
REFUSED_TYPE = ("`content-type` headers", "content type `application/json,")
REFUSED_CODING = ("`content-encoding` headers", "compressed (`identity,gzip`)")
REPEATED = {
    "json-then-text": ([("Content-Type", "application/json"), ("Content-Type", "text/plain")], REFUSED_TYPE),
    "text-then-json": (
        [("Content-Type", "text/plain"), ("Content-Type", "application/json")],
        ("`content-type` headers", "content type `text/plain,application/json`"),
    ),
    "json-and-sse": ([("Content-Type", "application/json"), ("Content-Type", "text/event-stream")], REFUSED_TYPE),
    "identity-and-gzip": (
        [("Content-Type", "application/json"), ("Content-Encoding", "identity"), ("Content-Encoding", "gzip")],
        REFUSED_CODING,
    ),
}
MARKER = "x-e2e-framing"
SECRET = "upstream-text-behind-an-odd-header"


def tool_list(request_id: Any) -> bytes:
    tools = [{"name": name, "inputSchema": {"type": "object"}} for name in ALL_TOOLS]
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": {"tools": tools}}).encode()


def answer(request: dict[str, Any]) -> tuple[list[tuple[str, str]], bytes] | None:
    """The repeated-header answer the request's `params._meta` case names."""
    case = ((request.get("params") or {}).get("_meta") or {}).get(MARKER)
    if case in REPEATED:
        return REPEATED[case][0], tool_list(request.get("id"))
    if case == "non-utf8-value":
        result = {"jsonrpc": "2.0", "id": request.get("id"), "result": {"content": [{"type": "text", "text": SECRET}]}}
        # wsgiref writes header values as ISO-8859-1: one byte 0xE9.
        return [("Content-Type", "application/json"), ("X-Odd", "caf\u00e9")], json.dumps(result).encode()
    if case == "non-ascii-name":
        result = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": {"content": []}}).encode()
        # wsgiref writes header names as ISO-8859-1: one byte 0xE9.
        return [("Content-Type", "application/json"), ("X-Caf\u00e9", "1")], result
    if case == "two-sessions":
        result = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": {"content": []}}).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Mcp-Session-Id", "upstream-one"),
            ("Mcp-Session-Id", "upstream-two"),
        ]
        return headers, result
    return None


@pytest.fixture(scope="module")
def framing_stack(e2e_workdir: Path) -> Iterator[Stack]:
    with WsgiUpstream(answer=answer) as upstream:
        with running(
            lambda: Stack(
                workdir=e2e_workdir / "framing",
                with_server=False,
                server_port=upstream.port,
                header_mode=HEADER_MODE,
            )
        ) as instance:
            yield instance


def post(stack: Stack, method: str, name: str | None, params: dict[str, Any], case: str) -> tuple[httpx.Response, str]:
    request_id = f"framing-{uuid.uuid4().hex[:10]}"
    body = rpc_body(method, params, id=request_id)
    body["params"]["_meta"][MARKER] = case
    headers = rpc_headers(method, name, token=token_for("bob"))
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.listen_port}", timeout=10) as http:
        return http.post("/mcp", headers=headers, content=json.dumps(body)), request_id


@pytest.mark.parametrize("case", list(REPEATED))
def test_a_list_with_repeated_framing_headers_is_replaced(framing_stack, case):
    mark = framing_stack.envoy_log.mark()
    response, request_id = post(framing_stack, "tools/list", None, {}, case)
    text = response.text
    shown = {name for name in ALL_TOOLS if f'"{name}"' in text}
    assert not shown & HIDDEN_FROM_BOB, f"bob saw hidden tools {shown & HIDDEN_FROM_BOB}: {text[:300]}"
    assert "search_docs" not in shown, f"the list went through: {text[:300]}"
    [audit] = audits_where(framing_stack.envoy_log, mark, decision="deny", jsonrpc_id=request_id)
    assert any(reason in audit["reason"] for reason in REPEATED[case][1]), audit


def test_two_upstream_session_ids_reach_the_client_as_neither(framing_stack):
    response, _ = post(
        framing_stack, "tools/call", "search_docs", {"name": "search_docs", "arguments": {"query": "x"}}, "two-sessions"
    )
    assert response.status_code == 502, (response.status_code, response.text)
    ids = response.headers.get_list("mcp-session-id")
    assert not any(value.startswith("upstream-") for value in ids), ids


def test_an_upstream_header_name_that_is_not_ascii_never_reaches_warden(framing_stack):
    mark = framing_stack.envoy_log.mark()
    params = {"name": "search_docs", "arguments": {"query": "x"}}
    response, _ = post(framing_stack, "tools/call", "search_docs", params, "non-ascii-name")
    assert response.status_code == 502, (response.status_code, response.text)
    assert "panicked" not in framing_stack.envoy_log.text(mark)
    # The worker's VM is still there: the next call is answered by the upstream.
    response, request_id = post(framing_stack, "tools/call", "search_docs", params, "none")
    assert response.status_code == 200, (response.status_code, response.text)
    assert json.loads(response.text)["id"] == request_id


def test_an_upstream_header_value_that_is_not_text_lets_nothing_through(framing_stack):
    """Header values are read as bytes (the SDK's text reading panicked on
    one and killed the VM: 503 for this call and every later one): an
    upstream answer with a value that is not UTF-8 reaches the client as an
    error, none of its body goes through, and the worker serves the next
    call."""
    mark = framing_stack.envoy_log.mark()
    params = {"name": "search_docs", "arguments": {"query": "x"}}
    response, _ = post(framing_stack, "tools/call", "search_docs", params, "non-utf8-value")
    # This stack binds sessions: a response head Warden cannot read cannot
    # have its session id sealed either, so the client gets 502.
    assert response.status_code == 502, (response.status_code, response.text)
    assert SECRET not in response.text, response.text[:300]
    assert "panicked" not in framing_stack.envoy_log.text(mark)
    response, request_id = post(framing_stack, "tools/call", "search_docs", params, "none")
    assert response.status_code == 200, (response.status_code, response.text)
    assert json.loads(response.text)["id"] == request_id
