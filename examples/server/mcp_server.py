#!/usr/bin/env python3
"""Example MCP server that Warden protects in the demo and the end-to-end tests.

It is a real server built on the official MCP Python SDK, serving Streamable
HTTP at ``/mcp``. With the 2.x SDK (``.venv-mcp2``) it speaks every revision:
the 2025 ones (``initialize``, sessions, GET stream, DELETE) and 2026-07-28
(no sessions, ``server/discover``). With the 1.x SDK it falls back to
``FastMCP`` and speaks the 2025 revisions only.

Nothing here has real side effects: ``read_file`` invents content and never
touches the disk, ``deploy`` and ``delete_repo`` only say what they would do.
Every tool call, resource read and prompt get that reaches the server is
appended as one JSON line to ``--call-log``, for example::

    {"kind": "tool", "name": "deploy", "arguments": {"environment": "staging", "replicas": 2}}

so a test can prove that a call Warden denied never got here. Tool calls and
prompt gets also record what the server learnt about the caller from the
proxy: the ``x-warden-*`` identity headers it received (every value, so a
client's copy left next to Warden's would show) and whether an
``Authorization`` header came along (never the token itself)::

    {"kind": "tool", "name": "search_docs", "arguments": {"query": "x"}, "authorization": true,
     "headers": {"x-warden-subject": ["alice"], "x-warden-actor-type": ["human"], ...}}

Usage::

    .venv-mcp2/bin/python examples/server/mcp_server.py --host 127.0.0.1 --port 8001 \
        --call-log /tmp/calls.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

try:  # MCP Python SDK 2.x: serves 2025-xx and 2026-07-28 clients.
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver import MCPServer as _ServerClass

    SDK_GENERATION = 2
except ImportError:  # MCP Python SDK 1.x: 2025-xx revisions only.
    from mcp.server.fastmcp import Context
    from mcp.server.fastmcp import FastMCP as _ServerClass

    SDK_GENERATION = 1

SERVER_NAME = "warden-example"

# Headers a proxy in front of the server may use to tell it who is calling.
IDENTITY_HEADER_PREFIX = "x-warden-"

# Made-up file system for read_file: the server never opens a real file.
FAKE_FILES = {
    "/srv/public/readme.txt": "Welcome to the example service. Public notes live here.",
    "/srv/public/faq.txt": "Q: Who may read this? A: Everyone.",
    "/srv/internal/salaries.csv": "name,salary\nalice,1\nbob,2\n",
    "/srv/internal/roadmap.md": "# Roadmap\n- ship Warden\n",
}

DOCS = [
    "Warden authorizes MCP tool calls at the proxy.",
    "Tokens are verified on every request.",
    "Denied calls never reach the MCP server.",
    "Agents acting for a person get the intersection of both permissions.",
]


class CallLog:
    """Appends one JSON line per call that reached the server."""

    def __init__(self, path: str | None) -> None:
        self._path = Path(path) if path else None
        self._lock = threading.Lock()
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._path.touch()

    def record(self, kind: str, name: str, arguments: dict[str, Any], ctx: Context | None = None) -> None:
        if self._path is None:
            return
        entry: dict[str, Any] = {"kind": kind, "name": name, "arguments": arguments}
        entry.update(caller_headers(ctx))
        line = json.dumps(entry, sort_keys=True)
        with self._lock, self._path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def caller_headers(ctx: Context | None) -> dict[str, Any]:
    """What the HTTP request carrying this call said about the caller: the
    identity headers (all values of each) and whether a token came along."""
    request = getattr(getattr(ctx, "request_context", None), "request", None)
    headers = getattr(request, "headers", None)
    if headers is None:
        return {}
    names = sorted({key.lower() for key in headers.keys() if key.lower().startswith(IDENTITY_HEADER_PREFIX)})
    return {
        "authorization": "authorization" in headers,
        "headers": {name: headers.getlist(name) for name in names},
    }


def build_server(call_log: CallLog, **server_kwargs: Any) -> Any:
    """Create the server object with all tools, resources and prompts."""
    server = _ServerClass(
        SERVER_NAME,
        instructions="Example server protected by Warden. All data is made up.",
        **server_kwargs,
    )

    @server.tool()
    def search_docs(query: str, ctx: Context) -> str:
        """Search the product documentation."""
        call_log.record("tool", "search_docs", {"query": query}, ctx)
        words = query.lower().split()
        hits = [doc for doc in DOCS if any(word in doc.lower() for word in words)]
        if not hits:
            return f"no documents match {query!r}"
        return f"{len(hits)} result(s) for {query!r}: " + " | ".join(hits)

    @server.tool()
    def read_file(path: str, ctx: Context) -> str:
        """Read a file below /srv/ (made-up content, nothing is read from disk)."""
        call_log.record("tool", "read_file", {"path": path}, ctx)
        content = FAKE_FILES.get(path, f"(made-up content of {path})")
        return f"contents of {path}:\n{content}"

    @server.tool()
    def deploy(ctx: Context, environment: str, replicas: int = 1) -> str:
        """Deploy the service to an environment (pretend)."""
        call_log.record("tool", "deploy", {"environment": environment, "replicas": replicas}, ctx)
        return f"deployed to {environment} with {replicas} replica(s)"

    @server.tool()
    def delete_repo(name: str, ctx: Context) -> str:
        """Delete a source repository (pretend)."""
        call_log.record("tool", "delete_repo", {"name": name}, ctx)
        return f"repository {name} deleted"

    @server.tool()
    def rotate_keys(service: str, ctx: Context) -> str:
        """Rotate a service's signing keys (pretend)."""
        call_log.record("tool", "rotate_keys", {"service": service}, ctx)
        return f"keys of {service} rotated"

    @server.tool()
    def export_customers(region: str, ctx: Context) -> str:
        """Export the customer list of a region (pretend)."""
        call_log.record("tool", "export_customers", {"region": region}, ctx)
        return f"exported customers of {region}"

    @server.resource("docs://public/intro", name="intro", mime_type="text/plain")
    def public_intro() -> str:
        """Public introduction."""
        call_log.record("resource", "docs://public/intro", {})
        return "Introduction: this server is an example protected by Warden."

    @server.resource("docs://internal/roadmap", name="roadmap", mime_type="text/plain")
    def internal_roadmap() -> str:
        """Internal roadmap (restricted)."""
        call_log.record("resource", "docs://internal/roadmap", {})
        return "Internal roadmap: secret plans."

    @server.prompt()
    def summarize(text: str, ctx: Context) -> str:
        """Ask the model to summarize a text."""
        call_log.record("prompt", "summarize", {"text": text}, ctx)
        return f"Summarize the following text in one sentence:\n\n{text}"

    return server


