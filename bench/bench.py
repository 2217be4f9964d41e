#!/usr/bin/env python3
"""Proxy benchmark: Warden next to plain Envoy and Envoy's native filters.

Run through ``bench/run.sh`` (``make bench``), which installs wrk and h2load
and builds what this needs. Everything is on loopback and bounded: a fixed
number of rounds of fixed-length runs, then every process started here is
stopped.

One Envoy process per variant (``--concurrency 1``) plus one more Envoy as the
upstream, with one listener per kind of answer (a ``direct_response``: the
small result of a call, a 100-tool ``tools/list`` result as JSON, the same as
one SSE event); each variant's cluster points at the listener of its load.
All of them run for the whole session; each round runs every variant in turn
(the order rotates from round to round), so load from other work on the
machine hits every variant alike. The variants come in sections (GROUPS): a
tools/call over HTTP/1.1 with a repeated token, the same over HTTP/2 (h2c),
fresh tokens of each algorithm, a filtered tools/list, a ~900 KB body. For
each run:

* requests/s, p50 and p99 latency (wrk over HTTP/1.1, h2load over HTTP/2;
  16 connections, one request at a time on each, one thread);
* Envoy CPU time per request: utime + stime of the variant's Envoy process
  (``/proc/PID/stat``) before and after the run, divided by the requests
  Envoy completed (``http.mcp.downstream_rq_completed``). This is far less
  sensitive to other load on the machine than latency or throughput.

Before the load, ``warden hostcalls`` counts the hostcalls the filter makes
per request (an allowed call, a denied call, a filtered ``tools/list``, and
one root tick) by running the built ``.wasm`` in the harness's emulator of
Envoy's host, in both header modes and with the identity from jwt_authn's
verified payload, under ``bench/hostcalls.yaml``, and the Wasm instructions of
an allowed call with a fresh token per algorithm; and every variant is probed
for what it lets through. After the rounds, a soak sends
mixed requests to one fresh Warden VM and reads its memory gauge.

Figures are medians over rounds, each also as a ratio to the plain Envoy of
the same load. Results: ``bench/results/latest.json``, ``latest.md``,
``cpu_per_request.svg``, and the marked section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import http.client
import json
import math
import operator
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx  # in .venv, with h2 (the HTTP/2 checks)
import jwt  # PyJWT, in .venv
from cryptography.hazmat.primitives.serialization import load_pem_private_key

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tools"))

import mint_token  # noqa: E402  (tools/mint_token.py, PyJWT)
from warden_stack import (  # noqa: E402
    WARDEN_CLI,
    WASM_FILTER,
    StackError,
    envoy_binary,
    render_envoy_config,
    run_cli,
)

WORK = ROOT / ".work" / "bench"
RESULTS = BENCH / "results"
PARSE_WASM = ROOT / "target" / "bench" / "wasm32-wasip1" / "release" / "bench_parse_filter.wasm"
JWKS_FILE = ROOT / "examples" / "keys" / "demo.jwks.json"
POLICY = BENCH / "policy.yaml"
WRK_SCRIPT = BENCH / "wrk.lua"
# `warden hostcalls`: the policy (the benchmark's rule, a tools/list rule, a
# polled revocation list), the allowed tool and the denied one.
HOSTCALL_POLICY = BENCH / "hostcalls.yaml"
HOSTCALL_TOOLS = ("deploy", "drop")
HEADER_MODES = ("stream", "hold")

# The request of the call variants: one MCP tools/call.
BODY = (
    '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"deploy",'
    '"arguments":{"environment":"staging","replicas":3,"note":"nightly rollout of the search index"}}}'
)
# The same call for a tool no rule allows (the checks' "other tool").
OTHER_TOOL_BODY = BODY.replace('"name":"deploy"', '"name":"delete_repo"')
# The upstream's answer to a call.
UPSTREAM_BODY = '{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"deployed"}],"isError":false}}'

# The list variants: a tools/list, answered with a catalogue of 100 tools,
# every other one `read_…` (bench/policy.yaml lets a human call `read_*`, so
# Warden keeps those 50) and `write_…` (no rule: cut). Interleaved, so the cut
# is not a truncation.
LIST_BODY = '{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}'
LIST_TOOLS = 100
PERMITTED_LIST_PREFIX = "read_"


def tool_catalogue() -> list[dict[str, Any]]:
    tools = []
    for i in range(LIST_TOOLS):
        verb = "read" if i % 2 == 0 else "write"
        tools.append({
            "name": f"{verb}_dataset_{i:03d}",
            "description": f"{verb.capitalize()} records of dataset {i:03d} in the analytics warehouse.",
            "inputSchema": {"type": "object", "properties": {
                "filter": {"type": "string", "description": "Row filter expression"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
            }, "required": ["filter"]},
        })
    return tools


UPSTREAM_LIST_JSON = json.dumps({"jsonrpc": "2.0", "id": 7, "result": {"tools": tool_catalogue()}},
                                separators=(",", ":"))
# As a Streamable HTTP server answers a POST in SSE: one event carrying the response.
UPSTREAM_LIST_SSE = f"event: message\ndata: {UPSTREAM_LIST_JSON}\n\n"

# The large variants: a permitted call whose arguments carry a ~900 KB string,
# under Warden's `filter.max_body_bytes` (1 MiB by default) and Envoy's
# per-connection buffer limit (1 MiB by default), which a buffering filter
# holds the body in.
LARGE_ARGUMENT_BYTES = 900_000
LARGE_BODY = json.dumps({
    "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "deploy", "arguments": {
        "environment": "staging", "replicas": 3,
        "manifest": ("apiVersion: apps/v1 kind: Deployment replicas: 3 image: search-index:nightly " * 12000)[
            :LARGE_ARGUMENT_BYTES],
    }},
}, separators=(",", ":"))
# The upstream's buffer filter waits for the whole request (see upstream_config):
# room for the large body.
UPSTREAM_MAX_REQUEST_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Scenario:
    """What a variant is loaded with and which upstream listener answers it."""

    request: str  # the permitted request's body
    other_tool: str  # a request for a tool no rule allows (the checks' "other tool")
    answer: str  # the upstream answer kind, a key of ANSWERS


# Upstream answers by kind: (body, content type). Each has its own listener.
ANSWERS = {
    "call": (UPSTREAM_BODY, "application/json"),
    "list-json": (UPSTREAM_LIST_JSON, "application/json"),
    "list-sse": (UPSTREAM_LIST_SSE, "text/event-stream"),
}

SCENARIOS = {
    "call": Scenario(BODY, OTHER_TOOL_BODY, "call"),
    "list-json": Scenario(LIST_BODY, OTHER_TOOL_BODY, "list-json"),
    "list-sse": Scenario(LIST_BODY, OTHER_TOOL_BODY, "list-sse"),
    "large": Scenario(LARGE_BODY, LARGE_BODY.replace('"name":"deploy"', '"name":"delete_repo"', 1), "call"),
}

BASE_PORT = 18100
# The upstream cluster of every variant, named as `warden envoy` names it.
CLUSTER = "mcp_server"


# Token algorithms a fresh-token variant can sign with (tools/mint_token.py's demo keys).
ALGORITHMS = ("ES256", "RS256", "EdDSA")


@dataclass
class Variant:
    key: str
    label: str
    filters: list[str]  # building blocks, see http_filters(); ["warden"]: the `warden envoy` bootstrap
    tokens: str  # "repeated" or "fresh"
    enforces: str  # what the variant checks, for the table
    group: str = "call-h1"  # the chart's and table's section, see GROUPS
    scenario: str = "call"  # the request and the upstream's answer, a key of SCENARIOS
    protocol: str = "http1"  # "http1" (wrk) or "h2" (h2c with prior knowledge, h2load)
    alg: str = "ES256"  # what the tokens are signed with
    jwt_cache: bool = False
    header_mode: str | None = None  # Warden's `filter.header_mode` (None: the policy's, `stream`)
    # Where a Warden variant's audit lines go (`warden envoy --audit-sink`):
    # "access-log", the default, from filter state through a file access log
    # (`--audit-log`, a file per variant, checked to hold the lines), or
    # "envoy-log", Envoy's own log.
    audit_sink: str = "access-log"
    baseline: str = "plain"  # the plain-Envoy variant of the same load, for the × plain ratios
    envoy_args: list[str] = field(default_factory=list)
    diagnostic: bool = False  # not one of the compared products; explains where time goes
    port: int = 0
    admin: int = 0
    proc: subprocess.Popen | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def is_warden(self) -> bool:
        """Envoy's bootstrap is the one `warden envoy` renders."""
        return self.filters in (["warden"], ["warden-jwt-authn"])

    @property
    def audit_log(self) -> Path | None:
        """The file the variant's access log writes audit lines to (the
        default sink), which functional_checks reads; None for the others."""
        return WORK / f"{self.key}.audit.log" if self.is_warden and self.audit_sink == "access-log" else None


# Sections of the table and chart, in order.
GROUPS = {
    "call-h1": "tools/call over HTTP/1.1, repeated token",
    "call-h2": "tools/call over HTTP/2 (h2c), repeated token",
    "fresh": "tools/call over HTTP/1.1, a fresh token per request",
    "list": f"tools/list answered with {LIST_TOOLS} tools, repeated token",
    "large": f"tools/call with a {LARGE_ARGUMENT_BYTES // 1000} KB argument, repeated token",
}

WARDEN_CHECKS = "token, actor type, tool (body)"

