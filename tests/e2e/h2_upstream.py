"""A tiny HTTP/2 upstream (h2c, prior knowledge) for the end-to-end tests.

It plays an MCP server that speaks HTTP/2 and ends its answers with a
trailers frame, which the example server (HTTP/1.1 behind uvicorn) cannot do.
Every POST gets the same JSON-RPC ``tools/list`` result (with the request's
``id``), in the framing the request's ``x-h2-upstream-answer`` header asks for:

* ``json+trailers`` (the default): ``application/json`` with
  ``content-length``, the body in two DATA frames, then a trailers HEADERS
  frame carrying END_STREAM;
* ``sse+trailers``: the same as one ``text/event-stream`` event;
* ``json`` and ``sse``: the same without trailers (the last DATA frame ends
  the stream).

It records what reached it per stream: the request headers, the body bytes,
the request trailers, and whether the stream ended or was reset, so a test
can tell a request that never arrived from one whose headers arrived but
whose body never did.

Used as a context manager (a thread on a free loopback port, stopped on
exit)::

    with H2Upstream() as upstream:
        ... upstream.port ... upstream.requests()

or on its own: ``python tests/e2e/h2_upstream.py --port 8001``.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions

ANSWER_HEADER = "x-h2-upstream-answer"
ANSWERS = ("json+trailers", "sse+trailers", "json", "sse")
RESPONSE_TRAILERS = [("x-upstream-trailer", "list-complete")]

# The tools this server lists. For examples/policy.yaml: bob (sales) may use
# search_docs and read_file; deploy, delete_repo and export_customers are
# hidden from him (no rule could allow them for him).
TOOLS: list[dict[str, Any]] = [
    {
        "name": name,
        "description": f"The {name} tool of the HTTP/2 test upstream.",
        "inputSchema": {"type": "object", "properties": {}},
    }
    for name in ("search_docs", "read_file", "deploy", "delete_repo", "export_customers")
]
TOOL_NAMES = [tool["name"] for tool in TOOLS]


@dataclass
class Received:
    """One stream as the upstream saw it."""

    headers: list[tuple[str, str]]
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    ended: bool = False
    reset: bool = False

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


def answer_body(request_body: bytes, framing: str) -> bytes:
    try:
        request = json.loads(request_body or b"{}")
    except ValueError:
        request = {}
    request_id = request.get("id") if isinstance(request, dict) else None
    message = json.dumps({"jsonrpc": "2.0", "id": request_id, "result": {"tools": TOOLS}}, separators=(",", ":"))
    if framing.startswith("sse"):
        return f"event: message\ndata: {message}\n\n".encode()
    return message.encode()


class H2Upstream:
    """The server: one accept thread, one thread per connection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._threads: list[threading.Thread] = []

    # --- what reached it ------------------------------------------------------

    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def mark(self) -> int:
        with self._lock:
            return len(self._received)

    def since(self, mark: int) -> list[Received]:
        with self._lock:
            return list(self._received[mark:])

    # --- life cycle -------------------------------------------------------------

    def start(self) -> "H2Upstream":
        thread = threading.Thread(target=self._accept, name="h2-upstream-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> "H2Upstream":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), name="h2-upstream-conn", daemon=True)
            thread.start()
            self._threads.append(thread)

    # --- one connection ---------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.2)
        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        streams: dict[int, Received] = {}
        try:
            sock.sendall(conn.data_to_send())
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except (socket.timeout, TimeoutError):
                    continue
                if not data:
                    return
                for event in conn.receive_data(data):
                    self._on_event(conn, streams, event)
                pending = conn.data_to_send()
                if pending:
                    sock.sendall(pending)
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            sock.close()

    def _on_event(self, conn: h2.connection.H2Connection, streams: dict[int, Received], event: Any) -> None:
        if isinstance(event, h2.events.RequestReceived):
            received = Received(headers=[(str(k), str(v)) for k, v in event.headers])
            streams[event.stream_id] = received
            with self._lock:
                self._received.append(received)
        elif isinstance(event, h2.events.DataReceived):
            if event.stream_id in streams:
                streams[event.stream_id].body += event.data
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            if event.stream_id in streams:
                streams[event.stream_id].trailers = [(str(k), str(v)) for k, v in event.headers]
        elif isinstance(event, h2.events.StreamReset):
            if event.stream_id in streams:
                streams[event.stream_id].reset = True
        elif isinstance(event, h2.events.StreamEnded):
            received = streams.get(event.stream_id)
            if received is not None:
                received.ended = True
                self._answer(conn, event.stream_id, received)

    def _answer(self, conn: h2.connection.H2Connection, stream_id: int, request: Received) -> None:
        framing = (request.header(ANSWER_HEADER) or ["json+trailers"])[0]
        if framing not in ANSWERS:
            framing = "json+trailers"
        body = answer_body(request.body, framing)
        content_type = "text/event-stream" if framing.startswith("sse") else "application/json"
        headers = [(":status", "200"), ("content-type", content_type)]
        if content_type == "application/json":
            headers.append(("content-length", str(len(body))))
        trailers = framing.endswith("+trailers")
        conn.send_headers(stream_id, headers)
        half = len(body) // 2
        conn.send_data(stream_id, body[:half])
        conn.send_data(stream_id, body[half:], end_stream=not trailers)
        if trailers:
            conn.send_headers(stream_id, RESPONSE_TRAILERS, end_stream=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    with H2Upstream(port=args.port) as upstream:
        print(f"h2c upstream on 127.0.0.1:{upstream.port}; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
