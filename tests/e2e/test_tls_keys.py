"""A key set fetched over TLS through a cluster `warden envoy` renders.

The test is its own identity provider: it makes a throwaway CA, a server
certificate for `localhost` and 127.0.0.1 signed by it, and serves the demo
key set over HTTPS on loopback. Envoy reaches it through a `--cluster
idp=localhost:PORT,ca=…` (a LOGICAL_DNS cluster, TLS with SNI `localhost`,
trusting that CA and requiring that name). A token signed with the key set
is accepted. Trusting another CA, or requiring another name, the key set
never loads: every request is refused (503, audited), none reaches the
upstream, and Envoy's TLS statistics say why.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import ssl
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import mint_token
import pytest
from conftest import HEADER_MODE, REPO_ROOT
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import loopback_http_server, send_json
from warden_stack import Stack

DEMO_JWKS = json.loads((REPO_ROOT / "examples" / "keys" / "demo.jwks.json").read_text())

POLICY = """
version: 1
identity:
  issuers:
    - issuer: https://idp.demo.warden.test
      audiences: [https://mcp.demo.warden.test/mcp]
      algorithms: [ES256]
      jwks_fetch:
        cluster: idp
        path: /jwks
        authority: localhost
        refresh_seconds: 3600
        min_refresh_interval_seconds: 1
        timeout_ms: 2000
rules:
  - id: list-tools
    effect: allow
    owner: team-platform
    methods: [tools/list]
"""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def make_ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    """A self-signed CA, valid for a day; its certificate written to `directory/name.pem`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, path


def make_server_cert(
    directory: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    """A server certificate for `localhost` and 127.0.0.1 signed by `ca`: (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


class KeyServer:
    """The demo key set over HTTPS on 127.0.0.1; records the SNI names and paths it was asked for."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.lock = threading.Lock()
        self.server_names: list[str | None] = []
        self.paths: list[str] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.sni_callback = self._sni
        self.context = context

    def _sni(self, _socket: Any, server_name: str | None, _context: Any) -> None:
        with self.lock:
            self.server_names.append(server_name)

    def served(self, path: str) -> int:
        with self.lock:
            return self.paths.count(path)

    @contextlib.contextmanager
    def running(self) -> Iterator[int]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with owner.lock:
                    owner.paths.append(self.path)
                status, body = (200, DEMO_JWKS) if self.path == "/jwks" else (404, {"error": "no such document"})
                send_json(self, status, body)

        class TlsServer(ThreadingHTTPServer):
            # Handshakes happen in the request thread: a client that refuses
            # the certificate cannot stall the accept loop.
            def finish_request(self, request: Any, client_address: Any) -> None:
                try:
                    tls = owner.context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                try:
                    super().finish_request(tls, client_address)
                finally:
                    with contextlib.suppress(OSError):
                        tls.close()

        server = TlsServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


class Upstream(BaseHTTPRequestHandler):
    """The MCP server stand-in: answers tools/list, counts what reached it."""

    hits = 0
    lock = threading.Lock()

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        with Upstream.lock:
            Upstream.hits += 1
        send_json(self, 200, {"jsonrpc": "2.0", "id": request.get("id"), "result": {"tools": []}})


@pytest.fixture(scope="module")
def pki(e2e_workdir: Path) -> dict[str, Path]:
    directory = e2e_workdir / "tls-keys" / "pki"
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key, ca_path = make_ca(directory, "idp-ca")
    _, _, other_ca_path = make_ca(directory, "other-ca")
    cert, key = make_server_cert(directory, ca, ca_key)
    return {"ca": ca_path, "other_ca": other_ca_path, "cert": cert, "key": key}


@pytest.fixture(scope="module")
def key_server(pki: dict[str, Path]) -> Iterator[tuple[KeyServer, int]]:
    server = KeyServer(pki["cert"], pki["key"])
    with server.running() as port:
        yield server, port


@contextlib.contextmanager
def envoy_with(workdir: Path, idp_cluster: str) -> Iterator[Stack]:
    """Envoy and Warden whose `idp` cluster is `--cluster idp=<idp_cluster>`,
    in front of the upstream stand-in."""
    with loopback_http_server(Upstream) as upstream:
        stack = Stack(
            policy=workdir / "policy.yaml",
            workdir=workdir,
            with_server=False,
            server_port=upstream.server_address[1],
            clusters={"idp": idp_cluster},
            header_mode=HEADER_MODE,
        )
        stack.policy.write_text(POLICY)
        with stack:
            yield stack


def call(stack: Stack) -> httpx.Response:
    token = mint_token.mint("alice", "human", alg="ES256")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    return httpx.post(stack.url, json=body, headers={"authorization": f"Bearer {token}"}, timeout=10)


def cluster_stat(stack: Stack, name: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.admin_port}/stats?filter=^cluster\\.idp\\.", timeout=5) as r:
        for line in r.read().decode().splitlines():
            key, _, value = line.partition(": ")
            if key == f"cluster.idp.{name}":
                return int(value)
    return 0


def wait_for(predicate: Any, timeout: float, what: str, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{stack.envoy_log.text()[-3000:]}")


def test_the_bootstrap_renders_a_dns_cluster_with_tls(
    e2e_workdir: Path, pki: dict[str, Path], key_server: tuple[KeyServer, int]
) -> None:
    _, port = key_server
    with envoy_with(e2e_workdir / "tls-keys" / "trusted", f"localhost:{port},ca={pki['ca']}") as stack:
        config = stack.config_path.read_text()
        assert "type: LOGICAL_DNS" in config, config
        assert "envoy.transport_sockets.tls" in config and "sni: localhost" in config, config
        assert str(pki["ca"]) in config and "san_type: DNS" in config, config
        # Keys load over TLS; a token signed with them is accepted.
        wait_for(lambda: call(stack).status_code == 200, 20, "the key set to load over TLS", stack)
        server, _ = key_server
        assert server.served("/jwks") >= 1
        with server.lock:
            assert "localhost" in server.server_names, server.server_names
        assert cluster_stat(stack, "ssl.handshake") >= 1


@pytest.mark.parametrize(
    ("case", "option", "failure_stat"),
    [
        # The server's chain leads to a CA the cluster does not trust.
        ("other-ca", "ca={other_ca}", "ssl.fail_verify_error"),
        # The CA is right but the certificate does not name the host asked for.
        ("other-name", "sni=idp.other.test,ca={ca}", "ssl.fail_verify_san"),
    ],
)
def test_an_untrusted_key_server_fails_closed(
    e2e_workdir: Path,
    pki: dict[str, Path],
    key_server: tuple[KeyServer, int],
    case: str,
    option: str,
    failure_stat: str,
) -> None:
    server, port = key_server
    served_before = server.served("/jwks")
    hits_before = Upstream.hits
    spec = f"localhost:{port}," + option.format(ca=pki["ca"], other_ca=pki["other_ca"])
    with envoy_with(e2e_workdir / "tls-keys" / case, spec) as stack:
        # Envoy refuses the server's certificate, for the reason the case sets up ...
        wait_for(lambda: cluster_stat(stack, failure_stat) >= 1, 20, f"{failure_stat} on cluster idp", stack)
        mark = stack.envoy_log.mark()
        response = call(stack)
        # ... so the keys never load and the request is refused and audited.
        assert response.status_code == 503, response.text
        assert response.json()["error"]["data"]["reason"] == "the keys to verify the token are not available yet"
        wait_for(lambda: bool(stack.envoy_log.audits(mark)), 10, "the audit line", stack)
        audits = stack.envoy_log.audits(mark)
        assert any(a["status"] == 503 and "not loaded" in a["reason"] for a in audits), audits
    assert server.served("/jwks") == served_before, "no key set may be served over a refused connection"
    assert Upstream.hits == hits_before, "a refused request reached the upstream"
