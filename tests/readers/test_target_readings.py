"""Warden never allows a target that a real reader resolves outside the
allowed set.

Generated spellings of resource URIs, file paths and tool names go through
Warden (``readers.decide_all`` under ``targets.yaml``: allow lists for
everyone — resources under ``docs://public/`` and ``file:///shared/``,
``read_file`` paths under ``/shared/`` — and deny lists for the group
``ops``: every tool but ``delete_repo``, every resource but those under
``docs://internal/`` and ``file:///etc/``, every path but those under
``/etc/``) and through the readers a server uses:

* resource URIs: a server of each SDK (``sdk_reader.py`` under mcp 1.x and
  2.x: the request model — pydantic ``AnyUrl`` in 1.x, a string in 2.x —
  then the resource manager's exact lookup and ``{name}`` template matching;
  ``ts_reader.mjs``: ``McpServer`` with ``new URL`` and ``UriTemplate.match``)
  with resources and templates inside and outside the allowed set;
* tool names: the same servers' request models and tool lookup, the params
  also sent as raw JSON text (duplicate keys, escapes) parsed by each
  transport's JSON parser;
* file paths: the ``read_file`` tool of each SDK server (which hands the
  string over as sent), then the path readers a tool uses — Python's
  ``posixpath``/``ntpath`` normalisation, with percent-decoding and NFKC
  folding, a ``file:`` URL (``urllib``), and Node's ``path.posix``,
  ``path.win32``, ``decodeURIComponent`` and ``new URL``/``fileURLToPath``.

Each reader's resolution is judged by where it points: a registered resource
or tool, a template's directory joined with its parameter (read as a path,
decoded, folded), a normalised path (a relative one from the root, as a
server whose working directory is ``/`` reads it). Whenever Warden allows a
spelling, every reader's resolution must lie inside the allow list and
outside the deny list (or the reader refuses it). And the allowed set is
reachable: the plain spellings are allowed and every reader resolves them
inside, so the test can fail both ways.
"""

from __future__ import annotations

import itertools
import json
import ntpath
import posixpath
import unicodedata
from collections import Counter
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from readers import HERE, READERS, decide_all, read_with, read_with_all, resource_read, tool_call

POLICY = HERE / "targets.yaml"
VISITOR = {"sub": "bob", "actor_type": "human", "groups": ["sales"]}
OPERATOR = {"sub": "olga", "actor_type": "human", "groups": ["ops"]}

ALLOWED_PREFIXES = ("docs://public/", "file:///shared/")
DENIED_PREFIXES = ("docs://internal/", "file:///etc/")
ALLOWED_DIRECTORY = "/shared"
DENIED_TOOL = "delete_repo"

# --- the spellings -----------------------------------------------------------

# A dot segment: plain, percent-encoded (any case, twice, mixed), overlong
# UTF-8, NFKC look-alikes (fullwidth, U+2025 two-dot leader, U+2024, small
# full stop), with a NUL or a control character, or three dots.
DOTS = [
    "..",
    ".",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2E.",
    "%252e%252e",
    "%c0%ae%c0%ae",
    "\uff0e\uff0e",
    "\u2025",
    "\u2024\u2024",
    "\ufe52\ufe52",
    "%EF%BC%8E%EF%BC%8E",
    "..\x00",
    "..%00",
    "...",
]

# A separator: plain, doubled (an empty segment), percent-encoded, a
# backslash, NFKC look-alikes of `/` and `\`, and `/./`.
SEPARATORS = [
    "/",
    "//",
    "%2f",
    "%2F",
    "\\",
    "%5c",
    "%5C",
    "%252f",
    "\uff0f",
    "\u2215",
    "\uff3c",
    "/./",
]


def climbs(target: str, deep: bool = True) -> list[str]:
    """Tails that climb out of a head to `target`, each dot spelling in each
    separator spelling (and, when `deep`, from one level further down)."""
    out = []
    for sep, dots in itertools.product(SEPARATORS, DOTS):
        out.append(f"{sep}{dots}{sep}{target}")
        if deep:
            out.append(f"/x{sep}{dots}{sep}{dots}{sep}{target}")
    return out


