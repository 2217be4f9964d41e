"""Request shapes a server could read otherwise than Warden judged them,
through real Envoy, in the run's header mode.

* A GET or DELETE carrying a body: Warden judges a GET or DELETE by its
  headers, so a body (a JSON-RPC call a server might run) would reach the
  upstream unjudged. It is refused with 400 (-32600, audited as a deny)
  however it comes: HTTP/1.1 with `Content-Length` or chunked, h2c with a
  HEADERS frame lacking END_STREAM and DATA frames after it. A GET whose
  stream ends with an empty body (an empty DATA frame with END_STREAM, a
  chunked GET with the last chunk only, `Content-Length: 0`) is a plain GET.
* `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`: a framework
  honouring one would run another method than the one judged. Refused with
  400 on the headers, so nothing of the request reaches the upstream.
* A forged identity in another spelling: a WSGI (or CGI) server reads
  `x_warden_subject`, `X-Warden_Subject` and `x-warden-subject` alike as
  `HTTP_X_WARDEN_SUBJECT`. A real `wsgiref` application behind Envoy
  (`wsgi_upstream.py`) records what it sees: only the verified identity,
  with the bootstrap `warden envoy` renders (Envoy drops header names with
  underscores, `headers_with_underscores_action: DROP_HEADER`) and with that
  switched to `ALLOW` (Warden's own removal, without Envoy's help).

The GET and DELETE tests open 2025 sessions on the session stack (the
example server): a 2026-07-28 GET is refused on its headers already.
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from pathlib import Path
from typing import Any, Iterator

import h1_client
import h2.config
import h2.connection
import h2.events
import h2_client
import mint_token
import pytest
from conftest import (
    HEADER_MODE,
    http_client,
    legacy_headers,
    open_legacy_session,
    rpc_body,
    rpc_headers,
    running,
    token_for,
    tool_call,
)
from helpers import audits_where, tool_entries
from warden_stack import Stack
from wsgi_upstream import ANSWER_TEXT, WsgiUpstream

INVALID_REQUEST = -32600
TRANSPORTS = ["http1", "h2c"]


def body_refused(method: str) -> str:
    return f"a {method} request must not carry a body: it would reach the upstream unjudged"


def override_refused(header: str) -> str:
    return f"the `{header}` header is refused: the request is judged by its own method"


def send(
    transport: str,
    port: int,
    method: str,
    headers: dict[str, str] | list[tuple[str, str]],
    body: bytes | None,
    **options: Any,
) -> h1_client.H1Response | h2_client.H2Response:
    """One request over HTTP/1.1 (`h1_client`) or h2c (`h2_client`); the
    options are those of the transport's client."""
    if transport == "http1":
        return h1_client.request(port, method, headers, body, **options)
    return h2_client.request(port, headers, body or b"", method=method, **options)



def assert_refused(response: Any, reason: str) -> dict[str, Any]:
    """400 with a JSON-RPC -32600 error naming `reason`."""
    assert response.status == 400, response
    assert response.content_type == "application/json", response
    body = json.loads(response.body)
    assert body["jsonrpc"] == "2.0" and "result" not in body, body
    assert body["error"]["code"] == INVALID_REQUEST, body
    assert body["error"]["data"]["reason"] == reason, body
    return body


def assert_get_body_refused(response: Any, stack: Stack, log: Any) -> dict[str, Any]:
    """A GET that carried a body, refused; its audit line. In `stream` mode
    the outcome is a race no test can steer: Envoy usually reads the body
    with the headers (400), but the application may answer the GET first
    (always, when the body comes late), and Warden then refuses to pass an
    answer to a request it has not finished judging (502)."""
    if HEADER_MODE == "hold" or response.status != 502:
        assert_refused(response, body_refused("GET"))
        reason = body_refused("GET")
    else:
        assert response.body == b"warden: the request was not judged\n", response
        reason = "the upstream answered before the request was judged"
    [audit] = audits_where(stack.envoy_log, log, reason=reason)
    assert (audit["decision"], audit["status"]) == ("deny", response.status), audit
    return audit


def search_sentinel(stack: Stack) -> str:
    """An allowed search_docs by alice; once answered, anything of an earlier
    request through the same Envoy has reached the server. Its query."""
    query = f"sentinel-{uuid.uuid4().hex[:8]}"
    with http_client(stack) as http:
        response = tool_call(http, token_for("alice"), "search_docs", {"query": query})
    assert response.status_code == 200, response.text
    return query


# --- GET and DELETE with a body (the session stack) -----------------------------

