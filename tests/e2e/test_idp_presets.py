"""Tokens as Keycloak, Microsoft Entra ID, Auth0 and Okta issue them, through real Envoy.

The test plays the four identity providers on one loopback HTTP server,
each answering under its own host name (the `:authority` Envoy sends):
each has its own RSA signing key, publishes it in the key-set format the
provider documents (Keycloak's set with its `RSA-OAEP` encryption key,
Entra ID's keys without `alg`, certificates in `x5c`), and Keycloak, Entra
ID and Okta are found through OpenID discovery as `docs/policy.md`'s
examples configure them. The same server is the MCP upstream, recording
every tool call that reaches it.

Envoy runs the filter (two workers) with one issuer per provider, each
with its `preset` and no claim settings of its own beyond the documented
ones, and rules keyed on actor type, groups, roles and scopes. Tokens of
each provider's documented shapes (user, service/client-credentials and
delegated `act` tokens, `scp` as a string and as an array, roles nested
under `realm_access` or namespaced) are classified as the preset's table
says: the audit line's `actor_type`, `subject_type`, `subject`, `actor`
and `client_id`, and the rule that allowed or denied, are checked for
each. A token no preset rule classifies is refused, and only the audit
line says which setting to add.

A fifth issuer, a second Keycloak realm, is found through a discovery
document that first names another issuer (the realm behind a proxy
before its hostname is set): its tokens are refused (503) and the log
says why; once the document names the configured issuer, the same
tokens pass.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator

import httpx
import jwt
import pytest
from conftest import HEADER_MODE
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from helpers import DENY_CODE, WITHHELD_MESSAGE, loopback_http_server, send_json
from warden_stack import EnvoyLog, Stack


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class RsaKey:
    """An identity provider's RSA key, with a self-signed certificate for `x5c`."""

    def __init__(self, kid: str | None = None, subject: str = "warden-e2e") -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(self.private, hashes.SHA256())
        )
        self.der = certificate.public_bytes(serialization.Encoding.DER)
        # Entra ID's kid is the certificate's SHA-1 thumbprint (also `x5t`).
        self.x5t = b64url(hashlib.sha1(self.der).digest())
        self.kid = kid or self.x5t
        self.pem = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def jwk(self, **members: Any) -> dict[str, Any]:
        """The public JWK: `kty`, `kid`, `n`, `e`, then `members` as given
        (a provider's own choice of `use`, `alg`, `x5c`, ...)."""
        numbers = self.private.public_key().public_numbers()
        return {"kty": "RSA", "kid": self.kid, "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e), **members}

    def certificate_members(self) -> dict[str, Any]:
        return {
            "x5c": [base64.b64encode(self.der).decode()],
            "x5t": self.x5t,
            "x5t#S256": b64url(hashlib.sha256(self.der).digest()),
        }

    def sign(self, payload: dict[str, Any], **header: Any) -> str:
        """RS256 over `payload`, with exactly the header members `header`
        and `alg`: each provider's own header. (PyJWT would add `typ: JWT`
        where none is given; Okta's header has none.)"""
        return jwt.encode(payload, self.pem, algorithm="RS256", headers={"typ": None, **header})


# ---------------------------------------------------------------- the providers

KEYCLOAK_HOST = "sso.example.com"
KEYCLOAK = f"https://{KEYCLOAK_HOST}/realms/acme"
# A second realm, found through a discovery document that names another
# issuer until the test fixes it.
PARTNER = f"https://{KEYCLOAK_HOST}/realms/partner"
PARTNER_BEHIND_PROXY = "http://keycloak:8080/realms/partner"

ENTRA_HOST = "login.microsoftonline.com"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA = f"https://{ENTRA_HOST}/{TENANT}/v2.0"
# v2 access tokens carry the API's application (client) id as `aud`.
ENTRA_API = "3f8b2c1d-7a4e-4b9f-8c2d-1e5f6a7b8c9d"

AUTH0_HOST = "acme.us.auth0.com"
AUTH0 = f"https://{AUTH0_HOST}/"  # Auth0's issuer ends with a slash

OKTA_HOST = "acme.okta.com"
OKTA = f"https://{OKTA_HOST}/oauth2/default"

MCP_AUDIENCE = "https://mcp.example.com/mcp"


class Providers:
    """What the loopback server answers, by host and path; changeable by the tests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keycloak = RsaKey()
        self.keycloak_enc = RsaKey()
        self.partner = RsaKey()
        self.entra = RsaKey()
        self.entra_next = RsaKey()
        self.auth0 = RsaKey(kid="gS4GQ5yS1AZrXQhDsHbP0")
        self.auth0_next = RsaKey(kid="Zv3Jk2nQ8wR0pLm7aT5cY")
        self.okta = RsaKey(kid="k7Wb2xQn8mZc4Rj1vYt6Lp0sHd3Ge9FaUo5Ni2Kw")
        self.partner_issuer = PARTNER_BEHIND_PROXY
        self.documents: dict[tuple[str, str], Any] = {}
        self.hits: dict[tuple[str, str], int] = {}
        # Tool calls that reached the upstream, by JSON-RPC id.
        self.upstream_calls: dict[str, str] = {}

    def build(self) -> None:
        def keycloak_realm(issuer: str, keys: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
            realm_path = issuer.removeprefix(f"https://{KEYCLOAK_HOST}")
            oidc = f"{issuer}/protocol/openid-connect"
            return {
                (KEYCLOAK_HOST, f"{realm_path}/.well-known/openid-configuration"): lambda: {
                    "issuer": issuer if issuer != PARTNER else self.partner_issuer,
                    "authorization_endpoint": f"{oidc}/auth",
                    "token_endpoint": f"{oidc}/token",
                    "userinfo_endpoint": f"{oidc}/userinfo",
                    "jwks_uri": f"{oidc}/certs",
                    "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
                    "id_token_signing_alg_values_supported": ["RS256", "ES256", "PS256"],
                },
                (KEYCLOAK_HOST, f"{realm_path}/protocol/openid-connect/certs"): {"keys": keys},
            }

        # Keycloak's key set: the realm's encryption key next to its signing key.
        self.documents.update(
            keycloak_realm(
                KEYCLOAK,
                [
                    self.keycloak_enc.jwk(use="enc", alg="RSA-OAEP", **self.keycloak_enc.certificate_members()),
                    self.keycloak.jwk(use="sig", alg="RS256", **self.keycloak.certificate_members()),
                ],
            )
        )
        self.documents.update(
            keycloak_realm(PARTNER, [self.partner.jwk(use="sig", alg="RS256", **self.partner.certificate_members())])
        )
        # Entra ID's: no `alg`, the issuer in each key, the next key published early.
        entra_keys = [
            key.jwk(use="sig", **key.certificate_members(), issuer=ENTRA)
            for key in (self.entra, self.entra_next)
        ]
        self.documents[(ENTRA_HOST, f"/{TENANT}/v2.0/.well-known/openid-configuration")] = {
            "token_endpoint": f"https://{ENTRA_HOST}/{TENANT}/oauth2/v2.0/token",
            "jwks_uri": f"https://{ENTRA_HOST}/{TENANT}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "issuer": ENTRA,
            "authorization_endpoint": f"https://{ENTRA_HOST}/{TENANT}/oauth2/v2.0/authorize",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }
        self.documents[(ENTRA_HOST, f"/{TENANT}/discovery/v2.0/keys")] = {"keys": entra_keys}
        # Auth0's, fetched directly (the docs' example): current and next key.
        self.documents[(AUTH0_HOST, "/.well-known/jwks.json")] = {
            "keys": [
                key.jwk(use="sig", alg="RS256", **{k: v for k, v in key.certificate_members().items() if k != "x5t#S256"})
                for key in (self.auth0, self.auth0_next)
            ]
        }
        # Okta's custom authorization server.
        self.documents[(OKTA_HOST, "/oauth2/default/.well-known/openid-configuration")] = {
            "issuer": OKTA,
            "authorization_endpoint": f"{OKTA}/v1/authorize",
            "token_endpoint": f"{OKTA}/v1/token",
            "jwks_uri": f"{OKTA}/v1/keys",
            "grant_types_supported": ["authorization_code", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"],
        }
        self.documents[(OKTA_HOST, "/oauth2/default/v1/keys")] = {
            "keys": [self.okta.jwk(alg="RS256", use="sig")]
        }

    def hit_count(self, host: str, path: str) -> int:
        with self.lock:
            return self.hits.get((host, path), 0)


def make_handler(providers: Providers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            host = (self.headers.get("host") or "").split(":")[0]
            with providers.lock:
                providers.hits[(host, self.path)] = providers.hits.get((host, self.path), 0) + 1
                document = providers.documents.get((host, self.path))
                if callable(document):
                    document = document()
            if document is None:
                send_json(self, 404, {"error": f"no document {self.path} on {host}"})
            else:
                send_json(self, 200, document)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("content-length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}")
            tool = request.get("params", {}).get("name")
            with providers.lock:
                providers.upstream_calls[str(request.get("id"))] = tool
            result = {"content": [{"type": "text", "text": f"{tool} done"}], "isError": False}
            send_json(self, 200, {"jsonrpc": "2.0", "id": request.get("id"), "result": result})

    return Handler


# ---------------------------------------------------------------- the policy

def discovery(cluster: str, host: str, path: str) -> str:
    return (
        f"{{cluster: {cluster}, authority: {host}, path: {path}, discovery: true, "
        "refresh_seconds: 3600, min_refresh_interval_seconds: 1, timeout_ms: 2000}"
    )


POLICY = f"""
version: 1
identity:
  issuers:
    - issuer: {KEYCLOAK}
      audiences: [mcp-server]              # Keycloak's audience mapper names the client
      preset: keycloak
      jwks_fetch: {discovery("keycloak", KEYCLOAK_HOST, "/realms/acme/.well-known/openid-configuration")}
    - issuer: {PARTNER}
      audiences: [mcp-server]
      preset: keycloak
      jwks_fetch: {discovery("keycloak", KEYCLOAK_HOST, "/realms/partner/.well-known/openid-configuration")}
    - issuer: {ENTRA}
      audiences: [{ENTRA_API}]
      preset: entra
      jwks_fetch: {discovery("entra", ENTRA_HOST, f"/{TENANT}/v2.0/.well-known/openid-configuration")}
    - issuer: {AUTH0}
      audiences: [{MCP_AUDIENCE}]
      preset: auth0
      claims: {{roles: https://mcp.example.com/roles}}   # added by an Auth0 Action
      jwks_fetch: {{cluster: auth0, authority: {AUTH0_HOST}, path: /.well-known/jwks.json,
                   refresh_seconds: 3600, min_refresh_interval_seconds: 1, timeout_ms: 2000}}
    - issuer: {OKTA}
      audiences: ["api://mcp"]
      preset: okta
      jwks_fetch: {discovery("okta", OKTA_HOST, "/oauth2/default/.well-known/openid-configuration")}
rules:
  # Keycloak: realm roles, groups as full paths, `scope` a string.
  - id: kc-sre-restart
    effect: allow
    owner: team-sre
    principal: {{types: [human], groups: [/sre], roles: [sre-oncall]}}
    tools: [kc_restart]
  - id: kc-ci-deploy
    effect: allow
    owner: team-release
    principal: {{types: [service], roles: [deployer]}}
    tools: [kc_deploy]
  # Entra ID: `scp` a space-separated string (delegated), app roles in `roles`.
  - id: entra-people-search
    effect: allow
    owner: team-docs
    principal: {{types: [human], scopes: [Tools.Call], groups: [0b5c1a2e-3d4f-4a6b-8c7d-9e0f1a2b3c4d]}}
    tools: [entra_search]
  - id: entra-apps-sync
    effect: allow
    owner: team-docs
    principal: {{types: [service], roles: [Tools.Sync.All]}}
    tools: [entra_sync]
  # Auth0: RBAC `permissions` read as scopes, roles from a namespaced claim.
  - id: auth0-sre-search
    effect: allow
    owner: team-sre
    principal: {{types: [human], scopes: ["call:search_docs"], roles: [sre]}}
    tools: [auth0_search]
  - id: auth0-m2m-deploy
    effect: allow
    owner: team-release
    principal: {{types: [service], scopes: ["call:deploy"]}}
    tools: [auth0_deploy]
  # Okta: `scp` an array, groups from the authorization server's claim.
  - id: okta-sre-search
    effect: allow
    owner: team-sre
    principal: {{types: [human], scopes: [mcp.call], groups: [sre]}}
    tools: [okta_search]
  - id: okta-cc-deploy
    effect: allow
    owner: team-release
    principal: {{types: [service], scopes: [mcp.deploy]}}
    tools: [okta_deploy]
  # Any provider: an agent acting for a person may do what the person may.
  - id: agents-for-people
    effect: allow
    owner: team-platform
    principal: {{types: [agent]}}
    on_behalf_of: {{types: [human]}}
    tools: [kc_restart, entra_search, auth0_search, okta_search]
  # And services never run searches, whatever they hold.
  - id: no-service-searches
    effect: deny
    owner: team-platform
    principal: {{types: [service]}}
    tools: ["*_search"]
"""


# ---------------------------------------------------------------- tokens, as each provider issues them

def times(lifetime: int = 300) -> dict[str, int]:
    now = int(time.time())
    return {"iat": now, "exp": now + lifetime}


def keycloak_user(**claims: Any) -> dict[str, Any]:
    return {
        **times(),
        "jti": str(uuid.uuid4()),
        "iss": KEYCLOAK,
        "aud": ["mcp-server", "account"],
        "sub": "f1d8c3a0-5b7e-4c2a-9e1f-3a6b8d0c2e4f",
        "typ": "Bearer",
        "azp": "mcp-inspector",
        "sid": "0c2d9a4e-7b1f-4e6a-8d3c-5f2a1b0e9d8c",
        "acr": "1",
        "allowed-origins": ["https://inspector.example.com"],
        "realm_access": {"roles": ["default-roles-acme", "offline_access", "uma_authorization", "sre-oncall"]},
        "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
        "scope": "openid profile email",
        "email_verified": True,
        "name": "Alice Doe",
        "preferred_username": "alice",
        "given_name": "Alice",
        "family_name": "Doe",
        "email": "alice@example.com",
        "groups": ["/sre"],
        **claims,
    }


def keycloak_service_account(**claims: Any) -> dict[str, Any]:
    # Keycloak 25 and later: the `service_account` client scope adds
    # `client_id` (earlier versions: `clientId`), `clientHost`, `clientAddress`.
    return {
        **times(),
        "jti": str(uuid.uuid4()),
        "iss": KEYCLOAK,
        "aud": ["mcp-server", "account"],
        "sub": "3b9e6f1a-2c4d-4e8f-a0b1-c2d3e4f5a6b7",
        "typ": "Bearer",
        "azp": "ci-deployer",
        "acr": "1",
        "realm_access": {"roles": ["default-roles-acme", "offline_access", "uma_authorization", "deployer"]},
        "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
        "scope": "profile email",
        "clientHost": "10.0.12.7",
        "email_verified": False,
        "preferred_username": "service-account-ci-deployer",
        "clientAddress": "10.0.12.7",
        "client_id": "ci-deployer",
        **claims,
    }


def entra_delegated(**claims: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "aud": ENTRA_API,
        "iss": ENTRA,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "aio": "AWQAm/8YAAAAw5hY0Jb1Ss0tI0s3Q5rK7o3hP1b",
        "azp": "9e3a6c1f-4b2d-4f8e-a1c3-5d7e9f0b2a4c",
        "azpacr": "0",
        "groups": ["0b5c1a2e-3d4f-4a6b-8c7d-9e0f1a2b3c4d", "5d0e7f4a-9b8c-4d1e-a2f3-6c7b8a9d0e1f"],
        "name": "Alice Doe",
        "oid": "00000000-0000-0000-66f3-3332eca7ea81",
        "preferred_username": "alice@contoso.com",
        "rh": "1.AXoAv4j5cvGGr0GRqy180BHbRwIAAAAAAAAAwAAAAAAAAAB6AGQ.",
        "scp": "Tools.Read Tools.Call",
        "sid": "5a3b1c2d-0e9f-4a8b-7c6d-5e4f3a2b1c0d",
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "tid": TENANT,
        "uti": "fqiBqXLPj0eQa82S-IYFAA",
        "ver": "2.0",
        **claims,
    }


def entra_app_only(**claims: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "aud": ENTRA_API,
        "iss": ENTRA,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "aio": "E2ZgYJh+8bq1XtWY5nVB7ttH",
        "azp": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
        "azpacr": "1",
        "idtyp": "app",
        "oid": "a4d8a2d5-6e1b-4c3f-9a2e-0b7c5d3e1f9a",
        "rh": "1.AXoAv4j5cvGGr0GRqy180BHbRwIAAAAAAAAAwAAAAAAAAAB6AAA.",
        "roles": ["Tools.Sync.All"],
        "sub": "a4d8a2d5-6e1b-4c3f-9a2e-0b7c5d3e1f9a",
        "tid": TENANT,
        "uti": "r0j2f9UdK0W6cWnEZ2yIAA",
        "ver": "2.0",
        **claims,
    }


def auth0_user(**claims: Any) -> dict[str, Any]:
    return {
        "iss": AUTH0,
        "sub": "auth0|6553da60a54af58e29493993",
        "aud": [MCP_AUDIENCE, f"https://{AUTH0_HOST}/userinfo"],
        **times(),
        "scope": "openid profile email",
        "azp": "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja",
        "permissions": ["call:search_docs", "read:tools"],
        "https://mcp.example.com/roles": ["sre"],
        **claims,
    }


def auth0_machine(**claims: Any) -> dict[str, Any]:
    return {
        "iss": AUTH0,
        "sub": "awZfdIir8YFdGZWkvCejDoUb7SjTDicx@clients",
        "aud": MCP_AUDIENCE,
        **times(),
        "scope": "call:deploy call:search_docs",
        "gty": "client-credentials",
        "azp": "awZfdIir8YFdGZWkvCejDoUb7SjTDicx",
        "permissions": ["call:deploy", "call:search_docs"],
        **claims,
    }


def okta_user(**claims: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "ver": 1,
        "jti": f"AT.{uuid.uuid4().hex}",
        "iss": OKTA,
        "aud": "api://mcp",
        "iat": now,
        "exp": now + 3600,
        "cid": "0oa1mcpinspector5d7",
        "uid": "00u1alice8Yh2x5d7",
        "scp": ["openid", "profile", "mcp.call"],
        "auth_time": now - 60,
        "sub": "alice@example.com",
        "groups": ["Everyone", "sre"],
        **claims,
    }


def okta_client_credentials(**claims: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "ver": 1,
        "jti": f"AT.{uuid.uuid4().hex}",
        "iss": OKTA,
        "aud": "api://mcp",
        "iat": now,
        "exp": now + 3600,
        "cid": "0oa2cideployer5d7",
        "scp": ["mcp.deploy", "mcp.call"],
        "sub": "0oa2cideployer5d7",
        **claims,
    }


class Idp:
    """Signs tokens the way each provider does (its own header)."""

    def __init__(self, providers: Providers) -> None:
        self.p = providers

    def keycloak(self, payload: dict[str, Any], key: RsaKey | None = None) -> str:
        key = key or self.p.keycloak
        return key.sign(payload, kid=key.kid, typ="JWT")

    def entra(self, payload: dict[str, Any]) -> str:
        return self.p.entra.sign(payload, typ="JWT", kid=self.p.entra.kid, x5t=self.p.entra.x5t)

    def auth0(self, payload: dict[str, Any]) -> str:
        return self.p.auth0.sign(payload, typ="JWT", kid=self.p.auth0.kid)

    def okta(self, payload: dict[str, Any]) -> str:
        return self.p.okta.sign(payload, kid=self.p.okta.kid)


# ---------------------------------------------------------------- the stack

class Live:
    def __init__(self, providers: Providers, url: str, envoy_log: EnvoyLog) -> None:
        self.providers = providers
        self.idp = Idp(providers)
        self.url = url
        self.log = envoy_log

    def call(self, token: str, tool: str, request_id: str | None = None) -> httpx.Response:
        body = {
            "jsonrpc": "2.0",
            "id": request_id or uuid.uuid4().hex,
            "method": "tools/call",
            "params": {"name": tool, "arguments": {}},
        }
        return httpx.post(self.url, json=body, headers={"authorization": f"Bearer {token}"}, timeout=10)

    def judged(self, token: str, tool: str) -> tuple[httpx.Response, dict[str, Any]]:
        """The answer to one tool call and its audit line (found by JSON-RPC id)."""
        request_id = uuid.uuid4().hex
        mark = self.log.mark()
        response = self.call(token, tool, request_id)
        audits = self.log.wait_for_audits(mark, lambda a: any(r.get("jsonrpc_id") == request_id for r in a))
        mine = [a for a in audits if a.get("jsonrpc_id") == request_id]
        assert len(mine) == 1, f"one audit line for request {request_id}, got {audits}"
        return response, mine[0]

    def wait_until(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.log.text()[-3000:]}")


@pytest.fixture(scope="module")
def live(e2e_workdir: Path) -> Iterator[Live]:
    providers = Providers()
    providers.build()
    workdir = e2e_workdir / "idp-presets"
    with contextlib.ExitStack() as stack_:
        port = stack_.enter_context(loopback_http_server(make_handler(providers))).server_address[1]
        stack = Stack(
            policy=workdir / "policy.yaml",
            workdir=workdir,
            with_server=False,
            server_port=port,
            # One server plays every provider; each has its own cluster, as
            # it would in production.
            clusters={"keycloak": port, "entra": port, "auth0": port, "okta": port},
            concurrency=2,
            header_mode=HEADER_MODE,
        )
        stack.policy.write_text(POLICY)
        stack_.enter_context(stack)
        live = Live(providers, stack.url, stack.envoy_log)
        idp = live.idp
        for issuer, token, tool in (
            (KEYCLOAK, idp.keycloak(keycloak_user()), "kc_restart"),
            (ENTRA, idp.entra(entra_delegated()), "entra_search"),
            (AUTH0, idp.auth0(auth0_user()), "auth0_search"),
            (OKTA, idp.okta(okta_user()), "okta_search"),
        ):
            live.wait_until(lambda: live.call(token, tool).status_code == 200, 20, f"the keys of {issuer}")
        yield live


def assert_allowed(live: Live, response: httpx.Response, audit: dict[str, Any], rule: str) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "result" in body, body
    assert audit["decision"] == "allow", audit
    assert audit["rule"] == rule, audit
    with live.providers.lock:
        assert live.providers.upstream_calls.get(str(body["id"])) is not None, "the call reached the upstream"


def assert_denied(live: Live, response: httpx.Response, audit: dict[str, Any], rule: str | None) -> None:
    body = response.json()
    assert body.get("error", {}).get("code") == DENY_CODE, body
    assert audit["decision"] == "deny", audit
    assert audit["rule"] == rule, audit
    with live.providers.lock:
        assert str(body["id"]) not in live.providers.upstream_calls, "a denied call never reaches the upstream"


def who(audit: dict[str, Any]) -> dict[str, Any]:
    return {k: audit.get(k) for k in ("issuer", "actor_type", "subject", "subject_type", "actor", "client_id")}


# ---------------------------------------------------------------- Keycloak

def test_keycloak_user_service_account_and_agent(live: Live) -> None:
    idp = live.idp
    response, audit = live.judged(idp.keycloak(keycloak_user()), "kc_restart")
    assert_allowed(live, response, audit, "kc-sre-restart")
    assert who(audit) == {
        "issuer": KEYCLOAK,
        "actor_type": "human",
        "subject": "f1d8c3a0-5b7e-4c2a-9e1f-3a6b8d0c2e4f",
        "subject_type": "human",
        "actor": None,
        "client_id": "mcp-inspector",
    }
    # Roles are read under `realm_access`: without the realm role, no rule allows.
    no_role = keycloak_user(realm_access={"roles": ["default-roles-acme", "offline_access"]})
    response, audit = live.judged(idp.keycloak(no_role), "kc_restart")
    assert_denied(live, response, audit, None)
    assert audit["actor_type"] == "human", audit
    # A group is its full path: `/sre`, not `sre`.
    response, audit = live.judged(idp.keycloak(keycloak_user(groups=["/eng"])), "kc_restart")
    assert_denied(live, response, audit, None)

    # The service account (client credentials): a service.
    ci = idp.keycloak(keycloak_service_account())
    response, audit = live.judged(ci, "kc_deploy")
    assert_allowed(live, response, audit, "kc-ci-deploy")
    assert who(audit) == {
        "issuer": KEYCLOAK,
        "actor_type": "service",
        "subject": "3b9e6f1a-2c4d-4e8f-a0b1-c2d3e4f5a6b7",
        "subject_type": "service",
        "actor": None,
        "client_id": "ci-deployer",
    }
    # ... which the people's rule does not let restart, even in /sre.
    response, audit = live.judged(
        idp.keycloak(keycloak_service_account(groups=["/sre"], realm_access={"roles": ["sre-oncall"]})), "kc_restart"
    )
    assert_denied(live, response, audit, None)
    assert audit["actor_type"] == "service", audit
    # Before Keycloak 25 the claim was `clientId`.
    old = keycloak_service_account()
    old["clientId"] = old.pop("client_id")
    response, audit = live.judged(idp.keycloak(old), "kc_deploy")
    assert_allowed(live, response, audit, "kc-ci-deploy")
    assert audit["actor_type"] == "service", audit
    assert audit["client_id"] == "ci-deployer", "`azp` names the client"
    # A user who chose the username `service-account-…` is still a person.
    lookalike = keycloak_user(preferred_username="service-account-ci-deployer")
    response, audit = live.judged(idp.keycloak(lookalike), "kc_deploy")
    assert_denied(live, response, audit, None)
    assert audit["actor_type"] == "human", audit

    # An agent acting for Alice (RFC 8693 `act`): judged as an agent, for a human.
    delegated = keycloak_user(act={"sub": "research-agent"})
    response, audit = live.judged(idp.keycloak(delegated), "kc_restart")
    assert_allowed(live, response, audit, "agents-for-people")
    assert who(audit) == {
        "issuer": KEYCLOAK,
        "actor_type": "agent",
        "subject": "f1d8c3a0-5b7e-4c2a-9e1f-3a6b8d0c2e4f",
        "subject_type": "human",
        "actor": "research-agent",
        "client_id": "mcp-inspector",
    }
    assert audit["chain"] == ["f1d8c3a0-5b7e-4c2a-9e1f-3a6b8d0c2e4f", "research-agent"], audit
    # The person's own pass still counts: an agent for someone outside /sre is refused.
    response, audit = live.judged(idp.keycloak(keycloak_user(groups=[], act={"sub": "research-agent"})), "kc_restart")
    assert_denied(live, response, audit, None)
    assert (audit["actor_type"], audit["subject_type"]) == ("agent", "human"), audit


# ---------------------------------------------------------------- Microsoft Entra ID

def test_entra_delegated_and_app_only_tokens(live: Live) -> None:
    idp = live.idp
    response, audit = live.judged(idp.entra(entra_delegated()), "entra_search")
    assert_allowed(live, response, audit, "entra-people-search")
    assert who(audit) == {
        "issuer": ENTRA,
        "actor_type": "human",
        # `oid`, not the pairwise `sub`.
        "subject": "00000000-0000-0000-66f3-3332eca7ea81",
        "subject_type": "human",
        "actor": None,
        "client_id": "9e3a6c1f-4b2d-4f8e-a1c3-5d7e9f0b2a4c",
    }
    # `scp` is one space-separated string: without `Tools.Call` in it, no rule allows.
    response, audit = live.judged(idp.entra(entra_delegated(scp="Tools.Read")), "entra_search")
    assert_denied(live, response, audit, None)
    assert audit["actor_type"] == "human", audit
    # With the optional `idtyp` claim enabled, user tokens say `user`.
    response, audit = live.judged(idp.entra(entra_delegated(idtyp="user")), "entra_search")
    assert_allowed(live, response, audit, "entra-people-search")

    # App-only (client credentials): a service, by `idtyp: app`, its app role in `roles`.
    response, audit = live.judged(idp.entra(entra_app_only()), "entra_sync")
    assert_allowed(live, response, audit, "entra-apps-sync")
    assert who(audit) == {
        "issuer": ENTRA,
        "actor_type": "service",
        "subject": "a4d8a2d5-6e1b-4c3f-9a2e-0b7c5d3e1f9a",
        "subject_type": "service",
        "actor": None,
        "client_id": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
    }
    response, audit = live.judged(idp.entra(entra_app_only()), "entra_search")
    assert_denied(live, response, audit, "no-service-searches")
    # Without `idtyp` (an optional claim): no `scp` and `oid` = `sub` still says app-only.
    bare = entra_app_only()
    del bare["idtyp"]
    response, audit = live.judged(idp.entra(bare), "entra_sync")
    assert_allowed(live, response, audit, "entra-apps-sync")
    assert audit["actor_type"] == "service", audit

    # Entra ID issues no `act`; under this preset an actor is named by
    # `oid`, like the subject, and is an agent.
    agent_oid = "7c1e5b2a-9d3f-4e8a-b6c0-2f4d8e1a3b5c"
    response, audit = live.judged(idp.entra(entra_delegated(act={"oid": agent_oid})), "entra_search")
    assert_allowed(live, response, audit, "agents-for-people")
    assert (audit["actor_type"], audit["subject_type"], audit["actor"]) == ("agent", "human", agent_oid), audit
    # An actor named only by `sub` has no subject here: the token is refused,
    # and the audit line names the claim it lacks.
    mark = live.log.mark()
    response = live.call(idp.entra(entra_delegated(act={"sub": "research-agent"})), "entra_search")
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    audits = live.log.wait_for_audits(mark, lambda a: any(r.get("status") == 401 for r in a))
    [refused] = [a for a in audits if a.get("status") == 401]
    assert refused["token_failure"] == "missing_claim" and "`act.oid`" in refused["reason"], refused


# ---------------------------------------------------------------- Auth0

def test_auth0_user_machine_to_machine_and_agent(live: Live) -> None:
    idp = live.idp
    response, audit = live.judged(idp.auth0(auth0_user()), "auth0_search")
    assert_allowed(live, response, audit, "auth0-sre-search")
    assert who(audit) == {
        "issuer": AUTH0,
        "actor_type": "human",
        "subject": "auth0|6553da60a54af58e29493993",
        "subject_type": "human",
        "actor": None,
        "client_id": "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja",
    }
    # The permission comes from the `permissions` array; without it, no rule allows.
    response, audit = live.judged(idp.auth0(auth0_user(permissions=["read:tools"])), "auth0_search")
    assert_denied(live, response, audit, None)
    # The role comes from the namespaced claim the policy names.
    response, audit = live.judged(idp.auth0(auth0_user(**{"https://mcp.example.com/roles": []})), "auth0_search")
    assert_denied(live, response, audit, None)

    # Client credentials: `gty: client-credentials`, subject `<client id>@clients`.
    response, audit = live.judged(idp.auth0(auth0_machine()), "auth0_deploy")
    assert_allowed(live, response, audit, "auth0-m2m-deploy")
    assert who(audit) == {
        "issuer": AUTH0,
        "actor_type": "service",
        "subject": "awZfdIir8YFdGZWkvCejDoUb7SjTDicx@clients",
        "subject_type": "service",
        "actor": None,
        "client_id": "awZfdIir8YFdGZWkvCejDoUb7SjTDicx",
    }
    response, audit = live.judged(idp.auth0(auth0_machine()), "auth0_search")
    assert_denied(live, response, audit, "no-service-searches")
    # The RFC 9068 token profile has no `gty`: the `@clients` subject says it.
    rfc9068 = auth0_machine(client_id="awZfdIir8YFdGZWkvCejDoUb7SjTDicx")
    del rfc9068["gty"]
    response, audit = live.judged(
        idp.p.auth0.sign(rfc9068, typ="at+jwt", kid=idp.p.auth0.kid), "auth0_deploy"
    )
    assert_allowed(live, response, audit, "auth0-m2m-deploy")
    assert audit["actor_type"] == "service", audit

    # An agent acting for the user.
    delegated = auth0_user(act={"sub": "research-agent@clients"})
    response, audit = live.judged(idp.auth0(delegated), "auth0_search")
    assert_allowed(live, response, audit, "agents-for-people")
    assert (audit["actor_type"], audit["subject_type"], audit["actor"]) == (
        "agent",
        "human",
        "research-agent@clients",
    ), audit


# ---------------------------------------------------------------- Okta

def test_okta_user_client_credentials_and_agent(live: Live) -> None:
    idp = live.idp
    response, audit = live.judged(idp.okta(okta_user()), "okta_search")
    assert_allowed(live, response, audit, "okta-sre-search")
    assert who(audit) == {
        "issuer": OKTA,
        "actor_type": "human",
        "subject": "alice@example.com",
        "subject_type": "human",
        "actor": None,
        "client_id": "0oa1mcpinspector5d7",
    }
    # `scp` is an array: without `mcp.call` in it, no rule allows.
    response, audit = live.judged(idp.okta(okta_user(scp=["openid", "profile"])), "okta_search")
    assert_denied(live, response, audit, None)
    response, audit = live.judged(idp.okta(okta_user(groups=["Everyone"])), "okta_search")
    assert_denied(live, response, audit, None)

    # Client credentials: `sub` = `cid`.
    response, audit = live.judged(idp.okta(okta_client_credentials()), "okta_deploy")
    assert_allowed(live, response, audit, "okta-cc-deploy")
    assert who(audit) == {
        "issuer": OKTA,
        "actor_type": "service",
        "subject": "0oa2cideployer5d7",
        "subject_type": "service",
        "actor": None,
        "client_id": "0oa2cideployer5d7",
    }
    response, audit = live.judged(idp.okta(okta_client_credentials()), "okta_search")
    assert_denied(live, response, audit, "no-service-searches")

    delegated = okta_user(act={"sub": "0oa3researchagent5d7"})
    response, audit = live.judged(idp.okta(delegated), "okta_search")
    assert_allowed(live, response, audit, "agents-for-people")
    assert (audit["actor_type"], audit["subject_type"], audit["actor"]) == (
        "agent",
        "human",
        "0oa3researchagent5d7",
    ), audit


# ---------------------------------------------------------------- unclassified

SUBJECT_FIX = (
    "no `actor_type` claim and no rule in `claims.actor_type_rules` classifies the token's subject; "
    "add a rule that matches it, or set `claims.default_actor_type`"
)


@pytest.mark.parametrize(
    ("issuer", "shape", "subject", "tool"),
    [
        # Entra ID: no `idtyp`, no `scp`, and `oid` is not `sub`: neither
        # a delegated nor an app-only token, and the preset has no default.
        ("entra", "app-only without idtyp, oid != sub", "a4d8a2d5-6e1b-4c3f-9a2e-0b7c5d3e1f9a", "entra_sync"),
        # Okta: no user id, and `sub` is not the client.
        ("okta", "no uid, sub != cid", "someone@example.com", "okta_deploy"),
    ],
)
def test_a_token_no_rule_classifies_is_refused_with_the_setting_to_add(
    live: Live, issuer: str, shape: str, subject: str, tool: str
) -> None:
    idp = live.idp
    if issuer == "entra":
        payload = entra_app_only(sub="AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ")
        del payload["idtyp"]
        token, configured = idp.entra(payload), ENTRA
    else:
        payload = okta_client_credentials(sub=subject)
        token, configured = idp.okta(payload), OKTA
    response, audit = live.judged(token, tool)
    assert_denied(live, response, audit, None)
    assert audit["actor_type"] is None and audit["subject_type"] is None, (shape, audit)
    assert audit["subject"] == subject, audit
    assert audit["reason"] == (
        f"`{subject}` has no recognised actor type (human, service or agent): "
        f"issuer `{configured}`: {SUBJECT_FIX}"
    ), audit
    # The caller learns nothing of the policy's settings.
    assert response.json()["error"]["message"] == WITHHELD_MESSAGE, response.text
    assert "claims." not in response.text and "actor_type_rules" not in response.text


# ---------------------------------------------------------------- discovery's issuer

def test_a_discovery_document_naming_another_issuer_is_refused(live: Live) -> None:
    certs = ("sso.example.com", "/realms/partner/protocol/openid-connect/certs")
    discovery_path = (KEYCLOAK_HOST, "/realms/partner/.well-known/openid-configuration")
    token = live.idp.keycloak(keycloak_user(iss=PARTNER), key=live.providers.partner)

    # The realm behind a proxy, before its hostname is set, advertises its
    # internal URL as the issuer.
    request_id = uuid.uuid4().hex
    mark = live.log.mark()
    response = live.call(token, "kc_restart", request_id)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["data"]["reason"] == "the keys to verify the token are not available yet"
    assert response.headers.get("retry-after") == "5"
    audits = live.log.wait_for_audits(mark, lambda a: any(r.get("status") == 503 for r in a))
    [audit] = [a for a in audits if a.get("status") == 503]
    assert audit["decision"] == "deny" and audit["token_failure"] == "keys_unavailable", audit
    assert audit["reason"] == f"signing keys of issuer `{PARTNER}` are not loaded yet", audit
    why = f"keys of `{PARTNER}`: discovery document names issuer `{PARTNER_BEHIND_PROXY}`, not `{PARTNER}`"
    live.wait_until(lambda: why in live.log.text(mark), 10, "the refusal in the log")
    assert live.providers.hit_count(*discovery_path) >= 1
    assert live.providers.hit_count(*certs) == 0, "no key set is fetched for a document naming another issuer"
    with live.providers.lock:
        assert request_id not in live.providers.upstream_calls

    # Once the realm names itself, the same configuration loads its keys
    # and the same token passes.
    with live.providers.lock:
        live.providers.partner_issuer = PARTNER
    live.wait_until(lambda: live.call(token, "kc_restart").status_code == 200, 20, "the realm's keys")
    assert live.providers.hit_count(*certs) >= 1
    response, audit = live.judged(token, "kc_restart")
    assert_allowed(live, response, audit, "kc-sre-restart")
    assert (audit["issuer"], audit["actor_type"]) == (PARTNER, "human"), audit
