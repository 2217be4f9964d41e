#!/usr/bin/env python3
"""Assemble a release: the CLI, the filter module, its OCI layouts, SHA256SUMS.

    python3 tools/release.py --cli target/release/warden \\
        --wasm target/warden_filter.wasm --out target/release-dist

writes ``OUT/warden-VERSION/`` (VERSION is the workspace version in
Cargo.toml) holding

``warden``                   the CLI (it embeds the same module)
``warden_filter.wasm``       the filter module, for Envoy's ``--wasm``
``oci/compat``, ``oci/wasm`` the module as OCI image layouts, tagged VERSION
``BUILD``                    ``warden version``: versions, git hashes, the module's SHA-256;
                             then the tools that made the module (rustc, wasm-opt)
``SHA256SUMS``               every other file, in ``sha256sum -c`` form

and refuses to when the CLI does not embed exactly this module, or the
versions disagree. Prints the release folder. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import oci_image

REPO_ROOT = Path(__file__).resolve().parent.parent
SUMS = "SHA256SUMS"


class ReleaseError(RuntimeError):
    """The artefacts do not make a consistent release."""


def workspace_version(cargo_toml: Path = REPO_ROOT / "Cargo.toml") -> str:
    return tomllib.loads(cargo_toml.read_text())["workspace"]["package"]["version"]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_sums(folder: Path) -> Path:
    """`SHA256SUMS` over every file under `folder` but itself, sorted, paths relative."""
    lines = [
        f"{sha256_file(path)}  {path.relative_to(folder).as_posix()}\n"
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != SUMS
    ]
    sums = folder / SUMS
    sums.write_text("".join(lines))
    return sums


def check_sums(folder: Path) -> list[str]:
    """What is wrong with `folder`'s SHA256SUMS: files that differ, are missing, or are not listed."""
    listed: dict[str, str] = {}
    for line in (folder / SUMS).read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    problems = [
        f"{name}: {'missing' if not (folder / name).is_file() else 'differs'}"
        for name, digest in listed.items()
        if not (folder / name).is_file() or sha256_file(folder / name) != digest
    ]
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != SUMS}
    problems += [f"{name}: not listed" for name in sorted(present - listed.keys())]
    return problems


def cli_report(cli: Path) -> str:
    """`warden version` of the CLI with its embedded module (no override)."""
    env = {"PATH": "/usr/bin:/bin"}  # no $WARDEN_WASM: the embedded module
    result = subprocess.run([str(cli), "version"], capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        raise ReleaseError(f"`{cli} version` failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def toolchain_report() -> str:
    """The versions of the tools that make the module, as `make wasm` runs
    them: another rustc or binaryen gives other bytes (wasm-opt comes from
    the machine's packages, not a pin). A tool that cannot be asked is
    named as such, never left out."""
    lines = ["built with:"]
    for tool in (["rustc", "--version"], ["wasm-opt", "--version"]):
        try:
            result = subprocess.run(tool, capture_output=True, text=True, timeout=60)
            answer = result.stdout.strip() if result.returncode == 0 else ""
        except OSError:
            answer = ""
        lines.append(f"  {tool[0]}: {answer or 'unknown (it did not answer --version)'}")
    return "\n".join(lines) + "\n"


def check_consistent(report: str, module_sha256: str, version: str) -> None:
    """The CLI embeds this very module, and the CLI, the module and Cargo.toml say one version."""
    embedded = re.search(r"^  sha256: ([0-9a-f]{64})$", report, re.MULTILINE)
    if not embedded or embedded.group(1) != module_sha256:
        raise ReleaseError(f"the CLI does not embed this module (sha256 {module_sha256}):\n{report}")
    if not re.search(r"^  from:   embedded in this CLI$", report, re.MULTILINE):
        raise ReleaseError(f"the report is not about the embedded module:\n{report}")
    for pattern in (rf"^warden {re.escape(version)} \(git ", rf"^filter module: warden-filter {re.escape(version)} \(git "):
        if not re.search(pattern, report, re.MULTILINE):
            raise ReleaseError(f"version {version} (Cargo.toml) is not what the build reports:\n{report}")


def assemble(cli: Path, wasm: Path, out: Path) -> Path:
    version = workspace_version()
    module = wasm.read_bytes()
    report = cli_report(cli)
    check_consistent(report, hashlib.sha256(module).hexdigest(), version)
    folder = out / f"warden-{version}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copy2(cli, folder / "warden")
    (folder / "warden_filter.wasm").write_bytes(module)
    oci_image.build(module, folder / "oci", tag=version)
    (folder / "BUILD").write_text(report + toolchain_report())
    write_sums(folder)
    problems = check_sums(folder)
    if problems:
        raise ReleaseError("SHA256SUMS does not match what was written: " + "; ".join(problems))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cli", type=Path, required=True, help="the built warden CLI")
    parser.add_argument("--wasm", type=Path, required=True, help="the filter module it embeds")
    parser.add_argument("--out", type=Path, required=True, help="where the release folder goes")
    args = parser.parse_args(argv)
    try:
        folder = assemble(args.cli, args.wasm, args.out)
    except (ReleaseError, OSError, subprocess.SubprocessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
