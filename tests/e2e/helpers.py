"""Assertions shared by the end-to-end tests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

DENY_CODE = -31403
# The message of every denial; one that discloses adds ": <reason>".
WITHHELD_MESSAGE = "Access denied by policy"
ANY = object()  # "don't check this field"

# The RFC 9728 document examples/policy.yaml names in its challenges.
METADATA_URL = "https://mcp.demo.warden.test/.well-known/oauth-protected-resource/mcp"


def no_rule_allows(who: str, tool: str) -> str:
    """The reason of a default deny of a tool call."""
    return f"`{who}`: no rule allows `tools/call` on tool `{tool}`"

AUDIT_FIELDS = (
    "audit",
    "decision",
    "rule",
    "owner",
    "reason",
    "actor_type",
    "subject",
    "actor",
    "chain",
    "method",
    "tool",
    "resource",
    "prompt",
    "jsonrpc_id",
    "request_id",
    "policy",
)


def assert_allowed(result: dict[str, Any], contains: str | None = None) -> None:
    assert result.get("ok"), f"expected the call to be allowed, got {result}"
    assert not result.get("is_error"), f"the tool reported an error: {result}"
    if contains is not None:
        assert contains in result.get("text", ""), f"expected {contains!r} in the result, got {result}"


def assert_denied(result: dict[str, Any], rule: Any = ANY, *, disclosed: bool = True) -> dict[str, Any]:
    """A denial delivered as a JSON-RPC error (code -31403, data.decision deny).

    `disclosed`: the caller's actor type (or the deciding rule) is one
    `disclose_reasons` names, so the answer shows the rule and reason;
    otherwise it says only that the policy refused, with the request id."""
    assert not result.get("ok"), f"expected a denial, the call was allowed: {result}"
    error = result.get("error")
    assert error is not None, f"expected a JSON-RPC error, the client saw: {result}"
    assert error["code"] == DENY_CODE, f"expected code {DENY_CODE}: {error}"
    data = error.get("data")
    assert isinstance(data, dict), f"error.data must be an object: {error}"
    assert data.get("decision") == "deny", error
    assert isinstance(data.get("request_id"), str) and data["request_id"], f"request id missing: {error}"
    if not disclosed:
        assert rule is ANY, "a withheld denial names no rule to compare"
        assert error["message"] == WITHHELD_MESSAGE, error
        assert set(data) == {"decision", "request_id"}, f"the denial discloses more than it may: {error}"
        return data
    assert "rule" in data, error
    if rule is not ANY:
        assert data["rule"] == rule, f"expected rule {rule!r}, got {data['rule']!r}: {error}"
    assert isinstance(data.get("reason"), str) and data["reason"], f"reason missing: {error}"
    assert error["message"] == f"{WITHHELD_MESSAGE}: {data['reason']}", error
    return data


def assert_jsonrpc_denial(body: Any, request_id: Any, rule: Any = ANY, *, disclosed: bool = True) -> dict[str, Any]:
    """The raw body of a denial: {"jsonrpc":"2.0","id":..,"error":{"code":-31403,...}}."""
    assert isinstance(body, dict), body
    assert body.get("jsonrpc") == "2.0", body
    assert body.get("id") == request_id and type(body.get("id")) is type(request_id), (
        f"id must echo the request's {request_id!r}: {body}"
    )
    assert "result" not in body, body
    error = body.get("error")
    assert isinstance(error, dict), body
    return assert_denied({"ok": False, "error": error}, rule, disclosed=disclosed)


def tool_entries(entries: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(e["name"], e["arguments"]) for e in entries if e.get("kind") == "tool"]


def audits_where(envoy_log: Any, mark: int, count: int = 1, timeout: float = 5.0, **fields: Any) -> list[dict[str, Any]]:
    """The audit lines since `mark` whose fields equal `fields`, once `count`
    of them are there (or after `timeout`: then the test sees what there is)."""

    def matching(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if all(r.get(k) == v for k, v in fields.items())]

    records = envoy_log.wait_for_audits(mark, lambda rs: len(matching(rs)) >= count, timeout=timeout)
    return matching(records)


def send_json(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    """Answer the request `handler` is serving with `body` as JSON."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@contextlib.contextmanager
def loopback_http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """Serves `handler` on 127.0.0.1 (a free port: `server.server_address[1]`)
    for the `with` block; stopped, its socket closed and its thread joined after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


MODULE_PATH = "/warden_filter.wasm"


@dataclass
class ModuleServer:
    """A module served over HTTP at MODULE_PATH (see `module_server`)."""

    url: str
    sha256: str
    # The path of every request, in order.
    requests: list[str] = field(default_factory=list)


@contextlib.contextmanager
def module_server(module: bytes) -> Iterator[ModuleServer]:
    """`module` over HTTP on a free loopback port for the `with` block, as
    Envoy fetches a remote module (`vm_config.code.remote`); any other path
    gets 404."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            requests.append(self.path)
            if self.path != MODULE_PATH:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/wasm")
            self.send_header("Content-Length", str(len(module)))
            self.end_headers()
            self.wfile.write(module)

        def log_message(self, *args: object) -> None:
            pass

    with loopback_http_server(Handler) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}{MODULE_PATH}"
        yield ModuleServer(url=url, sha256=hashlib.sha256(module).hexdigest(), requests=requests)
