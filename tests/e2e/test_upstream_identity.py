"""What the MCP server learns about the caller: the verified identity in
`x-warden-*` headers, never a client's own copy of them, and (with
`upstream.strip_authorization`) not the caller's token.

The example server writes, for every tool call and prompt get, the
`x-warden-*` headers it received (all values of each) and whether an
Authorization header came along into its call log. The session stack keeps
the default (`strip_authorization: false`); the module's stack strips it.
"""

from __future__ import annotations

import json

import mint_token
import pytest
from conftest import (
    CLIENT_KINDS,
    b64_header,
    call,
    http_client,
    make_client,
    open_legacy_session,
    token_for,
    tool_call,
    variant_stack,
)
from helpers import assert_allowed

SPOOFED = {
    "X-Warden-Subject": "admin",
    "x-warden-actor-type": "service",
    "x-warden-actor": "root",
    "x-warden-chain": '["admin"]',
    "x-warden-client-id": "trusted-ui",
    "x-warden-issuer": "https://evil.example",
}


def identity(subject: str, actor_type: str, chain: list[str], *, actor=None, client_id=None, encode=lambda v: v):
    """The headers Warden sends, each with exactly one value."""
    headers = {
        "x-warden-subject": [encode(subject)],
        "x-warden-actor-type": [actor_type],
        "x-warden-chain": [encode(json.dumps(chain, separators=(",", ":"), ensure_ascii=False))],
        "x-warden-issuer": [mint_token.ISSUER],
    }
    if actor is not None:
        headers["x-warden-actor"] = [actor]
    if client_id is not None:
        headers["x-warden-client-id"] = [client_id]
    return headers


ALICE = identity("alice", "human", ["alice"])

# name -> (token, expected headers)
PRINCIPALS = {
    "human": (lambda: token_for("alice"), ALICE),
    "service-with-client-id": (
        lambda: token_for("ci-deployer", client_id="ci-pipeline"),
        identity("ci-deployer", "service", ["ci-deployer"], client_id="ci-pipeline"),
    ),
    "agent-for-a-human": (
        lambda: token_for("agent-for-alice"),
        identity("alice", "agent", ["alice", "research-agent"], actor="research-agent"),
    ),
    "two-hop-delegation": (
        lambda: token_for(
            "alice", act=[mint_token.Actor("research-agent", "agent"), mint_token.Actor("planner", "agent")]
        ),
        identity("alice", "agent", ["alice", "research-agent", "planner"], actor="research-agent"),
    ),
    "non-ascii-subject": (
        lambda: mint_token.mint("zoë", "human"),
        identity("zoë", "human", ["zoë"], encode=b64_header),
    ),
}


def last_entry(stack, mark) -> dict:
    entries = stack.call_log.entries(mark)
    assert len(entries) == 1, entries
    return entries[0]


@pytest.fixture(scope="module")
def stripping_stack(e2e_workdir):
    with variant_stack(e2e_workdir, "upstream-strip", filter={"upstream": {"strip_authorization": True}}) as instance:
        yield instance


@pytest.mark.parametrize("principal", list(PRINCIPALS))
def test_verified_identity_reaches_the_server(stack, http, principal):
    token, expected = PRINCIPALS[principal]
    mark = stack.call_log.mark()
    response = tool_call(http, token(), "search_docs", {"query": principal})
    assert response.status_code == 200 and "result" in response.json(), response.text
    entry = last_entry(stack, mark)
    assert entry["headers"] == expected, entry
    assert entry["authorization"] is True, "the token is forwarded unless strip_authorization is set"


@pytest.mark.parametrize("modern", [True, False], ids=["2026-07-28", "2025-06-18"])
def test_client_copies_of_identity_headers_never_reach_the_server(stack, http, modern):
    """Copies of all six headers from the client are removed, also those for
    which Warden has no value of its own (alice has no actor, no client id)."""
    mark = stack.call_log.mark()
    extra = dict(SPOOFED)
    if not modern:
        extra["Mcp-Session-Id"] = open_legacy_session(http, token_for("alice"))
    response = tool_call(http, token_for("alice"), "search_docs", {"query": "spoof"}, modern=modern, extra_headers=extra)
    assert response.status_code == 200, response.text
    assert last_entry(stack, mark)["headers"] == ALICE


@pytest.mark.parametrize("kind", list(CLIENT_KINDS))
def test_each_client_with_spoofed_headers(stack, kind):
    """An SDK client sending the headers on every request (initialize, calls,
    GET stream, DELETE): the server sees only what Warden verified, for tool
    calls and prompt gets alike."""
    mark = stack.call_log.mark()
    session = make_client(kind, stack.url).session(
        token_for("alice"),
        [call("search_docs", query=kind), {"op": "get_prompt", "name": "summarize", "arguments": {"text": kind}}],
        headers=SPOOFED,
    )
    assert session["connected"], session
    for result in session["results"]:
        assert_allowed(result)
    entries = stack.call_log.entries(mark)
    assert [(e["kind"], e["name"], e["headers"], e["authorization"]) for e in entries] == [
        ("tool", "search_docs", ALICE, True),
        ("prompt", "summarize", ALICE, True),
    ]


# --- strip_authorization ---------------------------------------------------


@pytest.mark.parametrize("kind", list(CLIENT_KINDS))
def test_stripped_token_never_reaches_the_server(stripping_stack, kind):
    """Token passthrough is forbidden by MCP: with strip_authorization the
    server gets the identity headers and no Authorization; every client's
    session (2025: initialize, GET stream, DELETE) still works."""
    mark = stripping_stack.call_log.mark()
    session = make_client(kind, stripping_stack.url).session(
        token_for("agent-for-alice"), [call("search_docs", query=f"stripped {kind}")]
    )
    assert session["connected"], session
    assert_allowed(session["results"][0], f"stripped {kind}")
    assert all(x["status"] < 400 for x in session["http"]), session["http"]
    entry = last_entry(stripping_stack, mark)
    assert entry["authorization"] is False, entry
    assert entry["headers"] == PRINCIPALS["agent-for-a-human"][1], entry


def test_stripping_keeps_judging_the_token(stripping_stack):
    """Stripping happens after the decision: a denied call stays denied, an
    anonymous one unauthenticated."""
    mark = stripping_stack.call_log.mark()
    with http_client(stripping_stack) as http:
        denied = tool_call(http, token_for("research-agent"), "delete_repo", {"name": "warden"}, id=3)
        anonymous = tool_call(http, None, "search_docs", {"query": "anonymous"})
    assert denied.status_code == 200 and denied.json()["error"]["code"] == -31403, denied.text
    assert anonymous.status_code == 401, anonymous.text
    assert stripping_stack.call_log.entries(mark) == []
