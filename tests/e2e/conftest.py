"""Fixtures for the end-to-end tests: the example MCP server behind real Envoy
with the Warden filter, plus clients of both MCP SDK generations.

One stack (server + Envoy) is started per test session and stopped at the end,
also when a test or the start-up fails. Its files (rendered bootstrap, Envoy
log, server log, call log) stay in ``.work/e2e/<header mode>/`` for
inspection. A module that needs other settings starts its own stack with
:func:`variant_stack` (files in ``.work/e2e/<header mode>/<name>/``), shared by
the module's tests.

Every stack runs in one header mode, ``WARDEN_HEADER_MODE`` (``stream``, the
default, or ``hold``): ``make e2e`` runs the suite once in each.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import anyio
import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENTS_DIR = Path(__file__).resolve().parent / "clients"
sys.path.insert(0, str(REPO_ROOT / "tools"))
sys.path.insert(0, str(CLIENTS_DIR))

import ecds_shape  # noqa: E402
import helpers  # noqa: E402
import mcp1_client  # noqa: E402
import mint_token  # noqa: E402
import warden_stack  # noqa: E402
from warden_stack import BUILD_HINT, Stack, StackError  # noqa: E402

# The header mode of every stack of this run (`filter.header_mode`, passed as
# `warden envoy --header-mode`): `stream` (no allow_on_headers_stop_iteration)
# or `hold` (with it). `make e2e` runs the suite once in each.
HEADER_MODE = os.environ.get("WARDEN_HEADER_MODE") or "stream"
# WARDEN_E2E_WORKDIR moves the stacks' files elsewhere, so two runs in one
# checkout do not share (and wipe) each other's logs; by default each header
# mode has its own directory.
WORKDIR = Path(os.environ.get("WARDEN_E2E_WORKDIR") or REPO_ROOT / ".work" / "e2e" / HEADER_MODE).resolve()
MCP2_PYTHON = REPO_ROOT / ".venv-mcp2" / "bin" / "python"
CLIENT_TIMEOUT = 15.0
PROBE_TIMEOUT = 10.0

# The example policy's principals (examples/policy.yaml).
PRINCIPALS: dict[str, dict[str, Any]] = {
    "alice": {"sub": "alice", "actor_type": "human", "groups": ["eng"]},
    "bob": {"sub": "bob", "actor_type": "human", "groups": ["sales"]},
    "ci-deployer": {"sub": "ci-deployer", "actor_type": "service"},
    "research-agent": {"sub": "research-agent", "actor_type": "agent"},
    "agent-for-alice": {
        "sub": "alice",
        "actor_type": "human",
        "groups": ["eng"],
        "act": [mint_token.Actor("research-agent", "agent")],
    },
    "agent-for-bob": {
        "sub": "bob",
        "actor_type": "human",
        "groups": ["sales"],
        "act": [mint_token.Actor("research-agent", "agent")],
    },
}


# What each of them could use of the example server's tools: list responses
# are filtered to this (docs/filter.md, "List filtering"). A tool allowed only
# for some argument values (read_file, deploy) stays listed.
VISIBLE_TOOLS: dict[str, set[str]] = {
    "alice": {"search_docs", "read_file", "deploy"},
    "bob": {"search_docs", "read_file"},
    "ci-deployer": {"search_docs", "read_file", "deploy"},
    "research-agent": {"search_docs", "read_file"},
    "agent-for-alice": {"search_docs", "read_file", "deploy"},
    "agent-for-bob": {"search_docs", "read_file"},
}


def acting_type(principal: str) -> str:
    """The actor type of the party that sends `principal`'s requests: the
    current actor of a delegation (the first `act`), else the subject."""
    spec = PRINCIPALS[principal]
    actors = spec.get("act") or []
    return actors[0].actor_type if actors else spec["actor_type"]


# Whom examples/policy.yaml tells why a request was denied:
# `filter.disclose_reasons: [human]`, and rule no-agent-deletes also agents.
def disclosed_to(principal: str, rule: Any = None) -> bool:
    actor_type = acting_type(principal)
    if rule == "no-agent-deletes":
        return actor_type == "agent"
    return actor_type == "human"


def token_for(principal: str, **overrides: Any) -> str:
    spec = dict(PRINCIPALS[principal])
    sub = spec.pop("sub")
    actor_type = spec.pop("actor_type")
    spec.update(overrides)
    return mint_token.mint(sub, actor_type, **spec)


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


def binaries_or_fail() -> None:
    missing = warden_stack.missing_binaries()
    if missing:
        names = ", ".join(_shown(p) for p in missing)
        pytest.fail(f"missing {names}: {BUILD_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def e2e_workdir() -> Path:
    """`.work/e2e/`, emptied once per test session (stacks keep their files there)."""
    if WORKDIR.exists():
        shutil.rmtree(WORKDIR)
    WORKDIR.mkdir(parents=True)
    return WORKDIR


@contextlib.contextmanager
def running(instance_factory: Callable[[], Stack]) -> Iterator[Stack]:
    """Start a stack, probe it, and stop it afterwards (also when start-up fails)."""
    binaries_or_fail()
    try:
        instance = instance_factory()
        instance.start()
    except StackError as error:
        pytest.fail(f"could not start the stack: {error}", pytrace=False)
    try:
        _probe(instance)
        yield instance
    finally:
        instance.stop()


# How the shared stack delivers the filter to Envoy: `direct` (inline in the
# bootstrap `warden envoy` renders, the module read from disk) or
# `control-plane` (shaped as Istio and Envoy Gateway deliver it: the filter
# from ECDS, the module fetched over HTTP and checked by digest, header mode
# `stream`, as neither can set allow_on_headers_stop_iteration).
STACK_SHAPE = os.environ.get("WARDEN_E2E_SHAPE") or "direct"


@pytest.fixture(scope="session")
def stack(e2e_workdir: Path) -> Iterator[Stack]:
    if STACK_SHAPE == "direct":
        with running(lambda: Stack(workdir=e2e_workdir, header_mode=HEADER_MODE)) as instance:
            yield instance
        return
    if STACK_SHAPE != "control-plane":
        pytest.fail(f"WARDEN_E2E_SHAPE={STACK_SHAPE}: expected direct or control-plane", pytrace=False)
    if HEADER_MODE != "stream":
        pytest.fail("the control-plane shape runs in header mode stream only", pytrace=False)
    rollout = ecds_shape.Rollout(e2e_workdir / "ecds")
    with helpers.module_server(warden_stack.WASM_FILTER.read_bytes()) as module:
        with running(
            lambda: Stack(
                workdir=e2e_workdir,
                header_mode="stream",
                wasm_remote=(module.url, module.sha256),
                config_edit=rollout.reshape,
            )
        ) as instance:
            yield instance


@contextlib.contextmanager
def variant_stack(workdir: Path, name: str, **options: Any) -> Iterator[Stack]:
    """A stack of its own in `workdir/name`, for a module fixture: `filter` settings
    merged into the example policy, `rules` rewritten, `server_args` for the
    example server (see `Stack.variant`); in this run's header mode unless
    `header_mode` is given."""
    options.setdefault("header_mode", HEADER_MODE)
    with running(lambda: Stack.variant(workdir / name, **options)) as instance:
        yield instance


def _forbidden_agent_deletes(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for rule in rules:
        if rule["id"] == "no-agent-deletes":
            rule["deny_mode"] = "forbidden"
    return rules


@pytest.fixture(scope="session")
def disguise_stack(e2e_workdir: Path) -> Iterator[Stack]:
    """The example policy with `disguise` as the policy-wide deny mode and rule
    no-agent-deletes answering `forbidden`; shared by test_deny_modes and
    test_ts_client, so it is started once."""
    with variant_stack(
        e2e_workdir, "disguise", filter={"deny_mode": "disguise"}, rules=_forbidden_agent_deletes
    ) as instance:
        yield instance


def _probe(stack: Stack) -> None:
    """One authenticated, allowed request must get an answer: a filter that stalls
    requests would otherwise cost every test its full client timeout. (Called
    inside `running`, which stops the stack however this ends.)"""
    body = rpc_body("tools/list", id="e2e-probe")
    headers = rpc_headers("tools/list", token=token_for("alice"))
    try:
        with httpx.Client(timeout=PROBE_TIMEOUT) as http:
            response = http.post(stack.url, headers=headers, content=json.dumps(body))
    except httpx.TimeoutException:
        tail = "\n".join(stack.envoy_log.lines()[-15:])
        pytest.exit(
            f"an authenticated tools/list through Envoy got no answer within {PROBE_TIMEOUT:.0f}s "
            f"(the filter stalls the request in header mode {HEADER_MODE}); Envoy log tail:\n{tail}",
            returncode=1,
        )
    if response.status_code >= 500:
        pytest.exit(f"the probe request failed: {response.status_code} {response.text[:500]}", returncode=1)


def http_client(stack: Stack) -> httpx.Client:
    """A raw HTTP client for `stack`'s Envoy listener (paths such as "/mcp")."""
    return httpx.Client(base_url=f"http://127.0.0.1:{stack.listen_port}", timeout=CLIENT_TIMEOUT)


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with http_client(stack) as client:
        yield client


