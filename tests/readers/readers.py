"""The two sides of the differential tests in this folder: Warden's decision
(``policy-sdk``'s ``decide`` example: token verification, the JSON-RPC
decoder and the compiled policy, the code the filter runs) and the readings
of real MCP servers (``sdk_reader.py`` under each Python SDK generation,
``ts_reader.mjs`` under Node with the TypeScript SDK).

Every side runs once per test module, as a subprocess fed JSON lines, so a
few thousand requests cost a few seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DECIDE = Path(os.environ.get("WARDEN_DECIDE") or REPO_ROOT / "target" / "debug" / "examples" / "decide")
BUILD_HINT = "cargo build -p warden-policy-sdk --features yaml,testing --example decide"
TS_MODULES = REPO_ROOT / "tests" / "e2e" / "clients" / "ts" / "node_modules"

# Each reader: the command that runs it, and how to set it up when missing.
READERS: dict[str, tuple[list[str], str]] = {
    "mcp-python-1.x": (
        [str(REPO_ROOT / ".venv" / "bin" / "python"), str(HERE / "sdk_reader.py")],
        "make venv",
    ),
    "mcp-python-2.x": (
        [str(REPO_ROOT / ".venv-mcp2" / "bin" / "python"), str(HERE / "sdk_reader.py")],
        "make venv",
    ),
    "mcp-typescript": (
        [os.environ.get("NODE") or "node", str(HERE / "ts_reader.mjs")],
        "make ts-client",
    ),
}
PYTHON_READERS = ["mcp-python-1.x", "mcp-python-2.x"]


def run_lines(command: list[str], lines: list[dict[str, Any]], hint: str) -> list[dict[str, Any]]:
    """Feeds `lines` to `command` as JSON lines; one answer a line back."""
    program = command[0]
    if not (Path(program).exists() or shutil.which(program)):
        pytest.fail(f"{program} is missing; set it up with `{hint}` (or `make test-readers`)")
    done = subprocess.run(
        command,
        input="\n".join(json.dumps(line) for line in lines) + "\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stderr[-4000:]}"
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(answers) == len(lines), (len(answers), len(lines), done.stderr[-2000:])
    return answers


def read_with(reader: str, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the reader's server does with each request line."""
    command, hint = READERS[reader]
    if reader == "mcp-typescript" and not TS_MODULES.exists():
        pytest.fail(f"{TS_MODULES} is missing; install it with `{hint}`")
    return run_lines(command, lines, hint)


def read_with_all(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """`read_with` for every reader, side by side."""
    with ThreadPoolExecutor(len(READERS)) as pool:
        futures = {reader: pool.submit(read_with, reader, lines) for reader in READERS}
        return {reader: future.result() for reader, future in futures.items()}


def decide_all(policy: Path, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Warden's decision on each `{"claims", "body" | "body_text"}` line."""
    if not DECIDE.exists():
        pytest.fail(f"{DECIDE} is missing; build it with `{BUILD_HINT}` (or `make test-readers`)")
    return run_lines([str(DECIDE), str(policy)], requests, BUILD_HINT)


def tool_call(i: int, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": params}


def resource_read(i: int, uri: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": "resources/read", "params": {"uri": uri}}
