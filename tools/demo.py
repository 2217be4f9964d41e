#!/usr/bin/env python3
"""Warden demo: real MCP clients, real Envoy, the example policy.

``make demo`` runs this script: it starts the example MCP server and Envoy with
the Warden filter and ``examples/policy.yaml``, then drives real MCP clients
as four kinds of caller and prints every call with its decision, then the
audit lines Envoy wrote, and stops everything.

* a human (alice, group eng) and a service (ci-deployer) use the MCP SDK 1.30
  client (2025 revisions: ``initialize``, a session, GET stream, DELETE);
* an agent (research-agent) and an agent acting for alice (RFC 8693 ``act``
  claim) use the MCP SDK 2.3 client in 2026-07-28 mode (no session,
  ``Mcp-Method``/``Mcp-Name`` headers), run from ``.venv-mcp2``.

Along the way it shows list filtering (each caller's ``tools/list`` holds only
what it could use), a ``disguise`` denial (``export_customers`` looks like an
unknown tool to alice), a ``step_up`` one (``rotate_keys`` without the
``ops:rotate`` scope), and who learns why: alice is told the rule and reason
(the policy discloses them to humans), the service and the agents only that
the policy refused, except by ``no-agent-deletes``, which tells agents.

``make run`` runs it with ``--serve``: the same stack on 127.0.0.1:10000 until
Ctrl-C, printing how to mint a token and each audit line as it appears.

``--header-mode stream|hold`` overrides the policy's ``filter.header_mode``:
``stream`` (the example policy's, and ``make demo``'s) renders Envoy without
``allow_on_headers_stop_iteration``, ``hold`` with it (Envoy 1.35 or later).
The exit status is 1 when the stack does not start or a client cannot connect.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TOOLS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TOOLS_DIR.parent
sys.path.insert(0, str(TOOLS_DIR))
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e" / "clients"))

import mint_token  # noqa: E402
from warden_stack import (  # noqa: E402
    EXAMPLE_POLICY,
    HEADER_MODES,
    VENV_MCP2_PYTHON,
    Stack,
    StackError,
    parse_audit_line,
)

CLIENT_TIMEOUT = 20.0


def tool(name: str, /, **arguments: Any) -> dict[str, Any]:
    return {"op": "call_tool", "name": name, "arguments": arguments}


ACTORS: list[dict[str, Any]] = [
    {
        "title": "alice, a human engineer (groups: eng)",
        "client": "mcp1",
        "token": {"sub": "alice", "actor_type": "human", "groups": ["eng"]},
        "steps": [
            {"op": "list_tools"},
            tool("search_docs", query="tokens"),
            tool("read_file", path="/srv/internal/roadmap.md"),
            tool("deploy", environment="production", replicas=3),
            tool("delete_repo", name="warden"),
            {"op": "read_resource", "uri": "docs://internal/roadmap"},
            {"op": "get_prompt", "name": "summarize", "arguments": {"text": "Warden guards MCP servers."}},
            tool("export_customers", region="eu"),
        ],
    },
    {
        "title": "ci-deployer, a service",
        "client": "mcp1",
        "token": {"sub": "ci-deployer", "actor_type": "service", "alg": "RS256"},
        "steps": [
            tool("deploy", environment="staging", replicas=3),
            tool("deploy", environment="staging", replicas=50),
            tool("deploy", environment="production", replicas=1),
        ],
    },
    {
        "title": "research-agent, an agent acting on its own",
        "client": "mcp2",
        "token": {"sub": "research-agent", "actor_type": "agent", "alg": "EdDSA"},
        "steps": [
            {"op": "list_tools"},
            tool("search_docs", query="agents"),
            tool("read_file", path="/srv/public/readme.txt"),
            tool("read_file", path="/srv/internal/roadmap.md"),
            tool("delete_repo", name="warden"),
        ],
    },
    {
        "title": "research-agent acting for alice (token sub=alice, act={sub: research-agent})",
        "client": "mcp2",
        "token": {
            "sub": "alice",
            "actor_type": "human",
            "groups": ["eng"],
            "act": [mint_token.Actor("research-agent", "agent")],
        },
        "steps": [
            tool("search_docs", query="proxy"),
            tool("deploy", environment="staging", replicas=2),
            tool("deploy", environment="production", replicas=2),
            tool("read_file", path="/srv/internal/roadmap.md"),
            tool("delete_repo", name="warden"),
            tool("rotate_keys", service="billing"),
        ],
    },
]


def mint_for(spec: dict[str, Any]) -> str:
    spec = dict(spec)
    return mint_token.mint(spec.pop("sub"), spec.pop("actor_type"), **spec)


def run_mcp1(url: str, token: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    import anyio
    import mcp1_client

    plan = {"url": url, "timeout": CLIENT_TIMEOUT, "sessions": [{"token": token, "steps": steps}]}
    return anyio.run(mcp1_client.run_plan, plan)["sessions"][0]


def run_mcp2(url: str, token: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    plan = {
        "url": url,
        "timeout": CLIENT_TIMEOUT,
        "sessions": [{"token": token, "mode": "2026-07-28", "steps": steps}],
    }
    proc = subprocess.run(
        [str(VENV_MCP2_PYTHON), "-W", "ignore", str(REPO_ROOT / "tests" / "e2e" / "clients" / "mcp2_client.py")],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT * (len(steps) + 2),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the mcp 2.3 client failed:\n{proc.stderr}")
    return json.loads(proc.stdout)["sessions"][0]


def describe_step(step: dict[str, Any]) -> str:
    if step["op"] == "call_tool":
        args = ", ".join(f"{k}={v!r}" for k, v in step["arguments"].items())
        return f"tools/call {step['name']}({args})"
    if step["op"] == "read_resource":
        return f"resources/read {step['uri']}"
    if step["op"] == "get_prompt":
        return f"prompts/get {step['name']}"
    if step["op"] == "list_tools":
        return "tools/list (filtered to what the caller could use)"
    return step["op"]


def describe_result(result: dict[str, Any]) -> str:
    if result.get("ok") and "names" in result:
        return f"ALLOW  -> sees {', '.join(sorted(result['names']))}"
    if result.get("ok"):
        text = " ".join(result.get("text", "").split())
        if len(text) > 70:
            text = text[:67] + "..."
        label = "ALLOW" if not result.get("is_error") else "ALLOW (tool error)"
        return f"{label}  -> {text}"
    error = result.get("error")
    if error is not None:
        data = error.get("data") or {}
        if isinstance(data, dict) and data.get("decision") == "deny":
            if "reason" not in data:
                # The policy does not disclose its reasons to this caller.
                return f"DENY   (rule and reason withheld; request id {data.get('request_id')})"
            rule = data.get("rule") or "no rule allows it (default deny)"
            return f"DENY   rule: {rule}; reason: {data.get('reason')}"
        # A `disguise` denial looks exactly like the server's own answer.
        return f"ERROR  {error.get('code')}: {error.get('message')}"
    return f"ERROR  {result.get('exception')}"


def format_audit(record: dict[str, Any]) -> str:
    who = record.get("subject")
    if record.get("actor") and record.get("actor") != who:
        who = f"{record.get('actor')} for {who}"
    target = record.get("tool") or record.get("resource") or record.get("prompt") or ""
    method = record.get("method") or "-"
    listed = record.get("list")
    if listed is not None:
        # The extra line of a filtered list response.
        removed = listed.get("removed") or []
        return f"        {method:26} {'':24} for {who}: hid {', '.join(removed) or '-'}"
    mode = record.get("deny_mode")
    shown = f", answered as {mode}" if mode and mode != "error" else ""
    return (
        f"  {str(record.get('decision')).upper():5} {method:26} {target:24} "
        f"by {who} ({record.get('actor_type')}), rule={record.get('rule') or '-'}, "
        f"owner={record.get('owner') or '-'}{shown}"
    )


def shown(path: Path) -> Path:
    return path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path


def mode_note(header_mode: str | None) -> str:
    if header_mode is None:
        return "the policy's header mode"
    flag = "with" if header_mode == "hold" else "without"
    return f"header mode {header_mode} (Envoy {flag} allow_on_headers_stop_iteration)"


def demo(policy: Path, workdir: Path, header_mode: str | None) -> int:
    print(f"Warden demo with {shown(policy)}, {mode_note(header_mode)}")
    stack = Stack(policy=policy, workdir=workdir, header_mode=header_mode)
    failed = 0
    started = time.monotonic()
    try:
        stack.start()
    except StackError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    try:
        print(
            f"MCP server on 127.0.0.1:{stack.server_port}, Envoy + Warden on {stack.url} "
            f"(ready in {time.monotonic() - started:.1f}s)\n"
        )
        audit_mark = stack.envoy_log.mark()
        for actor in ACTORS:
            token = mint_for(actor["token"])
            client = "mcp 1.30, 2025 revision" if actor["client"] == "mcp1" else "mcp 2.3, 2026-07-28"
            print(f"== {actor['title']}  [{client} client]")
            runner = run_mcp1 if actor["client"] == "mcp1" else run_mcp2
            session = runner(stack.url, token, actor["steps"])
            if not session.get("connected"):
                print(f"   could not connect: {session.get('connect_error')}")
                failed += 1
                continue
            for step, result in zip(actor["steps"], session["results"], strict=True):
                print(f"   {describe_step(step):58} {describe_result(result)}")
            print()
        time.sleep(0.5)
        audits = stack.envoy_log.audits(audit_mark)
        print(f"== audit lines written by the filter ({len(audits)}; full JSON in {stack.envoy_log.path})")
        for record in audits:
            print(format_audit(record))
        reached = stack.call_log.entries()
        print(f"\n== calls that reached the MCP server: {len(reached)} (denied ones never did)")
        for entry in reached:
            print(f"  {entry['kind']:8} {entry['name']:20} {json.dumps(entry['arguments'])}")
    finally:
        stack.stop()
    print("\nstopped Envoy and the MCP server")
    if failed:
        print(f"demo: {failed} client session(s) could not connect", file=sys.stderr)
        return 1
    return 0


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve(policy: Path, listen: str, workdir: Path, header_mode: str | None) -> int:
    # SIGTERM (and SIGINT even where a shell started us with it ignored) stops cleanly.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    host, _, port = listen.rpartition(":")
    stack = Stack(
        policy=policy,
        workdir=workdir,
        listen_port=int(port),
        listen_host=host or "127.0.0.1",
        header_mode=header_mode,
    )
    try:
        stack.start()
    except StackError as error:
        print(f"run: {error}", file=sys.stderr)
        return 1
    try:
        print(
            f"""Warden is serving {shown(policy)}, {mode_note(header_mode)}
  MCP endpoint (through Envoy): {stack.url}
  Envoy admin:                  http://127.0.0.1:{stack.admin_port}/
  example MCP server:           {stack.upstream_url}
  logs:                         {stack.envoy_log.path}, {stack.call_log.path}

