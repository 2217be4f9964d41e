"""Warden is never more permissive than the server's own reading.

Each spelling of a path or resource URI on which readers disagree (encoded
separators and dots, backslashes, empty segments, dot segments, look-alikes
of `.` and `/`, `?` and `#` in file paths) goes through real Envoy from bob
(human, sales), who may only read `docs://public/` and `/srv/public/`: Warden
refuses it, and nothing reaches the server. The legitimate spellings still
work.

A differential check runs the same URIs, and a generated set of
separator x dot-segment combinations, through pydantic's `AnyUrl` (the
reader of the MCP Python SDK behind the example server) in-process and
through Warden: whatever Warden lets through, pydantic reads below
`docs://public/`.

A deny prefix (a variant of the example policy denying `/srv/internal/`)
holds for the spellings other file systems open as that path: other letter
cases, Windows trailing dots and spaces, 8.3 short names and alternate data
streams, and relative paths.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from conftest import b64_header, http_client, rpc_body, rpc_headers, token_for, tool_call, variant_stack
from helpers import assert_jsonrpc_denial
from pydantic import AnyUrl, ValidationError

DENY_CODE = -31403

# Spellings of the public prefix that climb to docs://internal/roadmap (or
# that readers take apart differently), from the issue "Never more permissive
# than the server".
REFUSED_URIS = [
    "docs://internal/..%2fpublic%2fx/../roadmap",
    "docs://public/../internal/roadmap",
    "DOCS://public/../internal/roadmap",
    "docs://public/..%2finternal/roadmap",
    "docs://public/..%2Finternal%2Froadmap",
    "docs://public/%2e%2e/internal/roadmap",
    "docs://public/%2E%2E/internal/roadmap",
    "docs://public/.%2e/internal/roadmap",
    "docs://public/%252e%252e/internal/roadmap",
    "docs://public/..%5cinternal%5croadmap",
    "docs://public\\..\\internal\\roadmap",
    "docs:\\\\public\\..\\internal\\roadmap",
    "docs://public//intro",
    "docs://public/./intro",
    "docs://public/\uff0e\uff0e/internal/roadmap",
    "docs://public/\u2025/internal/roadmap",
    "docs://public/\u2024\u2024/internal/roadmap",
    "docs://public/\ufe52\ufe52/internal/roadmap",
    "docs://public/..\uff0finternal\uff0froadmap",
    "docs://public/..\u2215internal",
    "docs://public/%EF%BC%8E%EF%BC%8E/internal/roadmap",
    "docs://public@internal/roadmap",
    "docs://pub%6cic/intro",
]

REFUSED_PATHS = [
    "/srv/public/../internal/salaries.csv",
    "/srv/public/%2e%2e/internal/salaries.csv",
    "/srv/public/%252e%252e/internal/salaries.csv",
    "/srv/public/..%2finternal%2fsalaries.csv",
    "/srv/public/..%5cinternal%5csalaries.csv",
    "/srv/public\\..\\internal\\salaries.csv",
    "/srv/public/..\\internal\\salaries.csv",
    "/srv/public//srv/internal/salaries.csv",
    "/srv/public?backup/x",
    "/srv/public#x",
    "/srv/public/\uff0e\uff0e/internal/salaries.csv",
    "/srv/public/\u2025/internal/salaries.csv",
    "/srv/public/\u2024\u2024/internal/salaries.csv",
    "/srv/public/\ufe52\ufe52/internal/salaries.csv",
    "/srv/public/..\uff0finternal\uff0fsalaries.csv",
    "/srv/public/..\u2044internal",
    "/srv/public/..\uff3cinternal",
    "/srv/public/..\ufe68internal",
    "/srv/./public/readme.txt",
]

# Separators and dot segments for the generated differential set.
SEPARATORS = ["/", "//", "%2f", "%2F", "\\", "%5c", "%252f", "\uff0f", "\u2215", "\uff3c", "/./"]
DOTS = ["..", ".", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%252e%252e", "\uff0e\uff0e", "\u2025", "..."]


def read_resource(http: Any, uri: str, rid: str) -> Any:
    name = uri if uri.isascii() else b64_header(uri)
    body = rpc_body("resources/read", {"uri": uri}, id=rid)
    headers = rpc_headers("resources/read", name, token=token_for("bob"))
    return http.post("/mcp", headers=headers, content=json.dumps(body))


def is_denial(body: Any) -> bool:
    return isinstance(body, dict) and body.get("error", {}).get("code") == DENY_CODE


def pydantic_reading(uri: str) -> tuple[str, str, list[str]] | None:
    """(scheme, host, decoded path segments) as the SDK's AnyUrl reads `uri`;
    None when it refuses the URI."""
    try:
        url = AnyUrl(uri)
    except ValidationError:
        return None
    from urllib.parse import unquote

    segments = [unquote(s) for s in (url.path or "").split("/") if s]
    return url.scheme, url.host or "", segments


def under_public(reading: tuple[str, str, list[str]] | None) -> bool:
    if reading is None:
        return True  # the server cannot act on it
    scheme, host, segments = reading
    return scheme == "docs" and host == "public" and not any(s in (".", "..") or "/" in s or "\\" in s for s in segments)


@pytest.mark.parametrize("uri", REFUSED_URIS)
def test_an_ambiguous_resource_uri_is_refused(stack, http, uri):
    mark = stack.call_log.mark()
    rid = f"uri-{uuid.uuid4().hex[:8]}"
    response = read_resource(http, uri, rid)
    assert response.status_code == 200, (response.status_code, response.text)
    assert_jsonrpc_denial(response.json(), rid)
    assert stack.call_log.entries(mark) == []


@pytest.mark.parametrize("path", REFUSED_PATHS)
def test_an_ambiguous_file_path_is_refused(stack, http, path):
    mark = stack.call_log.mark()
    rid = f"path-{uuid.uuid4().hex[:8]}"
    response = tool_call(http, token_for("bob"), "read_file", {"path": path}, id=rid)
    assert response.status_code == 200, (response.status_code, response.text)
    data = assert_jsonrpc_denial(response.json(), rid)
    assert data["rule"] in ("read-public-files", None), data
    assert stack.call_log.entries(mark) == []


def test_legitimate_spellings_still_work(stack, http):
    mark = stack.call_log.mark()
    response = read_resource(http, "docs://public/intro", "legit-uri")
    assert response.status_code == 200, response.text
    assert "Introduction" in response.json()["result"]["contents"][0]["text"]
    for path in ["/srv/public/handbook.md", "/srv/public/readme.txt"]:
        response = tool_call(http, token_for("bob"), "read_file", {"path": path}, id=f"legit-{path}")
        assert response.status_code == 200, response.text
        assert f"contents of {path}" in response.json()["result"]["content"][0]["text"]
    assert [(e["kind"], e["name"]) for e in stack.call_log.entries(mark)] == [
        ("resource", "docs://public/intro"),
        ("tool", "read_file"),
        ("tool", "read_file"),
    ]


def test_pydantic_reads_the_issue_example_outside_the_prefix():
    """The reading the issue found: the SDK's AnyUrl resolves the old allowed
    spelling to the internal roadmap."""
    assert pydantic_reading("docs://internal/..%2fpublic%2fx/../roadmap") == ("docs", "internal", ["roadmap"])


def generated_uris() -> list[str]:
    out = list(REFUSED_URIS)
    for sep in SEPARATORS:
        for dots in DOTS:
            out.append(f"docs://public{sep}{dots}{sep}internal{sep}roadmap")
            out.append(f"docs://public/x{sep}{dots}{sep}{dots}{sep}internal/roadmap")
    out += ["docs://public/intro", "docs://public/intro?lang=en", "docs://public/x?/../../internal/roadmap"]
    return out


def test_whatever_warden_forwards_pydantic_reads_below_the_prefix(stack, http):
    """Differential: every generated URI through Warden (real Envoy) and
    through pydantic in-process. Forwarded ones must be below docs://public/
    in pydantic's reading; the server's log must name only public resources."""
    mark = stack.call_log.mark()
    forwarded, outside = [], []
    for i, uri in enumerate(generated_uris()):
        response = read_resource(http, uri, f"gen-{i}")
        if is_denial(response.json()):
            assert response.status_code == 200, (uri, response.status_code, response.text)
            continue
        # Forwarded: the server answers, an unknown resource with its own error.
        forwarded.append(uri)
        if not under_public(pydantic_reading(uri)):
            outside.append((uri, pydantic_reading(uri)))
    assert outside == [], outside
    assert "docs://public/intro" in forwarded
    assert len(forwarded) < 10, forwarded
    names = [e["name"] for e in stack.call_log.entries(mark) if e.get("kind") == "resource"]
    assert names and all(n.startswith("docs://public/") for n in names), names


# --- a deny prefix holds for every spelling a file system opens as it -----

# Opened as /srv/internal/salaries.csv by a case-insensitive file system
# (Windows, macOS), by Windows path APIs (trailing dots and spaces dropped,
# short 8.3 names), or by a server resolving a relative path from `/`.
SECRET_SPELLINGS = [
    "/srv/internal/salaries.csv",
    "/SRV/internal/salaries.csv",
    "/srv/Internal/salaries.csv",
    "/srv/INTERNAL",
    "/srv/internal./salaries.csv",
    "/srv/internal /salaries.csv",
    "/srv/internal.../salaries.csv",
    "/srv/INTERN~1/salaries.csv",
    "/srv/internal/salaries.csv:$DATA",
    "srv/internal/salaries.csv",
    "internal/salaries.csv",
    "~/salaries.csv",
]


def _deny_internal_files(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bob may read any file but those below /srv/internal/."""
    return [
        {
            "id": "no-internal-files",
            "effect": "deny",
            "owner": "team-security",
            "tools": ["read_file"],
            "arguments": [{"pointer": "/path", "path_prefix": "/srv/internal/"}],
        },
        {"id": "read-any-file", "effect": "allow", "owner": "team-platform", "tools": ["read_file"]},
        *rules,
    ]