# How the body of a GET or DELETE travels: (transport, client options).
BODY_SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    "http1-content-length": ("http1", {}),
    "http1-chunked": ("http1", {"chunked": True}),
    "h2c": ("h2c", {}),
    "h2c-two-frames-no-length": ("h2c", {"chunks": 2, "content_length": False}),
}


@pytest.fixture
def agent_session(stack: Stack) -> str:
    """A 2025 session of research-agent, opened through Envoy."""
    with http_client(stack) as http:
        return open_legacy_session(http, token_for("research-agent"))


@pytest.fixture
def alice_sessions(stack: Stack) -> Iterator[Any]:
    """Opens 2025 sessions of alice on demand."""
    with http_client(stack) as http:
        yield lambda: open_legacy_session(http, token_for("alice"))


@pytest.mark.parametrize("shape", list(BODY_SHAPES))
def test_a_get_with_a_body_is_refused_and_nothing_runs(stack, agent_session, shape):
    """research-agent's GET on its own session (allowed on its headers)
    carries a `tools/call` of delete_repo, which it may never call."""
    transport, options = BODY_SHAPES[shape]
    token = token_for("research-agent")
    headers = legacy_headers(token, agent_session) | {"Accept": "text/event-stream"}
    request_id = f"get-body-{uuid.uuid4().hex[:8]}"
    body = json.dumps(
        rpc_body("tools/call", {"name": "delete_repo", "arguments": {"name": shape}}, id=request_id, modern=False)
    ).encode()
    calls, log = stack.call_log.mark(), stack.envoy_log.mark()

    response = send(transport, stack.listen_port, "GET", headers, body, **options)

    assert_refused(response, body_refused("GET"))
    [audit] = audits_where(stack.envoy_log, log, reason=body_refused("GET"))
    assert (audit["decision"], audit["status"], audit["subject"]) == ("deny", 400, "research-agent"), audit
    query = search_sentinel(stack)
    assert tool_entries(stack.call_log.entries(calls)) == [("search_docs", {"query": query})], (
        "the GET's body ran on the server"
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_delete_with_a_body_is_refused(stack, alice_sessions, transport):
    session_id = alice_sessions()
    token = token_for("alice")
    body = json.dumps(
        rpc_body("tools/call", {"name": "search_docs", "arguments": {"query": "in a DELETE"}}, id=1, modern=False)
    ).encode()
    calls, log = stack.call_log.mark(), stack.envoy_log.mark()

    response = send(transport, stack.listen_port, "DELETE", legacy_headers(token, session_id), body)

    assert_refused(response, body_refused("DELETE"))
    [audit] = audits_where(stack.envoy_log, log, reason=body_refused("DELETE"))
    assert (audit["decision"], audit["status"], audit["subject"]) == ("deny", 400, "alice"), audit
    query = search_sentinel(stack)
    assert tool_entries(stack.call_log.entries(calls)) == [("search_docs", {"query": query})]


# A GET whose stream ends with an empty body, against the same GET ending on
# its headers: (transport, options of the empty ending, body of the empty ending).
EMPTY_ENDINGS: dict[str, tuple[str, dict[str, Any], bytes | None]] = {
    "h2c-empty-data-frame": ("h2c", {"empty_data_end": True}, None),
    "http1-chunked-last-chunk-only": ("http1", {"chunked": True}, b""),
    "http1-content-length-0": ("http1", {}, b""),
}


@pytest.mark.parametrize("ending", list(EMPTY_ENDINGS))
def test_a_get_ending_with_an_empty_body_is_a_plain_get(stack, alice_sessions, ending):
    """Each GET opens the session's SSE stream (two sessions: one stream per
    session); only the answer's head is read, then the connection closed."""
    transport, options, empty_body = EMPTY_ENDINGS[ending]
    token = token_for("alice")
    answers = []
    for body, extra in ((None, {}), (empty_body, options)):
        headers = legacy_headers(token, alice_sessions()) | {"Accept": "text/event-stream"}
        answers.append(send(transport, stack.listen_port, "GET", headers, body, headers_only=True, **extra))
    plain, empty = answers
    assert plain.status == 200 and plain.content_type.startswith("text/event-stream"), plain
    assert (empty.status, empty.content_type) == (plain.status, plain.content_type), (plain, empty)


# --- method-override headers -----------------------------------------------------

OVERRIDES = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("header", OVERRIDES)
def test_a_method_override_header_is_refused(stack, header, transport):
    """An allowed search_docs POST by alice, asking to be taken as a GET."""
    query = f"override-{uuid.uuid4().hex[:8]}"
    headers = rpc_headers("tools/call", "search_docs", token=token_for("alice")) | {header: "GET"}
    body = json.dumps(rpc_body("tools/call", {"name": "search_docs", "arguments": {"query": query}}, id=7)).encode()
    calls, log = stack.call_log.mark(), stack.envoy_log.mark()

    response = send(transport, stack.listen_port, "POST", headers, body)

    assert_refused(response, override_refused(header.lower()))
    [audit] = audits_where(stack.envoy_log, log, reason=override_refused(header.lower()))
    assert (audit["decision"], audit["status"], audit["subject"]) == ("deny", 400, "alice"), audit
    sentinel = search_sentinel(stack)
    assert tool_entries(stack.call_log.entries(calls)) == [("search_docs", {"query": sentinel})], (
        "the overridden POST reached the server"
    )


# --- header bytes that are not text -------------------------------------------------

UNREADABLE_ANSWER = b"warden: a request header value is not UTF-8 text; the request was not forwarded\n"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("value", [b"caf\xe9", b"\xff\xfe", b"ok \x80"], ids=["latin-1", "bom-bytes", "lone-continuation"])
@pytest.mark.parametrize("header", ["X-Odd", "Authorization"])
def test_a_header_value_that_is_not_text_is_refused_and_the_worker_lives(stack, header, value, transport):
    """HTTP lets a header value carry bytes above 0x7f (obs-text), and Envoy
    passes them on. The proxy-wasm SDK's text reading of the header map
    panicked on one: a single request from anyone killed the worker's VM,
    and every later request was refused (503) until a reload. Warden reads
    values as bytes: 400 with an audit line, nothing forwarded, and the next
    request is judged as always (an allowed search reaches the server)."""
    query = f"odd-{uuid.uuid4().hex[:8]}"
    headers = rpc_headers("tools/call", "search_docs", token=token_for("alice"))
    if header == "Authorization":
        headers[header] = b"Bearer " + value  # type: ignore[assignment]
    else:
        headers[header] = value  # type: ignore[assignment]
    body = json.dumps(rpc_body("tools/call", {"name": "search_docs", "arguments": {"query": query}}, id=7)).encode()
    calls, log = stack.call_log.mark(), stack.envoy_log.mark()

    response = send(transport, stack.listen_port, "POST", headers, body)

    assert response.status == 400, response
    assert response.body == UNREADABLE_ANSWER, response
    reason = f"reading the request headers failed: the value of `{header.lower()}` is not UTF-8"
    [audit] = audits_where(stack.envoy_log, log, reason=reason)
    assert (audit["decision"], audit["status"]) == ("deny", 400), audit
    assert audit["request_id"] and not audit["time"].startswith("1970"), audit
    assert "panicked" not in stack.envoy_log.text(log)
    sentinel = search_sentinel(stack)
    assert tool_entries(stack.call_log.entries(calls)) == [("search_docs", {"query": sentinel})], (
        "the request with the odd header reached the server"
    )


def non_ascii_name_over_h2c(port: int) -> list[Any]:
    """A HEADERS frame with a name byte above 0x7f (h2's own checks off);
    the events until the stream or the connection ends."""
    config = h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False
    )
    conn = h2.connection.H2Connection(config=config)
    events: list[Any] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        request = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"127.0.0.1"), (b":path", b"/mcp")]
        conn.send_headers(stream, [*request, (b"x-caf\xe9", b"1")], end_stream=True)
        sock.sendall(conn.data_to_send())
        ends = (h2.events.StreamEnded, h2.events.StreamReset, h2.events.ConnectionTerminated)
        while not any(isinstance(event, ends) for event in events):
            data = sock.recv(65536)
            if not data:
                break
            events.extend(conn.receive_data(data))
            sock.sendall(conn.data_to_send())
    return events


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_header_name_that_is_not_ascii_never_reaches_warden(stack, transport):
    """Warden still reads header names as text (through the SDK): it relies
    on Envoy's codecs admitting only token characters in a name. Envoy
    refuses such a request itself (HTTP/1.1: 400; h2c: the stream or the
    connection ends without an answer), and the worker serves the next one."""
    log = stack.envoy_log.mark()
    if transport == "http1":
        head = (
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 2\r\n"
            b"X-Caf\xe9: 1\r\n\r\n{}"
        )
        with socket.create_connection(("127.0.0.1", stack.listen_port), timeout=10) as sock:
            sock.sendall(head)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    else:
        events = non_ascii_name_over_h2c(stack.listen_port)
        answered = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
        assert not answered, events
    assert "panicked" not in stack.envoy_log.text(log)
    search_sentinel(stack)