VARIANTS = [
    Variant("plain", "plain Envoy", [], "repeated", "nothing"),
    Variant("wasm-parse", "Envoy + Wasm filter that only parses the body", ["parse"], "repeated",
            "body is JSON-RPC (baseline, no authorization)"),
    Variant("warden", "Envoy + Warden, header_mode stream (default)", ["warden"], "repeated", WARDEN_CHECKS),
    Variant("warden-hold", "Envoy + Warden, header_mode hold", ["warden"], "repeated", WARDEN_CHECKS,
            header_mode="hold"),
    # The audit line in Envoy's own log, with the filter's log level above
    # info: the line is built, and Envoy drops it.
    Variant("warden-noaudit", "Envoy + Warden, stream, no audit line", ["warden"], "repeated",
            WARDEN_CHECKS, audit_sink="envoy-log", envoy_args=["--component-log-level", "wasm:warning"],
            diagnostic=True),
    # The other sink `warden envoy` renders (`--audit-sink envoy-log`; the
    # default until 2026-12-05): every line written to Envoy's log at info.
    Variant("warden-envoy-log", "Envoy + Warden, stream, audit line in Envoy's log", ["warden"], "repeated",
            WARDEN_CHECKS, audit_sink="envoy-log", diagnostic=True),
    Variant("warden-jwt-authn", "Envoy + jwt_authn (cache) + Warden (identity from jwt_authn)",
            ["warden-jwt-authn"], "repeated", WARDEN_CHECKS),
    Variant("jwt-rbac-cache", "jwt_authn (with JWT cache) + RBAC", ["jwt", "rbac-actor"], "repeated",
            "token, actor type", jwt_cache=True),
    Variant("jwt-rbac-nocache", "jwt_authn (no cache) + RBAC", ["jwt", "rbac-actor"], "repeated",
            "token, actor type"),
    Variant("jwt-mcp-rbac", "jwt_authn (with cache) + mcp filter + RBAC", ["jwt", "mcp", "rbac-actor-tool"],
            "repeated", WARDEN_CHECKS, jwt_cache=True),
    # The same Envoy configurations as their HTTP/1.1 namesakes (the listeners
    # detect HTTP/2), loaded by h2load over h2c.
    Variant("plain-h2", "plain Envoy, HTTP/2", [], "repeated", "nothing", group="call-h2", protocol="h2",
            baseline="plain-h2"),
    Variant("warden-h2", "Envoy + Warden (stream), HTTP/2", ["warden"], "repeated", WARDEN_CHECKS, group="call-h2",
            protocol="h2", baseline="plain-h2"),
    Variant("jwt-mcp-rbac-h2", "jwt_authn (cache) + mcp filter + RBAC, HTTP/2", ["jwt", "mcp", "rbac-actor-tool"],
            "repeated", WARDEN_CHECKS, group="call-h2", protocol="h2", jwt_cache=True, baseline="plain-h2"),
    # Fresh tokens: every request verifies a signature, in Warden (Wasm) or in
    # jwt_authn (BoringSSL), for each algorithm Warden accepts.
    Variant("warden-fresh", "Envoy + Warden, fresh ES256 token", ["warden"], "fresh", WARDEN_CHECKS,
            group="fresh"),
    Variant("warden-fresh-rs256", "Envoy + Warden, fresh RS256 token", ["warden"], "fresh",
            WARDEN_CHECKS, group="fresh", alg="RS256"),
    Variant("warden-fresh-eddsa", "Envoy + Warden, fresh EdDSA (Ed25519) token", ["warden"], "fresh",
            WARDEN_CHECKS, group="fresh", alg="EdDSA"),
    Variant("warden-jwt-authn-fresh", "jwt_authn + Warden (identity from jwt_authn), fresh ES256 token",
            ["warden-jwt-authn"], "fresh", WARDEN_CHECKS, group="fresh"),
    # RS256 in Wasm has no 64-bit multiply with a 128-bit product to build
    # on; with the identity from jwt_authn, BoringSSL verifies it.
    Variant("warden-jwt-authn-fresh-rs256", "jwt_authn + Warden (identity from jwt_authn), fresh RS256 token",
            ["warden-jwt-authn"], "fresh", WARDEN_CHECKS, group="fresh", alg="RS256"),
    Variant("jwt-mcp-rbac-nocache", "jwt_authn (no cache) + mcp filter + RBAC, fresh ES256 token",
            ["jwt", "mcp", "rbac-actor-tool"], "fresh", WARDEN_CHECKS, group="fresh"),
    Variant("jwt-mcp-rbac-nocache-rs256", "jwt_authn (no cache) + mcp filter + RBAC, fresh RS256 token",
            ["jwt", "mcp", "rbac-actor-tool"], "fresh", WARDEN_CHECKS, group="fresh", alg="RS256"),
    Variant("jwt-mcp-rbac-nocache-eddsa", "jwt_authn (no cache) + mcp filter + RBAC, fresh EdDSA token",
            ["jwt", "mcp", "rbac-actor-tool"], "fresh", WARDEN_CHECKS, group="fresh", alg="EdDSA"),
    # Lists: the same tools/list through plain Envoy (passed whole) and Warden (cut to what the caller may call).
    Variant("plain-list-json", "plain Envoy, list as JSON", [], "repeated", "nothing", group="list",
            scenario="list-json", baseline="plain-list-json"),
    Variant("warden-list-json", "Envoy + Warden, list as JSON (filtered)", ["warden"], "repeated",
            WARDEN_CHECKS + ", list cut", group="list", scenario="list-json", baseline="plain-list-json"),
    Variant("plain-list-sse", "plain Envoy, list as SSE", [], "repeated", "nothing", group="list",
            scenario="list-sse", baseline="plain-list-sse"),
    Variant("warden-list-sse", "Envoy + Warden, list as SSE (filtered)", ["warden"], "repeated",
            WARDEN_CHECKS + ", list cut", group="list", scenario="list-sse", baseline="plain-list-sse"),
    # A large allowed body: what buffering and parsing ~900 KB costs.
    Variant("plain-large", "plain Envoy, large body", [], "repeated", "nothing", group="large", scenario="large",
            baseline="plain-large"),
    Variant("wasm-parse-large", "Envoy + parse-only Wasm filter, large body", ["parse"], "repeated",
            "body is JSON-RPC (baseline, no authorization)", group="large", scenario="large", baseline="plain-large"),
    Variant("warden-large", "Envoy + Warden, large body", ["warden"], "repeated", WARDEN_CHECKS, group="large",
            scenario="large", baseline="plain-large"),
]

CHILDREN: list[subprocess.Popen] = []


# --------------------------------------------------------------------------- set-up


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Ports:
    upstream_admin: int
    upstream: dict[str, int]  # one listener per answer kind (ANSWERS)
    soak: int  # the soak's own Envoy (admin: soak + 1)


def assign_ports() -> Ports:
    """Variant i listens on BASE_PORT + 10*i (admin +1), the soak's Envoy after
    them; the upstream's admin and listeners below them."""
    base = BASE_PORT
    slots = len(VARIANTS) + 1
    while True:
        below = [base - 20 + i for i in range(1 + len(ANSWERS))]
        ports = below + [base + 10 * i + d for i in range(slots) for d in (0, 1)]
        if all(port_free(p) for p in ports):
            break
        base += 1000
        if base > 60000:
            raise SystemExit("bench: no free loopback ports")
    for i, variant in enumerate(VARIANTS):
        variant.port = base + 10 * i
        variant.admin = base + 10 * i + 1
    return Ports(upstream_admin=base - 20, upstream={kind: base - 19 + i for i, kind in enumerate(ANSWERS)},
                 soak=base + 10 * len(VARIANTS))


TOKEN_LIFETIME = 6 * 3600


class Signer:
    """Signs demo tokens with each algorithm's key parsed once: mint_token.mint()
    reads and parses the PEM file per token, which for the RSA key costs about
    60 ms, too slow for tens of thousands of fresh tokens."""

    def __init__(self) -> None:
        self.keys = {alg: load_pem_private_key(mint_token.private_key(alg).encode(), None) for alg in ALGORITHMS}

    def token(self, alg: str, sub: str = "alice", actor_type: str = "human", **claims: Any) -> str:
        payload = mint_token.claims(sub, actor_type, exp_in=TOKEN_LIFETIME, **claims)
        return jwt.encode(payload, self.keys[alg], algorithm=alg,
                          headers={"kid": mint_token.KEYS[alg][0], "typ": "JWT"})


@dataclass
class Tokens:
    repeated: Path  # one ES256 token: every request carries it
    fresh: dict[str, Path]  # per algorithm, a file of distinct tokens (unique jti), one a line
    checks: dict[str, dict[str, str]]  # per algorithm, the tokens the functional checks send

    def file_for(self, variant: Variant) -> Path:
        return self.fresh[variant.alg] if variant.tokens == "fresh" else self.repeated


def mint_tokens(count: int, variants: list[Variant]) -> Tokens:
    """One repeated token; `count` distinct fresh ones for each algorithm a
    fresh-token variant uses; for every algorithm, the tokens of the checks."""
    WORK.mkdir(parents=True, exist_ok=True)
    signer = Signer()
    checks = {
        alg: {
            "human": signer.token(alg, groups=["eng"]),
            "agent": signer.token(alg, "research-agent", "agent"),
            "bad signature": mint_token.bad_signature_token("alice", "human", alg=alg, exp_in=3600),
        }
        for alg in ALGORITHMS
    }
    repeated_file = WORK / "token-repeated.txt"
    repeated_file.write_text(checks["ES256"]["human"] + "\n")
    fresh = {}
    for alg in ALGORITHMS:
        if not any(v.tokens == "fresh" and v.alg == alg for v in variants):
            continue
        fresh[alg] = WORK / f"tokens-fresh-{alg.lower()}.txt"
        started = time.monotonic()
        with fresh[alg].open("w") as out:
            for i in range(count):
                out.write(signer.token(alg, groups=["eng"], jti=f"bench-{i}-{time.time_ns()}") + "\n")
        print(f"bench: minted {count} fresh {alg} tokens in {time.monotonic() - started:.1f}s")
    return Tokens(repeated_file, fresh, checks)


# --------------------------------------------------------------------------- configs


def http_filters(variant: Variant) -> list[dict[str, Any]]:
    jwks = JWKS_FILE.read_text()
    out: list[dict[str, Any]] = []
    for block in variant.filters:
        if block == "parse":
            # Set like Warden's filter in the `warden envoy` bootstrap.
            out.append({
                "name": "envoy.filters.http.wasm",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                    "config": {
                        "name": "parse",
                        "root_id": "parse",
                        "fail_open": False,
                        "allow_on_headers_stop_iteration": True,
                        "vm_config": {
                            "vm_id": "parse",
                            "runtime": "envoy.wasm.runtime.v8",
                            "code": {"local": {"filename": str(PARSE_WASM)}},
                        },
                    },
                },
            })
        elif block == "jwt":
            provider: dict[str, Any] = {
                "issuer": mint_token.ISSUER,
                "audiences": [mint_token.AUDIENCE],
                "local_jwks": {"inline_string": jwks},
                "forward": True,
                "payload_in_metadata": "jwt_payload",
                "clock_skew_seconds": 60,
            }
            if variant.jwt_cache:
                # Same size as Warden's default token cache (max_entries: 1024).
                provider["jwt_cache_config"] = {"jwt_cache_size": 1024}
            out.append({
                "name": "envoy.filters.http.jwt_authn",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                    "providers": {"demo": provider},
                    "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "demo"}}],
                },
            })
        elif block == "mcp":
            out.append({
                "name": "envoy.filters.http.mcp",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.mcp.v3.Mcp"},
            })
        elif block in ("rbac-actor", "rbac-actor-tool"):
            human = {
                "metadata": {
                    "filter": "envoy.filters.http.jwt_authn",
                    "path": [{"key": "jwt_payload"}, {"key": "actor_type"}],
                    "value": {"string_match": {"exact": "human"}},
                }
            }
            if block == "rbac-actor":
                # RBAC sees headers and metadata only: the tool name is in the body.
                permissions = [{"header": {"name": ":method", "string_match": {"exact": "POST"}}}]
            else:
                permissions = [{"and_rules": {"rules": [
                    {"metadata": {"filter": "envoy.filters.http.mcp", "path": [{"key": "method"}],
                                  "value": {"string_match": {"exact": "tools/call"}}}},
                    {"metadata": {"filter": "envoy.filters.http.mcp", "path": [{"key": "params"}, {"key": "name"}],
                                  "value": {"string_match": {"exact": "deploy"}}}},
                ]}}]
            out.append({
                "name": "envoy.filters.http.rbac",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                    "rules": {"action": "ALLOW", "policies": {
                        "humans-deploy": {"permissions": permissions, "principals": [human]},
                    }},
                },
            })
        else:
            raise ValueError(block)
    out.append({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    })
    return out


