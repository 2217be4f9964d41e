"""Policy rollout without restarts: the filter delivered by extension config
discovery (ECDS) from a file, the way Istio and Envoy Gateway deliver it
(there over xDS), and replaced while real clients keep calling.

The bootstrap `warden envoy` renders is turned into an ECDS-shaped one: the
listener names the filter `warden` and takes its configuration from
`config_discovery` (a `path_config_source` in a watched directory); the
filter's whole `Wasm` configuration (module, VM, policy) lives in
`warden.ecds.yaml` as a `TypedExtensionConfig`. A rollout writes a new file
next to it and renames it over the old one, as a config management tool
does.

Under steady load (allowed `tools/call`s from two threads, sessions of the
MCP Python SDK client one after another, and an open SSE GET stream of a
2025 session), the policy is replaced three times:
a version that denies bob's searches, a broken one (not a policy at all),
and a version that allows them again. Each good version takes effect
(bob's answer changes, and the audit lines and `warden_policy_loaded` name
its content hash) without one failed request and without dropping the
stream; the broken one is refused by Envoy and the version before it stays
in force.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from conftest import HEADER_MODE, legacy_headers, open_legacy_session, run_mcp1, running, token_for, tool_call
from ecds_shape import Rollout, policy_of, with_policy
from helpers import audits_where
from test_metrics import scrape
from warden_stack import Stack

# How long a rollout may take to show.
APPLY_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def ecds_stack(e2e_workdir: Path) -> Iterator[tuple[Stack, Rollout]]:
    workdir = e2e_workdir / "ecds"
    rollout = Rollout(workdir / "ecds")
    with running(lambda: Stack(workdir=workdir, header_mode=HEADER_MODE, config_edit=rollout.reshape)) as stack:
        yield stack, rollout


class Load:
    """Allowed calls from `threads` threads until stopped; every answer that
    is not a JSON-RPC result counts as a failure."""

    def __init__(self, stack: Stack, threads: int = 2) -> None:
        self.stack = stack
        self.stop = threading.Event()
        self.done = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self) -> None:
        token = token_for("alice")
        with httpx.Client(base_url=f"http://127.0.0.1:{self.stack.listen_port}", timeout=10) as http:
            while not self.stop.is_set():
                try:
                    response = tool_call(http, token, "search_docs", {"query": "rollout"})
                    ok = response.status_code == 200 and "result" in response.json()
                    failure = None if ok else f"{response.status_code}: {response.text[:200]}"
                except Exception as error:  # noqa: BLE001 - every failure is counted
                    failure = repr(error)
                with self.lock:
                    self.done += 1
                    if failure:
                        self.failures.append(failure)

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)


class SdkLoad:
    """Sessions of the MCP Python SDK 1.30 client (initialize, its own GET
    stream, `tools/list` and calls, then DELETE), one after another until
    stopped; every step that fails counts."""

    STEPS = [{"op": "list_tools"}] + [{"op": "call_tool", "name": "search_docs", "arguments": {"query": "sdk"}}] * 5

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.stop = threading.Event()
        self.steps = 0
        self.failures: list[Any] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                [session] = run_mcp1(self.stack.url, [{"token": token_for("alice"), "steps": self.STEPS}])
            except BaseException as error:  # noqa: BLE001 - every failure counts
                self.failures.append(repr(error))
                continue
            results = session.get("results", [])
            self.steps += len(results)
            self.failures += [r for r in results if not r.get("ok") or r.get("is_error")]
            if len(results) != len(self.STEPS):
                self.failures.append({"session": session.get("error") or "ended early"})

    def __enter__(self) -> "SdkLoad":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


class OpenStream:
    """A 2025 session's GET stream, read until closed."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.ended: str | None = None
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        token = token_for("alice")
        timeout = httpx.Timeout(10, read=None)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{self.stack.listen_port}", timeout=timeout) as http:
                session = open_legacy_session(http, token)
                headers = legacy_headers(token, session)
                headers["Accept"] = "text/event-stream"
                with http.stream("GET", "/mcp", headers=headers) as response:
                    if response.status_code != 200:
                        self.ended = f"status {response.status_code}"
                        return
                    self.opened.set()
                    for _ in response.iter_bytes():
                        pass
                self.ended = "the stream ended"
        except Exception as error:  # noqa: BLE001
            self.ended = repr(error)
        finally:
            self.opened.set()

    def start(self) -> "OpenStream":
        self.thread.start()
        assert self.opened.wait(15), "the GET stream did not open"
        assert self.ended is None, self.ended
        return self


