#!/usr/bin/env python3
"""MCP client of the SDK mcp==2.3, driven by a JSON plan on stdin.

Runs in ``.venv-mcp2`` (the 2.x SDK cannot live beside 1.30). A session's
``mode`` is ``2026-07-28`` (default: no handshake, no session, ``Mcp-Method``
and ``Mcp-Name`` headers on every POST), ``auto`` (POSTs ``server/discover``
first, falls back to ``initialize``) or ``legacy`` (the 2025 handshake).
See README.md beside this file for the plan and result format.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import error_result, http_recorder, main, run_steps  # noqa: E402

SDK = "mcp 2.3"


async def run_session(url: str, session_plan: dict[str, Any], timeout: float) -> dict[str, Any]:
    http_log: list[dict[str, Any]] = []
    mode = session_plan.get("mode", "2026-07-28")
    out: dict[str, Any] = {"sdk": SDK, "mode": mode, "connected": False, "http": http_log, "results": []}
    headers = {}
    if session_plan.get("token") is not None:
        headers["Authorization"] = f"Bearer {session_plan['token']}"
    headers.update(session_plan.get("headers", {}))
    try:
        async with httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(timeout, read=300),
            event_hooks={"response": [http_recorder(http_log)]},
        ) as http:
            transport = streamable_http_client(url, http_client=http)
            try:
                client = Client(transport, mode=mode, read_timeout_seconds=timeout, cache=None)
                await client.__aenter__()
            except Exception as error:  # noqa: BLE001
                out["connect_error"] = error_result("connect", error, (MCPError,))
                return out
            try:
                out["connected"] = True
                out["protocol_version"] = client.session.protocol_version
                await run_steps(client, session_plan.get("steps", []), timeout, (MCPError,), out["results"])
            finally:
                await client.__aexit__(None, None, None)
    except Exception as error:  # noqa: BLE001 - transport teardown errors are reported
        out["teardown_error"] = error_result("close", error, (MCPError,)).get("exception")
    return out


async def run_plan(plan: dict[str, Any]) -> dict[str, Any]:
    timeout = float(plan.get("timeout", 20))
    sessions = [await run_session(plan["url"], s, timeout) for s in plan.get("sessions", [])]
    return {"sdk": SDK, "sessions": sessions}


if __name__ == "__main__":
    sys.exit(main(run_plan))