def hcm(routes: list[dict[str, Any]], filters: list[dict[str, Any]]) -> dict[str, Any]:
    route_config: dict[str, Any] = {"name": "mcp", "virtual_hosts": [{"name": "mcp", "domains": ["*"], "routes": routes}]}
    if any("direct_response" in route for route in routes):
        # Room for the list answers (a direct_response body is 4 KB at most by default).
        route_config["max_direct_response_body_size_bytes"] = 1024 * 1024
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "mcp",
            # As `warden envoy` renders it: HTTP/1.1, and HTTP/2 without TLS
            # (h2c with prior knowledge), told apart by the first bytes.
            "codec_type": "AUTO",
            "route_config": route_config,
            "http_filters": filters,
        },
    }


def bootstrap(admin: int, listeners: dict[int, dict[str, Any]], clusters: list[dict[str, Any]]) -> dict[str, Any]:
    """An Envoy bootstrap; `listeners` maps each port to its HTTP connection manager."""
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{
                "name": f"mcp-{port}",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [manager]}],
            } for port, manager in listeners.items()],
            "clusters": clusters,
        },
    }


def upstream_config(ports: Ports) -> dict[str, Any]:
    """The upstream: one listener per answer kind, each answering every request
    with the same direct_response."""
    listeners = {}
    for kind, port in ports.upstream.items():
        body, content_type = ANSWERS[kind]
        routes = [{
            "match": {"prefix": "/"},
            "direct_response": {"status": 200, "body": {"inline_string": body}},
            "response_headers_to_add": [{
                "header": {"key": "content-type", "value": content_type},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }],
        }]
        # The buffer filter makes the answer wait for the whole request: an answer
        # sent before the request body has been read makes the proxy in front
        # close the connection, and every request would then pay a new upstream
        # connection.
        filters = [
            {"name": "envoy.filters.http.buffer",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                              "max_request_bytes": UPSTREAM_MAX_REQUEST_BYTES}},
            {"name": "envoy.filters.http.router",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
        ]
        listeners[port] = hcm(routes, filters)
    return bootstrap(ports.upstream_admin, listeners, [])


def write_variant_config(variant: Variant, ports: Ports) -> Path:
    """The variant's bootstrap in WORK: Warden's is the one `warden envoy` renders
    (docs/filter.md); the others have the same listener, route and cluster. The
    cluster points at the upstream listener of the variant's answer kind."""
    upstream_port = ports.upstream[SCENARIOS[variant.scenario].answer]
    if variant.is_warden:
        policy = POLICY
        if variant.filters == ["warden-jwt-authn"]:
            # The same policy with `identity.verified_by: jwt_authn`: `warden
            # envoy` renders jwt_authn ahead of Warden (docs/policy.md).
            document = json.loads(run_cli("compile", POLICY))
            document["identity"]["verified_by"] = "jwt_authn"
            policy = WORK / f"{variant.key}.policy.json"
            policy.write_text(json.dumps(document))
        if variant.audit_log is not None:
            # Envoy appends to it: an earlier run's lines must not pass the
            # check for this one's.
            variant.audit_log.unlink(missing_ok=True)
        path = WORK / f"{variant.key}.yaml"
        path.write_text(render_envoy_config(policy, listen_port=variant.port, upstream_port=upstream_port,
                                            admin_port=variant.admin, header_mode=variant.header_mode,
                                            audit_sink=variant.audit_sink, audit_log=variant.audit_log))
        return path
    routes = [{"match": {"prefix": "/"}, "route": {"cluster": CLUSTER, "timeout": "0s"}}]
    cluster = {
        "name": CLUSTER,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {"cluster_name": CLUSTER, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}}]}]},
    }
    path = WORK / f"{variant.key}.json"
    config = bootstrap(variant.admin, {variant.port: hcm(routes, http_filters(variant))}, [cluster])
    path.write_text(json.dumps(config, indent=1))
    return path


# --------------------------------------------------------------------------- processes


def stop_all() -> None:
    for proc in CHILDREN:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 10
    for proc in CHILDREN:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    CHILDREN.clear()


def launch_envoy(envoy: str, config: Path, name: str, extra: list[str]) -> subprocess.Popen:
    """Start Envoy (see wait_ready). Envoy checks the configuration as it starts:
    a bad one ends it, and its log says why."""
    log = WORK / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [envoy, "-c", str(config), "--concurrency", "1", "--disable-hot-restart", *extra],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    CHILDREN.append(proc)
    return proc


def wait_ready(proc: subprocess.Popen, admin: int, name: str, timeout: float = 90) -> None:
    """Wait until a launched Envoy answers LIVE on its admin /ready."""
    log = WORK / f"{name}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: Envoy `{name}` exited ({proc.returncode}); the end of {log}:\n"
                             + log.read_text(errors="replace")[-3000:])
        try:
            status, body = http_get(admin, "/ready")
            if status == 200 and body.strip() == "LIVE":
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: Envoy `{name}` not ready in {timeout:.0f}s; see {log}")


def http_get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def post(port: int, body: str, token: str | None, protocol: str = "http1") -> tuple[int, str]:
    """POST an MCP request to /mcp over HTTP/1.1 or h2c (prior knowledge, as h2load sends)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if protocol == "h2":
        with httpx.Client(http1=False, http2=True, timeout=10) as client:
            resp = client.post(f"http://127.0.0.1:{port}/mcp", content=body.encode(), headers=headers)
            if resp.http_version != "HTTP/2":
                raise SystemExit(f"bench: port {port} answered in {resp.http_version}, not HTTP/2")
            return resp.status_code, resp.text
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/mcp", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


# The Envoy counters read around each run, by the name the run records them under.
COUNTERS = {
    "completed": "http.mcp.downstream_rq_completed",
    "forwarded": f"cluster.{CLUSTER}.upstream_rq_200",
    "upstream_connections_opened": f"cluster.{CLUSTER}.upstream_cx_total",
}


def stats(admin: int) -> dict[str, int]:
    regex = "^(" + "|".join(re.escape(w) for w in COUNTERS.values()) + ")$"
    _, text = http_get(admin, "/stats?filter=" + urllib.parse.quote(regex))
    by_stat = dict(line.partition(": ")[::2] for line in text.splitlines())
    return {key: int(by_stat.get(name, 0)) for key, name in COUNTERS.items()}


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counters(variant: Variant) -> dict[str, float]:
    """The variant's Envoy counters and CPU seconds now. With counters_since(),
    the CPU time is read inside the counters' window (counters first, CPU last)."""
    values: dict[str, float] = dict(stats(variant.admin))
    values["cpu_s"] = cpu_seconds(variant.proc.pid)  # type: ignore[union-attr]
    return values


def counters_since(variant: Variant, before: dict[str, float]) -> dict[str, float]:
    """What the counters and CPU seconds grew by since `before` (from counters())."""
    cpu = cpu_seconds(variant.proc.pid)  # type: ignore[union-attr]
    after: dict[str, float] = {**stats(variant.admin), "cpu_s": cpu}
    return {key: after[key] - before[key] for key in after}


# --------------------------------------------------------------------------- checks


def listed_tools(body: str) -> list[str] | None:
    """The tool names of a tools/list answer, in JSON or as SSE events (the
    last event with a result); None if it is not such an answer."""
    if body.startswith("{"):
        messages = [body]
    else:  # SSE: each event's `data:` lines joined
        messages = ["\n".join(line.removeprefix("data:").removeprefix(" ") for line in event.splitlines()
                              if line.startswith("data:")) for event in body.split("\n\n")]
    names = None
    for message in filter(None, messages):
        try:
            tools = json.loads(message)["result"]["tools"]
        except (ValueError, KeyError, TypeError):
            continue
        names = [tool.get("name") for tool in tools]
    return names


def functional_checks(variant: Variant, tokens: Tokens) -> None:
    """What the variant lets through: a permitted request must reach the upstream
    (a list through Warden must come back cut to the permitted tools, through
    plain Envoy whole); record which of the other requests it blocks. A request
    reached the upstream when the variant's Envoy counted one more 200 from it."""
    scenario = SCENARIOS[variant.scenario]
    answer = ANSWERS[scenario.answer][0]
    alg_tokens = tokens.checks[variant.alg]

    def send(body: str, token: str | None) -> tuple[int, str, bool]:
        before = stats(variant.admin)["forwarded"]
        status, text = post(variant.port, body, token, variant.protocol)
        return status, text, stats(variant.admin)["forwarded"] > before

    status, body, reached = send(scenario.request, alg_tokens["human"])
    if not reached or status != 200:
        raise SystemExit(f"bench: `{variant.key}`: the permitted request did not reach the upstream: "
                         f"{status} {body[:300]}")
    if scenario.answer == "call" and body != answer:
        raise SystemExit(f"bench: `{variant.key}`: the permitted call's answer is not the upstream's: {body[:300]}")
    if scenario.answer.startswith("list"):
        names = listed_tools(body)
        permitted = [n for n in listed_tools(answer) or [] if n.startswith(PERMITTED_LIST_PREFIX)]
        if names is None:
            raise SystemExit(f"bench: `{variant.key}`: the tools/list answer holds no list: {body[:300]}")
        if "warden" in variant.filters and names != permitted:
            raise SystemExit(f"bench: `{variant.key}`: Warden did not cut the list to the {len(permitted)} "
                             f"permitted tools: {len(names)} listed, e.g. {names[:5]}")
        if "warden" not in variant.filters and body != answer:
            raise SystemExit(f"bench: `{variant.key}`: the list did not pass whole: {len(names)} tools")
        variant.checks["tools listed"] = f"{len(names)} of {LIST_TOOLS}"
    cases = {
        "no token": (scenario.request, None),
        "bad signature": (scenario.request, alg_tokens["bad signature"]),
        "agent actor": (scenario.request, alg_tokens["agent"]),
        "other tool": (scenario.other_tool, alg_tokens["human"]),
    }
    for name, (payload, token) in cases.items():
        status, body, reached = send(payload, token)
        variant.checks[name] = "passes" if reached else f"blocked ({status})"
    audit_log = variant.audit_log
    if audit_log is not None:
        # Envoy writes its access logs out some time later: the decisions
        # above must be there, or the variant measures a log that writes
        # nothing.
        deadline = time.monotonic() + 10

        def denials() -> tuple[int, list[str]]:
            lines = audit_log.read_text().splitlines() if audit_log.exists() else []
            return sum('"decision":"deny"' in line for line in lines), lines

        while (found := denials())[0] < len(cases) and time.monotonic() < deadline:
            time.sleep(0.2)
        count, lines = found
        if count < len(cases):
            raise SystemExit(f"bench: `{variant.key}`: the access log holds no audit line for the refused "
                             f"requests: {lines[-5:]}")


# --------------------------------------------------------------------------- load


def wrk_command(variant: Variant, token_file: Path, body_file: Path, seconds: int, connections: int) -> list[str]:
    return ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(WRK_SCRIPT),
            f"http://127.0.0.1:{variant.port}/mcp", "--", str(token_file), str(body_file)]


def run_load(variant: Variant, token_file: Path, body_file: Path, seconds: float, connections: int) -> dict[str, Any]:
    """One measured run of the variant's load generator (wrk for HTTP/1.1,
    h2load for HTTP/2), with Envoy's counters and CPU time around it."""
    if variant.protocol == "h2":
        return run_h2load(variant, token_file, body_file, seconds, connections)
    return run_wrk(variant, token_file, body_file, seconds, connections)


