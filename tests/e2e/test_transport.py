"""Streamable HTTP transport rules Warden enforces whoever asks, through real
Envoy: the MCP revision window, Origin, where a token may travel, the content
type of a POST, the 2026-07-28 transport having no GET/DELETE, and the
2026-07-28 request-metadata headers checked against the body. A refused
request never reaches the server, and headers never allow anything by
themselves: the body decides.

Most tests use the session stack (default settings). The module's own stack
narrows the revision window to 2025-06-18..2025-11-25 and allows one browser
origin, to show what each SDK client makes of that.
"""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import (
    CLIENT_KINDS,
    MODERN,
    b64_header,
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
from helpers import assert_allowed, audits_where, no_rule_allows, tool_entries

ALL_REVISIONS = ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]
HEADER_MISMATCH = -32020
UNSUPPORTED_VERSION = -32022
INVALID_REQUEST = -32600

# The module's stack: a narrower revision window and one allowed origin (a
# local web UI; the example server's own DNS-rebinding guard accepts
# http://localhost:* origins, so an allowed request goes all the way through).
WINDOW = {"min": "2025-06-18", "max": "2025-11-25"}
UI_ORIGIN = "http://localhost:5173"


@pytest.fixture(scope="module")
def narrow_stack(e2e_workdir):
    with variant_stack(
        e2e_workdir, "transport", filter={"protocol_versions": WINDOW, "allowed_origins": [UI_ORIGIN]}
    ) as instance:
        yield instance


@pytest.fixture
def narrow_http(narrow_stack):
    with http_client(narrow_stack) as client:
        yield client


def assert_refusal(response, status: int, code: int, message: str, *, request_id=None, reason: str | None = None):
    """A transport refusal: `status`, a JSON-RPC error `code`/`message` for
    `request_id` (null when refused before the body was read)."""
    assert response.status_code == status, (response.status_code, response.headers, response.text)
    assert response.headers.get("content-type") == "application/json", response.headers
    body = response.json()
    assert body["jsonrpc"] == "2.0" and "result" not in body, body
    assert body["id"] == request_id, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"] == message, body
    if reason is not None:
        assert body["error"]["data"]["reason"] == reason, body
    return body["error"]["data"]


def search(http, headers: dict, *, id="t-1", modern: bool = True, path: str = "/mcp", query: str = "transport"):
    body = rpc_body("tools/call", {"name": "search_docs", "arguments": {"query": query}}, id=id, modern=modern)
    return http.post(path, headers=headers, content=json.dumps(body))


# --- MCP-Protocol-Version --------------------------------------------------


@pytest.mark.parametrize("version", ["2024-11-05", "2099-01-01", "latest"])
def test_protocol_version_outside_the_window_is_400(stack, http, version):
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    headers = rpc_headers("tools/call", "search_docs", token=token_for("alice"), modern=False)
    headers["MCP-Protocol-Version"] = version
    data = assert_refusal(
        search(http, headers, modern=False),
        400,
        UNSUPPORTED_VERSION,
        "Unsupported protocol version",
        reason=f"MCP-Protocol-Version `{version}` is not supported",
    )
    assert data["supported"] == ALL_REVISIONS and data["requested"] == version, data
    assert stack.call_log.entries(mark) == []
    [audit] = audits_where(stack.envoy_log, log_mark, decision="deny", status=400)
    assert audit["reason"] == f"MCP-Protocol-Version `{version}` is not supported", audit


def test_missing_protocol_version_is_taken_as_2025_03_26(stack, http):
    """A 2025 session's POST without the header: 2025-03-26 is in the window, so it passes."""
    token = token_for("alice")
    session_id = open_legacy_session(http, token)
    mark = stack.call_log.mark()
    body = rpc_body("tools/call", {"name": "search_docs", "arguments": {"query": "unversioned"}}, id=5, modern=False)
    response = http.post("/mcp", headers=legacy_headers(token, session_id, version=None), content=json.dumps(body))
    assert response.status_code == 200, response.text
    [message] = jsonrpc_messages(response)
    assert message["id"] == 5 and "no documents match 'unversioned'" in message["result"]["content"][0]["text"]
    assert tool_entries(stack.call_log.entries(mark)) == [("search_docs", {"query": "unversioned"})]


