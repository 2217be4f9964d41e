"""Deny rules hold for every spelling the server accepts.

The MCP Python SDK validates ``tools/call`` arguments the way a lenient
server does: FastMCP's ``func_metadata`` (``mcp.server.fastmcp`` in 1.x,
``mcp.server.mcpserver`` in 2.x, the same two steps) builds a pydantic model
from the tool's signature, ``pre_parse_json`` turns JSON strings given for
non-``str`` parameters into objects and arrays, and the model validates the
result in lax mode. So ``force: "yes"`` reaches a ``bool`` parameter as
``True``. The TypeScript SDK's ``McpServer`` validates with the tool's zod
schema (``safeParseAsync``), which coerces nothing.

For many spellings of each argument, the test asks each real reader — a
server of each SDK (``sdk_reader.py`` under ``.venv`` and ``.venv-mcp2``,
``ts_reader.mjs`` under Node) with a ``deploy`` tool of the same signature —
what the tool receives, and asks Warden (``readers.decide_all``) what it
decides under ``policy.yaml``, whose deny rules refuse certain values.
Whenever a tool would receive a refused value, Warden must have denied the
call.

Run by ``make test-readers`` (part of ``make test``), which builds the
example and sets up the readers first.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest
from readers import HERE, PYTHON_READERS, READERS, decide_all, read_with_all, tool_call

POLICY = HERE / "policy.yaml"

CALLER = {"sub": "bob", "actor_type": "human", "groups": ["sales"]}


def refused_by_policy(read: dict[str, Any]) -> list[str]:
    """The deny rules of `policy.yaml` that the tool's received values hit,
    judged on the values themselves (as the `deploy` tool received them)."""
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
    if options is not None and options["force"] is True:
        hits.append("no-forced-options")
    if options is not None and options["level"] == 3:
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


# Argument objects as raw JSON text, for spellings a Python value cannot
# carry: numbers written past a double's precision (which the server rounds
# onto a refused value), underflowing and overlong numbers, duplicate keys
# (the last one wins in Python and JavaScript), escaped keys and values.
RAW_ARGUMENTS = [
    '{"replicas": -0}',
    '{"replicas": 0e0}',
    '{"replicas": -0.0E+5}',
    '{"replicas": 1e-400}',
    '{"replicas": 0.0000000000000000000001}',
    '{"ratio": 0.50000000000000001}',
    '{"ratio": 0.49999999999999999}',
    '{"ratio": 5000000000000000000000e-22}',
    '{"ratio": 2.0000000000000001}',
    '{"ratio": 1.9999999999999999}',
    # Just below the halfway point above 0.5 and above 2: correctly rounded,
    # 0.5 and 2.0; serde_json's default (best-effort) parsing made them the
    # next double up, which no deny rule named.
    '{"ratio": 0.500000000000000055511151231257827021181583404541005625}',
    '{"ratio": 2.0000000000000002220446049250313080847263336181640525}',
    '{"size": 99.99999999999999289457264239899814128875732421875001}',
    '{"size": 99.999999999999999999}',
    '{"size": 1e2}',
    '{"size": 100000000000000000000000000}',
    '{"size": 1e400}',
    '{"options": "{\\"level\\": 2.9999999999999999}"}',
    '{"options": {"level": 2.9999999999999999}}',
    '{"options": "{\\"level\\": 3e0}"}',
    '{"force": true, "force": false}',
    '{"force": false, "force": true}',
    '{"replicas": 1, "replicas": 0}',
    '{"options": {"force": false, "force": true}}',
    '{"\\u0066orce": true}',
    '{"force": "\\u0074rue"}',
    '{"owner": "n\\u0075ll"}',
    '{"tags": ["\\u0070rod"]}',
    '{"tags": "[\\"\\\\u0070rod\\"]"}',
]


def received_arguments(answers: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """What `deploy` received from each request; None when the reader
    refused the arguments (the tool never ran)."""
    out: list[dict[str, Any] | None] = []
    for answer in answers:
        if "refused" in answer:
            out.append(None)
        else:
            assert answer["tool"] == "deploy", answer
            out.append(answer["arguments"])
    return out


def params_text(arguments: dict[str, Any] | str) -> str:
    """`tools/call` params as JSON text, raw argument text spliced in."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return '{"name": "deploy", "arguments": ' + raw + "}"


def reader_lines(argument_sets: list[dict[str, Any] | str]) -> list[dict[str, Any]]:
    return [{"params_text": params_text(a)} for a in argument_sets]


Judged = list[tuple[dict[str, Any] | str, dict[str, Any] | None, dict[str, Any]]]