# --- a WSGI upstream and forged identity headers ----------------------------------

UNDERSCORES = "headers_with_underscores_action: DROP_HEADER"


@pytest.fixture(scope="module")
def wsgi_upstream() -> Iterator[WsgiUpstream]:
    with WsgiUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module", params=["DROP_HEADER", "ALLOW"])
def wsgi_stack(request, e2e_workdir: Path, wsgi_upstream: WsgiUpstream) -> Iterator[Stack]:
    """Envoy and Warden in front of the WSGI application: with the bootstrap as
    rendered (DROP_HEADER), and with Envoy letting names with underscores
    through (ALLOW)."""
    action = request.param

    def underscores(config: str) -> str:
        assert config.count(UNDERSCORES) == 1, "the rendered bootstrap no longer drops names with underscores"
        return config.replace(UNDERSCORES, f"headers_with_underscores_action: {action}")

    with running(
        lambda: Stack(
            workdir=e2e_workdir / f"wsgi-{action.lower().replace('_', '-')}",
            with_server=False,
            server_port=wsgi_upstream.port,
            header_mode=HEADER_MODE,
            config_edit=underscores,
        )
    ) as instance:
        yield instance


def underscores_action(stack: Stack) -> str:
    """The `headers_with_underscores_action` in the bootstrap Envoy was given."""
    [action] = re.findall(r"headers_with_underscores_action: (\w+)", stack.config_path.read_text())
    return action


