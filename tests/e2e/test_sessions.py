"""MCP sessions (2025 revisions) bound to the principal that opened them.

Warden records, in Envoy's shared data, who opened each `Mcp-Session-Id` it
saw returned to an `initialize`: (issuer, subject, acting party). Anyone else
presenting that id, or an id Warden never saw opened, gets 404 (what the
MCP transport answers for an unknown session; a client is to start a new
one); nothing reaches the server. A DELETE ends the binding.

The sessions here are opened by hand (raw HTTP through Envoy), so a test can
present one principal's session id with another principal's token.
"""

from __future__ import annotations

import uuid

import pytest
from conftest import jsonrpc_messages, legacy_headers, open_legacy_session, run_mcp1, token_for, tool_call
from helpers import audits_where, tool_entries

ANOTHER_PRINCIPAL = "Mcp-Session-Id belongs to another principal"
NEVER_OPENED = "Mcp-Session-Id was not opened through Warden (or its binding was lost): start a new session"


def search_in(http, token, session_id, query):
    session = {"Mcp-Session-Id": session_id}
    return tool_call(http, token, "search_docs", {"query": query}, modern=False, extra_headers=session)


def assert_session_not_found(response, reason: str) -> None:
    """404 with a JSON-RPC error (refused on the head: no id)."""
    assert response.status_code == 404, (response.status_code, response.text)
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None, body
    assert body["error"]["code"] == -32600 and body["error"]["message"] == "Session not found", body
    assert body["error"]["data"]["reason"] == reason, body


def assert_search_answered(response, query: str) -> None:
    assert response.status_code == 200, (response.status_code, response.text)
    [message] = jsonrpc_messages(response)
    assert message["result"]["content"][0]["text"] == f"no documents match {query!r}", message


@pytest.fixture
def alice_session(http) -> str:
    return open_legacy_session(http, token_for("alice"))


def test_another_principal_cannot_use_a_session(stack, http, alice_session):
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    response = search_in(http, token_for("bob"), alice_session, "hijack")
    assert_session_not_found(response, ANOTHER_PRINCIPAL)
    assert stack.call_log.entries(mark) == [], "bob's request in alice's session reached the server"
    [audit] = audits_where(stack.envoy_log, log_mark, reason=ANOTHER_PRINCIPAL)
    assert (audit["decision"], audit["status"], audit["subject"]) == ("deny", 404, "bob"), audit

    # Alice, with a fresh token of her own (another jti), goes on in her session.
    response = search_in(http, token_for("alice"), alice_session, "still mine")
    assert_search_answered(response, "still mine")
    assert tool_entries(stack.call_log.entries(mark)) == [("search_docs", {"query": "still mine"})]


@pytest.mark.parametrize("intruder", ["agent-for-alice", "research-agent"])
def test_the_acting_party_is_part_of_the_binding(stack, http, alice_session, intruder):
    """An agent acting for alice is not alice: her session is refused to it."""
    mark = stack.call_log.mark()
    response = search_in(http, token_for(intruder), alice_session, "not alice")
    assert_session_not_found(response, ANOTHER_PRINCIPAL)
    assert stack.call_log.entries(mark) == []


def test_other_claims_of_the_same_principal_keep_the_session(stack, http, alice_session):
    """The binding is (issuer, subject, acting party): a refreshed token of
    alice with other groups and scopes is still alice."""
    mark = stack.call_log.mark()
    token = token_for("alice", groups=["sales"], scope="ops:rotate")
    assert_search_answered(search_in(http, token, alice_session, "same alice"), "same alice")
    assert tool_entries(stack.call_log.entries(mark)) == [("search_docs", {"query": "same alice"})]


def test_another_principal_cannot_attach_to_the_stream_or_end_the_session(stack, http, alice_session):
    bob = token_for("bob")
    headers = legacy_headers(bob, alice_session) | {"Accept": "text/event-stream"}
    assert_session_not_found(http.get("/mcp", headers=headers), ANOTHER_PRINCIPAL)
    assert_session_not_found(http.delete("/mcp", headers=legacy_headers(bob, alice_session)), ANOTHER_PRINCIPAL)
    # Bob's DELETE did not end it.
    assert_search_answered(search_in(http, token_for("alice"), alice_session, "after bob"), "after bob")


@pytest.mark.parametrize(
    ("session_id", "reason"),
    [
        (uuid.uuid4().hex, NEVER_OPENED),
        ("made-up-session", NEVER_OPENED),
        ("has spaces", "Mcp-Session-Id is not 1 to 256 visible ASCII characters"),
        ("x" * 257, "Mcp-Session-Id is not 1 to 256 visible ASCII characters"),
    ],
    ids=["unknown-hex", "unknown-name", "spaces", "too-long"],
)
def test_a_session_warden_never_saw_opened_is_refused(stack, http, session_id, reason):
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    assert_session_not_found(search_in(http, token_for("alice"), session_id, "invented"), reason)
    assert stack.call_log.entries(mark) == []
    [audit] = audits_where(stack.envoy_log, log_mark, reason=reason)
    assert (audit["decision"], audit["status"], audit["subject"]) == ("deny", 404, "alice"), audit


def test_a_deleted_session_is_refused(stack, http, alice_session):
    alice = token_for("alice")
    assert_search_answered(search_in(http, alice, alice_session, "before delete"), "before delete")
    response = http.delete("/mcp", headers=legacy_headers(alice, alice_session))
    assert response.status_code == 200, response.text
    mark = stack.call_log.mark()
    assert_session_not_found(search_in(http, alice, alice_session, "after delete"), NEVER_OPENED)
    assert stack.call_log.entries(mark) == []


def test_each_session_is_bound_separately(stack, http):
    """Two sessions of two principals: each works for its owner only."""
    alice, bob = token_for("alice"), token_for("bob")
    alice_session, bob_session = open_legacy_session(http, alice), open_legacy_session(http, bob)
    assert alice_session != bob_session
    assert_search_answered(search_in(http, bob, bob_session, "bob's own"), "bob's own")
    assert_session_not_found(search_in(http, alice, bob_session, "swap"), ANOTHER_PRINCIPAL)
    assert_session_not_found(search_in(http, bob, alice_session, "swap"), ANOTHER_PRINCIPAL)
    assert_search_answered(search_in(http, alice, alice_session, "alice's own"), "alice's own")


def test_an_sdk_session_is_bound_and_ended(stack, http):
    """The 1.30 client's real session (initialize, GET stream, calls, DELETE on
    close) works; once it has closed, its id is refused even to its owner."""
    [session] = run_mcp1(stack.url, [{"token": token_for("alice"), "steps": [{"op": "ping"}]}])
    assert session["connected"] and session["results"][0]["ok"], session
    assert [(x["method"], x["status"]) for x in session["http"]][-1] == ("DELETE", 200), session["http"]
    assert_session_not_found(search_in(http, token_for("alice"), session["session_id"], "closed"), NEVER_OPENED)
