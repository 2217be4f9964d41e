"""MCP sessions bound to the principal that opened them, with no table.

When the server answers a request Warden verified with `Mcp-Session-Id: S`,
the client gets a sealed id instead: S and the principal that opened the
session (issuer, subject, acting party), authenticated with HMAC-SHA256
under the session key. Every request carrying a session id is unsealed for
its caller; the server gets S back. Anyone else presenting the sealed id,
the server's raw id, an altered seal, or an id sealed under another key
gets 404 (what the MCP transport answers for an unknown session; a client
is to start a new one); nothing reaches the server. Nothing is stored per
session, so no one can flood the others out.

The sessions here are opened by hand (raw HTTP through Envoy), so a test can
present one principal's session id with another principal's token.
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import pytest
from conftest import (
    HEADER_MODE,
    jsonrpc_messages,
    legacy_headers,
    open_legacy_session,
    rpc_body,
    rpc_headers,
    run_mcp1,
    token_for,
    tool_call,
    variant_stack,
)
from helpers import audits_where, tool_entries

ANOTHER_PRINCIPAL = "Mcp-Session-Id belongs to another principal"
NOT_SEALED = "Mcp-Session-Id was not issued by Warden (a server's own id, or made up): start a new session"
BAD_SEAL = "Mcp-Session-Id carries a bad seal (altered, or sealed under a key this proxy does not hold)"
# A fleet's shared key (base64url of 32 bytes; for these tests only).
FLEET_KEY = base64.urlsafe_b64encode(b"warden-e2e-fleet-session-key-32b").decode().rstrip("=")
FLOOD_SESSIONS = 2_000


def server_id_of(sealed: str) -> str:
    """The server's own id inside a sealed id (carried in the clear)."""
    prefix, encoded, _tag, _seal = sealed.split(".")
    assert prefix == "ws1", sealed
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


def search_in(http, token, session_id, query):
    session = {"Mcp-Session-Id": session_id}
    return tool_call(http, token, "search_docs", {"query": query}, modern=False, extra_headers=session)


def assert_session_not_found(response, reason: str) -> None:
    """Warden's 404 with a JSON-RPC error (refused on the head: no id)."""
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
        (uuid.uuid4().hex, NOT_SEALED),
        ("made-up-session", NOT_SEALED),
        ("has spaces", NOT_SEALED),
        ("x" * 257, NOT_SEALED),
        ("ws1.a.b", "Mcp-Session-Id is not a well-formed sealed id: not three parts after the prefix"),
        ("ws2.a.b.c", "Mcp-Session-Id is sealed in format `ws2`, which this build does not read"),
    ],
    ids=["unknown-hex", "unknown-name", "spaces", "too-long", "malformed", "other-version"],
)
def test_a_session_id_warden_did_not_seal_is_refused(stack, http, session_id, reason):
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    assert_session_not_found(search_in(http, token_for("alice"), session_id, "invented"), reason)
    assert stack.call_log.entries(mark) == []
    [audit] = audits_where(stack.envoy_log, log_mark, reason=reason)
    assert (audit["decision"], audit["status"], audit["subject"]) == ("deny", 404, "alice"), audit


def test_the_raw_server_id_and_an_altered_seal_are_refused(stack, http, alice_session):
    """The server's own id is inside the sealed one, in the clear: presenting
    it bare, or re-sealing it by hand, gets nowhere."""
    alice = token_for("alice")
    raw = server_id_of(alice_session)
    assert raw not in alice_session
    mark = stack.call_log.mark()
    assert_session_not_found(search_in(http, alice, raw, "raw"), NOT_SEALED)
    prefix, encoded, tag, seal = alice_session.split(".")
    flipped = seal[:-2] + ("A" if seal[-2] != "A" else "B") + seal[-1]
    assert_session_not_found(search_in(http, alice, ".".join([prefix, encoded, tag, flipped]), "altered"), BAD_SEAL)
    # Alice's tag and seal on another server id.
    other = base64.urlsafe_b64encode(uuid.uuid4().hex.encode()).decode().rstrip("=")
    assert_session_not_found(search_in(http, alice, ".".join([prefix, other, tag, seal]), "moved"), BAD_SEAL)
    assert stack.call_log.entries(mark) == []
    assert_search_answered(search_in(http, alice, alice_session, "intact"), "intact")


def test_a_2026_request_with_another_principals_session_is_refused(stack, http, alice_session):
    """2026-07-28 has no sessions, but a server may still look one up by
    header: the binding holds whatever MCP-Protocol-Version says."""
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    bob = token_for("bob")
    response = tool_call(http, bob, "search_docs", {"query": "modern"}, extra_headers={"Mcp-Session-Id": alice_session})
    assert_session_not_found(response, ANOTHER_PRINCIPAL)
    assert stack.call_log.entries(mark) == []
    [audit] = audits_where(stack.envoy_log, log_mark, reason=ANOTHER_PRINCIPAL)
    assert (audit["subject"], audit["protocol_version"]) == ("bob", "2026-07-28"), audit


def assert_ended_by_the_server(stack, response, log_mark) -> None:
    """Warden let the request through (the id unsealed for its owner); the
    server, whose session has ended, answered 404 and ran nothing."""
    assert response.status_code == 404, (response.status_code, response.text)
    records = stack.envoy_log.wait_for_audits(log_mark, lambda r: len(r) >= 1)
    assert [(r["decision"], r["subject"]) for r in records] == [("allow", "alice")], records


