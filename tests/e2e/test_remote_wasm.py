"""Envoy fetches the filter itself: `warden envoy --wasm-url URL --wasm-sha256
HEX` renders `vm_config.code.remote` (an `http_uri` through the cluster
`warden_wasm`, with the module's SHA-256). A loopback HTTP server started here
serves the built `.wasm`. With the right digest the module loads and requests
are judged; with a wrong one Envoy loads no filter, and since the filter is
`fail_open: false` every request is refused (503) and none reaches the
server."""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path
from typing import Iterator

import pytest
from conftest import HEADER_MODE, http_client, running, token_for, tool_call
from helpers import MODULE_PATH, ModuleServer, assert_jsonrpc_denial, module_server, tool_entries
from warden_stack import WASM_FILTER, Stack, StackError

@contextlib.contextmanager
def built_module() -> Iterator[ModuleServer]:
    with module_server(WASM_FILTER.read_bytes()) as server:
        yield server


def module_sha256() -> str:
    return hashlib.sha256(WASM_FILTER.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def fetched(e2e_workdir: Path) -> Iterator[tuple[Stack, ModuleServer]]:
    """Envoy with the module fetched from the loopback server, right digest."""
    with built_module() as server:
        stack = lambda: Stack.variant(  # noqa: E731
            e2e_workdir / "remote-wasm", header_mode=HEADER_MODE, wasm_remote=(server.url, module_sha256())
        )
        with running(stack) as instance:
            yield instance, server


def test_the_bootstrap_names_the_url_and_digest_and_no_file(fetched):
    stack, server = fetched
    config = stack.config_path.read_text()
    assert f"uri: {server.url}\n" in config, config
    assert re.search(rf"sha256: '?{module_sha256()}'?\n", config), config
    assert "cluster: warden_wasm" in config and "- name: warden_wasm" in config
    assert "filename:" not in config and str(WASM_FILTER) not in config


def test_envoy_fetched_the_module_from_the_server(fetched):
    _, server = fetched
    assert server.requests and set(server.requests) == {MODULE_PATH}


def test_a_denied_call_gets_the_denial_and_never_reaches_the_server(fetched):
    stack, _ = fetched
    mark = stack.call_log.mark()
    with http_client(stack) as http:
        response = tool_call(http, token_for("research-agent"), "delete_repo", {"name": "warden"}, id="remote-1")
    assert response.status_code == 200, (response.status_code, response.text)
    assert_jsonrpc_denial(response.json(), "remote-1", rule="no-agent-deletes")
    assert stack.call_log.entries(mark) == []


def test_an_allowed_call_passes(fetched):
    stack, _ = fetched
    mark = stack.call_log.mark()
    with http_client(stack) as http:
        response = tool_call(http, token_for("ci-deployer"), "deploy", {"environment": "staging", "replicas": 2}, id="remote-2")
    assert response.status_code == 200, response.text
    body = response.json()
    assert "error" not in body, body
    assert tool_entries(stack.call_log.entries(mark)) == [("deploy", {"environment": "staging", "replicas": 2})]


def test_a_wrong_sha256_loads_no_filter_and_fails_closed(e2e_workdir: Path):
    """The server serves the real module, but the bootstrap names another
    digest: Envoy fetches it (and retries), rejects it, and answers every
    request 503 without forwarding it, also an allowed one with a good token."""
    wrong = hashlib.sha256(WASM_FILTER.read_bytes() + b"\0").hexdigest()
    with built_module() as server:
        stack = Stack.variant(e2e_workdir / "remote-wasm-wrong-sha", header_mode=HEADER_MODE, wasm_remote=(server.url, wrong))
        try:
            try:
                stack.start()
            except StackError as error:
                pytest.fail(f"Envoy should start (with no filter) and refuse requests: {error}")
            assert server.requests and set(server.requests) == {MODULE_PATH}
            with http_client(stack) as http:
                for token, tool, arguments in [
                    (token_for("ci-deployer"), "deploy", {"environment": "staging", "replicas": 1}),
                    (token_for("research-agent"), "delete_repo", {"name": "warden"}),
                    (None, "search_docs", {"query": "x"}),
                ]:
                    response = tool_call(http, token, tool, arguments)
                    assert response.status_code == 503, (tool, response.status_code, response.text)
            assert stack.call_log.entries() == []
            log = stack.envoy_log.text()
            assert "Plugin configured to fail closed failed to load" in log, log[-3000:]
        finally:
            stack.stop()