# --- raw JSON-RPC requests --------------------------------------------------

MODERN = "2026-07-28"
LEGACY = "2025-06-18"


def rpc_body(method: str, params: dict[str, Any] | None = None, *, id: Any = None, modern: bool = True) -> dict:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        body["id"] = id
    params = dict(params or {})
    if modern:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "warden-e2e-raw", "version": "0"},
        }
    if params:
        body["params"] = params
    return body


def legacy_headers(token: str | None, session_id: str | None = None, version: str | None = LEGACY) -> dict:
    """Headers of a 2025-revision request (no Mcp-Method/Mcp-Name), in a session when given."""
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if version is not None:
        headers["MCP-Protocol-Version"] = version
    if session_id is not None:
        headers["Mcp-Session-Id"] = session_id
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def rpc_headers(method: str, name: str | None = None, *, token: str | None = None, modern: bool = True) -> dict:
    """Headers of a 2026-07-28 POST (with Mcp-Method/Mcp-Name), or with
    modern=False those of a 2025 one outside a session."""
    if not modern:
        return legacy_headers(token)
    headers = legacy_headers(token, version=MODERN)
    headers["Mcp-Method"] = method
    if name is not None:
        headers["Mcp-Name"] = name
    return headers


def b64_header(value: str) -> str:
    """A header value in MCP's base64 form (`=?base64?...?=`, for non-ASCII names)."""
    return "=?base64?" + base64.b64encode(value.encode()).decode() + "?="