# Tails that stay inside (or look as if they might not): queries, fragments,
# escapes of ordinary characters, control and non-ASCII characters.
PLAIN_TAILS = [
    "/intro",
    "/a.txt",
    "/x",
    "/a%20b",
    "/x?y=1",
    "/x#top",
    "/x?/../../internal/roadmap",
    "/x#/../../etc/passwd",
    "?/../internal",
    "/x%3f/../y",
    "/x%23/../y",
    "/",
    "",
    "/%41",
    "/x\x00",
    "/x\n",
    "/x\t",
    "/\x7f",
    "/\u00e9t\u00e9",
    "/x\u200b",
    "/x/",
    "ity/x",
    "/x%2",
    "/%zz",
    "/x%",
    "/%%32%65%%32%65/internal",
    "/x y",
    "/x;/../y",
    "/x|y",
    "/x:y",
    "/x@y",
    "/~x",
    "/x%7e",
    "/x%22",
]

DOCS_HEADS = [
    "docs://public",
    "docs://internal",
    " docs://internal",
    "DOCS://internal",
    "docs://INTERNAL",
    "docs://internal.",
    "docs://int%65rnal",
    "docs:internal",
    "docs:/internal",
    "DOCS://public",
    "Docs://public",
    "docs://PUBLIC",
    "docs://internal",
    "docs:///public",
    "docs:/public",
    "docs:public",
    "docs://public@internal",
    "docs://internal@public",
    "docs://pub%6cic",
    "docs:\\\\public",
    "docs://public:80",
    "docs://\uff50ublic",
]

FILE_HEADS = [
    "file:///shared",
    "file:///etc",
    "file:/etc",
    " file:///etc",
    "FILE:///etc",
    "file:///ETC",
    "file://localhost/etc",
    "file:////etc",
    "file:etc",
    "file:/\\etc",
    "FILE:///shared",
    "file:///SHARED",
    "file://shared",
    "file://SHARED",
    "file://localhost/shared",
    "file://LOCALHOST/shared",
    "file:/shared",
    "file:shared",
    "file:////shared",
    "file://evil/shared",
    "file:\\\\\\shared",
    "file:///shared%2f..",
]


# URIs outside the allowed set that the servers have registered.
OUTSIDE_URIS = ["docs://internal/roadmap", "docs://internal/x", "file:///etc/passwd", "file:///etc/x"]


def uri_variants() -> list[str]:
    """Every head with every plain tail; the first three heads of each list
    also with every climb, the first with the deeper climbs too."""
    out = list(OUTSIDE_URIS)
    for heads, target in [(DOCS_HEADS, "internal/roadmap"), (FILE_HEADS, "etc/passwd")]:
        for n, head in enumerate(heads):
            out += [head + tail for tail in PLAIN_TAILS]
            if n < 3:
                out += [head + tail for tail in climbs(target, deep=n == 0)]
    return list(dict.fromkeys(out))


PATH_HEADS = [
    "/shared",
    "//shared",
    "/shared.",
    "/SHARED",
    "/./shared",
    "shared",
    "\\shared",
    "/shar%65d",
    "/etc",
    "//etc",
    "/./etc",
    "/x/../etc",
    "etc",
    "/%65tc",
    "/\uff45tc",
]
DENIED_DIRECTORY = "/etc"


def path_variants() -> list[str]:
    """Every head with every plain tail; the first four heads also with
    every climb."""
    plain = ["/a.txt", "/x/y", "/", "", "?x", "#x", "/a%20b", "/x\x00", "/\u00e9", "/x\u200b", "/...", "/x.", "/x "]
    out = []
    for n, head in enumerate(PATH_HEADS):
        out += [head + tail for tail in plain + (climbs("etc/passwd", deep=False) if n < 4 else [])]
    return list(dict.fromkeys(out))


# Look-alikes an attacker may try for a tool name's letters.
CYRILLIC = {"a": "\u0430", "c": "\u0441", "e": "\u0435", "o": "\u043e", "p": "\u0440", "x": "\u0445", "i": "\u0456"}


def fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def name_variants() -> list[str]:
    """Each tool's name in other cases, fullwidth, with Cyrillic look-alikes,
    with a space, control, zero-width, NUL or combining character before or
    after it, `-` or a look-alike for `_`, a ligature, percent-escapes."""
    out = []
    for name in ["delete_repo", "deploy", "read_file"]:
        out += [name, name.upper(), name.capitalize(), name.title(), name.swapcase(), fullwidth(name)]
        out += [name.replace("_", "-"), name.replace("_", "\uff3f"), name.replace("_", ""), name + "."]
        for affix in [" ", "\t", "\n", "\r", "\x00", "\u200b", "\u00a0", "\u3000", "\ufeff", "%00", "\u0301"]:
            out += [name + affix, affix + name]
        out.append(name.replace("_", "_\u00ad"))
        out.append(name.replace("fi", "\ufb01"))
        for i, c in enumerate(name):
            if c in CYRILLIC:
                out.append(name[:i] + CYRILLIC[c] + name[i + 1 :])
            out.append(name[:i] + fullwidth(c) + name[i + 1 :])
            out.append(name[:i] + c.upper() + name[i + 1 :])
            out.append(name[:i] + f"%{ord(c):02x}" + name[i + 1 :])
    return list(dict.fromkeys(out))


def raw_params_texts() -> list[str]:
    """Params as raw JSON text: escapes of the denied name, duplicate keys in
    both orders, names of another JSON type."""
    out = [
        '{"name": "\\u0064elete_repo"}',
        '{"name": "delete\\u005frepo"}',
        '{"name": "delete_repo\\u0000"}',
        '{"name": "\\ud800delete_repo"}',
        '{"name": "deploy", "name": "delete_repo"}',
        '{"name": "delete_repo", "name": "deploy"}',
        '{"name": "deploy", "arguments": {}, "name": "delete_repo"}',
        '{"name": ["delete_repo"]}',
        '{"name": {"name": "delete_repo"}}',
        '{"name": null}',
        '{"name": "delete_repo", "arguments": "{}"}',
        '{"name": "deploy"}',
        '{"name": "delete_repo"}',
    ]
    out += [json.dumps({"name": name}) for name in name_variants()]
    return list(dict.fromkeys(out))


# --- how a reader's resolution is judged -----------------------------------


def decode_fully(text: str) -> str:
    for _ in range(8):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def path_stays_inside(relative: str) -> bool:
    """Whether a handler that joins `relative` (a resource's path or a
    template parameter, as the reader gave it) onto its directory stays in
    it, however it reads the text: decoded fully, NFKC-folded, `\\` as a
    separator, a leading or empty segment restarting at the root."""
    text = unicodedata.normalize("NFKC", decode_fully(relative)).replace("\\", "/")
    if "\x00" in text:
        return False
    segments = text.split("/")
    for i, segment in enumerate(segments):
        # `...` and `.. ` are `..` or `.` to Windows, which trims trailing
        # dots and spaces: counted as a climb.
        if segment == ".." or (segment.rstrip(". ") == "" and segment.startswith("..")):
            return False
        if segment == "" and i < len(segments) - 1:
            return False
    return True


def uri_inside(uri: str) -> bool:
    """Whether a URI a reader acts on is under an allowed prefix, its path
    staying there (the query and fragment are cut off)."""
    for prefix in ALLOWED_PREFIXES:
        if uri.startswith(prefix):
            rest = uri[len(prefix) :]
            for mark in "?#":
                rest = rest.split(mark, 1)[0]
            return path_stays_inside(rest)
    return False


def resource_resolution(answer: dict[str, Any]) -> str | None:
    """Where a reader's server went for a resource read, or None when it
    refused: the registered URI, or the template with its parameter."""
    if "refused" in answer:
        return None
    location = answer["resource"]
    for name, value in answer["params"].items():
        value = ",".join(value) if isinstance(value, list) else value
        location = location.replace("{" + name + "}", value)
    return location


def resource_read_inside(answer: dict[str, Any]) -> bool:
    """Whether the read stays in the allow list (or never happened)."""
    location = resource_resolution(answer)
    return location is None or (uri_inside(location) and uri_inside(answer["uri"]))


def resource_read_denied(answer: dict[str, Any]) -> bool:
    """Whether the read may reach the deny list: a URI under a denied
    prefix, or a template parameter that climbs out of its directory
    (to wherever it leads)."""
    location = resource_resolution(answer)
    if location is None:
        return False
    if any(uri.startswith(DENIED_PREFIXES) for uri in (location, answer["uri"])):
        return True
    return any(not path_stays_inside(str(value)) for value in answer["params"].values())