@pytest.fixture(scope="module")
def runs() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Every argument set, Warden's decisions, and every reader's answers."""
    argument_sets: list[dict[str, Any] | str] = [*variants(), *RAW_ARGUMENTS]
    requests = [
        {"claims": CALLER, "body_text": json.dumps(tool_call(i, {})).replace("{}", params_text(a))}
        for i, a in enumerate(argument_sets)
    ]
    return argument_sets, decide_all(POLICY, requests), read_with_all(reader_lines(argument_sets))


@pytest.fixture(scope="module", params=list(READERS))
def reader(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def judged(reader: str, runs) -> Judged:
    argument_sets, answers, readings = runs
    return list(zip(argument_sets, received_arguments(readings[reader]), answers))


def test_warden_denies_every_spelling_the_server_reads_as_refused(reader: str, judged: Judged) -> None:
    slipped = []
    reached_a_deny = 0
    accepted = sum(read is not None for _, read, _ in judged)
    for arguments, read, answer in judged:
        if read is None:
            continue
        hits = refused_by_policy(read)
        if not hits:
            continue
        reached_a_deny += 1
        if answer["decision"] != "deny":
            slipped.append(f"{params_text(arguments)} reads as {hits} but Warden allowed: {answer['reason']}")
    print(f"{reader}: {len(judged)} argument sets, {accepted} accepted, {reached_a_deny} read as refused values")
    # The generated spellings really exercise the deny rules (the strict
    # TypeScript reader accepts far fewer of them).
    assert reached_a_deny >= (100 if reader in PYTHON_READERS else 15), reached_a_deny
    assert not slipped, f"{reader}: {len(slipped)} spellings slipped past deny rules:\n" + "\n".join(slipped)


DENY_RULES = {
    "no-forced-deploys",
    "no-empty-deploys",
    "no-half-ratios",
    "no-huge-deploys",
    "no-forced-options",
    "no-deep-levels",
    "no-prod-tags",
    "no-null-owner",
}


def test_each_deny_rule_is_reached_through_a_spelling_the_reader_accepts(reader: str, judged: Judged) -> None:
    """Every deny rule is hit, and Warden names that rule: through a spelling
    of another JSON type than its value's where the reader is lenient (the
    Python SDKs), through the plain spelling where it is strict (TypeScript)."""
    rules = set()
    for arguments, read, answer in judged:
        if read is None or answer["decision"] != "deny" or isinstance(arguments, str):
            continue
        (name, sent), *_ = arguments.items()
        lenient = isinstance(sent, str) or reader not in PYTHON_READERS
        if lenient and answer["rule"] in refused_by_policy(read):
            rules.add(answer["rule"])
    assert rules >= DENY_RULES, rules


def test_values_the_server_reads_as_harmless_are_allowed(reader: str, judged: Judged) -> None:
    """The deny rules do not swallow the tool: the plain spellings of values
    no rule refuses go through, and over-denials stay the exception."""
    plain = [
        {"force": False},
        {"replicas": 3},
        {"ratio": 1.0},
        {"size": 99},
        {"options": {"force": False}},
        {"tags": ["staging"]},
        {"owner": "none"},
        {"environment": "prod"},
    ]
    if reader in PYTHON_READERS:
        plain.append({"options": '{"level": 2}'})
    by_arguments = {params_text(a): (read, answer) for a, read, answer in judged}
    for arguments in plain:
        found = by_arguments.get(params_text(arguments))
        assert found is not None, f"{arguments} was not generated"
        read, answer = found
        assert read is not None, f"{reader} refused the plain spelling {arguments}"
        assert answer["decision"] == "allow", (arguments, answer)
    harmless = [(a, ans) for a, read, ans in judged if read is not None and not refused_by_policy(read)]
    over_denied = [a for a, ans in harmless if ans["decision"] == "deny"]
    print(f"{reader}: {len(harmless)} read as harmless, {len(over_denied)} of those denied")
    assert len(over_denied) * 4 < len(harmless), over_denied


def test_the_reader_reads_as_assumed(reader: str, judged: Judged) -> None:
    """The premise: the Python SDKs' readers are lenient, so without Warden
    these spellings reach the tool as the refused values (and the tests above
    prove something); the TypeScript SDK's is strict and refuses them."""
    reads = {params_text(a): read for a, read, _ in judged}

    def read(arguments: dict[str, Any]) -> dict[str, Any] | None:
        return reads[params_text(arguments)]

    # The plain spellings read the same everywhere.
    assert read({"force": True})["force"] is True
    assert read({"options": {"level": 3}})["options"]["level"] == 3
    lenient = [{"force": "true"}, {"force": 1}, {"replicas": "0"}, {"options": '{"force": true}'}, {"ratio": "5e-1"}]
    if reader in PYTHON_READERS:
        assert read(lenient[0])["force"] is True
        assert read(lenient[1])["force"] is True
        assert read(lenient[2])["replicas"] == 0
        assert read(lenient[3])["options"]["force"] is True
        assert math.isclose(read(lenient[4])["ratio"], 0.5)
        assert read({"owner": "null"})["owner"] is None
    else:
        assert [read(a) for a in lenient] == [None] * len(lenient)
        assert read({"owner": "null"})["owner"] == "null"
