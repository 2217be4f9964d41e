"""The bootstrap `warden envoy` renders, reshaped the way Istio and Envoy
Gateway deliver a Wasm filter: the listener names the filter `warden` and
takes its configuration from extension config discovery (ECDS); the whole
`Wasm` configuration (module, VM, policy) is a `TypedExtensionConfig` in a
file Envoy watches (`path_config_source`). See docs/deploy.md, "Policy
rollout without restarts".

Text in, text out (no YAML library): the rendered block of
`envoy.filters.http.wasm` is cut out by its indentation and re-indented.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ECDS_FILE = "warden.ecds.yaml"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def to_ecds(config: str, ecds_dir: Path) -> tuple[str, list[str]]:
    """The bootstrap with Warden's filter taken from ECDS in `ecds_dir`, and
    the filter's `typed_config` body (lines relative to it)."""
    lines = config.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- name: envoy.filters.http.wasm")
    item = _indent(lines[start])
    end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() and _indent(lines[i]) <= item)
    typed = lines[start + 1 : end]
    if typed[0].strip() != "typed_config:":
        raise ValueError(f"unexpected filter block: {typed[0]!r}")
    body = [line[item + 4 :] if line.strip() else "" for line in typed[1:]]
    pad = " " * item
    discovery = [
        f"{pad}- name: warden",
        f"{pad}  config_discovery:",
        f"{pad}    config_source:",
        f"{pad}      resource_api_version: V3",
        f"{pad}      path_config_source:",
        f'{pad}        path: "{ecds_dir / ECDS_FILE}"',
        f"{pad}        watched_directory:",
        f'{pad}          path: "{ecds_dir}"',
        f'{pad}    type_urls: ["{WASM_TYPE}"]',
    ]
    # xDS (ECDS included) needs the node's identity.
    node = [] if any(line.startswith("node:") for line in lines) else ["node:", "  id: warden-e2e", "  cluster: warden"]
    return "\n".join([*node, *lines[:start], *discovery, *lines[end:]]) + "\n", body


def ecds_document(body: list[str]) -> str:
    """The ECDS file holding the filter configuration `body`."""
    return (
        "\n".join(
            [
                "resources:",
                '- "@type": type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig',
                "  name: warden",
                "  typed_config:",
                *("    " + line if line else "" for line in body),
            ]
        )
        + "\n"
    )


def policy_of(body: list[str]) -> dict[str, Any]:
    """The policy in a filter configuration body: the `value:` scalar,
    single-quoted as `warden envoy` writes it (`''` is a quote) or
    double-quoted as `with_policy` does."""
    [value] = [line.strip()[len("value: ") :] for line in body if line.strip().startswith("value: ")]
    if value.startswith("'") and value.endswith("'"):
        return json.loads(value[1:-1].replace("''", "'"))
    return json.loads(json.loads(value))


def with_policy(body: list[str], policy: Any) -> list[str]:
    """`body` carrying another configuration (a policy, or any JSON text)."""
    text = policy if isinstance(policy, str) else json.dumps(policy)
    return [
        line[: _indent(line)] + "value: " + json.dumps(text) if line.strip().startswith("value: ") else line
        for line in body
    ]


class Rollout:
    """The ECDS file of a stack, replaced atomically (written beside it,
    then renamed over it: Envoy reloads on the rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.body: list[str] = []
        self.count = 0

    def reshape(self, config: str) -> str:
        """A `Stack.config_edit`: the ECDS-shaped bootstrap; writes the first
        ECDS file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        bootstrap, self.body = to_ecds(config, self.directory)
        self.write(self.body)
        return bootstrap

    def write(self, body: list[str]) -> None:
        self.count += 1
        staged = self.directory / f".staged-{self.count}"
        staged.write_text(ecds_document(body))
        os.replace(staged, self.directory / ECDS_FILE)
