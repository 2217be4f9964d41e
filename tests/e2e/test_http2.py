"""MCP over HTTP/2 through real Envoy: h2c with prior knowledge, request and
response trailers.

Envoy's listener accepts HTTP/1.1 and h2c alike (`codec_type: AUTO`). Over
HTTP/2 a request body can end without END_STREAM on its last DATA frame, a
trailers HEADERS frame carrying END_STREAM after it: the filter's body
callbacks then never see the end of the body, and the request-trailers
callback is the last one. A filter that holds the body until its end and lets
trailers continue would forward that request unjudged (the trailers attack).
The raw client in `h2_client.py` sends each shape of request body:

* `plain`: one DATA frame with END_STREAM (what every SDK client sends);
* `trailers`: one DATA frame without END_STREAM, then trailers;
* `split+trailers`: two DATA frames without END_STREAM, then trailers, and
  no `content-length` (so Envoy sends the body upstream chunked);
* `split`: two DATA frames, the second with END_STREAM, no `content-length`
  (the last body callback must judge the whole body, its own chunk too).

Every request also carries forged `x-warden-*` identity headers, which must
never reach the server. Three stacks, each in the run's header mode
(`WARDEN_HEADER_MODE`):

* the session's `stack` (example server over HTTP/1.1): denied calls are
  denied and never run, allowed ones run with the verified identity, and h2c
  answers are the HTTP/1.1 ones;
* `jwks_stack`: the example policy with its key set fetched from a loopback
  identity provider; a token with an unknown `kid` and a bad signature is
  refused with 401 whatever the body's shape;
* `h2_stack`: Envoy talks h2c to `h2_upstream.py`, which answers every POST
  with a `tools/list` result listing tools hidden from bob, ending its
  answer with response trailers (or not): bob must get the filtered list in
  JSON and SSE framing, audited with `list.removed`; request trailers of an
  allowed request reach it; no body byte of a denied request does.
"""

from __future__ import annotations

import json
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator

import h2_client
import httpx
import mint_token
import pytest
from conftest import (
    HEADER_MODE,
    REPO_ROOT,
    binaries_or_fail,
    http_client,
    rpc_body,
    rpc_headers,
    running,
    token_for,
)
from h2_upstream import ANSWER_HEADER, ANSWERS, RESPONSE_TRAILERS, TOOL_NAMES, H2Upstream
from helpers import assert_jsonrpc_denial, audits_where, loopback_http_server, send_json, tool_entries
from warden_stack import Stack, StackError, policy_variant

SHAPES = {
    "plain": {"trailers": None, "chunks": 1},
    "trailers": {"trailers": [("x-client-checksum", "sha256:e2e")], "chunks": 1},
    "split+trailers": {"trailers": [("x-client-checksum", "sha256:e2e")], "chunks": 2, "content_length": False},
    # Two DATA frames, the second with END_STREAM: the last body callback
    # must judge the whole body, its own chunk included.
    "split": {"trailers": None, "chunks": 2, "content_length": False},
}
TRAILER_SHAPES = [shape for shape in SHAPES if SHAPES[shape]["trailers"]]
FORGED = {
    "x-warden-subject": "mallory",
    "x-warden-actor-type": "service",
    "x-warden-actor": "root",
    "x-warden-chain": '["mallory"]',
}
FORGED_VALUES = set(FORGED.values())


def h2_post(
    port: int,
    token: str | None,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    shape: str = "plain",
    extra_headers: dict[str, str] | None = None,
) -> tuple[h2_client.H2Response, str, bytes]:
    """One 2026-07-28 POST over h2c with forged identity headers; returns the
    response, the JSON-RPC id and the body sent."""
    request_id = f"h2-{uuid.uuid4().hex[:12]}"
    headers = rpc_headers(method, name, token=token)
    headers.update(FORGED)
    headers.update(extra_headers or {})
    body = json.dumps(rpc_body(method, params, id=request_id)).encode()
    response = h2_client.request(port, headers, body, **SHAPES[shape])
    return response, request_id, body


def tool_call_h2(port: int, token: str | None, tool: str, arguments: dict[str, Any], **options: Any):
    return h2_post(port, token, "tools/call", {"name": tool, "arguments": arguments}, name=tool, **options)


def json_body(response: h2_client.H2Response) -> Any:
    assert response.content_type.startswith("application/json"), response
    return json.loads(response.body)


