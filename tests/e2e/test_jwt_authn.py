"""`identity.verified_by: jwt_authn` through real Envoy.

`warden envoy` renders Envoy's own `jwt_authn` filter ahead of Warden from
the example policy's issuer (its key set inline, `payload_in_metadata`,
`Authorization: Bearer` only, a missing or failed token let through without
a payload). Warden takes the identity from the payload `jwt_authn` left in
the stream's dynamic metadata and verifies nothing itself; it still applies
issuer, audience, times, the actor model, revocation and the policy.

What must hold: a token `jwt_authn` verified is judged by the policy like
one Warden verified (an agent acting for alice is an agent, and
`no-agent-deletes` refuses it); every token `jwt_authn` did not verify is
refused by Warden with its MCP 401, whatever the token's claims say; and
with `jwt_authn` taken out of the chain, even a valid token is refused
(Warden never falls back to trusting a token it did not see verified).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import mint_token
import pytest
from conftest import HEADER_MODE, http_client, running, token_for, tool_call
from helpers import audits_where
from test_metrics import scrape, token_cache_lookups
from warden_stack import EXAMPLE_POLICY, Stack, run_cli

REVOKED_SUBJECT = "mallory"


def jwt_authn_policy(destination: Path) -> Path:
    """The example policy (compiled: key set inline) verified by `jwt_authn`,
    with one subject revoked."""
    document = json.loads(run_cli("compile", EXAMPLE_POLICY))
    document["identity"]["verified_by"] = "jwt_authn"
    document["identity"]["revocation"] = {"subjects": [{"value": REVOKED_SUBJECT, "reason": "left"}]}
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(json.dumps(document, indent=2) + "\n")
    return destination


def without_jwt_authn(config: str) -> str:
    """The bootstrap with the `jwt_authn` filter taken out of the chain."""
    lines = config.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- name: envoy.filters.http.jwt_authn")
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (len(lines[end]) - len(lines[end].lstrip()) > indent or not lines[end].strip()):
        end += 1
    return "\n".join(lines[:start] + lines[end:]) + "\n"


@pytest.fixture(scope="module")
def jwt_stack(e2e_workdir: Path) -> Iterator[Stack]:
    workdir = e2e_workdir / "jwt-authn"
    policy = jwt_authn_policy(workdir / "policy.json")
    with running(lambda: Stack(policy=policy, workdir=workdir, header_mode=HEADER_MODE)) as instance:
        yield instance


@pytest.fixture(scope="module")
def unverified_stack(e2e_workdir: Path) -> Iterator[Stack]:
    workdir = e2e_workdir / "jwt-authn-missing"
    policy = jwt_authn_policy(workdir / "policy.json")
    with running(
        lambda: Stack(policy=policy, workdir=workdir, header_mode=HEADER_MODE, config_edit=without_jwt_authn)
    ) as instance:
        yield instance


def call(stack: Stack, token: str | None, tool: str, arguments: dict[str, Any]) -> tuple[httpx.Response, dict]:
    """One tools/call and its audit line (the stack serves one test at a
    time: the line since the mark is this call's)."""
    mark = stack.envoy_log.mark()
    with http_client(stack) as http:
        response = tool_call(http, token, tool, arguments, id=f"jwt-{uuid.uuid4().hex[:10]}")
    [audit] = audits_where(stack.envoy_log, mark)
    return response, audit


def jwt_authn_stat(stack: Stack, name: str) -> int:
    url = f"http://127.0.0.1:{stack.admin_port}/stats?filter=jwt_authn"
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            key, _, value = line.partition(": ")
            if key.endswith(f"jwt_authn.{name}"):
                return int(value)
    return 0


def test_the_rendered_chain_puts_jwt_authn_ahead_of_warden(jwt_stack: Stack) -> None:
    config = jwt_stack.config_path.read_text()
    jwt = config.index("envoy.filters.http.jwt_authn")
    assert jwt < config.index("envoy.filters.http.wasm") < config.index("envoy.filters.http.router")
    assert "payload_in_metadata: jwt_payload" in config
    assert "allow_missing_or_failed" in config


def test_a_token_jwt_authn_verified_is_judged_by_the_policy(jwt_stack: Stack) -> None:
    allowed_before = jwt_authn_stat(jwt_stack, "allowed")
    calls = jwt_stack.call_log.mark()
    response, audit = call(jwt_stack, token_for("alice"), "search_docs", {"query": "jwt"})
    assert "result" in response.json(), response.text
    assert len(jwt_stack.call_log.entries(calls)) == 1, "the tool did not run"
    assert (audit["decision"], audit["subject"], audit["actor_type"]) == ("allow", "alice", "human"), audit
    # jwt_authn did verify it: Warden's identity came from its metadata.
    assert jwt_authn_stat(jwt_stack, "allowed") > allowed_before


def test_the_actor_model_applies_to_the_verified_payload(jwt_stack: Stack) -> None:
    calls = jwt_stack.call_log.mark()
    response, audit = call(jwt_stack, token_for("agent-for-alice"), "delete_repo", {"name": "scratch"})
    assert "error" in response.json(), response.text
    assert jwt_stack.call_log.entries(calls) == [], "the tool ran"
    assert (audit["decision"], audit["rule"], audit["actor_type"]) == ("deny", "no-agent-deletes", "agent"), audit


def test_a_repeated_token_finds_its_identity_again(jwt_stack: Stack) -> None:
    """Envoy writes the payload's entries in an order that changes from one
    request to the next; Warden keeps the identity under a canonical form of
    the metadata, so a token it has seen is found again, not decoded anew.
    Cached under the bytes instead, about one request in ten found them."""

    # Every VM reports what it counted on its one-second timer: let the
    # baseline settle.
    time.sleep(1.5)
    before = scrape(jwt_stack)
    repeated = token_for("alice", jti=uuid.uuid4().hex)
    for _ in range(10):
        response, audit = call(jwt_stack, repeated, "search_docs", {"query": "again"})
        assert "result" in response.json(), response.text
        assert (audit["decision"], audit["subject"]) == ("allow", "alice"), audit
    hits, misses = token_cache_lookups(jwt_stack, before, 10)
    assert hits + misses == 10, (hits, misses)
    # Each worker keeps its own cache: the payload misses once in each
    # worker that sees it, at most.
    workers = jwt_stack.concurrency
    assert misses <= workers and hits >= 10 - workers, (hits, misses)


@pytest.mark.parametrize(
    "kind",
    ["bad_signature", "alg_none", "unknown_kid", "expired", "wrong_audience"],
)
def test_a_token_jwt_authn_refused_never_reaches_the_server(jwt_stack: Stack, kind: str) -> None:
    token = {
        "bad_signature": lambda: mint_token.bad_signature_token("alice", "human"),
        "alg_none": lambda: mint_token.alg_none_token("alice", "human"),
        "unknown_kid": lambda: mint_token.unknown_kid_token("alice", "human"),
        "expired": lambda: mint_token.expired_token("alice", "human"),
        "wrong_audience": lambda: mint_token.wrong_audience_token("alice", "human"),
    }[kind]()
    calls = jwt_stack.call_log.mark()
    response, audit = call(jwt_stack, token, "search_docs", {"query": kind})
    # Warden's 401 (the MCP one, pointing at the resource metadata), not
    # jwt_authn's: the token went on without a verified payload.
    assert response.status_code == 401, response.text
    assert "resource_metadata=" in response.headers.get("www-authenticate", ""), response.headers
    assert jwt_stack.call_log.entries(calls) == []
    assert audit["decision"] == "deny" and audit["token_failure"] == "not_verified_by_proxy", audit


def test_no_token_gets_the_mcp_401(jwt_stack: Stack) -> None:
    calls = jwt_stack.call_log.mark()
    response, audit = call(jwt_stack, None, "search_docs", {"query": "anonymous"})
    assert response.status_code == 401, response.text
    assert "resource_metadata=" in response.headers.get("www-authenticate", "")
    assert jwt_stack.call_log.entries(calls) == []
    assert audit["token_failure"] == "missing", audit


def test_revocation_still_applies(jwt_stack: Stack) -> None:
    calls = jwt_stack.call_log.mark()
    token = mint_token.mint(REVOKED_SUBJECT, "human")
    response, audit = call(jwt_stack, token, "search_docs", {"query": "revoked"})
    assert response.status_code == 401, response.text
    assert jwt_stack.call_log.entries(calls) == []
    assert audit["token_failure"] == "revoked", audit


def test_without_jwt_authn_in_the_chain_every_token_is_refused(unverified_stack: Stack) -> None:
    assert "envoy.filters.http.jwt_authn" not in unverified_stack.config_path.read_text()
    calls = unverified_stack.call_log.mark()
    response, audit = call(unverified_stack, token_for("alice"), "search_docs", {"query": "no jwt_authn"})
    assert response.status_code == 401, response.text
    assert unverified_stack.call_log.entries(calls) == []
    assert audit["token_failure"] == "not_verified_by_proxy", audit