def tool_call(
    http: httpx.Client,
    token: str | None,
    name: str,
    arguments: dict,
    *,
    id: Any = None,
    modern: bool = True,
    extra_headers: dict | None = None,
) -> httpx.Response:
    """One raw `tools/call` POST (2026-07-28 framing unless modern=False)."""
    id = id if id is not None else f"e2e-{uuid.uuid4().hex[:12]}"
    headers = rpc_headers("tools/call", name, token=token, modern=modern)
    headers.update(extra_headers or {})
    body = rpc_body("tools/call", {"name": name, "arguments": arguments}, id=id, modern=modern)
    return http.post("/mcp", headers=headers, content=json.dumps(body))


def open_legacy_session(http: httpx.Client, token: str, version: str = LEGACY) -> str:
    """A 2025 session opened by hand: `initialize` (which carries no
    MCP-Protocol-Version header yet), then `notifications/initialized`.
    Returns the Mcp-Session-Id the server gave."""
    body = {
        "jsonrpc": "2.0",
        "id": "init",
        "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "warden-e2e-raw", "version": "0"}},
    }
    response = http.post("/mcp", headers=legacy_headers(token, version=None), content=json.dumps(body))
    assert response.status_code == 200, (response.status_code, response.text)
    session_id = response.headers.get("mcp-session-id")
    assert session_id, f"initialize gave no Mcp-Session-Id: {response.headers}"
    notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    response = http.post("/mcp", headers=legacy_headers(token, session_id, version), content=json.dumps(notification))
    assert response.status_code == 202, (response.status_code, response.text)
    return session_id


