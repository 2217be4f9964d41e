"""Plan handling shared by mcp1_client.py and mcp2_client.py (no SDK imports here)."""

from __future__ import annotations

import json
import sys
from typing import Any, Awaitable, Callable

import anyio


def content_text(result: Any) -> str:
    """Join the text of a result's content (tool results, prompts, resources)."""
    parts: list[str] = []
    for item in getattr(result, "content", None) or []:
        text = getattr(item, "text", None)
        if text is not None:
            parts.append(text)
    for item in getattr(result, "contents", None) or []:
        text = getattr(item, "text", None)
        if text is not None:
            parts.append(text)
    for message in getattr(result, "messages", None) or []:
        text = getattr(getattr(message, "content", None), "text", None)
        if text is not None:
            parts.append(text)
    return "\n".join(parts)


def error_result(op: str, error: BaseException, mcp_error_types: tuple[type[BaseException], ...]) -> dict[str, Any]:
    if isinstance(error, mcp_error_types):
        data = getattr(error, "error", None)
        return {
            "op": op,
            "ok": False,
            "error": {
                "code": getattr(data, "code", None),
                "message": getattr(data, "message", str(error)),
                "data": getattr(data, "data", None),
            },
        }
    if isinstance(error, BaseExceptionGroup):
        inner = "; ".join(f"{type(e).__name__}: {e}" for e in error.exceptions)
        return {"op": op, "ok": False, "exception": f"{type(error).__name__}: {inner}"}
    return {"op": op, "ok": False, "exception": f"{type(error).__name__}: {error}"}


# List ops: the result member holding the entries and the entry member naming
# each (camelCase in SDK 1.x, snake_case where 2.x renamed them).
LISTS = {
    "list_tools": (("tools",), ("name",)),
    "list_prompts": (("prompts",), ("name",)),
    "list_resources": (("resources",), ("uri",)),
    "list_resource_templates": (("resourceTemplates", "resource_templates"), ("uriTemplate", "uri_template")),
}


def _first(obj: Any, names: tuple[str, ...]) -> Any:
    return next((getattr(obj, name) for name in names if getattr(obj, name, None) is not None), None)


def list_names(op: str, result: Any) -> list[str]:
    """Names (tools, prompts), URIs (resources) or URI templates of a list result."""
    members, keys = LISTS[op]
    return [str(_first(item, keys)) for item in _first(result, members) or []]


def sdk_calls(api: Any) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
    """The plan's ops on a connected SDK object (1.30's ClientSession and 2.3's
    Client name these methods alike)."""
    return {
        "list_tools": lambda step: api.list_tools(),
        "list_prompts": lambda step: api.list_prompts(),
        "list_resources": lambda step: api.list_resources(),
        "list_resource_templates": lambda step: api.list_resource_templates(),
        "call_tool": lambda step: api.call_tool(step["name"], step.get("arguments", {})),
        "read_resource": lambda step: api.read_resource(step["uri"]),
        "get_prompt": lambda step: api.get_prompt(step["name"], step.get("arguments", {})),
        "ping": lambda step: api.send_ping(),
    }


async def run_steps(
    api: Any,
    steps: list[dict[str, Any]],
    timeout: float,
    mcp_error_types: tuple[type[BaseException], ...],
    results: list[dict[str, Any]],
) -> None:
    """Run every step on `api` (see sdk_calls); append each result to `results`
    as it comes, so the steps done so far are known even when the session is
    torn down under them."""
    calls = sdk_calls(api)
    for step in steps:
        op = step.get("op", "")
        call = calls.get(op)
        if call is None:
            results.append({"op": op, "ok": False, "exception": f"unknown op `{op}`"})
            continue
        try:
            with anyio.fail_after(timeout):
                value = await call(step)
        except Exception as error:  # noqa: BLE001 - reported to the test
            results.append(error_result(op, error, mcp_error_types))
            continue
        entry: dict[str, Any] = {"op": op, "ok": True}
        if op in LISTS:
            entry["names"] = list_names(op, value)
        else:
            entry["text"] = content_text(value)
            is_error = getattr(value, "isError", None)
            if is_error is None:
                is_error = getattr(value, "is_error", None)
            entry["is_error"] = bool(is_error)
        results.append(entry)


def http_recorder(log: list[dict[str, Any]]) -> Callable[[Any], Awaitable[None]]:
    """An httpx/httpx2 response event hook that records each exchange."""

    async def record(response: Any) -> None:
        request = response.request
        log.append(
            {
                "method": request.method,
                "mcp_method": request.headers.get("mcp-method"),
                "status": response.status_code,
                "content_type": response.headers.get("content-type"),
            }
        )

    return record


def main(run_plan: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> int:
    """One plan on stdin, its results on stdout. With `--serve`: one plan per
    line, one result line each, until stdin closes (saves a test run the
    interpreter start-up for every plan)."""
    if "--serve" in sys.argv[1:]:
        plans = (json.loads(line) for line in sys.stdin if line.strip())
    else:
        plans = iter([json.load(sys.stdin)])
    for plan in plans:
        sys.stdout.write(json.dumps(anyio.run(run_plan, plan)) + "\n")
        sys.stdout.flush()
    return 0
