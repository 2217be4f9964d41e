"""A WSGI upstream (the standard library's ``wsgiref``) for the end-to-end tests.

CGI and WSGI hand an application each request header as an environ key
``HTTP_<NAME>``, upper-cased with every ``-`` made ``_``: ``x-warden-subject``,
``x_warden_subject`` and ``X-Warden_Subject`` all become
``HTTP_X_WARDEN_SUBJECT`` (``wsgiref`` joins the values of a repeated key
with commas). An application that reads the caller's identity there trusts
whichever spelling reached it, so no client spelling of an identity header
may.

The application records, per request: the method, the path, every environ
key starting with ``HTTP_X_WARDEN`` or ``HTTP_X_E2E`` (a test's own marker
and probe headers) with its value, and the body bytes read (``CONTENT_LENGTH``
of them; none for a chunked body, which ``wsgiref`` does not decode). It
answers every request with the same JSON-RPC result, echoing the request's
``id``.

``answer`` replaces that answer for the requests it chooses: called with
the decoded request (a dict, or ``{}``), it returns ``None`` for the usual
answer or ``(headers, body)`` to send instead (a header may be repeated).

Used as a context manager (``wsgiref.simple_server`` with one thread per
request, on a free loopback port, stopped on exit)::

    with WsgiUpstream() as upstream:
        ... upstream.port ... upstream.since(mark)
"""

from __future__ import annotations

import json
import socketserver
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

RECORDED_PREFIXES = ("HTTP_X_WARDEN", "HTTP_X_E2E")
ANSWER_TEXT = "answered by the WSGI upstream"
# No socket operation of the server waits longer than this.
SOCKET_TIMEOUT = 10.0


@dataclass
class Seen:
    """One request as the WSGI application saw it."""

    method: str
    path: str
    environ: dict[str, str]
    body: bytes = b""
    # The application has read the body and answered.
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def marker(self) -> str | None:
        return self.environ.get("HTTP_X_E2E_REQUEST")

    @property
    def identity(self) -> dict[str, str]:
        """The `HTTP_X_WARDEN*` keys: what the application would take as the caller."""
        return {key: value for key, value in self.environ.items() if key.startswith("HTTP_X_WARDEN")}


class _Handler(WSGIRequestHandler):
    timeout = SOCKET_TIMEOUT

    def log_message(self, *args: Any) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per connection, counting the connections still being handled."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.active = 0
        self.active_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.active_lock:
            self.active += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        with self.active_lock:
            self.active -= 1


Answer = Callable[[dict[str, Any]], "tuple[list[tuple[str, str]], bytes] | None"]


class WsgiUpstream:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, answer: Answer | None = None) -> None:
        self._answer = answer
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._server = make_server(host, port, self._app, server_class=_Server, handler_class=_Handler)
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    # --- what reached it ------------------------------------------------------

    def mark(self) -> int:
        with self._lock:
            return len(self._seen)

    def since(self, mark: int) -> list[Seen]:
        with self._lock:
            return list(self._seen[mark:])

    def quiet(self, timeout: float = SOCKET_TIMEOUT) -> bool:
        """Wait until every connection accepted so far has been handled (a
        request still being read is recorded once this returns True)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._server.active_lock:
                if self._server.active == 0:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def with_marker(self, mark: int, marker: str) -> list[Seen]:
        """The requests since `mark` carrying `x-e2e-request: marker`, once
        every connection accepted so far has been handled."""
        assert self.quiet(), "the WSGI upstream still handles a connection after 10 s"
        return [s for s in self.since(mark) if s.marker == marker]

    # --- the application --------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        seen = Seen(
            method=environ["REQUEST_METHOD"],
            path=environ.get("PATH_INFO", ""),
            environ={k: v for k, v in environ.items() if k.startswith(RECORDED_PREFIXES)},
        )
        with self._lock:
            self._seen.append(seen)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            seen.body = environ["wsgi.input"].read(length) if length > 0 else b""
        except (OSError, ValueError) as error:
            seen.extra["read_error"] = repr(error)
        try:
            request = json.loads(seen.body or b"{}")
        except ValueError:
            request = {}
        if not isinstance(request, dict):
            request = {}
        chosen = self._answer(request) if self._answer is not None else None
        if chosen is not None:
            headers, data = chosen
            seen.done = True
            start_response("200 OK", [*headers, ("Content-Length", str(len(data)))])
            return [data]
        request_id = request.get("id")
        answer = {
            "jsonrpc": "2.0",
            "id": request_id,
            "result": {"content": [{"type": "text", "text": ANSWER_TEXT}], "isError": False},
        }
        data = json.dumps(answer).encode()
        seen.done = True
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    # --- life cycle -------------------------------------------------------------

    def start(self) -> "WsgiUpstream":
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="wsgi-upstream", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "WsgiUpstream":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