# Every spelling a WSGI application reads as an identity header, in the order
# sent: underscores for dashes, mixed case, a name Warden does not set, and the
# plain name. (HTTP/2 header names are lower case: h2_client lowers them.)
FORGED = [
    ("x_warden_subject", "root"),
    ("X-Warden_Actor", "evil"),
    ("X_WARDEN_ACTOR_TYPE", "service"),
    ("x-warden-made-up", "evil"),
    ("X-WARDEN-CHAIN", '["root"]'),
    ("x-warden-subject", "root"),
]
FORGED_VALUES = {value for _, value in FORGED}
# A name with underscores outside Warden's prefix: shows what Envoy itself lets
# through (dropped with DROP_HEADER, passed with ALLOW).
PROBE = ("x_e2e_probe", "through")


def wsgi_identity(subject: str, actor_type: str, chain: list[str], actor: str | None = None) -> dict[str, str]:
    """The environ keys a WSGI application gets from Warden's headers."""
    identity = {
        "HTTP_X_WARDEN_SUBJECT": subject,
        "HTTP_X_WARDEN_ACTOR_TYPE": actor_type,
        "HTTP_X_WARDEN_CHAIN": json.dumps(chain, separators=(",", ":")),
        "HTTP_X_WARDEN_ISSUER": mint_token.ISSUER,
    }
    if actor is not None:
        identity["HTTP_X_WARDEN_ACTOR"] = actor
    return identity


CALLERS = {
    "direct": ("alice", wsgi_identity("alice", "human", ["alice"])),
    "agent-for-alice": (
        "agent-for-alice",
        wsgi_identity("alice", "agent", ["alice", "research-agent"], actor="research-agent"),
    ),
}


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_wsgi_upstream_sees_only_the_verified_identity(wsgi_stack, wsgi_upstream, transport, caller):
    principal, expected = CALLERS[caller]
    marker = uuid.uuid4().hex
    request_id = f"wsgi-{marker[:8]}"
    headers = [
        *rpc_headers("tools/call", "search_docs", token=token_for(principal)).items(),
        *FORGED,
        PROBE,
        ("x-e2e-request", marker),
    ]
    body = rpc_body("tools/call", {"name": "search_docs", "arguments": {"query": "identity"}}, id=request_id)
    sent = json.dumps(body).encode()
    mark, log = wsgi_upstream.mark(), wsgi_stack.envoy_log.mark()

    response = send(transport, wsgi_stack.listen_port, "POST", headers, sent)

    assert response.status == 200, response
    answer = json.loads(response.body)
    assert answer["id"] == request_id and answer["result"]["content"][0]["text"] == ANSWER_TEXT, answer
    [audit] = audits_where(wsgi_stack.envoy_log, log, jsonrpc_id=request_id)
    assert (audit["decision"], audit["subject"]) == ("allow", "alice"), audit
    [seen] = wsgi_upstream.with_marker(mark, marker)
    assert seen.method == "POST" and seen.body == sent, seen
    # Exactly Warden's headers, one value each: no forged one, none joined.
    assert seen.identity == expected, seen.environ
    assert not FORGED_VALUES & {part for value in seen.identity.values() for part in value.split(",")}, seen
    # What Envoy did with a name with underscores outside Warden's prefix.
    probe = seen.environ.get("HTTP_X_E2E_PROBE")
    if underscores_action(wsgi_stack) == "ALLOW":
        assert probe == PROBE[1], f"Envoy (ALLOW) did not pass {PROBE[0]}: {seen.environ}"
    else:
        assert probe is None, f"Envoy (DROP_HEADER) passed {PROBE[0]}: {seen.environ}"


