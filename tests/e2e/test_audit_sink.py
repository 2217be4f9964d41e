"""Audit lines at production log levels: by default (and whenever the policy
sets `filter.audit_filter_state`), `warden envoy` renders an access log that
writes each request's audit record from Warden's filter state, so `--log-level
warn` (where Envoy drops the filter's info-level log lines) still gets one
audit line per request."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import http_client, token_for, tool_call, variant_stack
from warden_stack import AUDIT_PREFIX


def sink_stack(workdir: Path, name: str, envoy_log_level: str, **options):
    """A stack whose audit lines go through filter state to the access log:
    the bootstrap `warden envoy` renders by default (the other stacks ask for
    Envoy's own log, `--audit-sink envoy-log`)."""
    return variant_stack(workdir, name, audit_sink=None, envoy_log_level=envoy_log_level, **options)


@pytest.fixture(scope="module")
def quiet_stack(e2e_workdir: Path):
    """The CLI's default rendering of the example policy (which leaves
    `filter.audit_filter_state` unset), under `--log-level warn`."""
    with sink_stack(e2e_workdir, "audit-sink", "warn") as stack:
        yield stack


def access_log_records(stack, since: int, count: int, timeout: float = 10) -> list[dict]:
    """Access-log lines (whole lines that are an audit record, unlike the
    application log's `… wasm log …` lines) written after `since`."""
    deadline = time.monotonic() + timeout
    records: list[dict] = []
    while time.monotonic() < deadline:
        records = [
            record
            for line in stack.envoy_log.lines(since)
            if line.startswith(AUDIT_PREFIX)
            # The stack's start-up probe may be flushed late.
            and (record := json.loads(line)).get("jsonrpc_id") != "e2e-probe"
        ]
        if len(records) >= count:
            return records
        time.sleep(0.2)
    return records


def test_audit_lines_reach_the_access_log_at_log_level_warn(quiet_stack):
    mark = quiet_stack.envoy_log.mark()
    with http_client(quiet_stack) as http:
        allowed = tool_call(http, token_for("alice"), "search_docs", {"query": "envoy"}, id="sink-1")
        denied = tool_call(http, token_for("research-agent"), "delete_repo", {"name": "warden"}, id="sink-2")
        unauthenticated = http.post("/mcp", content=b"{}", headers={"content-type": "application/json"})
    assert allowed.status_code == 200 and "result" in allowed.json(), allowed.text
    assert denied.status_code == 200 and "error" in denied.json(), denied.text
    assert unauthenticated.status_code == 401
    records = access_log_records(quiet_stack, mark, 3)
    assert [(r["decision"], r.get("tool"), r.get("jsonrpc_id")) for r in records] == [
        ("allow", "search_docs", "sink-1"),
        ("deny", "delete_repo", "sink-2"),
        ("deny", None, None),
    ], records
    # Envoy dropped the filter's own info-level lines: only the access log has them.
    assert not [line for line in quiet_stack.envoy_log.lines(mark) if "wasm log" in line and AUDIT_PREFIX in line]


@pytest.fixture(scope="module")
def info_stack(e2e_workdir: Path):
    """The policy's own `filter.audit_filter_state`, under `--log-level info`."""
    with sink_stack(e2e_workdir, "audit-sink-info", "info", filter={"audit_filter_state": True}) as stack:
        yield stack


def test_with_the_access_log_envoys_own_log_does_not_get_the_line_again(info_stack):
    """At `info`, Envoy would write the filter's info-level lines: with the
    access log as the audit sink, Warden logs the line at `debug`, so each
    decision is written once, by the buffered access log (the cheaper sink;
    BENCHMARKS.md, `warden` against `warden-envoy-log`)."""
    mark = info_stack.envoy_log.mark()
    with http_client(info_stack) as http:
        denied = tool_call(http, token_for("research-agent"), "delete_repo", {"name": "warden"}, id="once-1")
    assert denied.status_code == 200 and "error" in denied.json(), denied.text
    records = access_log_records(info_stack, mark, 1)
    assert [(r["decision"], r.get("jsonrpc_id")) for r in records] == [("deny", "once-1")], records
    assert not [line for line in info_stack.envoy_log.lines(mark) if "wasm log" in line and AUDIT_PREFIX in line]
