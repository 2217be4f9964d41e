"""`tools/demo.py`, the script `make demo` runs, in this run's header mode.

`make demo` runs it in `stream` mode (Envoy without
allow_on_headers_stop_iteration); `make e2e` runs this suite once per header
mode, so the demo is checked in the mode `make demo` uses and in the other
one. It must finish with status 0, print every decision listed below (in
order), and only the allowed calls may have reached the example server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import HEADER_MODE, REPO_ROOT, binaries_or_fail

DEMO = REPO_ROOT / "tools" / "demo.py"
DEMO_TIMEOUT = 150

DEFAULT_DENY = "DENY   rule: no rule allows it (default deny)"
# The example policy tells only humans why (and agents, for no-agent-deletes).
WITHHELD = "DENY   (rule and reason withheld; request id "
# (the step as the demo prints it, the start of its decision), in order.
DECISIONS = [
    ("tools/list (filtered to what the caller could use)", "ALLOW  -> sees deploy, read_file, search_docs"),
    ("tools/call search_docs(query='tokens')", "ALLOW  -> 1 result(s) for 'tokens'"),
    ("tools/call read_file(path='/srv/internal/roadmap.md')", "ALLOW  -> contents of /srv/internal/roadmap.md"),
    ("tools/call deploy(environment='production', replicas=3)", "ALLOW  -> deployed to production"),
    ("tools/call delete_repo(name='warden')", DEFAULT_DENY),
    ("resources/read docs://internal/roadmap", DEFAULT_DENY),
    ("prompts/get summarize", "ALLOW  -> Summarize the following text"),
    ("tools/call export_customers(region='eu')", "ERROR  -32602: Unknown tool: export_customers"),
    ("tools/call deploy(environment='staging', replicas=3)", "ALLOW  -> deployed to staging with 3"),
    ("tools/call deploy(environment='staging', replicas=50)", WITHHELD),
    ("tools/call deploy(environment='production', replicas=1)", WITHHELD),
    ("tools/list (filtered to what the caller could use)", "ALLOW  -> sees read_file, search_docs"),
    ("tools/call search_docs(query='agents')", "ALLOW  -> 1 result(s) for 'agents'"),
    ("tools/call read_file(path='/srv/public/readme.txt')", "ALLOW  -> contents of /srv/public/readme.txt"),
    ("tools/call read_file(path='/srv/internal/roadmap.md')", WITHHELD),
    ("tools/call delete_repo(name='warden')", "DENY   rule: no-agent-deletes"),
    ("tools/call search_docs(query='proxy')", "ALLOW  -> 1 result(s) for 'proxy'"),
    ("tools/call deploy(environment='staging', replicas=2)", "ALLOW  -> deployed to staging with 2"),
    ("tools/call deploy(environment='production', replicas=2)", WITHHELD),
    ("tools/call read_file(path='/srv/internal/roadmap.md')", WITHHELD),
    ("tools/call delete_repo(name='warden')", "DENY   rule: no-agent-deletes"),
    ("tools/call rotate_keys(service='billing')", WITHHELD),
]
REACHED = [
    "tool     search_docs",
    "tool     read_file",
    "tool     deploy",
    "prompt   summarize",
    "tool     deploy",
    "tool     search_docs",
    "tool     read_file",
    "tool     search_docs",
    "tool     deploy",
]


def step_lines(output: str) -> list[tuple[str, str]]:
    """(step, decision) of every step line the demo printed."""
    steps = []
    for line in output.splitlines():
        if not line.startswith("   ") or line.startswith("    "):
            continue
        step, _, decision = line.strip().partition("  ")
        steps.append((step.strip(), decision.strip()))
    return steps


def test_the_demo_runs_with_the_expected_decisions(e2e_workdir: Path):
    binaries_or_fail()
    result = subprocess.run(
        [sys.executable, str(DEMO), "--header-mode", HEADER_MODE, "--workdir", str(e2e_workdir / "demo")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
    )
    output = result.stdout
    assert result.returncode == 0, f"the demo failed ({result.returncode}):\n{output}\n{result.stderr}"
    assert f"header mode {HEADER_MODE}" in output.splitlines()[0], output
    steps = step_lines(output)
    assert [step for step, _ in steps] == [step for step, _ in DECISIONS], output
    for (step, decision), (_, expected) in zip(steps, DECISIONS, strict=True):
        assert decision.startswith(expected), f"{step}: expected {expected!r}, the demo printed {decision!r}"
    reached = output.split("== calls that reached the MCP server: ", 1)[1].splitlines()
    assert reached[0].startswith(f"{len(REACHED)} "), output
    assert [line.strip()[: len(prefix)] for line, prefix in zip(reached[1:], REACHED)] == REACHED, output
    assert "stopped Envoy and the MCP server" in output, output
