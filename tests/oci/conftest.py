"""Shared by the OCI tests: the builder module and the built filter."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tools"))

import warden_stack  # noqa: E402


@pytest.fixture(scope="session")
def module() -> bytes:
    """The built filter (`make wasm`), as `make oci` packages it."""
    path = warden_stack.WASM_FILTER
    if not path.is_file():
        pytest.fail(f"missing {path}: run `make wasm`", pytrace=False)
    return path.read_bytes()
