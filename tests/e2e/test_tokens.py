"""Token verification: every request needs a valid bearer token (401 otherwise)."""

from __future__ import annotations

import json
import time
import uuid

import mint_token
import pytest
from conftest import rpc_body, rpc_headers, token_for, tool_call
from helpers import audits_where, tool_entries

BAD_TOKENS = {
    "expired": lambda: mint_token.expired_token("alice", "human", groups=["eng"]),
    "wrong-audience": lambda: mint_token.wrong_audience_token("alice", "human", groups=["eng"]),
    "bad-signature": lambda: mint_token.bad_signature_token("alice", "human", groups=["eng"]),
    "alg-none": lambda: mint_token.alg_none_token("alice", "human", groups=["eng"]),
    "unknown-kid": lambda: mint_token.unknown_kid_token("alice", "human", groups=["eng"]),
    "swapped-payload": lambda: mint_token.resigned_payload_token("alice", "human", groups=["eng"]),
    "wrong-issuer": lambda: mint_token.mint("alice", "human", groups=["eng"], iss="https://evil.example.test"),
    "not-a-jwt": lambda: "not-a-jwt",
}
# What the caller is told for each: the class of the failure, never the
# key id, issuer, audience or algorithms (the audit line has those).
DESCRIPTIONS = {
    "expired": "the token is expired",
    "wrong-audience": "the token could not be verified",
    "bad-signature": "the token could not be verified",
    "alg-none": "the token could not be verified",
    "unknown-kid": "the token could not be verified",
    "swapped-payload": "the token could not be verified",
    "wrong-issuer": "the token could not be verified",
    "not-a-jwt": "the token is malformed",
}
# Details of the failures above that only the audit line may carry.
# (The resource URL in the challenge's `resource_metadata` is public by RFC 9728.)
CONFIG_DETAILS = ["kid", "no-such-key", "demo-es256", "idp.demo", "evil.example", "ES256", "RS256", "EdDSA", "none"]


def _search(http, token, modern=True):
    query = f"token-test-{uuid.uuid4().hex[:8]}"
    return tool_call(http, token, "search_docs", {"query": query}, modern=modern), query


@pytest.mark.parametrize("modern", [True, False], ids=["2026-07-28", "2025-06-18"])
def test_missing_token_gets_401_with_bearer_challenge(stack, http, modern):
    mark = stack.call_log.mark()
    response, _ = _search(http, None, modern)
    assert response.status_code == 401, (response.status_code, response.text)
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer"), f"WWW-Authenticate: {challenge!r}"
    assert stack.call_log.entries(mark) == []


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_invalid_token_gets_401_invalid_token(stack, http, kind):
    mark = stack.call_log.mark()
    response, _ = _search(http, BAD_TOKENS[kind]())
    assert response.status_code == 401, (kind, response.status_code, response.text)
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer"), f"WWW-Authenticate: {challenge!r}"
    assert 'error="invalid_token"' in challenge, f"WWW-Authenticate: {challenge!r}"
    assert challenge.endswith(f', error_description="{DESCRIPTIONS[kind]}"'), challenge
    body = response.json()
    assert body["error"]["data"]["reason"] == DESCRIPTIONS[kind], body
    for detail in CONFIG_DETAILS:
        assert detail not in challenge and detail not in response.text, f"{kind}: {detail!r} leaked: {challenge} {response.text}"
    assert stack.call_log.entries(mark) == [], "a request with an invalid token reached the server"


def test_the_audit_line_keeps_what_the_401_withholds(stack, http):
    log_mark = stack.envoy_log.mark()
    response, _ = _search(http, mint_token.unknown_kid_token("alice", "human", groups=["eng"]))
    assert response.status_code == 401, response.text
    assert "no-such-key" not in response.text and "no-such-key" not in response.headers["www-authenticate"]
    # The request id in the answer finds the audit line, which names the key.
    request_id = response.json()["error"]["data"]["request_id"]
    [audit] = audits_where(stack.envoy_log, log_mark, request_id=request_id)
    assert audit["status"] == 401 and "`no-such-key`" in audit["reason"], audit


def test_invalid_token_on_session_get_and_delete_gets_401(stack, http):
    token = BAD_TOKENS["bad-signature"]()
    for method in ("GET", "DELETE"):
        response = http.request(
            method,
            "/mcp",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "text/event-stream",
                "Mcp-Session-Id": uuid.uuid4().hex,
                "MCP-Protocol-Version": "2025-06-18",
            },
        )
        assert response.status_code == 401, (method, response.status_code, response.text)


@pytest.mark.parametrize("alg", sorted(mint_token.KEYS))
def test_valid_token_of_each_algorithm_reaches_the_server(stack, http, alg):
    mark = stack.call_log.mark()
    query = f"alg-{alg}-{uuid.uuid4().hex[:8]}"
    token = token_for("alice", alg=alg)
    response = tool_call(http, token, "search_docs", {"query": query})
    assert response.status_code == 200, (response.status_code, response.text)
    body = response.json()
    assert "result" in body, body
    assert query in body["result"]["content"][0]["text"], body
    assert tool_entries(stack.call_log.entries(mark)) == [("search_docs", {"query": query})]


def test_token_expired_within_clock_skew_is_accepted(stack, http):
    """exp 10 s ago is inside the policy's 60 s clock skew."""
    now = int(time.time())
    token = token_for("alice", now=now - 300, exp_in=290)
    response = tool_call(http, token, "search_docs", {"query": "skew"})
    assert response.status_code == 200, (response.status_code, response.text)
    assert "result" in response.json()


def test_unauthenticated_initialize_gets_401(stack, http):
    body = rpc_body(
        "initialize",
        {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}},
        id=1,
        modern=False,
    )
    response = http.post("/mcp", headers=rpc_headers("initialize", modern=False), content=json.dumps(body))
    assert response.status_code == 401, (response.status_code, response.text)