def test_window_refuses_what_it_does_not_include(narrow_stack, narrow_http):
    mark = narrow_stack.call_log.mark()
    token = token_for("alice")
    # 2026-07-28 is outside: refused on the head, before the body is read.
    data = assert_refusal(
        search(narrow_http, rpc_headers("tools/call", "search_docs", token=token)),
        400,
        UNSUPPORTED_VERSION,
        "Unsupported protocol version",
    )
    assert data["supported"] == ["2025-06-18", "2025-11-25"] and data["requested"] == MODERN, data
    # No header on a request that is not initialize means 2025-03-26: outside too.
    # Judged with the body, so the error carries the request id.
    data = assert_refusal(
        search(narrow_http, legacy_headers(token, version=None), modern=False, id=77),
        400,
        UNSUPPORTED_VERSION,
        "Unsupported protocol version",
        request_id=77,
        reason="MCP-Protocol-Version is missing and the assumed 2025-03-26 is not supported",
    )
    assert data["requested"] == "2025-03-26", data
    assert narrow_stack.call_log.entries(mark) == []


@pytest.mark.parametrize("kind", [*CLIENT_KINDS, "mcp2.3-auto"])
def test_each_client_against_a_window_without_2026(narrow_stack, kind):
    """initialize carries no version header and passes; the 2025 clients
    negotiate 2025-11-25 and work. The 2.3 client in 2026-07-28 mode gets the
    -32022 error with the supported list; in `auto` mode it falls back to the
    2025 handshake after its server/discover POST is refused."""
    if kind == "mcp2.3-auto":
        client = make_client("mcp2.3-2026-07-28", narrow_stack.url)
        client.mode = "auto"
    else:
        client = make_client(kind, narrow_stack.url)
    mark = narrow_stack.call_log.mark()
    session = client.session(token_for("alice"), [call("search_docs", query=f"window {kind}")])
    assert session["connected"], session
    [result] = session["results"]
    exchanges = [(x["method"], x["mcp_method"], x["status"]) for x in session["http"]]
    if kind == "mcp2.3-2026-07-28":
        assert result["ok"] is False, result
        assert result["error"]["code"] == UNSUPPORTED_VERSION, result
        assert result["error"]["data"]["supported"] == ["2025-06-18", "2025-11-25"], result
        assert exchanges == [("POST", "tools/call", 400)], exchanges
        assert narrow_stack.call_log.entries(mark) == []
        return
    assert session["protocol_version"] == "2025-11-25", session
    assert_allowed(result, f"window {kind}")
    assert tool_entries(narrow_stack.call_log.entries(mark)) == [("search_docs", {"query": f"window {kind}"})]
    if kind == "mcp2.3-auto":
        assert exchanges[0] == ("POST", "server/discover", 400), exchanges


# --- Origin ----------------------------------------------------------------


@pytest.mark.parametrize("http_method", ["POST", "GET"])
def test_a_request_with_an_unlisted_origin_is_403(stack, http, http_method):
    """The default allow-list is empty: any browser Origin is refused (non-browser clients send none)."""
    mark = stack.call_log.mark()
    token = token_for("alice")
    if http_method == "POST":
        response = search(http, rpc_headers("tools/call", "search_docs", token=token) | {"Origin": "https://evil.example"})
    else:
        response = http.get("/mcp", headers=legacy_headers(token) | {"Origin": "https://evil.example"})
    assert_refusal(
        response, 403, INVALID_REQUEST, "Forbidden origin", reason="origin `https://evil.example` is not allowed"
    )
    assert stack.call_log.entries(mark) == []


def test_only_the_listed_origin_passes(narrow_stack, narrow_http):
    mark = narrow_stack.call_log.mark()
    token = token_for("alice")
    headers = legacy_headers(token) | {"Origin": UI_ORIGIN}
    session_id = open_legacy_session(narrow_http, token)
    response = search(narrow_http, headers | {"Mcp-Session-Id": session_id}, modern=False, id=8, query="from the ui")
    assert response.status_code == 200, response.text
    assert jsonrpc_messages(response)[0]["id"] == 8
    for origin in ("https://evil.example", "http://localhost:5174", "null"):
        assert_refusal(
            search(narrow_http, headers | {"Origin": origin, "Mcp-Session-Id": session_id}, modern=False),
            403,
            INVALID_REQUEST,
            "Forbidden origin",
            reason=f"origin `{origin}` is not allowed",
        )
    assert tool_entries(narrow_stack.call_log.entries(mark)) == [("search_docs", {"query": "from the ui"})]


