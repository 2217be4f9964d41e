"""What an MCP Python SDK server does with a request: the reader side of the
differential tests in this folder.

Runs under either SDK generation (``.venv``: mcp 1.x, ``mcp.server.fastmcp``;
``.venv-mcp2``: mcp 2.x, ``mcp.server.mcpserver``). It builds a server with
the SDK's own high-level API — the tools ``deploy``, ``delete_repo`` and
``read_file``, concrete resources and ``{name}`` templates under
``docs://public/``, ``docs://internal/``, ``file:///shared/`` and
``file:///etc/`` — and feeds it requests the way the SDK's request handlers
do: the params through the SDK's request model (``CallToolRequestParams``,
``ReadResourceRequestParams``: pydantic ``AnyUrl`` in 1.x, a plain string in
2.x), then the server's ``call_tool`` / ``read_resource`` (tool lookup,
``func_metadata`` argument validation with the JSON pre-parse, resource and
template matching). Each tool and resource records what it received.

Input, one JSON object a line:

* ``{"params": {...}}`` for ``tools/call`` (the params object as JSON, or
  ``{"params_text": "..."}`` for params as raw JSON text: duplicate keys,
  escapes; parsed as each generation's Streamable HTTP transport parses a
  body, 1.x with ``json.loads``, 2.x with ``pydantic_core.from_json``);
* ``{"uri": "..."}`` for ``resources/read``.

Output, one JSON object a line: ``{"refused": "<why>"}`` when the SDK
refuses the request before any tool or resource runs, else
``{"tool": name, "arguments": {...}}`` (as the tool function received them,
models dumped) or ``{"resource": registered URI or template, "params":
{...}, "uri": the URI the SDK handed on}``. NaN and infinities are written
as Python's ``json`` writes them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pydantic_core
from pydantic import BaseModel

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as Server
    from mcp_types import CallToolRequestParams, ReadResourceRequestParams

    GENERATION = 2
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server
    from mcp.types import CallToolRequestParams, ReadResourceRequestParams

    GENERATION = 1

RECEIVED: list[dict[str, Any]] = []


class Options(BaseModel):
    force: bool = False
    level: int = 0


def build_server() -> Any:
    server = Server("readers")

    @server.tool()
    async def deploy(
        environment: str = "staging",
        force: bool = False,
        replicas: int = 1,
        ratio: float = 1.0,
        size: int = 1,
        options: Options | None = None,
        tags: list[str] | None = None,
        owner: str | None = "nobody",
    ) -> str:
        received = dict(locals())
        if options is not None:
            received["options"] = options.model_dump()
        RECEIVED.append({"tool": "deploy", "arguments": received})
        return "ok"

    @server.tool()
    async def delete_repo(repo: str = "") -> str:
        RECEIVED.append({"tool": "delete_repo", "arguments": {"repo": repo}})
        return "ok"

    @server.tool()
    async def read_file(path: str = "") -> str:
        RECEIVED.append({"tool": "read_file", "arguments": {"path": path}})
        return "ok"

    for uri in ["docs://public/intro", "docs://internal/roadmap", "file:///shared/a.txt", "file:///etc/passwd"]:
        register_resource(server, uri)
    for template in ["docs://public/{name}", "docs://internal/{name}", "file:///shared/{name}", "file:///etc/{name}"]:
        register_template(server, template)
    return server


def register_resource(server: Any, uri: str) -> None:
    @server.resource(uri, name=uri)
    async def concrete() -> str:
        RECEIVED.append({"resource": uri, "params": {}})
        return "ok"


def register_template(server: Any, template: str) -> None:
    @server.resource(template, name=template)
    async def templated(name: str) -> str:
        RECEIVED.append({"resource": template, "params": {"name": name}})
        return "ok"


async def call_tool(server: Any, params: dict[str, Any]) -> dict[str, Any]:
    model = CallToolRequestParams.model_validate(params)
    await server.call_tool(model.name, model.arguments or {})
    return {}


async def read_resource(server: Any, uri: str) -> dict[str, Any]:
    model = ReadResourceRequestParams.model_validate({"uri": uri})
    # The URI as the request handler hands it to FastMCP (1.x: `AnyUrl`, so
    # already parsed and serialised by the WHATWG parser).
    handed_on = str(model.uri)
    await server.read_resource(model.uri)
    return {"uri": handed_on}


def parse_body(text: str) -> Any:
    return json.loads(text) if GENERATION == 1 else pydantic_core.from_json(text)


async def read_one(server: Any, line: dict[str, Any]) -> dict[str, Any]:
    RECEIVED.clear()
    try:
        if "uri" in line:
            extra = await read_resource(server, line["uri"])
        else:
            params = line["params"] if "params" in line else parse_body(line["params_text"])
            extra = await call_tool(server, params)
    except Exception as error:  # noqa: BLE001 - any refusal means the tool never ran
        if RECEIVED:
            raise RuntimeError(f"{line}: refused after running: {error!r}") from error
        return {"refused": type(error).__name__}
    if len(RECEIVED) != 1:
        raise RuntimeError(f"{line}: ran {len(RECEIVED)} handlers")
    return {**RECEIVED[0], **extra}


async def main() -> None:
    server = build_server()
    out = []
    for raw in sys.stdin:
        if raw.strip():
            out.append(json.dumps(await read_one(server, json.loads(raw))))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