def test_a_deleted_session_is_refused_by_the_server(stack, http, alice_session):
    """No table: the DELETE is unsealed and forwarded, and the server ends
    the session. The sealed id still unseals for alice, and the server
    refuses it."""
    alice = token_for("alice")
    assert_search_answered(search_in(http, alice, alice_session, "before delete"), "before delete")
    response = http.delete("/mcp", headers=legacy_headers(alice, alice_session))
    assert response.status_code == 200, response.text
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    assert_ended_by_the_server(stack, search_in(http, alice, alice_session, "after delete"), log_mark)
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


def test_an_sdk_session_is_sealed_and_ended(stack, http):
    """The 1.30 client's real session (initialize, GET stream, calls, DELETE on
    close) works with the sealed id; once it has closed, the server refuses
    its id, and Warden still refuses it to anyone else."""
    [session] = run_mcp1(stack.url, [{"token": token_for("alice"), "steps": [{"op": "ping"}]}])
    assert session["connected"] and session["results"][0]["ok"], session
    assert session["session_id"].startswith("ws1."), session["session_id"]
    assert [(x["method"], x["status"]) for x in session["http"]][-1] == ("DELETE", 200), session["http"]
    log_mark = stack.envoy_log.mark()
    assert_ended_by_the_server(stack, search_in(http, token_for("alice"), session["session_id"], "closed"), log_mark)
    assert_session_not_found(search_in(http, token_for("bob"), session["session_id"], "closed"), ANOTHER_PRINCIPAL)


def initialize(http: httpx.Client, token: str) -> str:
    """One bare `initialize` (no notification after it): the sealed id."""
    body = {
        "jsonrpc": "2.0",
        "id": "flood",
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "flood", "version": "0"}},
    }
    response = http.post("/mcp", headers=legacy_headers(token, version=None), content=json.dumps(body))
    assert response.status_code == 200, (response.status_code, response.text)
    return response.headers["mcp-session-id"]


@pytest.fixture(scope="module")
def flood_stack(e2e_workdir):
    """A stack of its own: the flood leaves thousands of sessions in its server."""
    with variant_stack(e2e_workdir, "sessions-flood", filter={}) as instance:
        yield instance


def test_one_principal_opening_thousands_of_sessions_ends_no_other_session(flood_stack, capsys):
    """With the old slot table (65,536 slots), about N·ln N initialize calls
    evicted every session. Now nothing is stored per session: bob opens
    FLOOD_SESSIONS sessions and every other principal's session still works."""
    with httpx.Client(base_url=f"http://127.0.0.1:{flood_stack.listen_port}", timeout=30) as http:
        others = {name: open_legacy_session(http, token_for(name)) for name in ("alice", "ci-deployer", "agent-for-alice")}
        bob = token_for("bob")
        started = time.monotonic()
        opened = [initialize(http, bob) for _ in range(FLOOD_SESSIONS)]
        elapsed = time.monotonic() - started
        assert len(set(opened)) == FLOOD_SESSIONS
        for name, session_id in others.items():
            query = f"zq-{name}-after-flood"
            assert_search_answered(search_in(http, token_for(name), session_id, query), query)
        # Bob's first flood session too: no session pushed out another.
        mark = flood_stack.call_log.mark()
        assert_search_answered(search_in(http, bob, opened[0], "zq-first"), "zq-first")
        assert tool_entries(flood_stack.call_log.entries(mark)) == [("search_docs", {"query": "zq-first"})]
    with capsys.disabled():
        rate = FLOOD_SESSIONS / elapsed
        print(f"\n[{HEADER_MODE}] flood: {FLOOD_SESSIONS} initialize calls in {elapsed:.1f}s ({rate:.0f}/s)")


def test_every_worker_of_one_envoy_unseals_with_the_same_generated_key(e2e_workdir):
    """No configured key: the key is generated once per Envoy, in shared data,
    and every worker VM reads it. Each request here is a new connection, so
    Envoy spreads them over its two workers."""
    with variant_stack(e2e_workdir, "sessions-workers", filter={}, concurrency=2) as stack:
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=f"http://127.0.0.1:{stack.listen_port}", timeout=15, limits=fresh) as http:
            alice = token_for("alice")
            sessions = [open_legacy_session(http, alice) for _ in range(4)]
            for round in range(3):
                for n, session_id in enumerate(sessions):
                    query = f"zq-round-{round}-session-{n}"
                    assert_search_answered(search_in(http, alice, session_id, query), query)


def test_a_fleet_sharing_a_configured_key_shares_sessions_and_others_do_not(e2e_workdir):
    """Two Envoys in front of one server. With the same `session_keys` a
    session opened through one works through the other (load balancing, or a
    restart); an Envoy with its own generated key refuses it."""
    fleet = {"session_keys": [FLEET_KEY]}
    with variant_stack(e2e_workdir, "sessions-fleet-a", filter=fleet) as first:
        shared_server = {"with_server": False, "server_port": first.server_port}
        with (
            variant_stack(e2e_workdir, "sessions-fleet-b", filter=fleet, **shared_server) as second,
            variant_stack(e2e_workdir, "sessions-own-key", filter={}, **shared_server) as own,
        ):
            alice = token_for("alice")
            with httpx.Client(base_url=f"http://127.0.0.1:{first.listen_port}", timeout=15) as http:
                session_id = open_legacy_session(http, alice)
            with httpx.Client(base_url=f"http://127.0.0.1:{second.listen_port}", timeout=15) as http:
                assert_search_answered(search_in(http, alice, session_id, "zq-other-proxy"), "zq-other-proxy")
            with httpx.Client(base_url=f"http://127.0.0.1:{own.listen_port}", timeout=15) as http:
                assert_session_not_found(search_in(http, alice, session_id, "own key"), BAD_SEAL)