# --- tokens in the query string, content type, 2026 GET/DELETE -------------


@pytest.mark.parametrize("query", ["access_token={token}", "x=1&ACCESS_TOKEN={token}", "access%5Ftoken={token}"])
def test_access_token_in_the_query_string_is_400(stack, http, query):
    """Refused even next to a valid Authorization header: a token in a URL ends up in logs."""
    mark = stack.call_log.mark()
    token = token_for("alice")
    response = search(http, rpc_headers("tools/call", "search_docs", token=token), path="/mcp?" + query.format(token=token))
    assert_refusal(response, 400, INVALID_REQUEST, "Invalid request")
    assert response.headers["www-authenticate"] == 'Bearer realm="warden", error="invalid_request"'
    assert token not in response.text
    assert stack.call_log.entries(mark) == []


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_post_that_is_not_json_is_415(stack, http, content_type):
    mark = stack.call_log.mark()
    headers = rpc_headers("tools/call", "search_docs", token=token_for("alice"))
    del headers["Content-Type"]
    if content_type is not None:
        headers["Content-Type"] = content_type
    assert_refusal(
        search(http, headers),
        415,
        INVALID_REQUEST,
        "Unsupported media type",
        reason=f"a POST to the MCP endpoint must be application/json, not `{content_type or '(none)'}`",
    )
    assert stack.call_log.entries(mark) == []


def test_json_with_parameters_is_accepted(stack, http):
    headers = rpc_headers("tools/call", "search_docs", token=token_for("alice"))
    headers["Content-Type"] = "application/json; charset=utf-8"
    response = search(http, headers, id="charset")
    assert response.status_code == 200 and response.json()["id"] == "charset", response.text


@pytest.mark.parametrize("http_method", ["GET", "DELETE"])
def test_2026_get_and_delete_are_405(stack, http, http_method):
    """2026-07-28 has no sessions and no GET stream."""
    headers = rpc_headers("tools/list", token=token_for("alice"))
    response = http.request(http_method, "/mcp", headers=headers)
    assert_refusal(
        response,
        405,
        INVALID_REQUEST,
        "Method not allowed",
        reason=f"revision 2026-07-28 has no sessions: `{http_method}` is not part of its transport",
    )
    assert response.headers["allow"] == "POST"


# --- 2026-07-28 request metadata against the body --------------------------


def _tool(tool: str, /, **arguments) -> dict:
    return {"name": tool, "arguments": arguments}


# (method in body, params, header overrides, reason) — every one must be refused
# with -32020 before reaching the server, though the body alone would be allowed
# or the header alone names something allowed.
MISMATCHES = {
    "method-header-differs": (
        "tools/call",
        _tool("search_docs", query="m"),
        {"Mcp-Method": "tools/list"},
        "Mcp-Method `tools/list` does not match the body's method `tools/call`",
    ),
    "name-header-names-an-allowed-tool": (
        "tools/call",
        _tool("delete_repo", name="warden"),
        {"Mcp-Name": "search_docs"},
        "Mcp-Name does not match the body's `delete_repo`",
    ),
    "name-header-names-a-denied-tool": (
        "tools/call",
        _tool("search_docs", query="m"),
        {"Mcp-Name": "delete_repo"},
        "Mcp-Name does not match the body's `search_docs`",
    ),
    "base64-name-of-another-tool": (
        "tools/call",
        _tool("delete_repo", name="warden"),
        {"Mcp-Name": b64_header("search_docs")},
        "Mcp-Name does not match the body's `delete_repo`",
    ),
    "malformed-base64-name": (
        "tools/call",
        _tool("search_docs", query="m"),
        {"Mcp-Name": "=?base64?not base64?="},
        "Mcp-Name does not match the body's `search_docs`",
    ),
    "name-header-missing": (
        "tools/call",
        _tool("search_docs", query="m"),
        {"Mcp-Name": None},
        "a 2026-07-28 `tools/call` request must carry Mcp-Name",
    ),
    "method-header-missing": (
        "tools/call",
        _tool("search_docs", query="m"),
        {"Mcp-Method": None},
        "a 2026-07-28 request must carry Mcp-Method",
    ),
    "resource-uri-differs": (
        "resources/read",
        {"uri": "docs://internal/roadmap"},
        {"Mcp-Name": "docs://public/intro"},
        "Mcp-Name does not match the body's `docs://internal/roadmap`",
    ),
    "prompt-name-differs": (
        "prompts/get",
        {"name": "summarize", "arguments": {"text": "t"}},
        {"Mcp-Name": "other"},
        "Mcp-Name does not match the body's `summarize`",
    ),
    "name-on-a-method-without-one": (
        "tools/list",
        {},
        {"Mcp-Name": "search_docs"},
        "`tools/list` carries no name, yet Mcp-Name was sent",
    ),
}