def jsonrpc_messages(response: httpx.Response) -> list[dict]:
    """The JSON-RPC messages of a response, framed as JSON or as an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return [json.loads(item) for item in data if item]
    return [response.json()]


# --- SDK clients ------------------------------------------------------------


def run_mcp1(url: str, sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """mcp 1.30 (2025 revisions, sessions), in-process."""
    plan = {"url": url, "timeout": CLIENT_TIMEOUT, "sessions": sessions}
    return anyio.run(mcp1_client.run_plan, plan)["sessions"]


class Mcp2Worker:
    """`mcp2_client.py --serve` in `.venv-mcp2`, started once and fed one plan
    per line: the 2.x SDK cannot be imported beside 1.30, and starting an
    interpreter that imports it costs about a second per plan."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: Any = None

    def _start(self) -> subprocess.Popen[str]:
        if not MCP2_PYTHON.exists():
            pytest.fail(f"{MCP2_PYTHON.relative_to(REPO_ROOT)} is missing: run `make venv`", pytrace=False)
        self._stderr = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen(
            [str(MCP2_PYTHON), "-W", "ignore", str(CLIENTS_DIR / "mcp2_client.py"), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        self._lines = queue.Queue()
        lines = self._lines

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        return proc

    def run(self, plan: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(plan) + "\n")
        self._proc.stdin.flush()
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if line is None:
            stderr = self._stderr_tail()
            self.stop()
            pytest.fail(f"the mcp2 client gave no result within {timeout:.0f}s:\n{stderr}", pytrace=False)
        return json.loads(line)

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


MCP2_WORKER = Mcp2Worker()


def run_mcp2(url: str, sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """mcp 2.3 in its own venv (a long-lived subprocess, see Mcp2Worker)."""
    plan = {"url": url, "timeout": CLIENT_TIMEOUT, "sessions": sessions}
    return MCP2_WORKER.run(plan, timeout=CLIENT_TIMEOUT * (len(sessions) + 1) * 4)["sessions"]


class McpClient:
    """One SDK generation in one mode, as a parametrized fixture."""

    def __init__(self, label: str, runner: Callable, mode: str | None, url: str) -> None:
        self.label = label
        self._runner = runner
        self.mode = mode
        self.url = url

    @property
    def legacy(self) -> bool:
        return self.mode in (None, "legacy")

    def session(
        self, token: str | None, steps: list[dict[str, Any]], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """One client session running `steps`; `headers` go on every HTTP request it makes."""
        return self.sessions([(token, steps)], headers)[0]

    def sessions(
        self, plans: list[tuple[str | None, list[dict[str, Any]]]], headers: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Several sessions (token, steps) one after the other, in one client run."""
        specs: list[dict[str, Any]] = [{"token": token, "steps": steps} for token, steps in plans]
        for spec in specs:
            if headers:
                spec["headers"] = headers
            if self.mode is not None:
                spec["mode"] = self.mode
        return self._runner(self.url, specs)

    def __repr__(self) -> str:
        return self.label


CLIENT_KINDS = {
    "mcp1.30-2025": (run_mcp1, None),
    "mcp2.3-legacy": (run_mcp2, "legacy"),
    "mcp2.3-2026-07-28": (run_mcp2, MODERN),
}
# The `client` fixture's kinds: one per SDK generation. Tests where the 2.3
# client's 2025 mode behaves differently parametrize over all of CLIENT_KINDS.
DEFAULT_CLIENT_KINDS = ["mcp1.30-2025", "mcp2.3-2026-07-28"]


def make_client(kind: str, url: str) -> McpClient:
    runner, mode = CLIENT_KINDS[kind]
    return McpClient(kind, runner, mode, url)


@pytest.fixture(params=DEFAULT_CLIENT_KINDS)
def client(request: pytest.FixtureRequest, stack: Stack) -> McpClient:
    return make_client(request.param, stack.url)


def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    return {"op": "call_tool", "name": tool, "arguments": arguments}


def pytest_report_header(config: pytest.Config) -> list[str]:
    shown = WORKDIR.relative_to(REPO_ROOT) if WORKDIR.is_relative_to(REPO_ROOT) else WORKDIR
    return [
        f"warden e2e: header mode {HEADER_MODE} (WARDEN_HEADER_MODE), shared stack {STACK_SHAPE} (WARDEN_E2E_SHAPE); "
        f"stack files in {shown}/ (envoy.yaml, envoy.log, calls.jsonl)"
    ]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def pytest_configure(config: pytest.Config) -> None:
    if HEADER_MODE not in warden_stack.HEADER_MODES:
        raise pytest.UsageError(
            f"WARDEN_HEADER_MODE={HEADER_MODE!r}: expected one of {', '.join(warden_stack.HEADER_MODES)}"
        )
    # A SIGTERM (a CI runner's stop) goes through pytest's teardown like Ctrl-C,
    # so the stack fixture still stops Envoy and the server.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    MCP2_WORKER.stop()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop at once, with the command that fixes it, when the binaries are missing."""
    if session.items and not session.config.option.collectonly and warden_stack.missing_binaries():
        missing = ", ".join(_shown(p) for p in warden_stack.missing_binaries())
        pytest.exit(f"missing {missing}: {BUILD_HINT}", returncode=1)
