"""Operational metrics through real Envoy, and the example Grafana dashboard
against what Envoy exports.

A loopback identity provider (tests/e2e/test_identity_live.py's, starting
down) serves the key set and the revocation list; Envoy runs the filter with
two workers. The series come from Envoy's admin endpoint in Prometheus form:
document fetches by outcome and class, the fetch time of the key set in
force, token cache hits and misses (reported by each VM once a second),
evaluation errors and session refusals. The last test checks that every
series and label the dashboard (docs/grafana/warden-dashboard.json) queries
is exported, so the dashboard cannot drift from the filter.

The tests run in file order against one stack.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import mint_token
import pytest
from conftest import HEADER_MODE, REPO_ROOT
from helpers import loopback_http_server, send_json
from test_identity_live import Live, Provider, make_handler, token
from test_metrics import scrape, scrape_until, token_cache_lookups, value
from warden_stack import Stack

DASHBOARD = REPO_ROOT / "docs" / "grafana" / "warden-dashboard.json"
ISSUER = "https___idp.demo.warden.test"  # the issuer as a label value

POLICY = """
version: 1
identity:
  issuers:
    - issuer: https://idp.demo.warden.test
      audiences: [https://mcp.demo.warden.test/mcp]
      algorithms: [ES256, EdDSA]
      jwks_fetch:
        cluster: idp
        path: /jwks
        refresh_seconds: 3600
        min_refresh_interval_seconds: 1
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
  - id: sized-scale
    effect: allow
    owner: team-platform
    tools: [scale]
    arguments:
      - pointer: /replicas
        range: {min: 1, max: 10}
  - id: agents-list-nothing
    effect: deny
    owner: team-security
    shadow: true
    principal: {types: [agent]}
    methods: [tools/list]
"""


def handler_with_tools(provider: Provider) -> Any:
    """The provider's handler, whose upstream lists two tools (one the
    policy allows no one: every list is cut)."""
    base = make_handler(provider)

    class Handler(base):  # type: ignore[misc,valid-type]
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}")
            tools = [{"name": name, "inputSchema": {"type": "object"}} for name in ("scale", "deploy")]
            send_json(self, 200, {"jsonrpc": "2.0", "id": request.get("id"), "result": {"tools": tools}})

    return Handler


class Ops(Live):
    def __init__(self, provider: Provider, stack: Stack) -> None:
        super().__init__(provider, stack.url, stack.envoy_log)
        self.stack = stack


@pytest.fixture(scope="module")
def ops(e2e_workdir: Path) -> Iterator[Ops]:
    """The provider (starting down) as cluster `idp` and as the upstream,
    Envoy with two workers in front."""
    provider = Provider()
    provider.down = True  # the first fetches fail
    workdir = e2e_workdir / "ops-metrics"
    with contextlib.ExitStack() as servers:
        server = servers.enter_context(loopback_http_server(handler_with_tools(provider)))
        port = server.server_address[1]
        stack = Stack(
            policy=workdir / "policy.yaml",
            workdir=workdir,
            with_server=False,
            server_port=port,
            clusters={"idp": port},
            concurrency=2,
            header_mode=HEADER_MODE,
        )
        workdir.mkdir(parents=True, exist_ok=True)
        stack.policy.write_text(POLICY)
        with stack:
            yield Ops(provider, stack)


def admin_scrape(live: Ops) -> list[tuple[str, dict[str, str], float]]:
    return scrape(live.stack)


def wait_for(live: Ops, predicate: Callable[[list], bool], what: str, timeout: float = 15) -> list:
    return scrape_until(live.stack, predicate, what, timeout)


def post(live: Ops, body: dict[str, Any], bearer: str | None = None, **headers: str) -> httpx.Response:
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    return httpx.post(live.url, json=body, headers=headers, timeout=10)


def tools_list() -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": "tools/list"}


def test_failed_and_successful_fetches_and_the_key_set_fetch_time(ops: Ops) -> None:
    failed = {"document": "key_set", "issuer": ISSUER, "outcome": "failure", "class": "http_status"}
    wait_for(ops, lambda s: value(s, "warden_fetches_total", **failed) >= 1, "a failed key-set fetch")
    listed = {"document": "revocation_list", "issuer": "none", "outcome": "failure", "class": "http_status"}
    wait_for(ops, lambda s: value(s, "warden_fetches_total", **listed) >= 1, "a failed revocation-list fetch")
    # Nothing fetched yet: no fetch time.
    assert value(admin_scrape(ops), "warden_document_fetched_timestamp_seconds", document="key_set") == 0

    with ops.provider.lock:
        ops.provider.down = False
    up = int(time.time())
    ok = {"document": "key_set", "issuer": ISSUER, "outcome": "success", "class": "none"}
    series = wait_for(ops, lambda s: value(s, "warden_fetches_total", **ok) >= 1, "a key-set fetch")
    fetched_at = value(series, "warden_document_fetched_timestamp_seconds", document="key_set", issuer=ISSUER)
    # The worker's clock, in Unix seconds, at the fetch after the provider came up.
    assert up - 1 <= fetched_at <= time.time() + 1, (up, fetched_at)
    series = wait_for(
        ops,
        lambda s: value(s, "warden_document_fetched_timestamp_seconds", document="revocation_list") > 0,
        "the revocation list's fetch time",
    )
    assert value(series, "warden_fetches_total", document="revocation_list", outcome="success") >= 1
    ops.wait_until(lambda: ops.call(token()).status_code == 200, 10, "a verified request")


def test_token_cache_hits_and_misses(ops: Ops) -> None:
    # Let every VM report what it counted before (on its one-second timer):
    # the baseline must settle.
    time.sleep(1.5)
    before = admin_scrape(ops)
    repeated, fresh = token(jti=uuid.uuid4().hex), token(jti=uuid.uuid4().hex)
    for _ in range(10):
        assert ops.call(repeated).status_code == 200
    assert ops.call(fresh).status_code == 200
    hits, misses = token_cache_lookups(ops.stack, before, 11)
    assert hits + misses == 11, (hits, misses)
    # Each of the two workers keeps its own cache: each token misses once
    # in each worker that sees it, at most.
    assert 2 <= misses <= 4, (hits, misses)
    assert hits >= 7, (hits, misses)


def test_evaluation_errors_and_session_refusals_are_counted(ops: Ops) -> None:
    before = admin_scrape(ops)
    alice = token()
    wrong_type = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "scale", "arguments": {"replicas": "many"}},
    }
    response = post(ops, wrong_type, alice)
    assert "error" in response.json(), response.text
    response = post(ops, tools_list(), alice, **{"mcp-session-id": "a-server-id-warden-never-sealed"})
    assert response.status_code == 404, response.text
    after = wait_for(
        ops,
        lambda s: value(s, "warden_evaluation_errors_total", rule="sized-scale")
        > value(before, "warden_evaluation_errors_total", rule="sized-scale"),
        "the evaluation error",
    )
    errors = value(after, "warden_evaluation_errors_total", rule="sized-scale") - value(
        before, "warden_evaluation_errors_total", rule="sized-scale"
    )
    assert errors == 1
    refused = {"class": "not_sealed"}
    assert value(after, "warden_session_refusals_total", **refused) - value(
        before, "warden_session_refusals_total", **refused
    ) == 1
    # The evaluation error is also a policy denial by that rule.
    denied = {"decision": "deny", "rule": "sized-scale", "class": "policy"}
    assert value(after, "warden_decisions_total", **denied) - value(before, "warden_decisions_total", **denied) == 1


SELECTOR = re.compile(r"\b(warden_[a-z_]+)\b(?:\{([^}]*)\})?")
BY = re.compile(r"\bby\s*\(([^)]*)\)")
MATCHER = re.compile(r'(\w+)\s*(?:=~|!=|!~|=)\s*"')


def test_the_dashboard_queries_only_series_envoy_exports(ops: Ops) -> None:
    # Traffic for every panel: decisions by several actor types, a shadow
    # outcome, a cut list, a refused token (the earlier tests fetched,
    # verified, failed to evaluate and refused a session).
    agent = mint_token.mint("research-agent", "agent")
    assert post(ops, tools_list(), agent).status_code == 200
    assert post(ops, tools_list(), token()).status_code == 200
    assert post(ops, tools_list()).status_code == 401
    series = wait_for(
        ops,
        lambda s: value(s, "warden_shadow_total", outcome="would_deny", rule="agents-list-nothing") >= 1
        and value(s, "warden_lists_total", kind="tools", outcome="cut") >= 1
        and value(s, "warden_token_cache_lookups_total") > 0
        and value(s, "warden_vm_streams_peak") >= 1,
        "the dashboard's traffic",
    )
    exported: dict[str, set[str]] = {}
    for name, labels, _ in series:
        exported.setdefault(name, set()).update(labels)

    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs, "the dashboard has no queries"
    referenced: set[str] = set()
    for expr in exprs:
        names = [m[1] for m in SELECTOR.finditer(expr)]
        assert names, f"a query over no Warden series: {expr}"
        missing = [n for n in names if n not in exported]
        assert not missing, f"{expr}: {missing} not in Envoy's Prometheus output"
        referenced.update(names)
        # Every label the query matches on or groups by is a label of the
        # series it reads.
        labels = {l for m in SELECTOR.finditer(expr) if m[2] for l in MATCHER.findall(m[2])}
        labels |= {l.strip() for m in BY.finditer(expr) for l in m[1].split(",") if l.strip()}
        known = set().union(*(exported[n] for n in names))
        assert labels <= known, f"{expr}: labels {labels - known} on none of {names}"
    # The dashboard covers every operational series.
    for wanted in (
        "warden_decisions_total",
        "warden_token_refusals_total",
        "warden_shadow_total",
        "warden_fetches_total",
        "warden_document_fetched_timestamp_seconds",
        "warden_token_cache_lookups_total",
        "warden_evaluation_errors_total",
        "warden_session_refusals_total",
        "warden_policy_loaded",
        "warden_vm_memory_bytes",
        "warden_vm_streams_peak",
    ):
        assert wanted in referenced, f"the dashboard shows no {wanted}"