@pytest.mark.parametrize("case", list(MISMATCHES))
def test_header_body_mismatch_is_refused(stack, http, case):
    method, params, overrides, reason = MISMATCHES[case]
    request_id = f"mm-{uuid.uuid4().hex[:8]}"
    name = params.get("name", params.get("uri"))
    headers = rpc_headers(method, name, token=token_for("alice"))
    for header, value in overrides.items():
        if value is None:
            del headers[header]
        else:
            headers[header] = value
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    response = http.post("/mcp", headers=headers, content=json.dumps(rpc_body(method, params, id=request_id)))
    assert_refusal(response, 400, HEADER_MISMATCH, "Header mismatch", request_id=request_id, reason=reason)
    assert stack.call_log.entries(mark) == []
    [audit] = audits_where(stack.envoy_log, log_mark, jsonrpc_id=request_id)
    assert (audit["decision"], audit["status"], audit["reason"]) == ("deny", 400, reason), audit


def test_body_protocol_version_must_match_the_header(stack, http):
    mark = stack.call_log.mark()
    body = rpc_body("tools/call", _tool("search_docs", query="v"), id=31)
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2025-11-25"
    response = http.post(
        "/mcp", headers=rpc_headers("tools/call", "search_docs", token=token_for("alice")), content=json.dumps(body)
    )
    assert_refusal(
        response,
        400,
        HEADER_MISMATCH,
        "Header mismatch",
        request_id=31,
        reason='MCP-Protocol-Version `2026-07-28` does not match the body\'s protocol version "2025-11-25"',
    )
    assert stack.call_log.entries(mark) == []


def test_a_duplicated_metadata_header_is_refused(stack, http):
    """Two Mcp-Name headers would let two readers see two requests."""
    mark = stack.call_log.mark()
    headers = list(rpc_headers("tools/call", "search_docs", token=token_for("alice")).items())
    headers.append(("Mcp-Name", "delete_repo"))
    body = rpc_body("tools/call", _tool("search_docs", query="dup"), id=32)
    response = http.post("/mcp", headers=headers, content=json.dumps(body))
    assert_refusal(
        response, 400, HEADER_MISMATCH, "Invalid request", reason="the `mcp-name` header appears more than once"
    )
    assert stack.call_log.entries(mark) == []