@pytest.fixture(scope="module")
def deny_prefix_stack(e2e_workdir):
    with variant_stack(e2e_workdir, "deny-prefix", rules=_deny_internal_files) as instance:
        yield instance


@pytest.mark.parametrize("path", SECRET_SPELLINGS)
def test_a_deny_prefix_holds_for_every_spelling_of_the_path(deny_prefix_stack, path):
    mark = deny_prefix_stack.call_log.mark()
    rid = f"deny-{uuid.uuid4().hex[:8]}"
    with http_client(deny_prefix_stack) as http:
        response = tool_call(http, token_for("bob"), "read_file", {"path": path}, id=rid)
    assert response.status_code == 200, (response.status_code, response.text)
    assert_jsonrpc_denial(response.json(), rid)
    assert deny_prefix_stack.call_log.entries(mark) == []


def test_the_deny_prefix_lets_other_files_through(deny_prefix_stack):
    mark = deny_prefix_stack.call_log.mark()
    with http_client(deny_prefix_stack) as http:
        response = tool_call(http, token_for("bob"), "read_file", {"path": "/srv/public/readme.txt"}, id="other")
    assert response.status_code == 200, response.text
    assert "error" not in response.json(), response.json()
    assert len(deny_prefix_stack.call_log.entries(mark)) == 1