def messages(response: h2_client.H2Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an answer in JSON or SSE framing."""
    if response.content_type.startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.body.decode().splitlines() if line.startswith("data:")]
        return [json.loads(item) for item in data if item]
    return [json_body(response)]


def assert_no_forged_identity(headers: dict[str, list[str]] | list[tuple[str, str]]) -> None:
    pairs = (
        [(k, v) for k, values in headers.items() for v in values] if isinstance(headers, dict) else list(headers)
    )
    forged = [(k, v) for k, v in pairs if k.startswith("x-warden-") and v in FORGED_VALUES]
    assert not forged, f"a forged identity header reached the upstream: {forged}"


# --- the session stack: the example server over HTTP/1.1 ----------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_denied_tool_call_over_h2c_is_denied_and_never_runs(stack, shape):
    """research-agent may not delete repositories (rule no-agent-deletes),
    however the body ends."""
    calls, log = stack.call_log.mark(), stack.envoy_log.mark()
    response, request_id, _ = tool_call_h2(
        stack.listen_port, token_for("research-agent"), "delete_repo", {"name": f"repo-{shape}"}, shape=shape
    )
    assert response.status == 200, response
    assert_jsonrpc_denial(json_body(response), request_id, rule="no-agent-deletes")
    [audit] = audits_where(stack.envoy_log, log, jsonrpc_id=request_id)
    assert (audit["decision"], audit["rule"], audit["subject"], audit["tool"]) == (
        "deny",
        "no-agent-deletes",
        "research-agent",
        "delete_repo",
    ), audit
    # Audit lines come in order: an allowed call after it proves the denied
    # one had its chance to reach the server.
    sentinel, _, _ = tool_call_h2(stack.listen_port, token_for("alice"), "search_docs", {"query": "sentinel"})
    assert sentinel.status == 200, sentinel
    assert tool_entries(stack.call_log.entries(calls)) == [("search_docs", {"query": "sentinel"})], (
        "the denied delete_repo reached the example server"
    )


@pytest.mark.parametrize("shape", list(SHAPES))
def test_an_allowed_tool_call_over_h2c_runs_with_the_verified_identity(stack, shape):
    calls, log = stack.call_log.mark(), stack.envoy_log.mark()
    query = f"h2c-{shape}-{uuid.uuid4().hex[:8]}"
    response, request_id, _ = tool_call_h2(
        stack.listen_port, token_for("alice"), "search_docs", {"query": query}, shape=shape
    )
    assert response.status == 200, response
    body = json_body(response)
    assert body.get("id") == request_id and "error" not in body, body
    assert query in body["result"]["content"][0]["text"], body
    entries = stack.call_log.entries(calls)
    assert tool_entries(entries) == [("search_docs", {"query": query})], entries
    headers = entries[0]["headers"]
    assert headers.get("x-warden-subject") == ["alice"], headers
    assert headers.get("x-warden-actor-type") == ["human"], headers
    assert "x-warden-actor" not in headers, headers
    assert_no_forged_identity(headers)
    [audit] = audits_where(stack.envoy_log, log, jsonrpc_id=request_id)
    assert (audit["decision"], audit["rule"], audit["subject"]) == ("allow", "search-docs", "alice"), audit


@pytest.mark.parametrize(
    "principal, tool, arguments",
    [
        ("research-agent", "delete_repo", {"name": "warden"}),
        ("bob", "deploy", {"environment": "production"}),
        ("alice", "search_docs", {"query": "same answer"}),
    ],
    ids=["rule-deny", "default-deny", "allow"],
)
def test_h2c_answers_are_the_http1_answers(stack, principal, tool, arguments):
    """The same request over HTTP/1.1 and over h2c gets the same status and body."""
    token = token_for(principal)
    request_id = f"same-{uuid.uuid4().hex[:8]}"
    headers = rpc_headers("tools/call", tool, token=token)
    body = json.dumps(rpc_body("tools/call", {"name": tool, "arguments": arguments}, id=request_id)).encode()
    with http_client(stack) as http:
        over_http1 = http.post("/mcp", headers=headers, content=body)
    over_h2 = h2_client.request(stack.listen_port, headers, body)
    assert over_h2.status == over_http1.status_code, (over_h2, over_http1.text)
    assert over_h2.content_type == over_http1.headers.get("content-type"), (over_h2, over_http1.headers)
    # A denial names its request's own request_id: the one thing that differs.
    answers = [_without_request_id(json.loads(over_h2.body)), _without_request_id(over_http1.json())]
    assert answers[0] == answers[1], (over_h2, over_http1.text)


def _without_request_id(answer: dict[str, Any]) -> dict[str, Any]:
    data = answer.get("error", {}).get("data")
    if isinstance(data, dict):
        assert isinstance(data.pop("request_id", ""), str), answer
    return answer


# --- a key set fetched from the identity provider ------------------------------

DEMO_JWKS = json.loads((REPO_ROOT / "examples" / "keys" / "demo.jwks.json").read_text())


class _JwksHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status, body = (200, DEMO_JWKS) if self.path == "/jwks" else (404, {"error": "no such document"})
        send_json(self, status, body)


def _fetched_keys_policy(destination: Path) -> Path:
    """The example policy with its issuer's keys fetched from cluster `idp`."""

    path = policy_variant(destination)
    document = json.loads(path.read_text())
    issuer = document["identity"]["issuers"][0]
    issuer.pop("jwks", None)
    issuer["jwks_fetch"] = {
        "cluster": "idp",
        "path": "/jwks",
        "refresh_seconds": 3600,
        "min_refresh_interval_seconds": 1,
        "timeout_ms": 2000,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


@pytest.fixture(scope="module")
def jwks_stack(e2e_workdir: Path) -> Iterator[Stack]:
    """The example server and policy, keys from a loopback JWKS server (cluster
    `idp`); ready once a valid token is accepted."""
    binaries_or_fail()
    with loopback_http_server(_JwksHandler) as server:
        workdir = e2e_workdir / "h2-fetched-keys"
        try:
            instance = Stack(
                policy=_fetched_keys_policy(workdir / "policy.json"),
                workdir=workdir,
                clusters={"idp": server.server_address[1]},
                header_mode=HEADER_MODE,
            )
            instance.start()
        except StackError as error:
            pytest.fail(f"could not start the stack: {error}", pytrace=False)
        try:
            deadline = time.monotonic() + 20
            token = token_for("alice")
            with http_client(instance) as http:
                while True:
                    try:
                        response = http.post(
                            "/mcp",
                            headers=rpc_headers("tools/list", token=token),
                            content=json.dumps(rpc_body("tools/list", id=0)),
                        )
                        if response.status_code == 200:
                            break
                    except httpx.TimeoutException:
                        pass
                    if time.monotonic() >= deadline:
                        pytest.fail(f"the fetched key set did not load within 20s:\n{instance.envoy_log.text()[-3000:]}")
                    time.sleep(0.2)
            yield instance
        finally:
            instance.stop()


@pytest.mark.parametrize("shape", list(SHAPES))
def test_an_unknown_kid_with_a_bad_signature_is_refused_over_h2c(jwks_stack, shape):
    """A search_docs call (allowed for alice) with a token whose kid the
    provider does not know and whose signature is broken: 401 and an audit
    line, whatever the body's shape, and nothing reaches the server."""
    token = mint_token.bad_signature_token("alice", "human", groups=["eng"], kid=f"unknown-{uuid.uuid4().hex[:8]}")
    calls, log = jwks_stack.call_log.mark(), jwks_stack.envoy_log.mark()
    response, _, _ = tool_call_h2(jwks_stack.listen_port, token, "search_docs", {"query": f"kid-{shape}"}, shape=shape)
    assert response.status == 401, response
    challenge = response.header("www-authenticate") or ""
    assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge, response
    audits = audits_where(jwks_stack.envoy_log, log, decision="deny", status=401)
    assert len(audits) == 1, jwks_stack.envoy_log.audits(log)
    assert audits[0].get("subject") in (None, ""), audits[0]
    # A valid token after it (same shape) is accepted: the refusal was the token's.
    after, _, _ = tool_call_h2(
        jwks_stack.listen_port, token_for("alice"), "search_docs", {"query": "after"}, shape=shape
    )
    assert after.status == 200 and "result" in json_body(after), after
    assert tool_entries(jwks_stack.call_log.entries(calls)) == [("search_docs", {"query": "after"})], (
        "the request with the refused token reached the server"
    )


# --- an h2c upstream that ends its answers with trailers -----------------------


@pytest.fixture(scope="module")
def h2_upstream() -> Iterator[H2Upstream]:
    with H2Upstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def h2_stack(e2e_workdir: Path, h2_upstream: H2Upstream) -> Iterator[Stack]:
    with running(
        lambda: Stack(
            workdir=e2e_workdir / "h2c-upstream",
            with_server=False,
            server_port=h2_upstream.port,
            upstream_protocol="h2c",
            header_mode=HEADER_MODE,
        )
    ) as instance:
        yield instance


BOB_SEES = ["search_docs", "read_file"]
BOB_MISSES = [name for name in TOOL_NAMES if name not in BOB_SEES]


@pytest.mark.parametrize("answer", ANSWERS)
def test_a_list_from_an_h2c_upstream_is_filtered(h2_stack, h2_upstream, answer):
    """bob lists the tools; the upstream lists three he could not use, in JSON or
    SSE, with or without response trailers: he gets the filtered list."""
    log = h2_stack.envoy_log.mark()
    response, request_id, _ = h2_post(
        h2_stack.listen_port, token_for("bob"), "tools/list", extra_headers={ANSWER_HEADER: answer}
    )
    assert response.status == 200 and response.reset_code is None, response
    expected_type = "text/event-stream" if answer.startswith("sse") else "application/json"
    assert response.content_type.startswith(expected_type), response
    [message] = messages(response)
    assert message.get("id") == request_id and "error" not in message, message
    assert [tool["name"] for tool in message["result"]["tools"]] == BOB_SEES, message
    decision, filtered = audits_where(h2_stack.envoy_log, log, count=2, jsonrpc_id=request_id)
    assert (decision["decision"], decision["rule"], decision["method"]) == ("allow", "list-catalogue", "tools/list")
    assert filtered["list"] == {"kind": "tools", "kept": len(BOB_SEES), "removed": BOB_MISSES}, filtered
    assert filtered["request_id"] == decision["request_id"], (decision, filtered)


def test_an_unfiltered_list_keeps_the_response_trailers(h2_stack):
    """Nothing to remove for someone who could use every listed tool: the
    answer passes whole, trailers included."""
    everyone = token_for("alice", groups=["eng", "admins", "finance"])
    response, request_id, _ = h2_post(
        h2_stack.listen_port, everyone, "tools/list", extra_headers={ANSWER_HEADER: "json+trailers"}
    )
    assert response.status == 200, response
    assert [tool["name"] for tool in json_body(response)["result"]["tools"]] == TOOL_NAMES, response
    assert json_body(response)["id"] == request_id
    assert response.trailers == RESPONSE_TRAILERS, response


@pytest.mark.parametrize("shape", TRAILER_SHAPES)
def test_request_trailers_of_an_allowed_request_reach_the_h2c_upstream(h2_stack, h2_upstream, shape):
    mark = h2_upstream.mark()
    response, request_id, sent = h2_post(
        h2_stack.listen_port,
        token_for("bob"),
        "tools/list",
        shape=shape,
        extra_headers={ANSWER_HEADER: "json+trailers"},
    )
    assert response.status == 200, response
    assert [tool["name"] for tool in json_body(response)["result"]["tools"]] == BOB_SEES, response
    [received] = h2_upstream.since(mark)
    assert received.ended and not received.reset, received
    assert received.body == sent, received
    assert ("x-client-checksum", "sha256:e2e") in received.trailers, received
    assert received.header("x-warden-subject") == ["bob"], received.headers
    assert_no_forged_identity(received.headers)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_no_byte_of_a_denied_request_body_reaches_the_h2c_upstream(h2_stack, h2_upstream, shape):
    """bob may not deploy. In `hold` mode the upstream sees nothing of the
    request; in `stream` mode its headers may arrive (with bob's verified
    identity), but never a body byte or the trailers, and the stream is not
    ended."""
    marker = uuid.uuid4().hex
    mark, log = h2_upstream.mark(), h2_stack.envoy_log.mark()
    response, request_id, _ = tool_call_h2(
        h2_stack.listen_port,
        token_for("bob"),
        "deploy",
        {"environment": "production"},
        shape=shape,
        extra_headers={"x-e2e-request": marker},
    )
    assert response.status == 200, response
    assert_jsonrpc_denial(json_body(response), request_id, rule=None)
    audits_where(h2_stack.envoy_log, log, jsonrpc_id=request_id, decision="deny")
    # A later allowed request through the same Envoy has reached the upstream
    # once this returns, so anything of the denied one would have too.
    after, _, _ = h2_post(h2_stack.listen_port, token_for("bob"), "tools/list")
    assert after.status == 200, after
    seen = [r for r in h2_upstream.since(mark) if r.header("x-e2e-request") == [marker]]
    if HEADER_MODE == "hold":
        assert seen == [], f"header mode hold: the denied request reached the upstream: {seen}"
    for received in seen:
        assert received.body == b"" and not received.trailers and not received.ended, received
        assert received.header("x-warden-subject") == ["bob"], received.headers
        assert_no_forged_identity(received.headers)