def test_a_matching_base64_name_is_accepted(stack, http):
    mark = stack.call_log.mark()
    response = tool_call(
        http,
        token_for("alice"),
        "search_docs",
        {"query": "encoded"},
        id="b64",
        extra_headers={"Mcp-Name": b64_header("search_docs")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["content"][0]["text"] == "no documents match 'encoded'"
    body = rpc_body("resources/read", {"uri": "docs://public/intro"}, id="b64-uri")
    headers = rpc_headers("resources/read", b64_header("docs://public/intro"), token=token_for("bob"))
    response = http.post("/mcp", headers=headers, content=json.dumps(body))
    assert response.status_code == 200, response.text
    assert "Introduction" in response.json()["result"]["contents"][0]["text"]
    assert [(e["kind"], e["name"]) for e in stack.call_log.entries(mark)] == [
        ("tool", "search_docs"),
        ("resource", "docs://public/intro"),
    ]


def test_a_non_ascii_name_in_base64_reaches_the_policy(stack, http):
    """A prompt named `café` sent as MCP says (base64 in the header) matches
    the body, so the policy decides: no rule allows it (-31403), not a
    header mismatch."""
    mark = stack.call_log.mark()
    body = rpc_body("prompts/get", {"name": "café"}, id="cafe")
    headers = rpc_headers("prompts/get", b64_header("café"), token=token_for("alice"))
    response = http.post("/mcp", headers=headers, content=json.dumps(body))
    assert response.status_code == 200, response.text
    error = response.json()["error"]
    assert error["code"] == -31403, error
    assert "no rule allows `prompts/get` on prompt `café`" in error["data"]["reason"], error
    assert stack.call_log.entries(mark) == []


def test_a_tool_name_outside_the_spec_format_never_reaches_the_policy(stack, http):
    """`café`, `delete_repo ` and a Cyrillic look-alike are not tool names
    (1-128 of A-Z a-z 0-9 _ - .): Invalid params with the request id, nothing
    reaches the server, whatever the header says."""
    for name in ["café", "delete_repo ", "d\u0435lete_repo"]:
        mark = stack.call_log.mark()
        response = tool_call(
            http, token_for("alice"), name, {}, id="odd", extra_headers={"Mcp-Name": b64_header(name)}
        )
        assert response.status_code == 200, response.text
        error = response.json()["error"]
        assert error["code"] == -32602 and response.json()["id"] == "odd", (name, error)
        assert stack.call_log.entries(mark) == [], name


@pytest.fixture(scope="module")
def printable_stack(e2e_workdir):
    """The example policy with `filter.tool_names: printable_ascii`."""
    with variant_stack(e2e_workdir, "printable-tool-names", filter={"tool_names": "printable_ascii"}) as instance:
        yield instance


def test_printable_ascii_tool_names_admit_punctuation_but_never_spaces_or_controls(stack, http, printable_stack):
    """`ns/search_docs` is refused by the default format (-32602) and reaches
    the policy under `printable_ascii` (no rule allows it: -31403); a trailing
    space, a tab, a NUL, BEL or DEL, and non-ASCII are refused under both,
    and nothing reaches the server."""
    punctuated = "ns/search_docs"
    refused = ["search_docs ", "search_docs\t", "search_docs\u0000", "search_docs\u0007", "search_docs\u007f", "café"]
    with http_client(printable_stack) as relaxed:
        for client, instance, name, code in [
            (http, stack, punctuated, -32602),
            (relaxed, printable_stack, punctuated, -31403),
            *[(c, i, n, -32602) for n in refused for c, i in [(http, stack), (relaxed, printable_stack)]],
        ]:
            mark = instance.call_log.mark()
            response = tool_call(
                client, token_for("alice"), name, {}, id="odd", extra_headers={"Mcp-Name": b64_header(name)}
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["error"]["code"] == code and body["id"] == "odd", (name, body)
            assert instance.call_log.entries(mark) == [], name
        # A name in both formats still goes through.
        allowed = tool_call(relaxed, token_for("alice"), "search_docs", {"query": "printable"})
        assert allowed.status_code == 200, allowed.text
        assert "result" in jsonrpc_messages(allowed)[-1], allowed.text


def test_modern_client_sends_matching_metadata(stack):
    """The 2.3 client's own Mcp-Method/Mcp-Name headers pass the checks for every kind of call."""
    client = make_client("mcp2.3-2026-07-28", stack.url)
    session = client.session(
        token_for("alice"),
        [
            call("search_docs", query="headers"),
            {"op": "read_resource", "uri": "docs://public/intro"},
            {"op": "get_prompt", "name": "summarize", "arguments": {"text": "hi"}},
        ],
    )
    assert [r["ok"] for r in session["results"]] == [True, True, True], session["results"]
    sent = {x["mcp_method"] for x in session["http"]}
    assert {"tools/call", "resources/read", "prompts/get"} <= sent, session["http"]
    assert all(x["status"] == 200 for x in session["http"]), session["http"]


@pytest.mark.parametrize("path", ["/admin", "/mcp/", "/MCP", "//mcp", "/anything"])
def test_only_the_mcp_endpoint_is_judged_other_paths_never_reach_the_server(stack, http, path):
    """An allowed body on another path used to reach that path upstream;
    `GET /anything` passed as a session method. Only `filter.endpoints`
    (default `/mcp`) is MCP: anything else is 404, audited."""
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    body = rpc_body("tools/call", {"name": "search_docs", "arguments": {"query": "x"}}, id="p")
    headers = rpc_headers("tools/call", "search_docs", token=token_for("alice"))
    posted = http.post(path, headers=headers, content=json.dumps(body))
    assert posted.status_code == 404, (path, posted.text)
    got = http.get(path, headers={"Authorization": f"Bearer {token_for('alice')}"})
    assert got.status_code == 404, (path, got.text)
    assert stack.call_log.entries(mark) == []
    records = stack.envoy_log.wait_for_audits(log_mark, lambda rs: len(rs) >= 2)
    assert all(r["status"] == 404 and "not an MCP endpoint" in r["reason"] for r in records), records
