"""Keys from a live identity provider, and revocation, through real Envoy.

A small JWKS server on loopback plays the identity provider (key set and a
revocation list, both changeable by the test, with hit counters). Envoy runs
the filter with two workers (`--concurrency 2`, so keys travel between VMs
through shared data) and a policy whose issuer has `jwks_fetch` and whose
revocation list is polled. The upstream is the same loopback server
answering JSON-RPC POSTs.

The tests run in file order against one stack; each states the provider's
state it needs.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator

import httpx
import mint_token
import pytest
from conftest import HEADER_MODE, REPO_ROOT
from helpers import loopback_http_server, send_json
from warden_stack import EnvoyLog, Stack

ALL_KEYS = json.loads((REPO_ROOT / "examples" / "keys" / "demo.jwks.json").read_text())["keys"]
ES256_KEY = next(k for k in ALL_KEYS if k["kid"] == "demo-es256")
EDDSA_KEY = next(k for k in ALL_KEYS if k["kid"] == "demo-eddsa")
MIN_REFRESH = 3  # min_refresh_interval_seconds in the policy below


class Provider:
    """The identity provider's state, served by `Handler`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: list[dict[str, Any]] = [ES256_KEY]
        self.revoked: dict[str, Any] = {}
        self.down = False
        # Where the discovery document says the key set lives (the provider's
        # public URL: Warden maps its host to a cluster).
        self.jwks_uri = "https://idp.demo.warden.test/jwks"
        self.hits = {"/jwks": 0, "/revoked": 0, "/.well-known/openid-configuration": 0, "upstream": 0}

    def hit_count(self, path: str) -> int:
        with self.lock:
            return self.hits[path]


def make_handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            with provider.lock:
                if self.path in provider.hits:
                    provider.hits[self.path] += 1
                if provider.down:
                    send_json(self, 503, {"error": "down"})
                elif self.path == "/jwks":
                    send_json(self, 200, {"keys": list(provider.keys)})
                elif self.path == "/revoked":
                    send_json(self, 200, provider.revoked)
                elif self.path == "/.well-known/openid-configuration":
                    send_json(self, 200, {"issuer": mint_token.ISSUER, "jwks_uri": provider.jwks_uri})
                else:
                    send_json(self, 404, {"error": "no such document"})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}")
            with provider.lock:
                provider.hits["upstream"] += 1
            send_json(self, 200, {"jsonrpc": "2.0", "id": request.get("id"), "result": {"tools": []}})

    return Handler


POLICY = """
version: 1
identity:
  issuers:
    - issuer: https://idp.demo.warden.test
      audiences: [https://mcp.demo.warden.test/mcp]
      algorithms: [ES256, EdDSA]
      jwks_fetch:
        cluster: idp
        {key_source}
        # Scheduled refreshes stay out of the way (they only repeat every
        # min_refresh_interval_seconds until the first set has loaded), so
        # every fetch the tests count was triggered by an unknown kid.
        refresh_seconds: 3600
        min_refresh_interval_seconds: {min_refresh}
        timeout_ms: 2000
  revocation:
    remote:
      cluster: idp
      path: /revoked
      refresh_seconds: 1
rules:
  - id: list-tools
    effect: allow
    owner: team-platform
    methods: [tools/list]
"""


JWKS_PATH = "path: /jwks"
# The key set lives on another host, reached through cluster `keys`; the
# discovered location is read again every second.
DISCOVERY = """path: /.well-known/openid-configuration
        discovery: true
        discovery_refresh_seconds: 1
        key_set_hosts: {keys.demo.warden.test: keys}"""


def policy(key_source: str = JWKS_PATH) -> str:
    """POLICY with the issuer's keys fetched from `key_source` (the key set's path, or discovery)."""
    return POLICY.format(min_refresh=MIN_REFRESH, key_source=key_source)


class Live:
    def __init__(self, provider: Provider, url: str, envoy_log: EnvoyLog) -> None:
        self.provider = provider
        self.url = url
        self.log = envoy_log

    def call(self, token: str) -> httpx.Response:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        return httpx.post(self.url, json=body, headers={"authorization": f"Bearer {token}"}, timeout=10)

    def wait_until(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.log.text()[-3000:]}")


@contextlib.contextmanager
def start_live(
    workdir: Path, policy_text: str, provider: Provider, key_server: Provider | None = None
) -> Iterator[Live]:
    """Serves `provider` on loopback (as the `idp` cluster and as the upstream),
    and `key_server` (when given) as the `keys` cluster, and runs Envoy with
    `policy_text` in front of them, in `workdir`."""
    with contextlib.ExitStack() as servers:
        port = servers.enter_context(loopback_http_server(make_handler(provider))).server_address[1]
        clusters = {"idp": port}
        if key_server is not None:
            keys = servers.enter_context(loopback_http_server(make_handler(key_server)))
            clusters["keys"] = keys.server_address[1]
        stack = Stack(
            policy=Path(workdir) / "policy.yaml",
            workdir=workdir,
            with_server=False,
            server_port=port,
            clusters=clusters,
            concurrency=2,
            header_mode=HEADER_MODE,
        )
        stack.policy.write_text(policy_text)
        with stack:
            yield Live(provider, stack.url, stack.envoy_log)


