#!/usr/bin/env python3
"""Proxy benchmark: Warden next to plain Envoy and Envoy's native filters.

Run through ``bench/run.sh`` (``make bench``), which installs wrk and builds
what this needs. Everything is on loopback and bounded: a fixed number of
rounds of fixed-length wrk runs, then every process started here is stopped.

One Envoy process per variant (``--concurrency 1``) plus one more Envoy as the
fixed upstream (a ``direct_response`` answering every request with the same
small JSON-RPC result). All of them run for the whole session; each round runs
wrk against every variant in turn (the order rotates from round to round), so
load from other work on the machine hits every variant alike. For each run:

* requests/s, p50 and p99 latency (wrk, 16 connections, one thread);
* Envoy CPU time per request: utime + stime of the variant's Envoy process
  (``/proc/PID/stat``) before and after the run, divided by the requests
  Envoy completed (``http.mcp.downstream_rq_completed``). This is far less
  sensitive to other load on the machine than latency or throughput.

Before the load, ``warden hostcalls`` counts the hostcalls the filter makes
per request (an allowed call, a denied call, a filtered ``tools/list``, and
one root tick) by running the built ``.wasm`` in the harness's emulator of
Envoy's host, in both header modes, under ``bench/hostcalls.yaml``.

Figures are medians over rounds, each also as a ratio to plain Envoy. Results:
``bench/results/latest.json``, ``latest.md``, ``cpu_per_request.svg``, and
the marked section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import http.client
import json
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

# The request every variant serves: one MCP tools/call.
BODY = (
    '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"deploy",'
    '"arguments":{"environment":"staging","replicas":3,"note":"nightly rollout of the search index"}}}'
)
# The fixed upstream's answer to every request.
UPSTREAM_BODY = '{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"deployed"}],"isError":false}}'

BASE_PORT = 18100
# The upstream cluster of every variant, named as `warden envoy` names it.
CLUSTER = "mcp_server"


@dataclass
class Variant:
    key: str
    label: str
    filters: list[str]  # building blocks, see http_filters(); ["warden"]: the `warden envoy` bootstrap
    tokens: str  # "repeated" or "fresh"
    enforces: str  # what the variant checks, for the table
    jwt_cache: bool = False
    envoy_args: list[str] = field(default_factory=list)
    diagnostic: bool = False  # not one of the compared products; explains where time goes
    port: int = 0
    admin: int = 0
    proc: subprocess.Popen | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)


VARIANTS = [
    Variant("plain", "plain Envoy", [], "repeated", "nothing"),
    Variant("wasm-parse", "Envoy + Wasm filter that only parses the body", ["parse"], "repeated",
            "body is JSON-RPC (baseline, no authorization)"),
    Variant("warden", "Envoy + Warden, repeated token", ["warden"], "repeated",
            "token, actor type, tool (body)"),
    Variant("warden-fresh", "Envoy + Warden, fresh token per request", ["warden"], "fresh",
            "token, actor type, tool (body)"),
    Variant("warden-noaudit", "Envoy + Warden, repeated token, no audit line", ["warden"], "repeated",
            "token, actor type, tool (body)", envoy_args=["--component-log-level", "wasm:warning"], diagnostic=True),
    Variant("warden-jwt-authn", "Envoy + jwt_authn (with cache) + Warden (identity from jwt_authn), repeated token",
            ["warden-jwt-authn"], "repeated", "token, actor type, tool (body)"),
    Variant("warden-jwt-authn-fresh", "Envoy + jwt_authn + Warden (identity from jwt_authn), fresh token per request",
            ["warden-jwt-authn"], "fresh", "token, actor type, tool (body)"),
    Variant("jwt-rbac-cache", "jwt_authn (with JWT cache) + RBAC", ["jwt", "rbac-actor"], "repeated",
            "token, actor type", jwt_cache=True),
    Variant("jwt-rbac-nocache", "jwt_authn (no cache) + RBAC", ["jwt", "rbac-actor"], "repeated",
            "token, actor type"),
    Variant("jwt-mcp-rbac", "jwt_authn (with cache) + mcp filter + RBAC", ["jwt", "mcp", "rbac-actor-tool"],
            "repeated", "token, actor type, tool (body)", jwt_cache=True),
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


def assign_ports() -> int:
    """Variant i listens on BASE_PORT + 10*i (admin +1); the upstream below them."""
    base = BASE_PORT
    while True:
        ports = [base - 10, base - 9] + [base + 10 * i + d for i in range(len(VARIANTS)) for d in (0, 1)]
        if all(port_free(p) for p in ports):
            break
        base += 1000
        if base > 60000:
            raise SystemExit("bench: no free loopback ports")
    for i, variant in enumerate(VARIANTS):
        variant.port = base + 10 * i
        variant.admin = base + 10 * i + 1
    return base - 10


def mint_tokens(count: int) -> tuple[Path, Path, dict[str, str]]:
    """One repeated token; `count` distinct fresh ones (unique jti); tokens for the checks."""
    WORK.mkdir(parents=True, exist_ok=True)
    lifetime = 6 * 3600
    repeated = mint_token.mint("alice", "human", groups=["eng"], exp_in=lifetime)
    repeated_file = WORK / "token-repeated.txt"
    repeated_file.write_text(repeated + "\n")
    fresh_file = WORK / "tokens-fresh.txt"
    started = time.monotonic()
    with fresh_file.open("w") as out:
        for i in range(count):
            out.write(mint_token.mint("alice", "human", groups=["eng"], exp_in=lifetime, jti=f"bench-{i}-{time.time_ns()}") + "\n")
    print(f"bench: minted {count} fresh tokens in {time.monotonic() - started:.1f}s")
    checks = {
        "human": repeated,
        "agent": mint_token.mint("research-agent", "agent", exp_in=lifetime),
    }
    return repeated_file, fresh_file, checks


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
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "mcp",
            "route_config": {"name": "mcp", "virtual_hosts": [{"name": "mcp", "domains": ["*"], "routes": routes}]},
            "http_filters": filters,
        },
    }


def bootstrap(admin: int, port: int, routes: list[dict[str, Any]], filters: list[dict[str, Any]],
              clusters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{
                "name": "mcp",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [hcm(routes, filters)]}],
            }],
            "clusters": clusters,
        },
    }


def upstream_config(port: int) -> dict[str, Any]:
    routes = [{
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": UPSTREAM_BODY}},
        "response_headers_to_add": [{
            "header": {"key": "content-type", "value": "application/json"},
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
                          "max_request_bytes": 65536}},
        {"name": "envoy.filters.http.router",
         "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
    ]
    return bootstrap(port + 1, port, routes, filters, [])


def write_variant_config(variant: Variant, upstream_port: int) -> Path:
    """The variant's bootstrap in WORK: Warden's is the one `warden envoy` renders
    (docs/filter.md); the others have the same listener, route and cluster."""
    if variant.filters in (["warden"], ["warden-jwt-authn"]):
        policy = POLICY
        if variant.filters == ["warden-jwt-authn"]:
            # The same policy with `identity.verified_by: jwt_authn`: `warden
            # envoy` renders jwt_authn ahead of Warden (docs/policy.md).
            document = json.loads(run_cli("compile", POLICY))
            document["identity"]["verified_by"] = "jwt_authn"
            policy = WORK / f"{variant.key}.policy.json"
            policy.write_text(json.dumps(document))
        path = WORK / f"{variant.key}.yaml"
        path.write_text(render_envoy_config(policy, listen_port=variant.port, upstream_port=upstream_port,
                                            admin_port=variant.admin))
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
    path.write_text(json.dumps(bootstrap(variant.admin, variant.port, routes, http_filters(variant), [cluster]), indent=1))
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


def start_envoy(envoy: str, config: Path, admin: int, name: str, extra: list[str]) -> subprocess.Popen:
    """Start Envoy and wait until it is ready. Envoy checks the configuration as
    it starts: a bad one ends it, and its log says why."""
    log = WORK / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [envoy, "-c", str(config), "--concurrency", "1", "--disable-hot-restart", *extra],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    CHILDREN.append(proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: Envoy `{name}` exited ({proc.returncode}); the end of {log}:\n"
                             + log.read_text(errors="replace")[-3000:])
        try:
            status, body = http_get(admin, "/ready")
            if status == 200 and body.strip() == "LIVE":
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: Envoy `{name}` not ready in 60s; see {log}")


def http_get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def post(port: int, body: str, token: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
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


def functional_checks(variant: Variant, tokens: dict[str, str]) -> None:
    """What the variant lets through: a permitted call must reach the upstream;
    record which of the other requests it blocks."""
    other_tool = BODY.replace('"name":"deploy"', '"name":"delete_repo"')
    status, body = post(variant.port, BODY, tokens["human"])
    if status != 200 or body != UPSTREAM_BODY:
        raise SystemExit(f"bench: `{variant.key}`: the permitted call did not reach the upstream: {status} {body[:300]}")
    cases = {
        "no token": (BODY, None),
        "bad signature": (BODY, mint_token.bad_signature_token("alice", "human", exp_in=3600)),
        "agent actor": (BODY, tokens["agent"]),
        "other tool": (other_tool, tokens["human"]),
    }
    for name, (payload, token) in cases.items():
        status, body = post(variant.port, payload, token)
        variant.checks[name] = "passes" if (status == 200 and body == UPSTREAM_BODY) else f"blocked ({status})"


# --------------------------------------------------------------------------- load


def wrk_command(variant: Variant, token_file: Path, body_file: Path, seconds: int, connections: int) -> list[str]:
    return ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(WRK_SCRIPT),
            f"http://127.0.0.1:{variant.port}/mcp", "--", str(token_file), str(body_file)]


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
    completed, cpu = delta["completed"], delta["cpu_s"]
    return {
        "requests": wrk["requests"],
        "completed": completed,
        "forwarded": delta["forwarded"],
        "errors": sum(wrk["errors"].values()),
        "upstream_connections_opened": delta["upstream_connections_opened"],
        "rps": wrk["requests"] / (wrk["duration_us"] / 1e6),
        "p50_us": wrk["latency_us"]["p50"],
        "p99_us": wrk["latency_us"]["p99"],
        "cpu_s": cpu,
        "cpu_us_per_request": cpu / completed * 1e6 if completed else float("nan"),
    }


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


# --------------------------------------------------------------------------- hostcalls


def hostcall_counts() -> dict[str, list[dict[str, Any]]]:
    """`warden hostcalls` per header mode: for each reference request (and one
    root tick), the hostcalls the built filter made, by name."""
    counts = {}
    for mode in HEADER_MODES:
        counts[mode] = json.loads(run_cli(
            "hostcalls", "--policy", HOSTCALL_POLICY, "--tool", HOSTCALL_TOOLS[0], "--denied-tool",
            HOSTCALL_TOOLS[1], "--header-mode", mode, "--wasm", WASM_FILTER, "--format", "json"))
    return counts


def hostcalls_markdown(counts: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One column per request and header mode (the root tick once), one row per hostcall."""
    columns = [(mode, c) for mode in counts for c in counts[mode] if c["request"] != "tick (root)"]
    ticks = [c for c in next(iter(counts.values())) if c["request"] == "tick (root)"]
    columns += [("", c) for c in ticks]
    names = sorted({name for _, c in columns for name in c["hostcalls"]})
    lines = [
        "Hostcalls per request, by name (`warden hostcalls` under `bench/hostcalls.yaml`: the benchmark's rule, "
        "a `tools/list` rule and a polled revocation list; the built `.wasm` in the harness's emulator of Envoy's "
        "host, each request in a worker in its steady state, response included):",
        "",
        "| hostcall | " + " | ".join(f"{c['request']} ({mode})" if mode else c["request"] for mode, c in columns) + " |",
        "|---|" + "--:|" * len(columns),
    ]
    for name in names:
        lines.append(f"| `{name}` | " + " | ".join(str(c["hostcalls"].get(name, 0)) for _, c in columns) + " |")
    lines.append("| **total** | " + " | ".join(f"**{c['total']}**" for _, c in columns) + " |")
    lines.append("| outcome | " + " | ".join(c["outcome"] for _, c in columns) + " |")
    return lines


