"""`make release` (tools/release.py): the folder it writes, its SHA256SUMS,
and its refusal to ship a CLI that embeds another module."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tools"))

import oci_image  # noqa: E402
import release  # noqa: E402
import warden_stack  # noqa: E402


@pytest.fixture(scope="module")
def built() -> tuple[Path, Path]:
    missing = warden_stack.missing_binaries()
    if missing:
        pytest.fail(f"missing {', '.join(map(str, missing))}: {warden_stack.BUILD_HINT}", pytrace=False)
    return warden_stack.WARDEN_CLI, warden_stack.WASM_FILTER


@pytest.fixture(scope="module")
def folder(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    cli, wasm = built
    return release.assemble(cli, wasm, tmp_path_factory.mktemp("dist"))


def test_the_release_holds_cli_module_layouts_and_sums(folder: Path, built: tuple[Path, Path]) -> None:
    version = release.workspace_version()
    assert folder.name == f"warden-{version}"
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"warden", "warden_filter.wasm", "BUILD", "SHA256SUMS", "oci/compat/index.json", "oci/wasm/index.json"} <= names
    cli, wasm = built
    assert (folder / "warden_filter.wasm").read_bytes() == wasm.read_bytes()
    assert (folder / "warden").read_bytes() == cli.read_bytes()
    # The OCI layouts carry the very module, tagged with the version.
    assert oci_image.module_of(folder / "oci" / "compat") == wasm.read_bytes()
    assert f'"org.opencontainers.image.ref.name":"{version}"' in (folder / "oci" / "wasm" / "index.json").read_text()
    build = (folder / "BUILD").read_text()
    assert f"sha256: {hashlib.sha256(wasm.read_bytes()).hexdigest()}" in build, build
    assert build.startswith(f"warden {version} (git "), build
    # The tools that made the module, as this machine has them.
    wasm_opt = subprocess.run(["wasm-opt", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert f"\n  wasm-opt: {wasm_opt}\n" in build, build
    assert "\n  rustc: rustc " in build, build


def test_sha256sums_matches_every_file(folder: Path) -> None:
    # coreutils' own reading of the file, not only ours.
    result = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = {line.split("  ", 1)[1] for line in (folder / "SHA256SUMS").read_text().splitlines()}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert listed == present
    assert release.check_sums(folder) == []


def test_a_changed_or_added_file_is_caught(folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with (copy / "warden_filter.wasm").open("ab") as handle:
        handle.write(b"\0")
    (copy / "extra").write_text("x")
    assert release.check_sums(copy) == ["warden_filter.wasm: differs", "extra: not listed"]
    result = subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=copy, capture_output=True, text=True)
    assert result.returncode != 0


def test_a_cli_that_embeds_another_module_is_not_released(built: tuple[Path, Path], tmp_path: Path) -> None:
    cli, wasm = built
    other = tmp_path / "other.wasm"
    other.write_bytes(wasm.read_bytes() + b"\0")
    with pytest.raises(release.ReleaseError, match="does not embed this module"):
        release.assemble(cli, other, tmp_path / "dist")
    assert not (tmp_path / "dist").exists()