class MemoryEventStore:
    """Every SSE event the server sends, kept in memory so a client (or an
    attacker) can replay a stream after any of its events with a GET carrying
    `Last-Event-ID`. Implements the SDK's `EventStore` interface."""

    def __init__(self) -> None:
        self._events: list[tuple[str, str, Any]] = []  # (event id, stream id, message)

    async def store_event(self, stream_id: str, message: Any) -> str:
        event_id = str(len(self._events) + 1)
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: Any) -> str | None:
        from mcp.server.streamable_http import EventMessage

        found = [n for n, (event_id, _, _) in enumerate(self._events) if event_id == last_event_id]
        if not found:
            return None
        stream_id = self._events[found[0]][1]
        for event_id, stream, message in self._events[found[0] + 1 :]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--call-log", default=None, help="append one JSON line per call to this file")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--json-response",
        action="store_true",
        help="answer POSTs with application/json instead of an SSE stream",
    )
    parser.add_argument(
        "--event-store",
        action="store_true",
        help="keep every SSE event in memory so clients can resume streams with Last-Event-ID (2.x SDK)",
    )
    args = parser.parse_args(argv)
    if args.event_store and SDK_GENERATION != 2:
        parser.error("--event-store needs the 2.x SDK")

    call_log = CallLog(args.call_log)
    print(
        f"mcp_server: SDK generation {SDK_GENERATION}, listening on http://{args.host}:{args.port}/mcp",
        file=sys.stderr,
        flush=True,
    )
    if SDK_GENERATION == 2:
        import anyio

        server = build_server(call_log, log_level=args.log_level.upper())
        anyio.run(
            lambda: server.run_streamable_http_async(
                host=args.host,
                port=args.port,
                streamable_http_path="/mcp",
                json_response=args.json_response,
                event_store=MemoryEventStore() if args.event_store else None,
            )
        )
    else:
        server = build_server(
            call_log,
            host=args.host,
            port=args.port,
            streamable_http_path="/mcp",
            log_level=args.log_level.upper(),
            json_response=args.json_response,
        )
        server.run(transport="streamable-http")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