@pytest.mark.parametrize("header", OVERRIDES)
def test_a_method_override_never_reaches_a_wsgi_upstream(wsgi_stack, wsgi_upstream, header):
    """Refused on its headers: in either header mode, nothing of the request
    (not even its headers) reaches the application."""
    marker = uuid.uuid4().hex
    headers = rpc_headers("tools/call", "search_docs", token=token_for("alice")) | {
        header: "DELETE",
        "x-e2e-request": marker,
    }
    body = json.dumps(rpc_body("tools/call", {"name": "search_docs", "arguments": {"query": "x"}}, id=1)).encode()
    mark = wsgi_upstream.mark()
    assert_refused(h1_client.request(wsgi_stack.listen_port, "POST", headers, body), override_refused(header.lower()))
    after = h1_client.request(
        wsgi_stack.listen_port, "POST", rpc_headers("tools/call", "search_docs", token=token_for("alice")), body
    )
    assert after.status == 200, after
    assert wsgi_upstream.with_marker(mark, marker) == [], "the overridden request reached the WSGI upstream"


@pytest.mark.parametrize("shape", list(BODY_SHAPES))
def test_no_byte_of_a_get_body_reaches_a_wsgi_upstream(wsgi_stack, wsgi_upstream, shape):
    """A GET (2025, no session: allowed on its headers) carrying a body. In
    `hold` mode nothing of it reaches the application; in `stream` mode its
    headers may, with the verified identity, but never a body byte (and on
    a busy machine the application may answer first: 502)."""
    transport, options = BODY_SHAPES[shape]
    marker = uuid.uuid4().hex
    headers = legacy_headers(token_for("alice")) | {"x-e2e-request": marker}
    body = json.dumps(rpc_body("tools/call", {"name": "search_docs", "arguments": {"query": "x"}}, id=1, modern=False))
    mark, log = wsgi_upstream.mark(), wsgi_stack.envoy_log.mark()

    response = send(transport, wsgi_stack.listen_port, "GET", headers, body.encode(), **options)

    audit = assert_get_body_refused(response, wsgi_stack, log)
    assert audit["subject"] == "alice", audit
    after = h1_client.request(wsgi_stack.listen_port, "GET", legacy_headers(token_for("alice")))
    assert after.status == 200, after
    seen = wsgi_upstream.with_marker(mark, marker)
    if HEADER_MODE == "hold":
        assert seen == [], f"header mode hold: the refused GET reached the upstream: {seen}"
    for request in seen:
        assert request.body == b"", request
        assert request.identity == CALLERS["direct"][1], request


@pytest.mark.parametrize("content_length", [True, False], ids=["with-length", "no-length"])
def test_a_get_body_sent_late_never_reaches_a_wsgi_upstream(wsgi_stack, wsgi_upstream, content_length):
    """h2c: the GET's HEADERS frame, then its body half a second later. In
    `hold` mode the headers wait for the end of the stream: 400, nothing
    upstream. In `stream` mode they go upstream at once, and the application
    may answer the GET before the body comes (with no length to wait for, it
    does): Warden never passes an answer to a request it has not finished
    judging (502 instead), and no body byte follows the headers."""
    marker = uuid.uuid4().hex
    headers = legacy_headers(token_for("alice")) | {"x-e2e-request": marker}
    body = json.dumps(rpc_body("tools/call", {"name": "search_docs", "arguments": {"query": "x"}}, id=1, modern=False))
    mark, log = wsgi_upstream.mark(), wsgi_stack.envoy_log.mark()

    response = h2_client.request(
        wsgi_stack.listen_port,
        headers,
        body.encode(),
        method="GET",
        content_length=content_length,
        pause_before_body=0.5,
    )

    assert_get_body_refused(response, wsgi_stack, log)
    after = h1_client.request(wsgi_stack.listen_port, "GET", legacy_headers(token_for("alice")))
    assert after.status == 200, after
    seen = wsgi_upstream.with_marker(mark, marker)
    if HEADER_MODE == "hold":
        assert seen == [], f"header mode hold: the refused GET reached the upstream: {seen}"
    assert [request.body for request in seen] in ([], [b""]), seen