def run_figures(delta: dict[str, float], requests: int, errors: int, seconds: float, p50_us: float,
                p99_us: float) -> dict[str, Any]:
    """A run's record from the load generator's figures and Envoy's counters."""
    completed, cpu = delta["completed"], delta["cpu_s"]
    return {
        "requests": requests,
        "completed": completed,
        "forwarded": delta["forwarded"],
        "errors": errors,
        "upstream_connections_opened": delta["upstream_connections_opened"],
        "rps": requests / seconds,
        "p50_us": p50_us,
        "p99_us": p99_us,
        "cpu_s": cpu,
        "cpu_us_per_request": cpu / completed * 1e6 if completed else float("nan"),
    }


def run_wrk(variant: Variant, token_file: Path, body_file: Path, seconds: float, connections: int) -> dict[str, Any]:
    before = counters(variant)
    result = subprocess.run(
        wrk_command(variant, token_file, body_file, max(1, round(seconds)), connections),
        capture_output=True, text=True, timeout=seconds + 60,
    )
    delta = counters_since(variant, before)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise SystemExit(f"bench: wrk failed against `{variant.key}`:\n{result.stdout}\n{result.stderr}")
    wrk = json.loads(line.removeprefix("WRK_RESULT "))
    return run_figures(delta, wrk["requests"], sum(wrk["errors"].values()), wrk["duration_us"] / 1e6,
                       wrk["latency_us"]["p50"], wrk["latency_us"]["p99"])


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (as wrk reports them) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def run_h2load(variant: Variant, token_file: Path, body_file: Path, seconds: float, connections: int) -> dict[str, Any]:
    """h2load over h2c with prior knowledge: the same connections as wrk, one
    stream at a time on each (-m 1), the body from a file, for a duration.
    h2load prints only min, max, mean and deviation of the request time; the
    p50 and p99 come from its per-request log (--log-file)."""
    if variant.tokens != "repeated":
        raise SystemExit(f"bench: `{variant.key}`: h2load sends one token; fresh tokens need wrk")
    token = token_file.read_text().split()[0]
    log = WORK / f"h2load-{variant.key}.log"
    command = ["h2load", "-t1", f"-c{connections}", "-m1", f"-D{max(1, round(seconds))}", "-d", str(body_file),
               "-H", "content-type: application/json", "-H", "accept: application/json, text/event-stream",
               "-H", f"authorization: Bearer {token}", "--log-file", str(log),
               f"http://127.0.0.1:{variant.port}/mcp"]
    before = counters(variant)
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    delta = counters_since(variant, before)
    finished = re.search(r"finished in ([\d.]+)(m?s)", result.stdout)
    counts = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored, (\d+) timeout", result.stdout)
    if result.returncode != 0 or finished is None or counts is None:
        raise SystemExit(f"bench: h2load failed against `{variant.key}`:\n{result.stdout}\n{result.stderr}")
    if "Application protocol: h2c" not in result.stdout:
        raise SystemExit(f"bench: h2load did not speak h2c to `{variant.key}`:\n{result.stdout}")
    duration = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    done, failed, errored, timeout = (int(counts.group(i)) for i in (2, 4, 5, 6))
    times = [float(line.split("\t")[2]) for line in log.read_text().splitlines() if line.count("\t") >= 2]
    return run_figures(delta, done, failed + errored + timeout, duration,
                       percentile(times, 0.50), percentile(times, 0.99))


