"""A raw HTTP/2 client (h2c, prior knowledge) for the end-to-end tests.

Built on the `h2` state machine over a plain socket, so a test decides every
frame: the request body in one or more DATA frames, with or without
END_STREAM, and a trailers HEADERS frame carrying END_STREAM after it, which
the MCP SDK clients (and httpx) never send. One connection per request;
every socket operation has a timeout and the whole exchange a deadline, so a
request the proxy stalls fails the test instead of hanging it.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h1_client import H1Response

REQUEST_TIMEOUT = 10.0


class H2Timeout(AssertionError):
    """No complete answer within the deadline (the proxy stalled the request)."""


@dataclass(repr=False)
class H2Response(H1Response):
    """`H1Response` (status, headers, body, `header()`, `content_type`) plus
    what only HTTP/2 has."""

    trailers: list[tuple[str, str]] = field(default_factory=list)
    # The stream was reset (RST_STREAM) before or instead of ending.
    reset_code: int | None = None

    def __repr__(self) -> str:
        return (
            f"H2Response(status={self.status}, headers={self.headers}, body={self.body[:600]!r}, "
            f"trailers={self.trailers}, reset_code={self.reset_code})"
        )


def request(
    port: int,
    headers: dict[str, str] | list[tuple[str, str]],
    body: bytes,
    *,
    method: str = "POST",
    path: str = "/mcp",
    trailers: list[tuple[str, str]] | None = None,
    chunks: int = 1,
    content_length: bool = True,
    empty_data_end: bool = False,
    headers_only: bool = False,
    pause_before_body: float = 0.0,
    timeout: float = REQUEST_TIMEOUT,
) -> H2Response:
    """One request on a fresh h2c connection to 127.0.0.1:`port`.

    The body goes in `chunks` DATA frames. Without `trailers` the last DATA
    frame carries END_STREAM; with them no DATA frame does, and a trailers
    HEADERS frame with END_STREAM follows. `content_length` adds the header
    (with trailers too: HTTP/2 allows both). `empty_data_end` (without a
    body or trailers): the HEADERS frame lacks END_STREAM and an empty DATA
    frame carrying it follows. `headers_only` returns once the response
    headers are in (the body empty), for answers that stay open such as an
    SSE stream; the connection is closed then. `pause_before_body` sends the
    HEADERS frame, waits that many seconds, then sends the rest (a body that
    comes after the proxy has acted on the headers).
    """
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    request_headers = [
        (":method", method),
        (":scheme", "http"),
        (":authority", f"127.0.0.1:{port}"),
        (":path", path),
        *[(key.lower(), value) for key, value in pairs],
    ]
    if content_length and body:
        request_headers.append(("content-length", str(len(body))))
    deadline = time.monotonic() + timeout
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        conn.initiate_connection()
        stream_id = conn.get_next_available_stream_id()
        if empty_data_end and (body or trailers):
            raise ValueError("empty_data_end is for a request without a body or trailers")
        conn.send_headers(stream_id, request_headers, end_stream=not body and not trailers and not empty_data_end)
        if empty_data_end:
            conn.send_data(stream_id, b"", end_stream=True)
        if pause_before_body > 0:
            sock.sendall(conn.data_to_send())
            time.sleep(pause_before_body)
        if body:
            size = max(1, -(-len(body) // max(1, chunks)))
            pieces = [body[i : i + size] for i in range(0, len(body), size)]
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                conn.send_data(stream_id, piece, end_stream=last and not trailers)
        if trailers:
            conn.send_headers(stream_id, trailers, end_stream=True)
        sock.sendall(conn.data_to_send())
        return _read_response(sock, conn, stream_id, deadline, timeout, headers_only)


def _read_response(
    sock: socket.socket,
    conn: h2.connection.H2Connection,
    stream_id: int,
    deadline: float,
    timeout: float,
    headers_only: bool = False,
) -> H2Response:
    status: int | None = None
    headers: list[tuple[str, str]] = []
    body = bytearray()
    trailers: list[tuple[str, str]] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise H2Timeout(
                f"no complete HTTP/2 answer within {timeout:.0f}s (status {status}, {len(body)} body bytes): "
                "the proxy stalled the request"
            )
        sock.settimeout(min(remaining, 1.0))
        try:
            data = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        if not data:
            raise AssertionError(f"the proxy closed the connection (status {status}, body {bytes(body)[:300]!r})")
        for event in conn.receive_data(data):
            if getattr(event, "stream_id", stream_id) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                headers = [(str(k), str(v)) for k, v in event.headers]
                status = int(dict(headers)[":status"])
                if headers_only:
                    return _response(status, headers, bytearray(), [], None)
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                trailers = [(str(k), str(v)) for k, v in event.headers]
            elif isinstance(event, h2.events.StreamEnded):
                _flush(sock, conn)
                return _response(status, headers, body, trailers, None)
            elif isinstance(event, h2.events.StreamReset):
                return _response(status, headers, body, trailers, event.error_code)
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise AssertionError(f"the proxy ended the HTTP/2 connection: {event}")
        _flush(sock, conn)


def _flush(sock: socket.socket, conn: h2.connection.H2Connection) -> None:
    pending = conn.data_to_send()
    if pending:
        try:
            sock.sendall(pending)
        except OSError:
            pass


def _response(
    status: int | None, headers: list[tuple[str, str]], body: bytearray, trailers: list[tuple[str, str]], reset: Any
) -> H2Response:
    if status is None:
        raise AssertionError(f"the stream was reset (error code {reset}) before any response headers")
    return H2Response(
        status=status,
        headers=[(k, v) for k, v in headers if not k.startswith(":")],
        body=bytes(body),
        trailers=trailers,
        reset_code=None if reset is None else int(reset),
    )
