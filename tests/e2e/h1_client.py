"""A raw HTTP/1.1 client for the end-to-end tests (``http.client`` underneath).

httpx and the SDK clients decide for themselves which headers and framing a
request gets; this one sends exactly what a test gives it: header names as
spelled (underscores, any case, repeated names), a body on any method, with
``Content-Length`` or chunked (``Transfer-Encoding: chunked``, the body as one
chunk, or no chunk at all before the last one). One connection per request,
a timeout on every socket operation.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass

REQUEST_TIMEOUT = 10.0


@dataclass
class H1Response:
    status: int
    # Names lower-cased, in the order received.
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name]
        return values[0] if values else None

    @property
    def content_type(self) -> str:
        return self.header("content-type") or ""

    def __repr__(self) -> str:
        return f"H1Response(status={self.status}, headers={self.headers}, body={self.body[:600]!r})"


def request(
    port: int,
    method: str,
    headers: dict[str, str] | list[tuple[str, str]],
    body: bytes | None = None,
    *,
    path: str = "/mcp",
    chunked: bool = False,
    headers_only: bool = False,
    timeout: float = REQUEST_TIMEOUT,
) -> H1Response:
    """One request to 127.0.0.1:`port`.

    `body` None: no body and no framing header. Otherwise `Content-Length`
    (0 for an empty body) or, with `chunked`, `Transfer-Encoding: chunked`
    with the body as one chunk (an empty body: the last chunk only).
    `headers_only` returns once the status and headers are in (the body
    empty), for answers that stay open such as an SSE stream.
    """
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in pairs:
            conn.putheader(name, value)
        if body is not None:
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            else:
                conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if body is not None:
            if chunked:
                conn.send((b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n")
            elif body:
                conn.send(body)
        response = conn.getresponse()
        received = [(name.lower(), value) for name, value in response.getheaders()]
        data = b"" if headers_only else response.read()
        return H1Response(status=response.status, headers=received, body=data)
    finally:
        conn.close()