Mint a token (demo keys) and call a tool:
  TOKEN=$(.venv/bin/python tools/mint_token.py --sub alice --actor-type human --groups eng)
  TOKEN=$(.venv/bin/python tools/mint_token.py --sub alice --actor-type human --groups eng --act research-agent:agent)
  curl -s {stack.url} -H "Authorization: Bearer $TOKEN" \\
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: deploy' \\
    -d '{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"deploy","arguments":{{"environment":"production"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}},"io.modelcontextprotocol/clientInfo":{{"name":"curl","version":"0"}}}}}}}}'

Audit lines follow as they are written. Ctrl-C stops Envoy and the server.
""",
            flush=True,
        )
        mark = stack.envoy_log.mark()
        while stack.processes_alive():
            time.sleep(0.5)
            lines, mark = stack.envoy_log.complete_lines(mark)
            for line in lines:
                record = parse_audit_line(line)
                if record is not None:
                    print(format_audit(record), flush=True)
        print("a process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping")
        return 0
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=EXAMPLE_POLICY)
    parser.add_argument("--serve", action="store_true", help="keep serving until Ctrl-C (make run)")
    parser.add_argument("--listen", default="127.0.0.1:10000", help="Envoy listener for --serve")
    parser.add_argument(
        "--header-mode",
        choices=HEADER_MODES,
        default=None,
        help="override the policy's filter.header_mode (hold renders allow_on_headers_stop_iteration)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the stack's files go (default .work/demo, or .work/run with --serve)",
    )
    args = parser.parse_args(argv)
    policy = args.policy.resolve()
    if args.serve:
        return serve(policy, args.listen, args.workdir or REPO_ROOT / ".work" / "run", args.header_mode)
    return demo(policy, args.workdir or REPO_ROOT / ".work" / "demo", args.header_mode)


if __name__ == "__main__":
    sys.exit(main())
