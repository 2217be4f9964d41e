"""The exact shape of a denial on the wire: HTTP 200 carrying a JSON-RPC error
with the request's id, code -31403 and data {decision, rule, reason}."""

from __future__ import annotations

import json

import pytest
from conftest import rpc_body, rpc_headers, token_for, tool_call
from helpers import assert_jsonrpc_denial, tool_entries


@pytest.mark.parametrize("request_id", [7, "req-abc", 0], ids=["int-id", "string-id", "zero-id"])
@pytest.mark.parametrize("modern", [True, False], ids=["2026-07-28", "2025-06-18"])
def test_denied_tool_call_is_a_jsonrpc_error_in_200(stack, http, request_id, modern):
    mark = stack.call_log.mark()
    response = tool_call(
        http, token_for("research-agent"), "delete_repo", {"name": "warden"}, id=request_id, modern=modern
    )
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    data = assert_jsonrpc_denial(response.json(), request_id, rule="no-agent-deletes")
    assert data["reason"]
    assert stack.call_log.entries(mark) == []


def test_denied_resource_read_is_a_jsonrpc_error(stack, http):
    mark = stack.call_log.mark()
    body = rpc_body("resources/read", {"uri": "docs://internal/roadmap"}, id=42)
    headers = rpc_headers("resources/read", "docs://internal/roadmap", token=token_for("bob"))
    response = http.post("/mcp", headers=headers, content=json.dumps(body))
    assert response.status_code == 200, (response.status_code, response.text)
    assert_jsonrpc_denial(response.json(), 42, rule=None)
    assert stack.call_log.entries(mark) == []


def test_allowed_call_is_forwarded_untouched(stack, http):
    mark = stack.call_log.mark()
    response = tool_call(
        http, token_for("ci-deployer"), "deploy", {"environment": "staging", "replicas": 7}, id="fwd-1"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "fwd-1" and "error" not in body, body
    assert body["result"]["content"][0]["text"] == "deployed to staging with 7 replica(s)"
    assert tool_entries(stack.call_log.entries(mark)) == [("deploy", {"environment": "staging", "replicas": 7})]
