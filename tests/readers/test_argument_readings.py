"""Deny rules hold for every spelling the server accepts.

The MCP Python SDK 1.x validates ``tools/call`` arguments the way this test
does: FastMCP's ``func_metadata`` builds a pydantic model from the tool's
signature, ``pre_parse_json`` turns JSON strings given for non-``str``
parameters into objects and arrays, and the model validates the result in
lax mode. So ``force: "yes"`` reaches a ``bool`` parameter as ``True``.

For many spellings of each argument, the test asks that real reader what
the tool would receive, and asks Warden (``policy-sdk``'s ``decide`` example:
token verification, the JSON-RPC decoder and the compiled policy, the code
the filter runs) what it decides under ``policy.yaml``, whose deny rules
refuse certain values. Whenever the tool would receive a refused value,
Warden must have denied the call.

Run by ``make test-readers`` (part of ``make test``), which builds the
example first.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp.server.fastmcp.utilities.func_metadata import func_metadata
from pydantic import BaseModel, ValidationError

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
POLICY = HERE / "policy.yaml"
DECIDE = Path(os.environ.get("WARDEN_DECIDE") or REPO_ROOT / "target" / "debug" / "examples" / "decide")
BUILD_HINT = "cargo build -p warden-policy-sdk --features yaml,testing --example decide"

CALLER = {"sub": "bob", "actor_type": "human", "groups": ["sales"]}


class Options(BaseModel):
    force: bool = False
    level: int = 0


def deploy(
    environment: str = "staging",
    force: bool = False,
    replicas: int = 1,
    ratio: float = 1.0,
    size: int = 1,
    options: Options | None = None,
    tags: list[str] | None = None,
    owner: str | None = "nobody",
) -> str:
    """The tool behind `policy.yaml`'s rules (never called)."""
    return environment


META = func_metadata(deploy)


def server_reading(arguments: dict[str, Any]) -> dict[str, Any] | None:
    """What `deploy` would receive, as the SDK computes it; None when the SDK
    refuses the arguments (the tool never runs)."""
    try:
        pre_parsed = META.pre_parse_json(arguments)
        return META.arg_model.model_validate(pre_parsed).model_dump_one_level()
    except ValidationError:
        return None


def refused_by_policy(read: dict[str, Any]) -> list[str]:
    """The deny rules of `policy.yaml` that the tool's received values hit,
    judged on the values themselves."""
    hits = []
    if read["force"] is True:
        hits.append("no-forced-deploys")
    if read["replicas"] == 0:
        hits.append("no-empty-deploys")
    if read["ratio"] in (0.5, 2.0):
        hits.append("no-half-ratios")
    if read["size"] >= 100:
        hits.append("no-huge-deploys")
    options = read["options"]
    if options is not None and options.force is True:
        hits.append("no-forced-options")
    if options is not None and options.level == 3:
        hits.append("no-deep-levels")
    if read["tags"] and read["tags"][0] == "prod":
        hits.append("no-prod-tags")
    if read["owner"] is None:
        hits.append("no-null-owner")
    return hits


# Spellings a client may send for a scalar: the JSON values themselves and
# strings that lax validation reads as booleans and numbers, with case,
# whitespace, signs, exponents, underscores, Unicode digits and spaces.
SCALARS: list[Any] = [
    True, False, None, 0, 1, 2, 3, -1, 99, 100, 101, 0.0, -0.0, 0.5, 1.0, 2.0, 3.0, 99.5, 100.0, 1e2, 1.5,
    "true", "True", "TRUE", "tRuE", "t", "T", "y", "Y", "yes", "YES", "on", "On", "ON",
    "false", "False", "f", "n", "no", "off", "OFF",
    "1", "0", "2", "3", "100", "99", " 1", "1 ", "\t0\n", " 0 ", "+0", "-0", "00", "000", "0.0", "0.00",
    "0e0", "0E5", "-0.0", "1e0", "1.0", "1.00", ".5", "0.50", "5e-1", "5E-1", "+.5", "2.0", "+2", "02",
    "3.0", " 3 ", "03", "3e0", "1_00", "1_0_0", "100.0", "1e2", "1E+2", "99.9", "1e3",
    "\u00a00", "0\u2000", "\u30000", "\u0660", "\uff10", "\u0663",
    "inf", "-inf", "+inf", "Infinity", "nan", "NaN",
    "null", " null", "null ", "None", "none", "", " ", "true ", " yes", "yes\n", "1.", "0x0", "0b0", "0o0", "1__0",
    "_0", "0_", "[]", "{}", "[true]", '"true"', "'true'", "prod", "staging",
]


def json_safe(value: Any) -> bool:
    """Whether a client can send the value as JSON (no NaN or infinity)."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return True


def option_spellings() -> list[Any]:
    """`options` as an object, as a JSON string of one (FastMCP pre-parses
    it), with lenient values inside, and with the duplicate keys and `NaN`
    that Python's JSON parser reads but a strict one refuses."""
    out: list[Any] = []
    for key, value in itertools.product(["force", "level"], SCALARS):
        inner = {key: value}
        out.append(inner)
        if json_safe(inner):
            out.append(json.dumps(inner))
            out.append(" " + json.dumps(inner, indent=1) + "\n")
    out += [
        '{"force": false, "force": true}',
        '{"force": true, "force": false}',
        '{"level": 1, "level": 3}',
        '{"level": NaN, "force": true}',
        '{"force": "yes", "level": Infinity}',
        '{"force": true',
        "not json",
        "[]",
        "null",
        {"force": True, "extra": 1},
        json.dumps(json.dumps({"force": True})),
    ]
    return out