def path_inside(resolved: str | None) -> bool:
    return resolved is None or resolved == ALLOWED_DIRECTORY or resolved.startswith(ALLOWED_DIRECTORY + "/")


def python_path_readings(raw: str) -> dict[str, str | None]:
    """A file path as Python's own readers resolve it from the root."""

    def posix(text: str) -> str:
        return posixpath.normpath(posixpath.join("/", text))

    def windows(text: str) -> str:
        return ntpath.normpath(ntpath.join("C:\\", text))[2:].replace("\\", "/")

    def nfkc(text: str) -> str:
        return unicodedata.normalize("NFKC", text)

    try:
        file_url: str | None = posix(unquote(urlsplit("file://" + raw).path))
    except ValueError:  # urllib refuses a host that NFKC folds to a separator
        file_url = None
    return {
        "python posixpath": posix(raw),
        "python posixpath(unquote)": posix(unquote(raw)),
        "python posixpath(unquote fully)": posix(decode_fully(raw)),
        "python posixpath(NFKC)": posix(nfkc(raw)),
        "python ntpath": windows(raw),
        "python ntpath(unquote, NFKC)": windows(nfkc(unquote(raw))),
        "python urllib file: URL": file_url,
        "python os.path.join(/shared, relative)": posix(posixpath.join("/shared", raw.removeprefix("/shared/"))),
    }


# --- the runs ----------------------------------------------------------------


@pytest.fixture(scope="module")
def uri_runs() -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The URIs; Warden's decisions for the visitor (allow list) and the
    operator (deny list); every reader's answers."""
    uris = uri_variants()
    requests = [{"claims": caller, "body": resource_read(i, u)} for caller in [VISITOR, OPERATOR] for i, u in enumerate(uris)]
    decisions = decide_all(POLICY, requests)
    readings = read_with_all([{"uri": u} for u in uris])
    return uris, decisions[: len(uris)], decisions[len(uris) :], readings


