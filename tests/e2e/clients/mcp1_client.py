#!/usr/bin/env python3
"""MCP client of the 2025 revisions (SDK mcp==1.30), driven by a JSON plan.

Import ``run_plan`` (pytest in ``.venv`` does, in-process) or run it with a
plan on stdin: see README.md beside this file. It always uses the
``initialize`` handshake, an ``Mcp-Session-Id`` session, the GET SSE stream
and a DELETE on close.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import error_result, http_recorder, main, run_steps  # noqa: E402

SDK = "mcp 1.30 (2025 revisions)"


async def run_session(url: str, session_plan: dict[str, Any], timeout: float) -> dict[str, Any]:
    http_log: list[dict[str, Any]] = []
    out: dict[str, Any] = {"sdk": SDK, "connected": False, "http": http_log, "results": []}
    headers = {}
    if session_plan.get("token") is not None:
        headers["Authorization"] = f"Bearer {session_plan['token']}"
    headers.update(session_plan.get("headers", {}))

    try:
        async with (
            httpx.AsyncClient(
                headers=headers,
                timeout=httpx.Timeout(timeout, read=300),
                follow_redirects=True,
                event_hooks={"response": [http_recorder(http_log)]},
            ) as http,
            streamable_http_client(url, http_client=http) as (read, write, get_session_id),
        ):
            async with ClientSession(read, write, read_timeout_seconds=timedelta(seconds=timeout)) as session:
                try:
                    initialized = await session.initialize()
                except Exception as error:  # noqa: BLE001
                    out["connect_error"] = error_result("initialize", error, (McpError,))
                    return out
                out["connected"] = True
                out["protocol_version"] = initialized.protocolVersion
                out["session_id"] = get_session_id()
                await run_steps(session, session_plan.get("steps", []), timeout, (McpError,), out["results"])
                out["session_id_after"] = get_session_id()
    except Exception as error:  # noqa: BLE001 - transport teardown errors are reported
        out["teardown_error"] = error_result("close", error, (McpError,)).get("exception")
    return out


async def run_plan(plan: dict[str, Any]) -> dict[str, Any]:
    timeout = float(plan.get("timeout", 20))
    sessions = [await run_session(plan["url"], s, timeout) for s in plan.get("sessions", [])]
    return {"sdk": SDK, "sessions": sessions}


if __name__ == "__main__":
    sys.exit(main(run_plan))