def tag_spellings() -> list[Any]:
    return [
        ["prod"], ["prod", "x"], ["x", "prod"], [" prod"], ["PROD"], [], ["staging"],
        '["prod"]', ' ["prod", "x"] ', '["x"]', '["prod", "prod"]', "prod", "[prod]", '["prod"',
        ("prod",), [["prod"]], '[["prod"]]', [1], "[1]", None, "null",
    ]


def variants() -> list[dict[str, Any]]:
    """Every argument set sent: one argument per set, plus a few pairs."""
    out: list[dict[str, Any]] = []
    for name in ["force", "replicas", "ratio", "size", "owner", "environment"]:
        out += [{name: value} for value in SCALARS]
    out += [{"options": value} for value in option_spellings()]
    out += [{"tags": value} for value in tag_spellings()]
    out += [{"force": "no", "replicas": value} for value in SCALARS]
    return [v for v in out if json_safe(v)]


def decide_all(argument_sets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not DECIDE.exists():
        pytest.fail(f"{DECIDE} is missing; build it with `{BUILD_HINT}` (or `make test-readers`)")
    lines = [
        json.dumps(
            {
                "claims": CALLER,
                "body": {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "tools/call",
                    "params": {"name": "deploy", "arguments": arguments},
                },
            }
        )
        for i, arguments in enumerate(argument_sets)
    ]
    done = subprocess.run(
        [str(DECIDE), str(POLICY)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == len(argument_sets)
    return answers


@pytest.fixture(scope="module")
def judged() -> list[tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]]:
    argument_sets = variants()
    answers = decide_all(argument_sets)
    return [(a, server_reading(a), answer) for a, answer in zip(argument_sets, answers)]


def test_warden_denies_every_spelling_the_server_reads_as_refused(judged) -> None:
    slipped = []
    reached_a_deny = 0
    for arguments, read, answer in judged:
        if read is None:
            continue
        hits = refused_by_policy(read)
        if not hits:
            continue
        reached_a_deny += 1
        if answer["decision"] != "deny":
            slipped.append(f"{json.dumps(arguments)} reads as {hits} but Warden allowed: {answer['reason']}")
    # The generated spellings really exercise the deny rules.
    assert reached_a_deny >= 100, reached_a_deny
    assert not slipped, f"{len(slipped)} spellings slipped past deny rules:\n" + "\n".join(slipped)


def test_each_deny_rule_is_reached_through_a_lenient_spelling(judged) -> None:
    """Every deny rule is hit at least once by a spelling of another JSON type
    than its value's, and Warden names that rule."""
    rules = set()
    for arguments, read, answer in judged:
        if read is None or answer["decision"] != "deny":
            continue
        (name, sent), *_ = arguments.items()
        if isinstance(sent, str) and answer["rule"] in refused_by_policy(read):
            rules.add(answer["rule"])
    assert rules >= {
        "no-forced-deploys",
        "no-empty-deploys",
        "no-half-ratios",
        "no-huge-deploys",
        "no-forced-options",
        "no-deep-levels",
        "no-prod-tags",
        "no-null-owner",
    }, rules


def test_values_the_server_reads_as_harmless_are_allowed(judged) -> None:
    """The deny rules do not swallow the tool: the plain spellings of values
    no rule refuses go through, and over-denials stay the exception."""
    plain = [
        {"force": False},
        {"replicas": 3},
        {"ratio": 1.0},
        {"size": 99},
        {"options": {"force": False}},
        {"options": '{"level": 2}'},
        {"tags": ["staging"]},
        {"owner": "none"},
        {"environment": "prod"},
    ]
    by_arguments = {json.dumps(a, sort_keys=True): answer for a, _, answer in judged}
    for arguments in plain:
        answer = by_arguments.get(json.dumps(arguments, sort_keys=True))
        assert answer is not None, f"{arguments} was not generated"
        assert answer["decision"] == "allow", (arguments, answer)
    harmless = [(a, ans) for a, read, ans in judged if read is not None and not refused_by_policy(read)]
    over_denied = [a for a, ans in harmless if ans["decision"] == "deny"]
    print(f"{len(judged)} spellings, {len(harmless)} read as harmless, {len(over_denied)} of those denied")
    assert len(over_denied) * 4 < len(harmless), over_denied


def test_the_reader_is_lenient_as_assumed() -> None:
    """The premise: without Warden, these spellings reach the tool as the
    refused values (so the test above proves something)."""
    assert server_reading({"force": "true"})["force"] is True
    assert server_reading({"force": 1})["force"] is True
    assert server_reading({"replicas": "0"})["replicas"] == 0
    assert server_reading({"options": '{"force": true}'})["options"].force is True
    assert server_reading({"owner": "null"})["owner"] is None
    assert math.isclose(server_reading({"ratio": " 5e-1 "})["ratio"], 0.5)