def bob_searches(stack: Stack) -> tuple[bool, str]:
    """Whether bob's search is allowed now, and the policy hash that decided."""
    rid = f"ecds-{uuid.uuid4().hex[:8]}"
    mark = stack.envoy_log.mark()
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.listen_port}", timeout=10) as http:
        response = tool_call(http, token_for("bob"), "search_docs", {"query": "x"}, id=rid)
    [audit] = audits_where(stack.envoy_log, mark, jsonrpc_id=rid)
    return "result" in response.json(), audit["policy"]


def wait_for(stack: Stack, allowed: bool) -> str:
    deadline = time.monotonic() + APPLY_TIMEOUT
    while True:
        now_allowed, policy = bob_searches(stack)
        if now_allowed == allowed:
            return policy
        assert time.monotonic() < deadline, f"the rollout did not apply in {APPLY_TIMEOUT} s"
        time.sleep(0.2)


def ecds_stat(stack: Stack, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{stack.admin_port}/stats", timeout=10).text
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == f"extension_config_discovery.http_filter.warden.{name}":
            return float(value)
    return 0.0


def deny_bobs_search(policy: dict[str, Any]) -> dict[str, Any]:
    rule = {
        "id": "no-search-for-bob",
        "effect": "deny",
        "owner": "team-security",
        "principal": {"subjects": ["bob"]},
        "tools": ["search_docs"],
    }
    return {**policy, "rules": [rule, *policy["rules"]]}


def test_policy_rollouts_under_load_fail_no_request_and_keep_streams(ecds_stack):
    stack, rollout = ecds_stack
    original = policy_of(rollout.body)
    start_policy = wait_for(stack, allowed=True)
    stream = OpenStream(stack).start()
    with Load(stack) as load, SdkLoad(stack) as sdk:
        time.sleep(1)
        rollout.write(with_policy(rollout.body, deny_bobs_search(original)))
        denying = wait_for(stack, allowed=False)
        assert denying != start_policy

        rejected = ecds_stat(stack, "config_fail")
        rollout.write(with_policy(rollout.body, "{this is not a policy"))
        deadline = time.monotonic() + APPLY_TIMEOUT
        while ecds_stat(stack, "config_fail") <= rejected:
            assert time.monotonic() < deadline, "Envoy never refused the broken configuration"
            time.sleep(0.2)
        still, policy = bob_searches(stack)
        assert (still, policy) == (False, denying), "the broken update replaced the policy in force"

        rollout.write(with_policy(rollout.body, original))
        back = wait_for(stack, allowed=True)
        assert back == start_policy
        time.sleep(1)
    loaded = {labels.get("policy"): v for n, labels, v in scrape(stack) if n == "warden_policy_loaded"}
    assert loaded.get(start_policy.removeprefix("sha256:")) == 1, loaded
    print(
        f"\nECDS rollouts: {load.done} raw calls and {sdk.steps} SDK steps under load,"
        f" {len(load.failures) + len(sdk.failures)} failed; stream: {stream.ended or 'open'}"
    )
    assert load.done > 20 and sdk.steps > 5, (load.done, sdk.steps)
    assert load.failures == [], load.failures[:5]
    assert sdk.failures == [], sdk.failures[:5]
    assert stream.ended is None, f"the SSE stream was dropped: {stream.ended}"
