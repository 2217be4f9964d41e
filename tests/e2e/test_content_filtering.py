"""Lists are cut by what a response carries, not by the request it answers.

The example server (MCP Python SDK 2.3) routes a response to the stream
registered under `str(id)`: in one session, `tools/list` with id `N` and
`ping` with id `"N"` sent together can deliver the tool list on the ping's
stream. And a server with an event store replays a stream's events to a GET
carrying `Last-Event-ID`. Warden reads every response body on the MCP
endpoint, so neither way shows bob a tool he could not use; and it refuses
a request whose id aliases one still in flight in its session.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from conftest import VISIBLE_TOOLS, http_client, legacy_headers, open_legacy_session, rpc_body, token_for, variant_stack

ALL_TOOLS = {"search_docs", "read_file", "deploy", "delete_repo", "rotate_keys", "export_customers"}
HIDDEN_FROM_BOB = ALL_TOOLS - VISIBLE_TOOLS["bob"]
ALIAS_TRIES = 50
# A POST whose answer went to the other stream never gets one.
ALIAS_WAIT = 2.0
# Priming events (which carry the event ids to resume from) start in 2025-11-25.
RESUMABLE = "2025-11-25"


def listed_tools(messages: list[dict[str, Any]]) -> list[set[str]]:
    """The tool names of every result holding a tool list."""
    return [
        {tool["name"] for tool in message["result"]["tools"]}
        for message in messages
        if isinstance(message.get("result"), dict) and "tools" in message["result"]
    ]


def sse_messages(text: str) -> list[dict[str, Any]]:
    data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    return [json.loads(item) for item in data if item]


def test_an_id_aliasing_a_list_in_flight_gets_no_hidden_tool(stack):
    token = token_for("bob")
    with http_client(stack) as http:
        session_id = open_legacy_session(http, token)
    headers = legacy_headers(token, session_id)

    refusals: list[str] = []

    def post(body: dict[str, Any]) -> str:
        received: list[str] = []
        try:
            with httpx.Client(base_url=stack.url.removesuffix("/mcp"), timeout=ALIAS_WAIT) as client:
                with client.stream("POST", "/mcp", headers=headers, content=json.dumps(body)) as response:
                    for chunk in response.iter_text():
                        received.append(chunk)
                    if response.status_code == 400:
                        # Warden refuses an id aliasing one in flight.
                        refusals.append("".join(received))
                        return ""
        except httpx.TimeoutException:
            pass  # what arrived before the wait ran out still counts
        return "".join(received)

    crossed, lists = 0, []
    with ThreadPoolExecutor(2) as pool:
        for n in range(ALIAS_TRIES):
            on_list = pool.submit(post, rpc_body("tools/list", id=n, modern=False))
            on_ping = pool.submit(post, rpc_body("ping", id=str(n), modern=False))
            for stream, text in (("list", on_list.result()), ("ping", on_ping.result())):
                found = listed_tools(sse_messages(text))
                lists += found
                crossed += stream == "ping" and bool(found)
    print(
        f"\nid aliasing, {ALIAS_TRIES} tries: {len(refusals)} aliasing requests refused,"
        f" the tool list arrived on the ping's stream {crossed} times"
    )
    assert all("already in use by a request in flight" in text for text in refusals), refusals
    assert lists, "no tool list came back at all"
    leaked = [names & HIDDEN_FROM_BOB for names in lists if names & HIDDEN_FROM_BOB]
    assert not leaked, f"{len(leaked)} of {len(lists)} lists showed bob hidden tools: {leaked[:3]}"
    assert all(names == VISIBLE_TOOLS["bob"] for names in lists), lists


@pytest.fixture(scope="module")
def resumable_stack(e2e_workdir):
    with variant_stack(e2e_workdir, "resumable", server_args=["--event-store"]) as instance:
        yield instance


def test_a_resumed_stream_replays_only_the_cut_list(resumable_stack):
    token = token_for("bob")
    with http_client(resumable_stack) as http:
        session_id = open_legacy_session(http, token, version=RESUMABLE)
        headers = legacy_headers(token, session_id, RESUMABLE)
        response = http.post("/mcp", headers=headers, content=json.dumps(rpc_body("tools/list", id=7, modern=False)))
        assert response.status_code == 200, response.text
        assert listed_tools(sse_messages(response.text)) == [VISIBLE_TOOLS["bob"]], response.text
        event_ids = [line[3:].strip() for line in response.text.splitlines() if line.startswith("id:")]
        assert event_ids, f"the server sent no event ids (no event store?): {response.text}"
        # Resume right after the priming event: the list answer is replayed.
        replay_headers = {**headers, "Accept": "text/event-stream", "Last-Event-ID": event_ids[0]}
        text = ""
        try:
            with http.stream("GET", "/mcp", headers=replay_headers, timeout=5.0) as replay:
                assert replay.status_code == 200, replay.read()
                for chunk in replay.iter_text():
                    text += chunk
                    if listed_tools(sse_messages(text.rsplit("\n\n", 1)[0])):
                        break
        except httpx.ReadTimeout:
            pass
    replayed = listed_tools(sse_messages(text.rsplit("\n\n", 1)[0]))
    assert replayed, f"nothing was replayed: {text!r}"
    assert replayed == [VISIBLE_TOOLS["bob"]], replayed