# --------------------------------------------------------------------------- micro benchmarks

MICRO_NAMES = [
    "token/es256/cold",
    "token/es256/cached",
    "body/decode",
    "body/serde_json_value",
    "policy/decide/10_rules",
    "policy/decide/1000_rules",
    "policy/decide/10000_rules",
    "gate/whole_decision/cached_token",
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
    # Ratios to plain Envoy are paired: each round's figure over plain Envoy's
    # figure in the same round (they ran within a minute of each other), then
    # the median over rounds. Slow changes in the machine's load cancel out.
    runs = {v.key: v.runs for v in variants}
    for key, s in summary.items():
        for metric in ("rps", "p50_us", "p99_us", "cpu_us_per_request"):
            s[f"{metric}_ratio"] = paired(runs, key, "plain", metric, operator.truediv)
    return summary


def paired(runs: dict[str, list[dict[str, Any]]], key: str, ref: str, metric: str, op: Any) -> float:
    """Median over rounds of op(key's figure, ref's figure in the same round);
    `runs` is the results' record of runs by variant key."""
    if key not in runs or ref not in runs:
        return float("nan")
    ref_runs = {r["round"]: r[metric] for r in runs[ref]}
    values = [op(r[metric], ref_runs[r["round"]]) for r in runs[key] if r["round"] in ref_runs]
    return median(values)


def targets(summary: dict[str, Any], micro: dict[str, float], runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    warden = summary["warden"]["cpu_us_per_request"]
    native = summary["jwt-rbac-cache"]["cpu_us_per_request"]
    out.append({
        "target": "Envoy + Warden (repeated token) CPU/request ≤ 1.05 × jwt_authn (cache) + RBAC",
        "value": paired(runs, "warden", "jwt-rbac-cache", "cpu_us_per_request", operator.truediv), "limit": 1.05,
        "detail": f"medians {warden:.1f} µs vs {native:.1f} µs; ratio: median of the rounds' paired ratios",
    })
    if "gate/whole_decision/cached_token" in micro and "body/serde_json_value" in micro:
        gate, parse = micro["gate/whole_decision/cached_token"], micro["body/serde_json_value"]
        out.append({
            "target": "decision core (whole gate, cached token) ≤ 1.5 × parsing the body alone (serde_json::Value)",
            "value": gate / parse, "limit": 1.5, "detail": f"{gate:.2f} µs vs {parse:.2f} µs (native, criterion)",
        })
    if "policy/decide/10000_rules" in micro and "policy/decide/10_rules" in micro:
        big, small = micro["policy/decide/10000_rules"], micro["policy/decide/10_rules"]
        out.append({
            "target": "policy with 10,000 rules ≤ 1.2 × 10 rules",
            "value": big / small, "limit": 1.2, "detail": f"{big * 1000:.0f} ns vs {small * 1000:.0f} ns (native, criterion)",
        })
    for t in out:
        t["met"] = t["value"] <= t["limit"]
    return out


def derived_figures(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    def ran(*keys: str) -> bool:
        return all(key in runs for key in keys)

    def diff(key: str, ref: str) -> float:
        return paired(runs, key, ref, "cpu_us_per_request", operator.sub)

    out = []
    if ran("plain", "wasm-parse", "warden"):
        w, p = diff("warden", "plain"), diff("wasm-parse", "plain")
        out.append(f"Warden adds {w:.1f} µs to plain Envoy; the parse-only Wasm filter adds {p:.1f} µs "
                   f"(Warden's whole decision costs {w / p:.2f}× what holding, buffering and parsing the body in Wasm costs)")
    if ran("warden", "warden-noaudit"):
        out.append(f"writing the audit line (Envoy's log): {diff('warden', 'warden-noaudit'):.1f} µs")
    if ran("plain", "jwt-rbac-cache"):
        out.append(f"jwt_authn (cache) + RBAC adds {diff('jwt-rbac-cache', 'plain'):.1f} µs to plain Envoy")
    if ran("plain", "jwt-rbac-nocache"):
        out.append(f"jwt_authn (no cache) + RBAC adds {diff('jwt-rbac-nocache', 'plain'):.1f} µs "
                   "(an ES256 verification in BoringSSL and the rest)")
    if ran("warden", "warden-fresh"):
        out.append(f"a fresh token costs Warden {diff('warden-fresh', 'warden'):.1f} µs more than a repeated one "
                   "(ES256 verification in Wasm)")
    if ran("warden", "warden-jwt-authn"):
        out.append(f"identity from jwt_authn instead of Warden's own verification (repeated token): "
                   f"{diff('warden-jwt-authn', 'warden'):+.1f} µs")
    if ran("warden-fresh", "warden-jwt-authn-fresh"):
        out.append(f"identity from jwt_authn (fresh token per request, BoringSSL verifies): "
                   f"{diff('warden-jwt-authn-fresh', 'warden-fresh'):+.1f} µs against Warden's own verification")
    if ran("warden-jwt-authn-fresh", "jwt-rbac-nocache"):
        ratio = paired(runs, "warden-jwt-authn-fresh", "jwt-rbac-nocache", "cpu_us_per_request", operator.truediv)
        out.append(f"jwt_authn + Warden (fresh token) / jwt_authn (no cache) + RBAC: {ratio:.2f}×")
    if ran("jwt-rbac-cache", "jwt-mcp-rbac"):
        out.append(f"the native mcp filter adds {diff('jwt-mcp-rbac', 'jwt-rbac-cache'):.1f} µs to jwt_authn (cache) + RBAC")
    if ran("warden", "jwt-mcp-rbac"):
        ratio = paired(runs, "warden", "jwt-mcp-rbac", "cpu_us_per_request", operator.truediv)
        out.append(f"Warden (repeated token) / jwt_authn (cache) + mcp + RBAC, the native set that also reads the "
                   f"tool from the body: {ratio:.2f}×")
    return out


def fmt_us(us: float) -> str:
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} µs"


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    m = result["machine"]
    lines = [
        f"Run of {result['started']} on {m['cpu']} ({m['cores']} cores), {m['kernel']}; "
        f"Envoy {m['envoy']}; {result['settings']['rounds']} rounds × {result['settings']['seconds']} s per variant, "
        f"wrk {result['settings']['connections']} connections; load average at start {m['loadavg']}; "
        f"commit `{m['commit']}`. Figures are medians over rounds; each × plain is the median of the rounds' "
        "ratios to plain Envoy in the same round.",
        "",
        "| variant | checks | CPU µs/request | × plain | requests/s | × plain | p50 | × plain | p99 | × plain |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for key, v in s.items():
        lines.append(
            f"| {v['label']} | {v['enforces']} | **{v['cpu_us_per_request']:.1f}** | {v['cpu_us_per_request_ratio']:.2f} "
            f"| {v['rps']:.0f} | {v['rps_ratio']:.2f} | {fmt_us(v['p50_us'])} | {v['p50_us_ratio']:.2f} "
            f"| {fmt_us(v['p99_us'])} | {v['p99_us_ratio']:.2f} |"
        )
    lines += [
        "",
        "CPU per request: median over rounds (spread min–max: "
        + ", ".join(f"{k} {v['cpu_us_per_request_min']:.0f}–{v['cpu_us_per_request_max']:.0f}" for k, v in s.items())
        + "). Every measured request was forwarded to the upstream (fraction forwarded: "
        + ", ".join(f"{k} {v['forwarded_fraction']:.4f}" for k, v in s.items())
        + f"); wrk socket errors: {sum(v['errors'] for v in s.values())}; upstream connections opened during "
        f"the measured runs: {sum(v['upstream_connections_opened'] for v in s.values())} in all (they are reused).",
        "",
        "What each variant lets through (checked before the load, `passes` = reached the upstream):",
        "",
        "| variant | " + " | ".join(next(iter(s.values()))["checks"].keys()) + " |",
        "|---|" + "---|" * len(next(iter(s.values()))["checks"]),
    ]
    for v in s.values():
        lines.append(f"| {v['label']} | " + " | ".join(v["checks"].values()) + " |")
    if result.get("hostcalls"):
        lines += [""] + hostcalls_markdown(result["hostcalls"])
    if result["micro"]:
        lines += ["", "Micro benchmarks (criterion, native, `cargo bench -p warden-policy-sdk --features testing --bench core`):", "",
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
    lines += ["", "| target | ratio | limit | met | figures |", "|---|--:|--:|---|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['value']:.2f} | {t['limit']:.2f} | {'yes' if t['met'] else '**no**'} | {t['detail']} |")
    return "\n".join(lines) + "\n"


def svg_chart(result: dict[str, Any]) -> str:
    s = result["summary"]
    rows = list(s.items())
    width, left, right, top, bar, gap = 1000, 430, 160, 80, 26, 12
    axis_y = top + len(rows) * (bar + gap)
    height = axis_y + 50
    # Scale to the second-largest whisker so one very long bar (fresh tokens)
    # does not squash the others; a longer bar is cut and marked.
    reach = sorted(max(v["cpu_us_per_request_max"], v["cpu_us_per_request"]) for _, v in rows)
    vmax = (reach[-2] if len(reach) > 1 and reach[-1] > 2.5 * reach[-2] else reach[-1]) * 1.15
    scale = (width - left - right) / vmax
    step = next(st for st in (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000) if vmax / st <= 10)
    colours = {"plain": "#9e9e9e", "wasm-parse": "#b0bec5", "warden": "#1565c0", "warden-fresh": "#64b5f6",
               "warden-noaudit": "#90caf9", "jwt-rbac-cache": "#ef6c00", "jwt-rbac-nocache": "#ffb74d",
               "jwt-mcp-rbac": "#8d6e63", "warden-jwt-authn": "#2e7d32", "warden-jwt-authn-fresh": "#81c784"}

    def esc(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def x_of(value: float) -> float:
        return left + min(value, vmax) * scale

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">'
        "Envoy CPU time per request (median over rounds; whiskers: min–max)</text>",
        f'<text x="{width / 2}" y="42" text-anchor="middle" fill="#555">'
        f'{esc(result["machine"]["cpu"])}, {result["machine"]["cores"]} cores; Envoy {esc(result["machine"]["envoy"])} '
        f'--concurrency 1; wrk {result["settings"]["connections"]} connections; {result["settings"]["rounds"]} rounds; '
        f'{result["started"][:10]}</text>',
    ]
    tick = 0
    while tick <= vmax:
        x = left + tick * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{axis_y}" stroke="#e6e6e6"/>')
        out.append(f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#555">{tick}</text>')
        tick += step
    out.append(f'<text x="{left + (width - left - right) / 2}" y="{axis_y + 38}" text-anchor="middle" fill="#333">'
               "µs of Envoy CPU per request (utime + stime from /proc), ratio to plain Envoy in brackets</text>")
    if "jwt-rbac-cache" in s:
        target = 1.05 * s["jwt-rbac-cache"]["cpu_us_per_request"]
        x = x_of(target)
        out.append(f'<line x1="{x:.1f}" y1="{top - 22}" x2="{x:.1f}" y2="{axis_y}" stroke="#c62828" '
                   'stroke-dasharray="5,4"/>')
        out.append(f'<text x="{x + 4:.1f}" y="{top - 10}" fill="#c62828" font-size="12">'
                   f"target for Warden: 1.05 × jwt_authn (cache) + RBAC = {target:.0f} µs</text>")
    for i, (key, v) in enumerate(rows):
        y = top + i * (bar + gap)
        value = v["cpu_us_per_request"]
        w = min(value, vmax) * scale
        label = v["label"] + (" (diagnostic)" if v.get("diagnostic") else "")
        out.append(f'<text x="{left - 8}" y="{y + bar * 0.68:.1f}" text-anchor="end">{esc(label)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colours.get(key, "#607d8b")}"/>')
        if value > vmax:  # cut bar: two white slashes near its end
            for dx in (-22, -14):
                out.append(f'<line x1="{left + w + dx:.1f}" y1="{y + bar + 3}" x2="{left + w + dx + 8:.1f}" '
                           f'y2="{y - 3}" stroke="white" stroke-width="3"/>')
            end = left + w
        else:
            lo, hi = x_of(v["cpu_us_per_request_min"]), x_of(v["cpu_us_per_request_max"])
            mid = y + bar / 2
            out.append(f'<line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}" stroke="#212121"/>')
            out.append(f'<line x1="{lo:.1f}" y1="{mid - 5}" x2="{lo:.1f}" y2="{mid + 5}" stroke="#212121"/>')
            out.append(f'<line x1="{hi:.1f}" y1="{mid - 5}" x2="{hi:.1f}" y2="{mid + 5}" stroke="#212121"/>')
            end = max(hi, left + w)
        out.append(f'<text x="{end + 8:.1f}" y="{y + bar * 0.68:.1f}">'
                   f'{value:.1f} µs  ({v["cpu_us_per_request_ratio"]:.2f}×)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


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
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
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
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 10)))
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 4)))
    parser.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_WARMUP", 3)))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--fresh-tokens", type=int, default=int(os.environ.get("BENCH_FRESH_TOKENS", 20000)))
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""),
                        help="comma-separated variant keys (plain is always included)")
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
    if args.only:
        keep = {"plain", *args.only.split(",")}
        variants = [v for v in VARIANTS if v.key in keep]
    for needed in (WARDEN_CLI, WASM_FILTER, PARSE_WASM):
        if not needed.exists():
            raise SystemExit(f"bench: {needed} is missing; run `make bench` (it builds everything)")
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is missing; run bench/run.sh (installs it)")

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

    repeated_file, fresh_file, check_tokens = mint_tokens(args.fresh_tokens)
    body_file = WORK / "body.json"
    body_file.write_text(BODY)

    upstream_port = assign_ports()
    path = WORK / "upstream.json"
    path.write_text(json.dumps(upstream_config(upstream_port), indent=1))
    start_envoy(envoy, path, upstream_port + 1, "upstream", [])
    for v in variants:
        v.proc = start_envoy(envoy, write_variant_config(v, upstream_port), v.admin, v.key, v.envoy_args)
    print(f"bench: {1 + len(variants)} Envoy processes ready ({WORK})")
    for v in variants:
        functional_checks(v, check_tokens)
        print(f"bench: {v.key:17} " + ", ".join(f"{k}: {r}" for k, r in v.checks.items()))

    def tokens_for(v: Variant) -> Path:
        return fresh_file if v.tokens == "fresh" else repeated_file

    if args.warmup > 0:
        for v in variants:
            run_wrk(v, tokens_for(v), body_file, args.warmup, args.connections)
        print(f"bench: warmed up ({args.warmup:g}s each)")

    total = time.monotonic()
    for r in range(args.rounds):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for v in order:
            run = run_wrk(v, tokens_for(v), body_file, args.seconds, args.connections)
            run["round"] = r
            v.runs.append(run)
            print(f"bench: round {r + 1}/{args.rounds} {v.key:17} {run['rps']:8.0f} req/s  p50 {run['p50_us']:6d} µs  "
                  f"p99 {run['p99_us']:6d} µs  CPU {run['cpu_us_per_request']:6.1f} µs/req  "
                  f"forwarded {run['forwarded']}/{run['completed']}  new upstream connections {run['upstream_connections_opened']}",
                  flush=True)
    print(f"bench: {args.rounds} rounds in {time.monotonic() - total:.0f}s")
    profiles = []
    by_key = {v.key: v for v in variants}
    for key in filter(None, args.profile.split(",")):
        v = by_key.get(key)
        if v is None:  # e.g. BENCH_ONLY left it out: profile what ran
            print(f"bench: no profile of `{key}`: not among the variants run")
            continue
        try:
            profiles.append(profile(v, tokens_for(v), body_file, 10, args.connections))
        except (OSError, subprocess.SubprocessError) as error:
            profiles.append({"variant": key, "error": str(error)})
        print(profile_text(profiles[-1:]), end="")
    stop_all()

    micro = parse_criterion(args.micro_log) if args.micro_log else {}
    summary = summarize(variants)
    runs = {v.key: v.runs for v in variants}
    result = {
        "started": started,
        "machine": machine,
        "settings": {"rounds": args.rounds, "seconds": args.seconds, "warmup": args.warmup,
                     "connections": args.connections, "fresh_tokens": args.fresh_tokens,
                     "envoy_concurrency": 1, "body": BODY, "upstream_body": UPSTREAM_BODY},
        "summary": summary,
        "micro": micro,
        "hostcalls": hostcalls,
        "profiles": profiles,
        "targets": targets(summary, micro, runs) if "warden" in summary and "jwt-rbac-cache" in summary else [],
        "runs": runs,
    }
    if args.no_write:
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