@pytest.fixture(scope="module")
def tool_runs() -> tuple[list[str], list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    texts = raw_params_texts()
    requests = [
        {"claims": OPERATOR, "body_text": json.dumps(tool_call(i, {})).replace('"params": {}', f'"params": {text}')}
        for i, text in enumerate(texts)
    ]
    decisions = decide_all(POLICY, requests)
    readings = read_with_all([{"params_text": t} for t in texts])
    return texts, decisions, readings


@pytest.fixture(scope="module")
def path_runs() -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The paths; Warden's decisions for the visitor (allow list: /shared/)
    and the operator (deny list: /etc/); every reader's answers."""
    paths = path_variants()
    calls = [{"name": "read_file", "arguments": {"path": p}} for p in paths]
    requests = [{"claims": caller, "body": tool_call(i, c)} for caller in [VISITOR, OPERATOR] for i, c in enumerate(calls)]
    decisions = decide_all(POLICY, requests)
    readings = read_with_all([{"params": c} for c in calls])
    readings["node path"] = read_with("mcp-typescript", [{"path": p} for p in paths])
    return paths, decisions[: len(paths)], decisions[len(paths) :], readings


def report(kind: str, decisions: list[dict[str, Any]], counts: Counter[str]) -> None:
    allowed = sum(d["decision"] == "allow" for d in decisions)
    print(f"{kind}: {len(decisions)} variants, {allowed} allowed by Warden")
    for reader, count in sorted(counts.items()):
        print(f"  {reader}: {count}")


# --- resource URIs -----------------------------------------------------------


def test_warden_never_allows_a_uri_a_reader_resolves_outside(uri_runs) -> None:
    uris, decisions, _, readings = uri_runs
    slipped = []
    outside = Counter()
    for i, uri in enumerate(uris):
        for reader, answers in readings.items():
            if resource_read_inside(answers[i]):
                continue
            outside[f"{reader} resolves outside"] += 1
            if decisions[i]["decision"] == "allow":
                slipped.append(f"{uri!r}: {reader} reads {answers[i]}")
    report("resource URIs", decisions, outside)
    assert not slipped, f"{len(slipped)} URIs allowed but read outside:\n" + "\n".join(slipped)
    # The premise: every reader does resolve some of these spellings outside
    # (so the test above proves something for each).
    for reader in READERS:
        assert outside[f"{reader} resolves outside"] >= 5, (reader, outside)
    assert len(uris) > 2000, len(uris)


def test_warden_never_allows_a_uri_a_reader_resolves_into_a_denied_prefix(uri_runs) -> None:
    """The deny list: the operator may read anything but docs://internal/
    and file:///etc/, so a spelling of those that Warden does not recognise
    as one would slip."""
    uris, _, decisions, readings = uri_runs
    slipped = []
    denied = Counter()
    for i, uri in enumerate(uris):
        for reader, answers in readings.items():
            if not resource_read_denied(answers[i]):
                continue
            denied[f"{reader} resolves into a denied prefix"] += 1
            if decisions[i]["decision"] == "allow":
                slipped.append(f"{uri!r}: {reader} reads {answers[i]}")
    report("resource URIs (deny list)", decisions, denied)
    assert not slipped, f"{len(slipped)} URIs allowed but read in a denied prefix:\n" + "\n".join(slipped)
    for reader in READERS:
        assert denied[f"{reader} resolves into a denied prefix"] >= 10, (reader, denied)
    # The deny list is not all Warden refuses: the plain spellings of
    # everything else go through.
    allowed = [uri for uri, decision in zip(uris, decisions) if decision["decision"] == "allow"]
    assert {"docs://public/intro", "file:///shared/x", "docs://PUBLIC/x", "docs://INTERNAL/x"} <= set(allowed)


def test_plain_uris_are_allowed_and_read_inside(uri_runs) -> None:
    uris, decisions, operator_decisions, readings = uri_runs
    index = {uri: i for i, uri in enumerate(uris)}
    for uri, registered in [
        ("docs://public/intro", "docs://public/intro"),
        ("docs://public/x", "docs://public/{name}"),
        ("docs://public/a.txt", "docs://public/{name}"),
        ("file:///shared/a.txt", "file:///shared/a.txt"),
        ("file:///shared/x", "file:///shared/{name}"),
    ]:
        i = index[uri]
        assert decisions[i]["decision"] == "allow", (uri, decisions[i])
        for reader, answers in readings.items():
            assert answers[i].get("resource") == registered, (uri, reader, answers[i])
            assert resource_read_inside(answers[i]), (uri, reader, answers[i])
    # And the readers really reach what lies outside (docs://internal/ and
    # file:///etc/ are registered), which Warden denies.
    for uri in OUTSIDE_URIS:
        i = index[uri]
        assert decisions[i]["decision"] == "deny", (uri, decisions[i])
        assert operator_decisions[i]["rule"] == "no-internal-resources", (uri, operator_decisions[i])
        for reader, answers in readings.items():
            assert "resource" in answers[i] and not resource_read_inside(answers[i]), (uri, reader, answers[i])


# --- tool names --------------------------------------------------------------


def test_warden_never_allows_a_name_a_reader_resolves_to_the_denied_tool(tool_runs) -> None:
    texts, decisions, readings = tool_runs
    slipped = []
    counts = Counter()
    for i, text in enumerate(texts):
        decision = decisions[i]
        for reader, answers in readings.items():
            ran = answers[i].get("tool")
            counts[f"{reader} runs a tool"] += ran is not None
            counts[f"{reader} runs {DENIED_TOOL}"] += ran == DENIED_TOOL
            if decision["decision"] != "allow" or ran is None:
                continue
            # What Warden judged is what the reader runs.
            if ran == DENIED_TOOL or ran != decision["tool"]:
                slipped.append(f"{text}: Warden allowed `{decision['tool']}`, {reader} runs `{ran}`")
    report("tool names", decisions, counts)
    assert not slipped, f"{len(slipped)} names allowed but run as another tool:\n" + "\n".join(slipped)
    assert len(texts) > 150, len(texts)
    for reader in READERS:
        # The readers do run the denied tool from spellings other than the
        # plain one (escapes, duplicate keys), which Warden must refuse.
        assert counts[f"{reader} runs {DENIED_TOOL}"] >= 3, (reader, counts)


def test_plain_tool_names_are_allowed_and_run(tool_runs) -> None:
    texts, decisions, readings = tool_runs
    index = {text: i for i, text in enumerate(texts)}
    for name in ["deploy", "read_file"]:
        i = index[json.dumps({"name": name})]
        assert decisions[i]["decision"] == "allow", decisions[i]
        for reader, answers in readings.items():
            assert answers[i].get("tool") == name, (reader, answers[i])
    i = index[json.dumps({"name": DENIED_TOOL})]
    assert decisions[i]["decision"] == "deny" and decisions[i]["rule"] == "no-repo-deletion", decisions[i]
    for reader, answers in readings.items():
        assert answers[i].get("tool") == DENIED_TOOL, (reader, answers[i])


# --- file paths --------------------------------------------------------------


def path_resolutions(paths: list[str], readings: dict[str, list[dict[str, Any]]], i: int) -> dict[str, str | None]:
    """Every path reader's resolution of path `i`, as the SDK servers hand
    it to the tool (`test_the_sdks_hand_paths_over_as_sent`)."""
    out: dict[str, str | None] = dict(python_path_readings(paths[i]))
    out.update(readings["node path"][i]["paths"])
    return out


def test_the_sdks_hand_paths_over_as_sent(path_runs) -> None:
    """Each SDK server gives `read_file` the string sent, or refuses the
    call: so the path readers read what Warden judged."""
    paths, _, _, readings = path_runs
    for reader in READERS:
        received = [answer.get("arguments", {}).get("path") for answer in readings[reader]]
        assert received == paths, reader


def test_warden_never_allows_a_path_a_reader_resolves_outside(path_runs) -> None:
    paths, decisions, _, readings = path_runs
    slipped = []
    outside = Counter()
    for i, raw in enumerate(paths):
        for reader, resolved in path_resolutions(paths, readings, i).items():
            if path_inside(resolved):
                continue
            outside[f"{reader} resolves outside"] += 1
            if decisions[i]["decision"] == "allow":
                slipped.append(f"{raw!r}: {reader} reads {resolved!r}")
    report("file paths", decisions, outside)
    assert not slipped, f"{len(slipped)} paths allowed but read outside:\n" + "\n".join(slipped)
    assert len(paths) > 800, len(paths)
    assert len(outside) >= 10 and min(outside.values()) >= 5, outside


def test_warden_never_allows_a_path_a_reader_resolves_into_the_denied_directory(path_runs) -> None:
    """The deny list: the operator may read any path but those under /etc/."""
    paths, _, decisions, readings = path_runs
    slipped = []
    denied = Counter()
    for i, raw in enumerate(paths):
        for reader, resolved in path_resolutions(paths, readings, i).items():
            if resolved is None or not (resolved == DENIED_DIRECTORY or resolved.startswith(DENIED_DIRECTORY + "/")):
                continue
            denied[f"{reader} resolves into /etc"] += 1
            if decisions[i]["decision"] == "allow":
                slipped.append(f"{raw!r}: {reader} reads {resolved!r}")
    report("file paths (deny list)", decisions, denied)
    assert not slipped, f"{len(slipped)} paths allowed but read under /etc:\n" + "\n".join(slipped)
    assert len(denied) >= 10 and min(denied.values()) >= 5, denied
    index = {p: i for i, p in enumerate(paths)}
    assert decisions[index["/etc/a.txt"]]["rule"] == "no-etc-files", decisions[index["/etc/a.txt"]]
    assert decisions[index["/shared/a.txt"]]["decision"] == "allow"


def test_plain_paths_are_allowed_and_read_inside(path_runs) -> None:
    paths, decisions, _, readings = path_runs
    index = {p: i for i, p in enumerate(paths)}
    for raw in ["/shared/a.txt", "/shared/x/y"]:
        i = index[raw]
        assert decisions[i]["decision"] == "allow", (raw, decisions[i])
        resolutions = path_resolutions(paths, readings, i)
        assert len(resolutions) >= 12, resolutions
        assert all(path_inside(r) and r is not None for r in resolutions.values()), (raw, resolutions)
    i = index["/shared/../etc/passwd"]
    assert decisions[i]["decision"] == "deny"
    assert not all(path_inside(r) for r in path_resolutions(paths, readings, i).values())
