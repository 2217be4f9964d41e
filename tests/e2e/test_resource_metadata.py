"""RFC 9728 Protected Resource Metadata, as an MCP client discovers it.

examples/policy.yaml sets `filter.resource_metadata`, so Warden answers
`/.well-known/oauth-protected-resource/mcp` (and the bare well-known path)
itself, and every 401 names that document in its challenge. The steps an MCP
client takes are the 1.30 SDK's own (`mcp.client.auth.utils`): read
`resource_metadata` from the challenge, build the discovery URLs, parse the
document. The public host in the URL (mcp.demo.warden.test) is not
resolvable here, so its path is asked of Envoy.
"""

from __future__ import annotations

from urllib.parse import urlparse

import anyio
import pytest
from conftest import rpc_headers, token_for, tool_call
from helpers import METADATA_URL
from mcp.client.auth.utils import (
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
    handle_protected_resource_response,
)
from mint_token import bad_signature_token

CHALLENGE = f'Bearer realm="warden", resource_metadata="{METADATA_URL}"'
DOCUMENT = {
    "resource": "https://mcp.demo.warden.test/mcp",
    "authorization_servers": ["https://idp.demo.warden.test"],
    "bearer_methods_supported": ["header"],
    "scopes_supported": ["ops:rotate"],
    "resource_name": "Warden demo MCP server",
}


@pytest.mark.parametrize("http_method", ["POST", "GET", "DELETE"])
def test_401_without_a_token_names_the_metadata(stack, http, http_method):
    mark = stack.call_log.mark()
    if http_method == "POST":
        response = tool_call(http, None, "search_docs", {"query": "anonymous"})
    else:
        response = http.request(http_method, "/mcp", headers=rpc_headers("tools/list", modern=False))
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.headers["www-authenticate"] == CHALLENGE
    assert response.json()["error"]["code"] == -31401, response.text
    assert stack.call_log.entries(mark) == []


def test_401_for_a_bad_token_names_the_metadata_and_the_error(stack, http):
    response = tool_call(http, bad_signature_token("alice", "human"), "search_docs", {"query": "forged"})
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(CHALLENGE + ', error="invalid_token", error_description="'), challenge


def test_client_discovers_the_authorization_server_through_envoy(stack, http):
    response = tool_call(http, None, "search_docs", {"query": "who guards you"})
    assert response.status_code == 401
    advertised = extract_resource_metadata_from_www_auth(response)
    assert advertised == METADATA_URL
    # The SDK tries the advertised URL first, then the path-based and root
    # well-known URLs of the server it was given (here Envoy).
    urls = build_protected_resource_metadata_discovery_urls(advertised, stack.url)
    base = f"http://127.0.0.1:{stack.listen_port}"
    assert urls == [
        METADATA_URL,
        f"{base}/.well-known/oauth-protected-resource/mcp",
        f"{base}/.well-known/oauth-protected-resource",
    ]
    for url in urls:
        answer = http.get(urlparse(url).path)  # asked of Envoy, whatever the host
        assert answer.status_code == 200, (url, answer.status_code, answer.text)
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["cache-control"] == "max-age=300"
        assert answer.json() == DOCUMENT
        metadata = anyio.run(handle_protected_resource_response, answer)
        assert metadata is not None, f"the SDK could not parse {answer.text}"
        assert str(metadata.resource) == DOCUMENT["resource"]
        assert [str(a).rstrip("/") for a in metadata.authorization_servers] == DOCUMENT["authorization_servers"]
        assert metadata.scopes_supported == ["ops:rotate"]


def test_metadata_is_served_without_a_token_and_never_reaches_the_server(stack, http):
    mark, log_mark = stack.call_log.mark(), stack.envoy_log.mark()
    with_token = http.get(
        "/.well-known/oauth-protected-resource/mcp", headers={"Authorization": f"Bearer {token_for('bob')}"}
    )
    assert with_token.status_code == 200 and with_token.json() == DOCUMENT
    # Other paths below .well-known are neither metadata nor an MCP endpoint: 404.
    other = http.get("/.well-known/oauth-protected-resource/other")
    assert other.status_code == 404, other.text
    assert stack.call_log.entries(mark) == []
    # Serving the document is not a decision: only the 404 is audited.
    records = stack.envoy_log.wait_for_audits(log_mark, lambda rs: len(rs) >= 1)
    assert [(r["http_method"], r["status"]) for r in records] == [("GET", 404)], records


@pytest.mark.parametrize("http_method", ["POST", "PUT", "DELETE"])
def test_metadata_is_read_only(stack, http, http_method):
    response = http.request(http_method, "/.well-known/oauth-protected-resource/mcp", content=b"{}")
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "GET, HEAD"
