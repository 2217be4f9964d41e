"""Policy decisions through real Envoy, seen by real MCP clients of both SDK
generations (mcp 1.30 speaking 2025-xx with sessions; mcp 2.3 speaking
2026-07-28). A denial must arrive as a JSON-RPC error the client survives and
must never reach the server; an allowed call returns the tool's real result.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import VISIBLE_TOOLS, call, disclosed_to, run_mcp1, run_mcp2, token_for
from helpers import ANY, assert_allowed, assert_denied, tool_entries

NO_RULE = None  # default deny: no rule matched

# (principal, step, expectation): ("allow", text the server's answer contains) or ("deny", rule)
SCENARIOS: dict[str, tuple[str, dict[str, Any], tuple[str, Any]]] = {
    # alice: human, eng
    "alice-search": ("alice", call("search_docs", query="tokens"), ("allow", "Tokens are verified")),
    "alice-read-internal": (
        "alice",
        call("read_file", path="/srv/internal/roadmap.md"),
        ("allow", "contents of /srv/internal/roadmap.md"),
    ),
    "alice-deploy-production": (
        "alice",
        call("deploy", environment="production", replicas=3),
        ("allow", "deployed to production with 3"),
    ),
    "alice-deploy-unknown-env": ("alice", call("deploy", environment="qa", replicas=1), ("deny", NO_RULE)),
    "alice-read-outside-srv": ("alice", call("read_file", path="/etc/passwd"), ("deny", NO_RULE)),
    "alice-delete-repo": ("alice", call("delete_repo", name="warden"), ("deny", NO_RULE)),
    # bob: human, sales
    "bob-search": ("bob", call("search_docs", query="denied"), ("allow", "Denied calls never reach")),
    "bob-read-public": (
        "bob",
        call("read_file", path="/srv/public/faq.txt"),
        ("allow", "contents of /srv/public/faq.txt"),
    ),
    "bob-read-internal": ("bob", call("read_file", path="/srv/internal/salaries.csv"), ("deny", NO_RULE)),
    "bob-read-traversal": ("bob", call("read_file", path="/srv/public/../internal/salaries.csv"), ("deny", ANY)),
    "bob-deploy": ("bob", call("deploy", environment="staging", replicas=1), ("deny", NO_RULE)),
    # ci-deployer: service
    "ci-deploy-staging": (
        "ci-deployer",
        call("deploy", environment="staging", replicas=5),
        ("allow", "deployed to staging with 5"),
    ),
    "ci-deploy-staging-10": (
        "ci-deployer",
        call("deploy", environment="staging", replicas=10),
        ("allow", "deployed to staging with 10"),
    ),
    "ci-deploy-staging-too-many": (
        "ci-deployer",
        call("deploy", environment="staging", replicas=50),
        ("deny", NO_RULE),
    ),
    "ci-deploy-staging-zero": ("ci-deployer", call("deploy", environment="staging", replicas=0), ("deny", NO_RULE)),
    "ci-deploy-production": ("ci-deployer", call("deploy", environment="production", replicas=1), ("deny", NO_RULE)),
    "ci-read-internal": ("ci-deployer", call("read_file", path="/srv/internal/roadmap.md"), ("deny", NO_RULE)),
    # research-agent: agent, acting for nobody
    "agent-search": ("research-agent", call("search_docs", query="agents"), ("allow", "Agents acting for")),
    "agent-read-public": (
        "research-agent",
        call("read_file", path="/srv/public/readme.txt"),
        ("allow", "Public notes live here"),
    ),
    "agent-read-internal": ("research-agent", call("read_file", path="/srv/internal/roadmap.md"), ("deny", NO_RULE)),
    "agent-deploy-staging": ("research-agent", call("deploy", environment="staging", replicas=1), ("deny", NO_RULE)),
    "agent-delete-repo": ("research-agent", call("delete_repo", name="warden"), ("deny", "no-agent-deletes")),
    # research-agent acting for alice: the intersection of both
    "agent-for-alice-search": ("agent-for-alice", call("search_docs", query="proxy"), ("allow", "at the proxy")),
    "agent-for-alice-deploy-staging": (
        "agent-for-alice",
        call("deploy", environment="staging", replicas=2),
        ("allow", "deployed to staging with 2"),
    ),
    "agent-for-alice-deploy-production": (
        "agent-for-alice",
        call("deploy", environment="production", replicas=2),
        ("deny", ANY),
    ),
    "agent-for-alice-read-public": (
        "agent-for-alice",
        call("read_file", path="/srv/public/readme.txt"),
        ("allow", "contents of /srv/public/readme.txt"),
    ),
    "agent-for-alice-read-internal": (
        "agent-for-alice",
        call("read_file", path="/srv/internal/roadmap.md"),
        ("deny", ANY),
    ),
    "agent-for-alice-delete-repo": (
        "agent-for-alice",
        call("delete_repo", name="warden"),
        ("deny", "no-agent-deletes"),
    ),
    # research-agent acting for bob
    "agent-for-bob-deploy-staging": ("agent-for-bob", call("deploy", environment="staging", replicas=1), ("deny", ANY)),
    "agent-for-bob-search": ("agent-for-bob", call("search_docs", query="tokens"), ("allow", "Tokens are verified")),
    # resources and prompts
    "alice-resource-public": (
        "alice",
        {"op": "read_resource", "uri": "docs://public/intro"},
        ("allow", "Introduction"),
    ),
    "agent-resource-public": (
        "research-agent",
        {"op": "read_resource", "uri": "docs://public/intro"},
        ("allow", "Introduction"),
    ),
    "alice-resource-internal": ("alice", {"op": "read_resource", "uri": "docs://internal/roadmap"}, ("deny", NO_RULE)),
    "alice-prompt": (
        "alice",
        {"op": "get_prompt", "name": "summarize", "arguments": {"text": "hello"}},
        ("allow", "hello"),
    ),
    "agent-prompt": (
        "research-agent",
        {"op": "get_prompt", "name": "summarize", "arguments": {"text": "hello"}},
        ("deny", NO_RULE),
    ),
}


def _expected_log_entry(step: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    if step["op"] == "call_tool":
        return ("tool", step["name"], step["arguments"])
    if step["op"] == "read_resource":
        return ("resource", step["uri"], {})
    return ("prompt", step["name"], step["arguments"])


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_decision(stack, client, scenario):
    principal, step, (decision, detail) = SCENARIOS[scenario]
    mark = stack.call_log.mark()
    session = client.session(token_for(principal), [step])
    assert session["connected"], f"{client}: could not connect: {session}"
    [result] = session["results"]
    reached = [(e["kind"], e["name"], e["arguments"]) for e in stack.call_log.entries(mark)]
    if decision == "allow":
        assert_allowed(result, detail)
        assert reached == [_expected_log_entry(step)], f"the server saw {reached}"
    else:
        # Only the callers the example policy discloses to learn the rule.
        if disclosed_to(principal, detail):
            assert_denied(result, detail)
        else:
            assert_denied(result, disclosed=False)
        assert reached == [], f"a denied call reached the server: {reached}"


def test_tool_listing_shows_each_principal_what_it_could_use(stack, client):
    for principal, visible in VISIBLE_TOOLS.items():
        session = client.session(token_for(principal), [{"op": "list_tools"}])
        [result] = session["results"]
        assert result["ok"], (principal, result)
        assert set(result["names"]) == visible, principal


def test_session_survives_a_denial(stack, client):
    mark = stack.call_log.mark()
    steps = [
        call("search_docs", query="survive"),
        call("delete_repo", name="warden"),
        call("read_file", path="/srv/internal/roadmap.md"),
        call("deploy", environment="staging", replicas=4),
    ]
    if client.legacy:
        steps.append({"op": "ping"})
    session = client.session(token_for("alice"), steps)
    assert session["connected"], session
    results = session["results"]
    assert_allowed(results[0])
    assert_denied(results[1])
    assert_allowed(results[2], "contents of /srv/internal/roadmap.md")
    assert_allowed(results[3], "deployed to staging with 4")
    if client.legacy:
        assert results[4]["ok"], f"ping after a denial failed: {results[4]}"
        assert session["session_id"], session
        assert session["session_id_after"] == session["session_id"], "the session changed after a denial"
    statuses = [(x["method"], x["status"]) for x in session["http"]]
    assert all(status < 400 for _, status in statuses), f"an HTTP error reached the client: {statuses}"
    assert tool_entries(stack.call_log.entries(mark)) == [
        ("search_docs", {"query": "survive"}),
        ("read_file", {"path": "/srv/internal/roadmap.md"}),
        ("deploy", {"environment": "staging", "replicas": 4}),
    ]


def test_agent_for_human_gets_the_intersection(stack, client):
    """The same four calls as alice, as research-agent, and as research-agent for alice."""
    steps = [
        call("deploy", environment="staging", replicas=1),
        call("deploy", environment="production", replicas=1),
        call("read_file", path="/srv/public/readme.txt"),
        call("read_file", path="/srv/internal/roadmap.md"),
    ]
    outcomes = {}
    for principal in ("alice", "research-agent", "agent-for-alice"):
        session = client.session(token_for(principal), steps)
        outcomes[principal] = [r["ok"] for r in session["results"]]
    assert outcomes["alice"] == [True, True, True, True], outcomes
    assert outcomes["research-agent"] == [False, False, True, False], outcomes
    # Deploying to staging is allowed for an agent acting for an engineer (its own rule);
    # everything else is what both alice and the agent may do.
    assert outcomes["agent-for-alice"] == [True, False, True, False], outcomes


def test_legacy_session_lifecycle_is_allowed(stack):
    """mcp 1.30: initialize, notifications/initialized, GET stream and DELETE all pass."""

    [session] = run_mcp1(stack.url, [{"token": token_for("bob"), "steps": [{"op": "ping"}]}])
    assert session["connected"], session
    assert session["results"][0]["ok"], session
    methods = [(x["method"], x["status"]) for x in session["http"]]
    assert ("GET", 200) in methods, methods
    assert ("DELETE", 200) in methods, methods
    assert all(status < 400 for _, status in methods), methods


@pytest.mark.mcp2
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_mcp2_client_other_modes(stack, mode):
    """mcp 2.3 in `auto` (server/discover first) and `legacy` (2025 handshake) mode."""

    mark = stack.call_log.mark()
    [session] = run_mcp2(
        stack.url,
        [
            {
                "token": token_for("alice"),
                "mode": mode,
                "steps": [call("search_docs", query=f"mode {mode}"), call("delete_repo", name="warden")],
            }
        ],
    )
    assert session["connected"], session
    assert_allowed(session["results"][0], f"mode {mode}")
    assert_denied(session["results"][1])
    assert tool_entries(stack.call_log.entries(mark)) == [("search_docs", {"query": f"mode {mode}"})]
