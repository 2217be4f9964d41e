"""Warden's counters, scraped from Envoy's admin endpoint as labelled
Prometheus series (the `stats_tags` that `warden envoy` renders extract the
labels Warden writes into metric names)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Callable

import httpx
from conftest import token_for, tool_call

SERIES = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(stack) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"http://127.0.0.1:{stack.admin_port}/stats/prometheus", timeout=10).text
    series = []
    for line in text.splitlines():
        match = SERIES.match(line)
        if match and not line.startswith("#"):
            labels = dict(LABEL.findall(match["labels"] or ""))
            series.append((match["name"], labels, float(match["value"])))
    return series


def scrape_until(stack, predicate: Callable[[list], bool], what: str, timeout: float = 15) -> list:
    """Scrapes until `predicate(series)` holds (the VMs report on their
    one-second timer), within a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        series = scrape(stack)
        if predicate(series):
            return series
        if time.monotonic() > deadline:
            warden = [s for s in series if s[0].startswith("warden_")]
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {warden}")
        time.sleep(0.2)


def token_cache_lookups(stack, before: list, count: int) -> tuple[float, float]:
    """The verification cache's hits and misses since the scrape `before`,
    once `count` lookups have been reported."""

    def lookups(series: list, outcome: str) -> float:
        return value(series, "warden_token_cache_lookups_total", outcome=outcome)

    def since(series: list, outcome: str) -> float:
        return lookups(series, outcome) - lookups(before, outcome)

    after = scrape_until(
        stack, lambda s: since(s, "hit") + since(s, "miss") >= count, f"{count} lookups to be reported"
    )
    return since(after, "hit"), since(after, "miss")


def value(series, name: str, **labels: str) -> float:
    """The sum of `name` over the series carrying `labels`."""
    return sum(v for n, ls, v in series if n == name and all(ls.get(k) == w for k, w in labels.items()))


def test_decisions_are_labelled_series(stack, http):
    denied = {"decision": "deny", "actor_type": "agent", "rule": "no-agent-deletes", "class": "policy"}
    allowed = {"decision": "allow", "actor_type": "human", "rule": "search-docs", "class": "policy"}
    before = scrape(stack)
    response = tool_call(http, token_for("research-agent"), "delete_repo", {"name": "warden"}, id=uuid.uuid4().hex)
    assert response.status_code == 200, response.text
    response = tool_call(http, token_for("alice"), "search_docs", {"query": "metrics"}, id=uuid.uuid4().hex)
    assert "result" in response.json(), response.text
    response = http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401
    after = scrape(stack)
    for labels in (denied, allowed):
        delta = value(after, "warden_decisions_total", **labels) - value(before, "warden_decisions_total", **labels)
        assert delta == 1, (labels, [s for s in after if s[0] == "warden_decisions_total"])
    token = {"decision": "deny", "actor_type": "none", "class": "token"}
    assert value(after, "warden_decisions_total", **token) > value(before, "warden_decisions_total", **token)
    missing = {"class": "missing"}
    refusals = value(after, "warden_token_refusals_total", **missing) - value(before, "warden_token_refusals_total", **missing)
    assert refusals >= 1, [s for s in after if s[0] == "warden_token_refusals_total"]
    # No label left in a name: every Warden series is a family of its own.
    assert not [n for n, _, _ in after if "=.=" in n or n.startswith("decision")], "labels left in metric names"
    loaded = [(labels, v) for n, labels, v in after if n == "warden_policy_loaded"]
    assert loaded and all(v == 1 for _, v in loaded) and all(labels.get("policy") for labels, _ in loaded), loaded
    assert value(after, "warden_policy_rules") > 0


def test_cut_lists_are_counted(stack, http):
    labels = {"kind": "tools", "outcome": "cut"}
    before = value(scrape(stack), "warden_lists_total", **labels)
    response = http.post(
        "/mcp",
        headers={
            "Authorization": f"Bearer {token_for('bob')}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/list",
        },
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/list",
            "params": {
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                }
            },
        },
    )
    assert response.status_code == 200, response.text
    assert value(scrape(stack), "warden_lists_total", **labels) == before + 1