@pytest.fixture(scope="module")
def live(e2e_workdir: Path) -> Iterator[Live]:
    provider = Provider()
    provider.down = True  # the provider starts unreachable: requests must fail closed
    with start_live(e2e_workdir / "identity" / "fetch", policy(), provider) as live:
        yield live


def token(alg: str = "ES256", **options: Any) -> str:
    return mint_token.mint("alice", "human", alg=alg, **options)


def test_requests_fail_closed_until_the_key_set_loads(live: Live) -> None:
    mark = live.log.mark()
    response = live.call(token())
    assert response.status_code == 503, response.text
    # The caller learns the class of the failure; the issuer is in the audit line.
    assert response.json()["error"]["data"]["reason"] == "the keys to verify the token are not available yet"
    time.sleep(0.3)
    audits = live.log.audits(mark)
    assert any(a["status"] == 503 and "not loaded" in a["reason"] for a in audits), audits
    assert live.provider.hit_count("upstream") == 0
    with live.provider.lock:
        live.provider.down = False
    live.wait_until(lambda: live.call(token()).status_code == 200, 15, "the key set to load")


def test_key_rotation_is_followed_without_a_failed_request(live: Live) -> None:
    # Let the on-demand allowance recover from the start-up phase.
    time.sleep(MIN_REFRESH + 0.5)
    before = live.provider.hit_count("/jwks")
    with live.provider.lock:
        live.provider.keys = [ES256_KEY, EDDSA_KEY]
    # The very first token signed with the new key succeeds: its unknown kid
    # makes the request wait for one fetch.
    response = live.call(token("EdDSA"))
    assert response.status_code == 200, response.text
    assert live.provider.hit_count("/jwks") == before + 1, "one unknown kid, one fetch"
    # And the old key keeps working.
    assert live.call(token()).status_code == 200