def profile(variant: Variant, token_file: Path, body_file: Path, seconds: int, connections: int) -> dict[str, Any]:
    """Sample the variant's Envoy with perf while wrk loads it. Returns the
    share of samples by shared object, turned into µs of CPU per request with
    the CPU time and request count of the same window. Envoy's binary is
    stripped, so its own frames have no names; `[JIT]` is code V8 generated,
    which is where a Wasm filter's compiled code runs."""
    pid = variant.proc.pid  # type: ignore[union-attr]
    data = WORK / f"perf-{variant.key}.data"
    load = subprocess.Popen(
        wrk_command(variant, token_file, body_file, seconds + 4, connections),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    CHILDREN.append(load)
    time.sleep(2)
    before = counters(variant)
    record = subprocess.run(
        ["perf", "record", "-F", "999", "-p", str(pid), "-o", str(data), "--", "sleep", str(seconds)],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    delta = counters_since(variant, before)
    load.wait(timeout=seconds + 60)
    if record.returncode != 0:
        return {"variant": variant.key, "error": record.stderr.strip()[-500:]}
    per_request = delta["cpu_s"] / max(1, delta["completed"]) * 1e6
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--sort", "dso", "--stdio"],
        capture_output=True, text=True, timeout=120,
    ).stdout
    shares: dict[str, float] = {}
    for line in report.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+(.+?)\s*$", line)
        if match:
            name = match.group(2)
            if name.startswith("[JIT]"):
                name = "[JIT] V8-generated code (the compiled Wasm module)"
            elif name == "envoy":
                name = "envoy binary (C++, incl. V8 runtime and host calls)"
            elif name == "[kernel.kallsyms]":
                name = "kernel (syscalls, network, scheduling)"
            shares[name] = shares.get(name, 0.0) + float(match.group(1))
    return {
        "variant": variant.key,
        "label": variant.label,
        "seconds": seconds,
        "cpu_us_per_request": per_request,
        "objects": {k: {"share": v / 100, "us_per_request": v / 100 * per_request} for k, v in shares.items()},
    }


def profile_text(profiles: list[dict[str, Any]]) -> str:
    lines = []
    for p in profiles:
        if "error" in p:
            lines.append(f"{p['variant']}: perf failed: {p['error']}")
            continue
        lines.append(f"{p['label']} ({p['variant']}): {p['cpu_us_per_request']:.1f} µs CPU/request during a "
                     f"{p['seconds']} s perf window (sampling adds a little)")
        for name, o in sorted(p["objects"].items(), key=lambda kv: -kv[1]["share"]):
            if o["share"] >= 0.005:
                lines.append(f"    {o['us_per_request']:6.1f} µs  {o['share'] * 100:5.1f}%  {name}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- soak

SOAK_SCRIPT = BENCH / "soak.lua"
# The Warden variant whose configuration the soak's own Envoy runs: its
# upstream answers every request with the 100-tool list, so the lists (and
# the allowed calls' answers) are really cut.
SOAK_TEMPLATE = "warden-list-json"
# The filter's gauge of its VM's linear memory (filter/src/metrics.rs), set on
# the root context's 1 s tick; Envoy shows it under a prefix (see read_gauge).
VM_MEMORY_GAUGE = "warden_vm_memory_bytes"
# Set beside it: the most streams the VM has held at once. Each stream in
# flight keeps its request's state until its response is done, so memory
# follows this peak (concurrency), not the number of requests served.
VM_STREAMS_GAUGE = "warden_vm_streams_peak"
SOAK_CHECKPOINTS = 3  # gauge readings after the warm-up, evenly spaced


def soak_mix(tokens: Tokens, cycles: int = 100) -> tuple[Path, list[str]]:
    """The soak's requests, one `TOKEN<TAB>BODY` a line, in `cycles` rounds of
    the same kinds; each round has its own bad-signature token, so those are
    not all one cached failure."""
    human, agent = tokens.checks["ES256"]["human"], tokens.checks["ES256"]["agent"]
    kinds = ["allowed call", "denied tool", "agent actor", "malformed JSON", "bad signature", "filtered tools/list"]
    lines = []
    for _ in range(cycles):
        bad = mint_token.bad_signature_token("alice", "human", exp_in=TOKEN_LIFETIME)
        lines += [f"{human}\t{BODY}", f"{human}\t{OTHER_TOOL_BODY}", f"{agent}\t{BODY}",
                  f"{human}\t{BODY[:-7]}", f"{bad}\t{BODY}", f"{human}\t{LIST_BODY}"]
    path = WORK / "soak-mix.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, kinds


def read_gauge(admin: int, gauge: str = VM_MEMORY_GAUGE) -> tuple[str | None, int | None]:
    """A gauge's full stat name and value, or (None, None) when the filter
    does not set it (a module from before the gauge)."""
    _, text = http_get(admin, "/stats?filter=" + urllib.parse.quote(gauge))
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name.endswith(gauge) and value.strip().isdigit():
            return name, int(value)
    return None, None


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def memory_point(variant: Variant, after: int) -> dict[str, Any]:
    """The gauge after the load has stopped: the worker's VM sets it on its
    one-second tick (the main thread's VM, which serves no stream, does not),
    so it is read once, a little over a second later."""
    time.sleep(1.3)
    name, value = read_gauge(variant.admin)
    _, streams_peak = read_gauge(variant.admin, VM_STREAMS_GAUGE)
    return {"after_requests": after, "gauge": name, "bytes": value, "streams_peak": streams_peak,
            "envoy_rss_bytes": rss_bytes(variant.proc.pid)}  # type: ignore[union-attr]


def soak(envoy: str, template: Variant, ports: Ports, tokens: Tokens, requests: int,
         connections: int) -> dict[str, Any]:
    """`requests` mixed requests against a fresh Envoy (--concurrency 1: one
    worker, one Warden VM) with the template's configuration. The gauge is read
    after a warm-up (a tenth of the requests, at most 10,000) and at
    SOAK_CHECKPOINTS points after it; flat means no growth after the warm-up."""
    variant = Variant("warden-soak", template.label, template.filters, "repeated", template.enforces,
                      scenario=template.scenario, port=ports.soak, admin=ports.soak + 1)
    variant.proc = launch_envoy(envoy, write_variant_config(variant, ports), variant.key, [])
    wait_ready(variant.proc, variant.admin, variant.key)
    mix, kinds = soak_mix(tokens)
    warmup = min(10_000, max(1, requests // 10))
    segments = [warmup] + [(requests - warmup) // SOAK_CHECKPOINTS] * SOAK_CHECKPOINTS
    segments[-1] += requests - sum(segments)
    points = []
    sent = 0
    started = time.monotonic()
    before = counters(variant)
    for segment in segments:
        # wrk runs for a duration: its thread stops itself after `segment`
        # responses (soak.lua), and SIGINT, once Envoy has counted them, ends
        # wrk's wait for the duration (it then prints its summary).
        command = ["wrk", "-t1", f"-c{connections}", "-d900s", "--timeout", "5s", "-s", str(SOAK_SCRIPT),
                   f"http://127.0.0.1:{variant.port}/mcp", "--", str(mix), str(segment)]
        load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        CHILDREN.append(load)
        target = sent + segment
        deadline = time.monotonic() + 900
        while load.poll() is None and stats(variant.admin)["completed"] - before["completed"] < target:
            if time.monotonic() > deadline:
                raise SystemExit("bench: the soak did not finish in 900 s")
            time.sleep(0.05)
        load.send_signal(signal.SIGINT)
        out, err = load.communicate(timeout=60)
        if "WRK_RESULT " not in out:
            raise SystemExit(f"bench: wrk failed in the soak:\n{out}\n{err}")
        sent = int(counters_since(variant, before)["completed"])
        points.append(memory_point(variant, sent))
        shown = "not available" if points[-1]["bytes"] is None else f"{points[-1]['bytes']:,} bytes"
        print(f"bench: soak: {sent:,} requests, VM memory {shown}, most streams at once "
              f"{points[-1]['streams_peak']}, Envoy RSS {points[-1]['envoy_rss_bytes']:,} bytes", flush=True)
    delta = counters_since(variant, before)
    variant.proc.terminate()
    measured = [p["bytes"] for p in points]
    available = all(b is not None for b in measured)
    return {
        "variant": template.key,
        "requests": int(delta["completed"]),
        "forwarded": int(delta["forwarded"]),
        "mix": kinds,
        "connections": connections,
        "seconds": time.monotonic() - started,
        "cpu_us_per_request": delta["cpu_s"] / max(1, delta["completed"]) * 1e6,
        "gauge": next((p["gauge"] for p in points if p["gauge"]), None),
        "points": points,
        "final_bytes": measured[-1] if available else None,
        "growth_after_warmup_bytes": (measured[-1] - measured[0]) if available else None,
        "flat": (not growth_without_new_peak(points)) if available else None,  # as soak_verdict says
    }


# What a stream in flight holds in the VM until its response is done: about
# 2 KB in the harness's mix (harness/tests/host.rs), taken twice over for a
# real client's headers. It bounds the growth a new peak of streams explains.
STREAM_BYTES = 4096
WASM_PAGE = 65536


def growth_without_new_peak(points: list[dict[str, Any]]) -> bool:
    """Whether the VM's memory grew between two readings by more than a new
    peak of streams held at once explains: growth that follows the requests
    served (a leak, or fragmentation that creeps), not concurrency. A rise
    of the peak by n explains n × STREAM_BYTES, rounded up to pages, and one
    page more (the allocator reusing freed blocks in another order the next
    time it reaches the peak: the harness test saw it once); without a rise,
    any growth counts, as it does for a module without the peak gauge."""
    for before, after in zip(points, points[1:]):
        grown = after["bytes"] - before["bytes"]
        if grown <= 0:
            continue
        peaks = before.get("streams_peak"), after.get("streams_peak")
        if peaks[0] is None or peaks[1] is None or peaks[1] <= peaks[0]:
            return True
        explained = (math.ceil((peaks[1] - peaks[0]) * STREAM_BYTES / WASM_PAGE) + 1) * WASM_PAGE
        if grown > explained:
            return True
    return False


def soak_verdict(soaked: dict[str, Any]) -> tuple[bool, str]:
    """Whether a soak with readings stayed flat, and in which words: worked
    out from the readings (so a re-render applies the rule above to an
    older run's points too)."""
    if soaked["growth_after_warmup_bytes"] <= 0:
        return True, "flat"
    if growth_without_new_peak(soaked["points"]):
        return False, "not flat"
    return True, (f"flat: no more than a new peak of streams at once explains ({STREAM_BYTES:,} bytes a "
                  "stream, rounded up to pages, and one page more)")


# --------------------------------------------------------------------------- hostcalls


def warden_hostcalls(*options: str) -> list[dict[str, Any]]:
    """`warden hostcalls` with `options`, under `bench/hostcalls.yaml` and the built filter."""
    return json.loads(run_cli(
        "hostcalls", "--policy", HOSTCALL_POLICY, "--tool", HOSTCALL_TOOLS[0], "--denied-tool", HOSTCALL_TOOLS[1],
        *options, "--wasm", WASM_FILTER, "--format", "json"))


def hostcall_counts() -> dict[str, list[dict[str, Any]]]:
    """`warden hostcalls` per header mode, and in the default mode with the identity
    from jwt_authn's verified payload: for each reference request (and one root tick),
    the hostcalls the built filter made, by name."""
    runs = [(mode, mode, "warden") for mode in HEADER_MODES]
    # The identity from jwt_authn's verified payload (docs/policy.md), in the default mode.
    runs.append(("stream, jwt_authn", "stream", "jwt-authn"))
    return {label: warden_hostcalls("--header-mode", mode, "--verified-by", verified_by)
            for label, mode, verified_by in runs}


FRESH_TOKEN_ALGS = ("ES256", "RS256", "EdDSA")


def fresh_token_instructions() -> dict[str, int]:
    """`warden hostcalls --fresh-tokens` per algorithm (stream mode): the Wasm
    instructions of an allowed call whose token the cache has never seen,
    signed with that algorithm alone, so its signature is checked."""
    counts = {}
    for alg in FRESH_TOKEN_ALGS:
        counted = warden_hostcalls("--header-mode", "stream", "--alg", alg, "--fresh-tokens")
        fuel = next((c["fuel"] for c in counted if c["request"] == "allowed call"), None)
        if fuel is None:
            raise SystemExit(f"bench: `warden hostcalls --fresh-tokens --alg {alg}` counted no allowed call")
        counts[alg] = fuel
    return counts


def fresh_token_markdown(fresh: dict[str, int], hostcalls: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One line: the fresh-token counts per algorithm, beside the cached call's (stream mode)."""
    cached = next((c["fuel"] for c in hostcalls.get("stream", []) if c["request"] == "allowed call"), None)
    shown = ", ".join(f"{alg} {fuel:,}" for alg, fuel in fresh.items())
    return [
        "Wasm instructions of an allowed call (stream) whose token Warden has not seen before, its signature "
        f"checked (`warden hostcalls --fresh-tokens --alg …`): {shown}"
        + (f"; with a token from the cache: {cached:,}." if cached is not None else "."),
    ]


def hostcalls_markdown(counts: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One column per request and header mode (the root tick once), one row per hostcall."""
    columns = [(mode, c) for mode in counts for c in counts[mode] if c["request"] != "tick (root)"]
    ticks = [c for c in next(iter(counts.values())) if c["request"] == "tick (root)"]
    columns += [("", c) for c in ticks]
    names = sorted({name for _, c in columns for name in c["hostcalls"]})
    lines = [
        "Hostcalls per request, by name (`warden hostcalls` under `bench/hostcalls.yaml`: the benchmark's rule, "
        "a `tools/list` rule and a polled revocation list; the built `.wasm` in the harness's emulator of Envoy's "
        "host, each request in a worker in its steady state, response included; the Wasm instructions are the "
        "filter's own work for the request, from the stream's creation to its deletion, a count no machine noise "
        "changes; `stream, jwt_authn`: the identity read from the payload Envoy's `jwt_authn` verified, "
        "`--verified-by jwt-authn`):",
        "",
        "| hostcall | " + " | ".join(f"{c['request']} ({mode})" if mode else c["request"] for mode, c in columns) + " |",
        "|---|" + "--:|" * len(columns),
    ]
    for name in names:
        lines.append(f"| `{name}` | " + " | ".join(str(c["hostcalls"].get(name, 0)) for _, c in columns) + " |")
    lines.append("| **total** | " + " | ".join(f"**{c['total']}**" for _, c in columns) + " |")
    lines.append("| Wasm instructions (wasmtime fuel) | "
                 + " | ".join(f"{c['fuel']:,}" if "fuel" in c else "–" for _, c in columns) + " |")
    lines.append("| outcome | " + " | ".join(c["outcome"] for _, c in columns) + " |")
    return lines


# --------------------------------------------------------------------------- micro benchmarks

MICRO_NAMES = [
    "token/es256/cold",
    "token/es256/cached",
    "token/rs256/cold",
    "token/eddsa/cold",
    "token/jwt_authn/repeated",
    "token/jwt_authn/fresh",
    "v8/token/es256/cold",
    "v8/token/rs256/cold",
    "v8/token/eddsa/cold",
    "body/decode",
    "body/serde_json_value",
    "policy/decide/10_rules",
    "policy/decide/1000_rules",
    "policy/decide/10000_rules",
    "gate/whole_decision/cached_token",
    "v8/gate/whole_decision/cached_token",
    "list/cut/100_tools_json",
    "list/cut/100_tools_sse",
    "list/serde_json_value/100_tools_json",
]

UNITS = {"ps": 1e-6, "ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}


def parse_criterion(log: Path) -> dict[str, float]:
    """Median-of-estimate (middle of criterion's `time: [lo mid hi]`) in µs."""
    if not log.exists():
        return {}
    text = log.read_text(errors="replace")
    out: dict[str, float] = {}
    pattern = re.compile(r"^(\S+)\s*\n?\s*time:\s*\[([\d.]+) (\S+) ([\d.]+) (\S+) ([\d.]+) (\S+)\]", re.M)
    for match in pattern.finditer(text):
        name = match.group(1)
        out[name] = float(match.group(4)) * UNITS[match.group(5)]
    return out


# --------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(variants: list[Variant]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for v in variants:
        runs = v.runs
        summary[v.key] = {
            "label": v.label,
            "group": v.group,
            "protocol": v.protocol,
            "scenario": v.scenario,
            "alg": v.alg,
            "baseline": v.baseline,
            "tokens": v.tokens,
            "enforces": v.enforces,
            "checks": v.checks,
            "rounds": len(runs),
            "rps": median([r["rps"] for r in runs]),
            "p50_us": median([r["p50_us"] for r in runs]),
            "p99_us": median([r["p99_us"] for r in runs]),
            "cpu_us_per_request": median([r["cpu_us_per_request"] for r in runs]),
            "cpu_us_per_request_min": min((r["cpu_us_per_request"] for r in runs), default=float("nan")),
            "cpu_us_per_request_max": max((r["cpu_us_per_request"] for r in runs), default=float("nan")),
            "requests_total": sum(r["completed"] for r in runs),
            "forwarded_fraction": (sum(r["forwarded"] for r in runs) / max(1, sum(r["completed"] for r in runs))),
            "errors": sum(r["errors"] for r in runs),
            "upstream_connections_opened": sum(r["upstream_connections_opened"] for r in runs),
            "diagnostic": v.diagnostic,
        }
    # Ratios to plain Envoy are paired: each round's figure over the figure of
    # the plain Envoy serving the same load (`baseline`) in the same round
    # (they ran within a minute or two of each other), then the median over
    # rounds. Slow changes in the machine's load cancel out.
    runs = {v.key: v.runs for v in variants}
    for key, s in summary.items():
        for metric in ("rps", "p50_us", "p99_us", "cpu_us_per_request"):
            s[f"{metric}_ratio"] = paired(runs, key, s["baseline"], metric, operator.truediv)
    return summary


def paired(runs: dict[str, list[dict[str, Any]]], key: str, ref: str, metric: str, op: Any) -> float:
    """Median over rounds of op(key's figure, ref's figure in the same round);
    `runs` is the results' record of runs by variant key."""
    if key not in runs or ref not in runs:
        return float("nan")
    ref_runs = {r["round"]: r[metric] for r in runs[ref]}
    values = [op(r[metric], ref_runs[r["round"]]) for r in runs[key] if r["round"] in ref_runs]
    return median(values)


# Figures from before issue 15 ("Cheaper than Envoy's own C++"), as the issue
# states them; the targets table shows them beside this run's.
BEFORE_ISSUE_15 = {
    "repeated": "1.23 (10 rounds, 2026-11-28); 1.40 (5 rounds)",
    "added": "3.35 (2026-11-28)",
    "fresh-es256": "4.29: 1,043 µs vs 243 µs, against jwt_authn (no cache) + RBAC *without* the mcp filter (2026-11-28)",
    "fresh-jwt-authn": "not measured",
    "fresh-rs256": "not measured",
    "fresh-rs256-jwt-authn": "not measured",
    "core": "7.39",
    "rules": "1.22",
    "size": "1.16 MB",
    "memory": "not measured",
    "hostcalls": "allowed call 14 hostcalls, denied 12, list 18",
}
WASM_SIZE_LIMIT = 600 * 1024
VM_MEMORY_LIMIT = 4 * 1024 * 1024


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 15's targets, each with this run's figure and the one before the issue.
    A target whose figures this run lacks is listed as not measured."""
    summary, micro, runs = result["summary"], result["micro"], result["runs"]
    out: list[dict[str, Any]] = []

    def add(name: str, before: str, value: float | None, limit: float, shown: str, limit_shown: str,
            detail: str, met: bool | None = None) -> None:
        if value is None or value != value:  # not measured (NaN included)
            out.append({"target": name, "value": None, "limit": limit, "measured": "–", "limit_shown": limit_shown,
                        "met": None, "detail": detail or "not measured in this run", "before": before})
            return
        out.append({"target": name, "value": value, "limit": limit, "measured": shown, "limit_shown": limit_shown,
                    "met": value <= limit if met is None else met, "detail": detail, "before": before})

    def cpu_ratio(name: str, before: str, key: str, ref: str, limit: float) -> None:
        if key not in runs or ref not in runs:
            add(name, before, None, limit, "", f"{limit:.2f}×", f"`{key}` or `{ref}` not run")
            return
        value = paired(runs, key, ref, "cpu_us_per_request", operator.truediv)
        add(name, before, value, limit, f"{value:.2f}×", f"{limit:.2f}×",
            f"`{key}` {summary[key]['cpu_us_per_request']:.1f} µs vs `{ref}` {summary[ref]['cpu_us_per_request']:.1f} µs "
            "(medians; the ratio is the median of the rounds' paired ratios)")

    cpu_ratio("repeated token: Warden CPU/request ≤ 1.0 × jwt_authn (cache) + mcp + RBAC", BEFORE_ISSUE_15["repeated"],
              "warden", "jwt-mcp-rbac", 1.0)
    if all(k in runs for k in ("warden", "wasm-parse", "plain")):
        added = paired(runs, "warden", "plain", "cpu_us_per_request", operator.sub)
        parse = paired(runs, "wasm-parse", "plain", "cpu_us_per_request", operator.sub)
        add("Warden's added CPU (warden − plain) ≤ 2 × the parse-only filter's (wasm-parse − plain)",
            BEFORE_ISSUE_15["added"], added / parse if parse > 0 else None, 2.0, f"{added / parse:.2f}×" if parse > 0 else "",
            "2.00×", f"+{added:.1f} µs vs +{parse:.1f} µs (medians of the rounds' paired differences)")
    else:
        add("Warden's added CPU (warden − plain) ≤ 2 × the parse-only filter's (wasm-parse − plain)",
            BEFORE_ISSUE_15["added"], None, 2.0, "", "2.00×", "")
    cpu_ratio("fresh ES256 token: Warden ≤ 1.5 × jwt_authn (no cache) + mcp + RBAC", BEFORE_ISSUE_15["fresh-es256"],
              "warden-fresh", "jwt-mcp-rbac-nocache", 1.5)
    cpu_ratio("fresh ES256 token, identity from jwt_authn: jwt_authn + Warden ≤ 1.5 × jwt_authn (no cache) + mcp + RBAC",
              BEFORE_ISSUE_15["fresh-jwt-authn"], "warden-jwt-authn-fresh", "jwt-mcp-rbac-nocache", 1.5)
    cpu_ratio("fresh RS256 token: Warden ≤ 1.5 × jwt_authn (no cache) + mcp + RBAC", BEFORE_ISSUE_15["fresh-rs256"],
              "warden-fresh-rs256", "jwt-mcp-rbac-nocache-rs256", 1.5)
    cpu_ratio("fresh RS256 token, identity from jwt_authn: jwt_authn + Warden ≤ 1.5 × jwt_authn (no cache) + mcp + RBAC",
              BEFORE_ISSUE_15["fresh-rs256-jwt-authn"], "warden-jwt-authn-fresh-rs256", "jwt-mcp-rbac-nocache-rs256", 1.5)

    gate, parse_us = micro.get("gate/whole_decision/cached_token"), micro.get("body/serde_json_value")
    add("decision core: `gate/whole_decision/cached_token` ≤ 2 × `body/serde_json_value`", BEFORE_ISSUE_15["core"],
        gate / parse_us if gate and parse_us else None, 2.0, f"{gate / parse_us:.2f}×" if gate and parse_us else "",
        "2.00×", f"{gate:.2f} µs vs {parse_us:.2f} µs (native, criterion)" if gate and parse_us else
        "micro benchmarks not run (BENCH_MICRO=0)")
    big, small = micro.get("policy/decide/10000_rules"), micro.get("policy/decide/10_rules")
    add("`policy/decide/10000_rules` ≤ 1.1 × `policy/decide/10_rules`", BEFORE_ISSUE_15["rules"],
        big / small if big and small else None, 1.1, f"{big / small:.2f}×" if big and small else "", "1.10×",
        f"{big * 1000:.0f} ns vs {small * 1000:.0f} ns (native, criterion)" if big and small else
        "micro benchmarks not run (BENCH_MICRO=0)")
    size = result.get("wasm_bytes")
    add("`warden_filter.wasm` ≤ 600 KB", BEFORE_ISSUE_15["size"], size, WASM_SIZE_LIMIT,
        f"{size / 1024:,.0f} KB" if size else "", "600 KB (614,400 bytes)",
        f"{size:,} bytes, the module in target/ this run loaded" if size else "")

    soaked = result.get("soak")
    if soaked and soaked.get("final_bytes") is not None:
        final, growth = soaked["final_bytes"], soaked["growth_after_warmup_bytes"]
        flat, verdict = soak_verdict(soaked)
        add("VM memory after the soak ≤ 4 MiB, flat after the warm-up", BEFORE_ISSUE_15["memory"], final,
            VM_MEMORY_LIMIT, f"{final / 1048576:.2f} MiB",
            "4 MiB, no growth beyond what a new peak of streams explains",
            f"{soaked['requests']:,} mixed requests; after the warm-up {soaked['points'][0]['bytes']:,} bytes, "
            f"at the end {final:,} bytes ({growth:+,} bytes: {verdict})",
            met=final <= VM_MEMORY_LIMIT and flat)
    else:
        add("VM memory after the soak ≤ 4 MiB, flat after the warm-up", BEFORE_ISSUE_15["memory"], None,
            VM_MEMORY_LIMIT, "", "4 MiB, no growth",
            "not available: the filter in target/ does not set the gauge `warden_vm_memory_bytes`" if soaked else
            "no soak in this run")

    counted = {c["request"]: c for c in result.get("hostcalls", {}).get("stream", [])}
    allowed, denied = counted.get("allowed call"), counted.get("denied call")
    if allowed and denied:
        def header_reads(c: dict[str, Any]) -> int:
            return sum(c["hostcalls"].get(n, 0) for n in ("proxy_get_header_map_pairs", "proxy_get_header_map_value"))

        shared = allowed["hostcalls"].get("proxy_get_shared_data", 0)
        # The denied call ends before any response, so its header-map reads are
        # the request's; the allowed call's one more is the response's (list filtering).
        request_reads = header_reads(denied)
        totals = ", ".join(f"{c['request']} {c['total']}" for c in counted.values() if c["request"] != "tick (root)")
        add("hostcalls: no shared-data read on the allowed path, one request-header read", BEFORE_ISSUE_15["hostcalls"],
            float(shared + request_reads), 1.0, f"{shared} shared-data, {request_reads} request-header",
            "0 shared-data, 1 request-header",
            f"`warden hostcalls`, stream mode: {totals}; header-map reads on the allowed call: "
            f"{header_reads(allowed)} (request and response)", met=shared == 0 and request_reads == 1)
    return out


def derived_figures(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    def ran(*keys: str) -> bool:
        return all(key in runs for key in keys)

    def diff(key: str, ref: str) -> float:
        return paired(runs, key, ref, "cpu_us_per_request", operator.sub)

    def ratio(key: str, ref: str) -> float:
        return paired(runs, key, ref, "cpu_us_per_request", operator.truediv)

    out = []
    if ran("plain", "wasm-parse", "warden"):
        w, p = diff("warden", "plain"), diff("wasm-parse", "plain")
        out.append(f"Warden adds {w:.1f} µs to plain Envoy; the parse-only Wasm filter adds {p:.1f} µs "
                   f"(Warden's whole decision costs {w / p:.2f}× what holding, buffering and parsing the body in Wasm costs)")
    # What one setting of Warden's costs: the paired difference of two variants.
    for key, ref, what in [
        ("warden-hold", "warden", "header_mode hold instead of stream (headers held until the decision)"),
        ("warden", "warden-noaudit", "the audit line through the access log (the default sink) against none"),
        ("warden-envoy-log", "warden-noaudit", "the audit line in Envoy's log at info against none"),
        ("warden", "warden-envoy-log", "the audit line through the access log instead of Envoy's log"),
    ]:
        if ran(key, ref):
            out.append(f"{what}: {diff(key, ref):+.1f} µs")
    if ran("warden-envoy-log", "jwt-mcp-rbac"):
        out.append(f"Warden with its audit line in Envoy's log (repeated token) / jwt_authn (cache) + mcp + RBAC: "
                   f"{ratio('warden-envoy-log', 'jwt-mcp-rbac'):.2f}×")
    if ran("plain", "jwt-rbac-cache"):
        out.append(f"jwt_authn (cache) + RBAC adds {diff('jwt-rbac-cache', 'plain'):.1f} µs to plain Envoy")
    if ran("plain", "jwt-rbac-nocache"):
        out.append(f"jwt_authn (no cache) + RBAC adds {diff('jwt-rbac-nocache', 'plain'):.1f} µs "
                   "(an ES256 verification in BoringSSL and the rest)")
    if ran("jwt-rbac-cache", "jwt-mcp-rbac"):
        out.append(f"the native mcp filter adds {diff('jwt-mcp-rbac', 'jwt-rbac-cache'):.1f} µs to jwt_authn (cache) + RBAC")
    if ran("warden", "jwt-mcp-rbac"):
        out.append(f"Warden (repeated token) / jwt_authn (cache) + mcp + RBAC, the native set that also reads the "
                   f"tool from the body: {ratio('warden', 'jwt-mcp-rbac'):.2f}×")
    if ran("warden", "warden-jwt-authn"):
        out.append(f"identity from jwt_authn instead of Warden's own verification (repeated token): "
                   f"{diff('warden-jwt-authn', 'warden'):+.1f} µs")
    for h2, h1 in (("plain-h2", "plain"), ("warden-h2", "warden"), ("jwt-mcp-rbac-h2", "jwt-mcp-rbac")):
        if ran(h2, h1):
            out.append(f"HTTP/2 instead of HTTP/1.1, `{h1}`: {diff(h2, h1):+.1f} µs ({ratio(h2, h1):.2f}×)")
    if ran("warden-h2", "plain-h2", "jwt-mcp-rbac-h2"):
        out.append(f"over HTTP/2, Warden adds {diff('warden-h2', 'plain-h2'):.1f} µs to plain Envoy; "
                   f"Warden / jwt_authn (cache) + mcp + RBAC: {ratio('warden-h2', 'jwt-mcp-rbac-h2'):.2f}×")
    for alg, suffix in (("ES256", ""), ("RS256", "-rs256"), ("EdDSA", "-eddsa")):
        mine, native = f"warden-fresh{suffix}", f"jwt-mcp-rbac-nocache{suffix}"
        if ran(mine, "warden"):
            out.append(f"a fresh {alg} token costs Warden {diff(mine, 'warden'):.1f} µs more than a repeated one "
                       f"({alg} verification in Wasm)")
        if ran(native, "jwt-mcp-rbac"):
            out.append(f"a fresh {alg} token costs jwt_authn (no cache) + mcp + RBAC {diff(native, 'jwt-mcp-rbac'):.1f} µs "
                       f"more than a cached one (BoringSSL)")
        if ran(mine, native):
            out.append(f"fresh {alg} token: Warden / jwt_authn (no cache) + mcp + RBAC: {ratio(mine, native):.2f}×")
    for alg, suffix in (("ES256", ""), ("RS256", "-rs256")):
        if ran(f"warden-fresh{suffix}", f"warden-jwt-authn-fresh{suffix}"):
            out.append(f"identity from jwt_authn (fresh {alg} token, BoringSSL verifies): "
                       f"{diff(f'warden-jwt-authn-fresh{suffix}', f'warden-fresh{suffix}'):+.1f} µs "
                       "against Warden's own verification")
    for form in ("json", "sse"):
        mine, plain = f"warden-list-{form}", f"plain-list-{form}"
        if ran(mine, plain):
            line = (f"a {LIST_TOOLS}-tool list as {form.upper()}: Warden adds {diff(mine, plain):.1f} µs to plain Envoy "
                    f"({ratio(mine, plain):.2f}×), reading and cutting it included")
            if ran("warden", "plain"):
                line += f"; for a call it adds {diff('warden', 'plain'):.1f} µs"
            out.append(line)
    if ran("plain-large", "warden-large", "wasm-parse-large"):
        w, p = diff("warden-large", "plain-large"), diff("wasm-parse-large", "plain-large")
        out.append(f"a {len(LARGE_BODY) / 1000:.0f} KB body: Warden adds {w:.1f} µs to plain Envoy, the parse-only "
                   f"Wasm filter {p:.1f} µs ({w / p:.2f}×)")
    return out


def fmt_us(us: float) -> str:
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} µs"


def groups_of(summary: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The variants of a results record by section (GROUPS order), as (title, keys)."""
    out = []
    for group, title in GROUPS.items():
        keys = [k for k, v in summary.items() if v.get("group", "call-h1") == group]
        if keys:
            out.append((title, keys))
    return out


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    m = result["machine"]
    settings = result["settings"]
    lines = [
        f"Run of {result['started']} on {m['cpu']} ({m['cores']} cores), {m['kernel']}; "
        f"Envoy {m['envoy']}; {settings['rounds']} rounds × {settings['seconds']} s per variant, "
        f"{settings['connections']} connections (wrk over HTTP/1.1, h2load over HTTP/2); load average at start "
        f"{m['loadavg']}; commit `{m['commit']}`. Figures are medians over rounds; each × plain is the median of "
        "the rounds' ratios to the plain Envoy serving the same load in the same round (`plain`, `plain-h2`, "
        "`plain-list-json`, `plain-list-sse`, `plain-large`). HTTP/2 latencies are computed from h2load's "
        "per-request log (h2load itself prints only min, max, mean and deviation).",
        "",
        "| variant | checks | CPU µs/request | × plain | requests/s | × plain | p50 | × plain | p99 | × plain |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for title, keys in groups_of(s):
        lines.append(f"| ***{title}*** | | | | | | | | | |")
        for key in keys:
            v = s[key]
            label = f"{v['label']} (`{key}`)" + (", diagnostic" if v.get("diagnostic") else "")
            lines.append(
                f"| {label} | {v['enforces']} | **{v['cpu_us_per_request']:.1f}** | {v['cpu_us_per_request_ratio']:.2f} "
                f"| {v['rps']:.0f} | {v['rps_ratio']:.2f} | {fmt_us(v['p50_us'])} | {v['p50_us_ratio']:.2f} "
                f"| {fmt_us(v['p99_us'])} | {v['p99_us_ratio']:.2f} |"
            )
    columns: list[str] = []
    for v in s.values():
        columns += [c for c in v["checks"] if c not in columns]
    lines += [
        "",
        "CPU per request: median over rounds (spread min–max: "
        + ", ".join(f"{k} {v['cpu_us_per_request_min']:.0f}–{v['cpu_us_per_request_max']:.0f}" for k, v in s.items())
        + "). Fraction of the measured requests forwarded to the upstream: "
        + ", ".join(f"{k} {v['forwarded_fraction']:.4f}" for k, v in s.items())
        + f"; load generator errors: {sum(v['errors'] for v in s.values())}; upstream connections opened during "
        f"the measured runs: {sum(v['upstream_connections_opened'] for v in s.values())} in all (they are reused).",
        "",
        "What each variant lets through (checked before the load with the variant's protocol and token algorithm; "
        "`passes` = reached the upstream; for the list variants, how many of the upstream's "
        f"{LIST_TOOLS} tools the permitted tools/list got back):",
        "",
        "| variant | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for key, v in s.items():
        lines.append(f"| `{key}` | " + " | ".join(v["checks"].get(c, "–") for c in columns) + " |")
    if result.get("hostcalls"):
        lines += [""] + hostcalls_markdown(result["hostcalls"])
    if result.get("fresh_token_instructions"):
        lines += [""] + fresh_token_markdown(result["fresh_token_instructions"], result.get("hostcalls", {}))
    if result.get("soak"):
        lines += [""] + soak_markdown(result["soak"])
    if result["micro"]:
        lines += ["", "Micro benchmarks (criterion, native, `cargo bench -p warden-policy-sdk --features testing --bench core`; "
                  "the `v8/` rows are the same cold verifications and whole gate compiled to Wasm and run in V8 "
                  "by Node, `bench/v8_tokens.mjs` with policy-sdk's `token_timing` example, median of 9 batches "
                  "of 100 verifications or 1,000 gates):", "",
                  "| benchmark | time |", "|---|--:|"]
        for name in MICRO_NAMES:
            if name in result["micro"]:
                value = result["micro"][name]
                lines.append(f"| `{name}` | {value:.2f} µs |" if value >= 1 else f"| `{name}` | {value * 1000:.0f} ns |")
    derived = derived_figures(result["runs"])
    if derived:
        lines += ["", "Differences in CPU µs/request (median over rounds of the difference within each round):", ""] + [f"* {d}" for d in derived]
    profiles = [p for p in result.get("profiles", []) if "objects" in p]
    if profiles:
        names: list[str] = []
        for p in profiles:
            for name, o in sorted(p["objects"].items(), key=lambda kv: -kv[1]["share"]):
                if name not in names and o["share"] >= 0.005:
                    names.append(name)
        lines += ["", "Profile (perf, 999 Hz, 10 s under the same load; samples by shared object, "
                  "as µs of Envoy CPU per request):", "",
                  "| where | " + " | ".join(s[p["variant"]]["label"] for p in profiles) + " |",
                  "|---|" + "--:|" * len(profiles)]
        for name in names:
            cells = [f"{p['objects'][name]['us_per_request']:.1f}" if name in p["objects"] else "–" for p in profiles]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("| total | " + " | ".join(f"{p['cpu_us_per_request']:.1f}" for p in profiles) + " |")
    lines += ["", "Issue 15's targets (the last column: the figure before the issue, as the issue states it):", "",
              "| target | measured | limit | met | figures | before issue 15 |", "|---|--:|--:|---|---|---|"]
    for t in result["targets"]:
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {t['measured']} | {t['limit_shown']} | {met} | {t['detail']} | {t['before']} |")
    return "\n".join(lines) + "\n"


def soak_markdown(soaked: dict[str, Any]) -> list[str]:
    gauge = f"`{soaked['gauge']}`" if soaked.get("gauge") else f"`{VM_MEMORY_GAUGE}` (not available in this module)"
    lines = [
        f"Soak: {soaked['requests']:,} requests against one Envoy with Warden (`--concurrency 1`: one worker, one VM; "
        f"the configuration of `{soaked['variant']}`, whose upstream answers every request with the {LIST_TOOLS}-tool "
        f"list), {soaked['connections']} connections, in rotation: {', '.join(soaked['mix'])}; "
        f"{soaked['seconds']:.0f} s, {soaked['cpu_us_per_request']:.1f} µs of Envoy CPU per request, "
        f"{soaked['forwarded']:,} forwarded. VM memory: the gauge {gauge} (the VM's Wasm linear memory), read "
        "a little over a second after the load had stopped (the worker's VM sets it on its tick; the main "
        "thread's VM, which serves no stream, does not); the first reading is after the warm-up. Beside it, "
        f"`{VM_STREAMS_GAUGE}`: the most streams the VM has held at once. A stream in flight keeps its request's "
        "state until its response is done (about 2 KB), so memory follows that peak, not the requests served; "
        "flat means no growth between two readings beyond what a rise of the peak explains.",
        "",
        "| after requests | VM linear memory | most streams at once | Envoy RSS |",
        "|--:|--:|--:|--:|",
    ]
    for point in soaked["points"]:
        memory = "not available" if point["bytes"] is None else f"{point['bytes']:,} bytes"
        peak = point.get("streams_peak")
        lines.append(f"| {point['after_requests']:,} | {memory} | {'–' if peak is None else peak} "
                     f"| {point['envoy_rss_bytes'] / 1048576:.1f} MiB |")
    if soaked.get("final_bytes") is not None:
        lines += ["", f"Growth after the warm-up: {soaked['growth_after_warmup_bytes']:+,} bytes "
                  f"({soak_verdict(soaked)[1]})."]
    return lines


def bar_colour(key: str) -> str:
    """One colour per kind of variant, the same in every section."""
    if key.startswith("plain"):
        return "#9e9e9e"
    if key.startswith("wasm-parse"):
        return "#b0bec5"
    if key.startswith("warden-jwt-authn"):
        return "#2e7d32"
    if key in ("warden-noaudit", "warden-envoy-log"):
        return "#90caf9"
    if key.startswith("warden"):
        return "#1565c0" if "fresh" not in key and "hold" not in key else "#42a5f5"
    if key.startswith("jwt-mcp-rbac"):
        return "#8d6e63"
    return "#ef6c00"  # jwt_authn + RBAC without the mcp filter


def svg_chart(result: dict[str, Any]) -> str:
    """CPU per request, one panel per section, each with its own scale (the
    sections differ by an order of magnitude); whiskers are min–max over rounds."""
    s = result["summary"]
    width, left, right, bar, gap = 1000, 450, 150, 22, 8
    limits = {"call-h1": ("jwt-mcp-rbac", 1.0), "fresh": ("jwt-mcp-rbac-nocache", 1.5)}

    def esc(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    body: list[str] = []
    y = 70
    for group, title in GROUPS.items():
        keys = [k for k, v in s.items() if v.get("group", "call-h1") == group]
        if not keys:
            continue
        reach = [max(s[k]["cpu_us_per_request_max"], s[k]["cpu_us_per_request"]) for k in keys]
        target = None
        if group in limits and limits[group][0] in s:
            target = limits[group][1] * s[limits[group][0]]["cpu_us_per_request"]
            reach.append(target)
        vmax = max(r for r in reach if r == r) * 1.15
        scale = (width - left - right) / vmax
        step = next(st for st in (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000) if vmax / st <= 8)
        body.append(f'<text x="20" y="{y + 14}" font-weight="bold" font-size="14">{esc(title)}</text>')
        y += 26
        top, axis_y = y, y + len(keys) * (bar + gap)
        tick = 0
        while tick <= vmax:
            x = left + tick * scale
            body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{axis_y}" stroke="#e6e6e6"/>')
            body.append(f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle" fill="#555" font-size="11">{tick}</text>')
            tick += step
        if target is not None:
            x = left + target * scale
            ref, factor = limits[group]
            body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{axis_y}" stroke="#c62828" '
                        'stroke-dasharray="5,4"/>')
            body.append(f'<text x="{x + 4:.1f}" y="{axis_y + 28}" fill="#c62828" font-size="11">'
                        f"target for Warden: {factor:g} × {esc(ref)} = {target:.0f} µs</text>")
        for i, key in enumerate(keys):
            v = s[key]
            by = top + i * (bar + gap)
            value = v["cpu_us_per_request"]
            label = v["label"] + (" (diagnostic)" if v.get("diagnostic") else "")
            body.append(f'<text x="{left - 8}" y="{by + bar * 0.7:.1f}" text-anchor="end">{esc(label)}</text>')
            body.append(f'<rect x="{left}" y="{by}" width="{value * scale:.1f}" height="{bar}" '
                        f'fill="{bar_colour(key)}"/>')
            lo, hi = left + v["cpu_us_per_request_min"] * scale, left + v["cpu_us_per_request_max"] * scale
            mid = by + bar / 2
            body.append(f'<line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}" stroke="#212121"/>')
            for xw in (lo, hi):
                body.append(f'<line x1="{xw:.1f}" y1="{mid - 4}" x2="{xw:.1f}" y2="{mid + 4}" stroke="#212121"/>')
            end = max(hi, left + value * scale)
            body.append(f'<text x="{end + 6:.1f}" y="{by + bar * 0.7:.1f}">'
                        f'{value:.0f} µs ({v["cpu_us_per_request_ratio"]:.2f}×)</text>')
        y = axis_y + (44 if target is not None else 30)
    height = y + 30
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">'
        "Envoy CPU time per request (median over rounds; whiskers: min–max)</text>",
        f'<text x="{width / 2}" y="42" text-anchor="middle" fill="#555">'
        f'{esc(result["machine"]["cpu"])}, {result["machine"]["cores"]} cores; Envoy {esc(result["machine"]["envoy"])} '
        f'--concurrency 1; {result["settings"]["connections"]} connections; {result["settings"]["rounds"]} rounds; '
        f'{result["started"][:10]}</text>',
        f'<text x="{width / 2}" y="58" text-anchor="middle" fill="#555">'
        "µs of Envoy CPU per request (utime + stime from /proc); each section has its own scale; "
        "in brackets the ratio to the section's plain Envoy</text>",
    ]
    return "\n".join(head + body + ["</svg>"]) + "\n"


def splice_benchmarks_md(table: str) -> None:
    doc = ROOT / "BENCHMARKS.md"
    if not doc.exists():
        return
    text = doc.read_text()
    start, end = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
    if start not in text or end not in text:
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(head + start + "\n" + table + end + tail)


def machine_info(envoy: str) -> dict[str, Any]:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    version = subprocess.run([envoy, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"/(\d+\.\d+\.\d+)/", version)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    # The run's own outputs (bench/results, written before this is asked)
    # are not changes to what was measured.
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--",
                            ".", ":(exclude)bench/results"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": f"Linux {platform.release()}",
        "envoy": match.group(1) if match else version.strip(),
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0].split(" [")[0],
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "commit": commit + ("+local changes" if dirty else ""),
    }


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 8)))
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 3)))
    parser.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_WARMUP", 3)))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--fresh-tokens", type=int, default=int(os.environ.get("BENCH_FRESH_TOKENS", 20000)))
    parser.add_argument("--soak-requests", type=int, default=int(os.environ.get("BENCH_SOAK_REQUESTS", 100_000)),
                        help="requests of the memory soak after the rounds (0: none)")
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""),
                        help="comma-separated variant keys (plain and the variants' baselines are always included; "
                             "`soak` runs the soak)")
    parser.add_argument("--profile", default=os.environ.get("BENCH_PROFILE", ""),
                        help="comma-separated variant keys to sample with perf after the rounds")
    parser.add_argument("--micro-log", type=Path, default=None, help="criterion output to include")
    parser.add_argument("--no-write", action="store_true", help="print the table; leave bench/results and BENCHMARKS.md alone")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="only write the table, chart and BENCHMARKS.md section again from a results file")
    args = parser.parse_args()
    if args.render:
        return render(json.loads(args.render.read_text()))

    variants = VARIANTS
    only = set(filter(None, args.only.split(",")))
    if only:
        # Each chosen variant's plain-Envoy baseline (the × plain ratios) comes along.
        keep = {"plain", *only, *(v.baseline for v in VARIANTS if v.key in only)}
        variants = [v for v in VARIANTS if v.key in keep]
    for needed in (WARDEN_CLI, WASM_FILTER, PARSE_WASM):
        if not needed.exists():
            raise SystemExit(f"bench: {needed} is missing; run `make bench` (it builds everything)")
    for tool, package in (("wrk", "wrk"), ("h2load", "nghttp2-client")):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} is missing; run bench/run.sh (installs Debian's {package})")

    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    envoy = envoy_binary()
    WORK.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    machine = machine_info(envoy)
    print(f"bench: {machine['cpu']}, {machine['cores']} cores, load {machine['loadavg']}, Envoy {machine['envoy']}")

    hostcalls = hostcall_counts()
    for mode, counted in hostcalls.items():
        print(f"bench: hostcalls ({mode}): " + ", ".join(f"{c['request']} {c['total']}" for c in counted))
    fresh_instructions = fresh_token_instructions()
    print("bench: Wasm instructions of an allowed call with a fresh token: "
          + ", ".join(f"{alg} {fuel}" for alg, fuel in fresh_instructions.items()))

    tokens = mint_tokens(args.fresh_tokens, variants)
    body_files = {}
    for name, scenario in SCENARIOS.items():
        body_files[name] = WORK / f"body-{name}.json"
        body_files[name].write_text(scenario.request)

    ports = assign_ports()
    path = WORK / "upstream.json"
    path.write_text(json.dumps(upstream_config(ports), indent=1))
    # Launched together, then waited for: V8 compiles each Warden module as
    # its Envoy starts, and the machine has more than one core.
    upstream = launch_envoy(envoy, path, "upstream", [])
    for v in variants:
        v.proc = launch_envoy(envoy, write_variant_config(v, ports), v.key, v.envoy_args)
    wait_ready(upstream, ports.upstream_admin, "upstream")
    for v in variants:
        wait_ready(v.proc, v.admin, v.key)  # type: ignore[arg-type]
    print(f"bench: {1 + len(variants)} Envoy processes ready ({WORK})")
    width = max(len(v.key) for v in variants)
    for v in variants:
        functional_checks(v, tokens)
        print(f"bench: {v.key:{width}} " + ", ".join(f"{k}: {r}" for k, r in v.checks.items()))

    def load(v: Variant, seconds: float) -> dict[str, Any]:
        return run_load(v, tokens.file_for(v), body_files[v.scenario], seconds, args.connections)

    if args.warmup > 0:
        for v in variants:
            load(v, args.warmup)
        print(f"bench: warmed up ({args.warmup:g}s each)")

    total = time.monotonic()
    for r in range(args.rounds):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for v in order:
            run = load(v, args.seconds)
            run["round"] = r
            v.runs.append(run)
            print(f"bench: round {r + 1}/{args.rounds} {v.key:{width}} {run['rps']:8.0f} req/s  "
                  f"p50 {run['p50_us']:6.0f} µs  p99 {run['p99_us']:6.0f} µs  CPU {run['cpu_us_per_request']:6.1f} µs/req  "
                  f"forwarded {run['forwarded']:.0f}/{run['completed']:.0f}  "
                  f"new upstream connections {run['upstream_connections_opened']:.0f}", flush=True)
    print(f"bench: {args.rounds} rounds in {time.monotonic() - total:.0f}s")
    profiles = []
    by_key = {v.key: v for v in variants}
    for key in filter(None, args.profile.split(",")):
        v = by_key.get(key)
        if v is None or v.protocol != "http1":  # e.g. BENCH_ONLY left it out: profile what ran
            print(f"bench: no profile of `{key}`: not among the HTTP/1.1 variants run")
            continue
        try:
            profiles.append(profile(v, tokens.file_for(v), body_files[v.scenario], 10, args.connections))
        except (OSError, subprocess.SubprocessError) as error:
            profiles.append({"variant": key, "error": str(error)})
        print(profile_text(profiles[-1:]), end="")
    soak_result = None
    if args.soak_requests > 0 and (not only or "soak" in only):
        template = next(v for v in VARIANTS if v.key == SOAK_TEMPLATE)
        soak_result = soak(envoy, template, ports, tokens, args.soak_requests, args.connections)
    stop_all()

    micro = parse_criterion(args.micro_log) if args.micro_log else {}
    summary = summarize(variants)
    runs = {v.key: v.runs for v in variants}
    result = {
        "started": started,
        "machine": machine,
        "settings": {"rounds": args.rounds, "seconds": args.seconds, "warmup": args.warmup,
                     "connections": args.connections, "fresh_tokens": args.fresh_tokens,
                     "soak_requests": args.soak_requests, "envoy_concurrency": 1,
                     "body": BODY, "upstream_body": UPSTREAM_BODY, "list_body": LIST_BODY,
                     "list_tools": LIST_TOOLS, "large_body_bytes": len(LARGE_BODY)},
        "summary": summary,
        "micro": micro,
        "hostcalls": hostcalls,
        "fresh_token_instructions": fresh_instructions,
        "profiles": profiles,
        "soak": soak_result,
        "wasm_bytes": WASM_FILTER.stat().st_size,
        "targets": [],
        "runs": runs,
    }
    result["targets"] = targets(result)
    if args.no_write:
        # Kept in the scratch directory for a look at the chart:
        # `bench.py --render .work/bench/last-run.json` (that writes bench/results).
        (WORK / "last-run.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        print()
        print(markdown(result))
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return render(result)


def render(result: dict[str, Any]) -> int:
    """Table, chart, profile and BENCHMARKS.md section from a results record."""
    labels = {v.key: v.label for v in VARIANTS}
    for key in result["runs"]:  # labels as this version names them
        if key in result["summary"]:
            result["summary"][key]["label"] = labels.get(key, key)
    result["targets"] = targets(result)  # as this version states them
    table = markdown(result)
    print()
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(table)
    (RESULTS / "cpu_per_request.svg").write_text(svg_chart(result))
    if result.get("profiles"):
        (RESULTS / "profile.txt").write_text(profile_text(result["profiles"]))
    splice_benchmarks_md(table)
    print(f"bench: wrote {RESULTS.relative_to(ROOT)}/latest.json, latest.md, cpu_per_request.svg, profile.txt; "
          "BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StackError as error:  # from tools/warden_stack.py: no Envoy binary, `warden envoy` failed
        sys.exit(f"bench: {error}")