def test_a_flood_of_unknown_kids_triggers_at_most_one_fetch(live: Live) -> None:
    time.sleep(MIN_REFRESH + 0.5)
    flood = [token(kid=f"random-{uuid.uuid4().hex}") for _ in range(30)]
    before = live.provider.hit_count("/jwks")
    started = time.monotonic()
    statuses = [live.call(t).status_code for t in flood]
    elapsed = time.monotonic() - started
    fetched = live.provider.hit_count("/jwks") - before
    assert set(statuses) == {401}, statuses
    # One fetch per min_refresh_interval_seconds at most, across both workers,
    # however long the flood took on a busy machine.
    allowed = 1 + int(elapsed // MIN_REFRESH)
    assert 1 <= fetched <= allowed, f"{fetched} fetches for {len(flood)} unknown kids in {elapsed:.1f}s"
    assert fetched < len(flood)


def test_a_provider_outage_keeps_the_last_good_keys(live: Live) -> None:
    time.sleep(MIN_REFRESH + 0.5)
    with live.provider.lock:
        live.provider.down = True
    before = live.provider.hit_count("/jwks")
    mark = live.log.mark()
    # An unknown kid makes Warden try the provider, which fails ...
    assert live.call(token(kid="rotated-in-during-outage")).status_code == 401
    assert live.provider.hit_count("/jwks") == before + 1
    time.sleep(0.3)
    assert "fetch failed" in live.log.text(mark)
    # ... and the last good keys stay in use.
    assert live.call(token()).status_code == 200
    assert live.call(token("EdDSA")).status_code == 200
    with live.provider.lock:
        live.provider.down = False


def test_a_revoked_token_is_refused_after_the_next_poll(live: Live) -> None:
    jti = f"jti-{uuid.uuid4().hex}"
    revoked = token(jti=jti)
    other = token()
    assert live.call(revoked).status_code == 200
    with live.provider.lock:
        live.provider.revoked = {"jti": [{"value": jti, "reason": "reported stolen"}]}
    live.wait_until(lambda: live.call(revoked).status_code == 401, 10, "the revocation to apply")
    # The worker that polled refuses at once; the other worker from its next
    # one-second tick (docs/security.md). After that, every request is
    # refused, whichever worker takes it.
    time.sleep(1.5)
    for _ in range(6):
        response = live.call(revoked)
        assert response.status_code == 401, response.text
        assert "revoked" in response.headers["www-authenticate"]
    assert live.call(other).status_code == 200
    mark = live.log.mark()
    live.call(revoked)
    time.sleep(0.3)
    reasons = [a["reason"] for a in live.log.audits(mark)]
    assert any("reported stolen" in r for r in reasons), reasons


def test_keys_found_through_openid_discovery_on_another_host(e2e_workdir: Path) -> None:
    provider = Provider()
    provider.jwks_uri = "https://keys.demo.warden.test/jwks"
    provider.keys = []  # the discovery host serves no usable key set
    key_server = Provider()
    with start_live(e2e_workdir / "identity" / "discovery", policy(DISCOVERY), provider, key_server) as live:
        live.wait_until(lambda: live.call(token()).status_code == 200, 15, "keys through discovery")
        assert provider.hit_count("/.well-known/openid-configuration") >= 1
        assert key_server.hit_count("/jwks") >= 1, "fetched from the cluster the host maps to"
        assert provider.hit_count("/jwks") == 0

        # A jwks_uri on a host no cluster reaches is refused, and the keys in
        # force stay. (An unknown kid makes Warden fetch; the discovered
        # location is older than discovery_refresh_seconds, so it rediscovers.)
        with provider.lock:
            provider.jwks_uri = "https://www.googleapis.com/oauth2/v3/certs"
        time.sleep(MIN_REFRESH + 0.5)
        mark = live.log.mark()
        assert live.call(token(kid="rotated-elsewhere")).status_code == 401
        live.wait_until(
            lambda: "`jwks_uri` host `www.googleapis.com` maps to no cluster" in live.log.text(mark),
            10,
            "the refusal in the log",
        )
        assert live.call(token()).status_code == 200


# A Keycloak realm as its tokens come: realm roles under `realm_access`,
# groups as full paths, no actor-type claim. The realm's keys are the demo
# keys, fetched from the loopback provider like the other issuer's.
KEYCLOAK = "https://sso.demo.warden.test/realms/demo"
PLAIN = "https://plain.demo.warden.test/realms/demo"
KEYCLOAK_POLICY = f"""
version: 1
identity:
  issuers:
    - issuer: {KEYCLOAK}
      preset: keycloak
      audiences: [https://mcp.demo.warden.test/mcp]
      jwks_fetch: {{cluster: idp, path: /jwks, min_refresh_interval_seconds: 1}}
    - issuer: {PLAIN}
      audiences: [https://mcp.demo.warden.test/mcp]
      jwks_fetch: {{cluster: idp, path: /jwks, min_refresh_interval_seconds: 1}}
rules:
  - id: sre-lists-tools
    effect: allow
    owner: team-platform
    principal: {{types: [human], groups: [/sre], roles: [sre-oncall]}}
    methods: [tools/list]
"""


def keycloak_token(issuer: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "exp": now + 300,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "iss": issuer,
        "aud": [mint_token.AUDIENCE, "account"],
        "sub": "f1d8c3a0-5b7e-4c2a-9e1f-3a6b8d0c2e4f",
        "typ": "Bearer",
        "azp": "mcp-inspector",
        "realm_access": {"roles": ["default-roles-demo", "offline_access", "sre-oncall"]},
        "resource_access": {"account": {"roles": ["view-profile"]}},
        "scope": "openid profile email",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "groups": ["/sre"],
    }
    payload.update(claims)
    return mint_token.sign(payload)


def test_a_keycloak_shaped_token_is_classified_by_the_preset(e2e_workdir: Path) -> None:
    provider = Provider()
    with start_live(e2e_workdir / "identity" / "keycloak", KEYCLOAK_POLICY, provider) as live:
        live.wait_until(lambda: live.call(keycloak_token(KEYCLOAK)).status_code == 200, 15, "the realm's keys")
        mark = live.log.mark()
        response = live.call(keycloak_token(KEYCLOAK))
        assert "result" in response.json(), response.text
        # The realm's service account: a service, which the rule does not allow.
        service = live.call(
            keycloak_token(
                KEYCLOAK,
                sub="3b9e6f1a-2c4d-4e8f-a0b1-c2d3e4f5a6b7",
                azp="ci-deployer",
                client_id="ci-deployer",
                preferred_username="service-account-ci-deployer",
                groups=["/sre"],
            )
        )
        assert "error" in service.json(), service.text
        # The same token shape from an issuer without a preset: unclassified,
        # and only the audit line says which setting to add.
        plain = live.call(keycloak_token(PLAIN))
        assert "error" in plain.json(), plain.text
        assert "default_actor_type" not in plain.text
        audits = live.log.wait_for_audits(mark, lambda a: len(a) >= 3)
        by_issuer = [(a.get("issuer"), a["decision"], a.get("actor_type")) for a in audits]
        assert (KEYCLOAK, "allow", "human") in by_issuer, audits
        assert (KEYCLOAK, "deny", "service") in by_issuer, audits
        [unclassified] = [a for a in audits if a.get("issuer") == PLAIN]
        assert unclassified["decision"] == "deny" and unclassified.get("actor_type") is None, unclassified
        assert f"issuer `{PLAIN}`" in unclassified["reason"], unclassified
        assert "`claims.default_actor_type`" in unclassified["reason"], unclassified
