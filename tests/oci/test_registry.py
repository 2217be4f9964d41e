"""Both layouts through a real registry: `docker-registry` (the CNCF
distribution registry, Debian package) on a free loopback port with its
storage in a temporary folder, `skopeo copy` to push each layout and pull it
back by digest. `make oci-tools` installs both."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import oci_image as oci
import pytest
import warden_stack

TOOLS = ("docker-registry", "skopeo")


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    # --insecure-policy: no signature policy for a loopback test registry;
    # --preserve-digests: fail rather than rewrite a manifest or a blob.
    command = ["skopeo", "--insecure-policy", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """host:port of a registry started for this module and stopped after it."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run `make oci-tools`", pytrace=False)
    root = tmp_path_factory.mktemp("registry")
    port = warden_stack.free_port()
    config = root / "config.yml"
    # The registry's configuration is YAML; JSON is YAML.
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(root / "storage")}},
                "http": {"addr": f"127.0.0.1:{port}", "secret": "loopback-test"},
            }
        )
    )
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        warden_stack.wait_for_port(port, 30, proc, "docker-registry")
        yield f"127.0.0.1:{port}"
    finally:
        warden_stack._stop(proc)
        log.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory, module):
    out = tmp_path_factory.mktemp("oci")
    return out, oci.build(module, out, tag="test")


def manifest_from_registry(registry: str, reference: str) -> tuple[str, dict]:
    """(Content-Type, manifest) as the registry serves it, over plain HTTP."""
    request = urllib.request.Request(
        f"http://{registry}/v2/warden/manifests/{reference}",
        headers={"Accept": oci.MANIFEST},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        assert response.headers["Docker-Content-Digest"] == oci.digest_of(body)
        return response.headers["Content-Type"], json.loads(body)


@pytest.mark.parametrize("shape", oci.SHAPES)
def test_push_then_pull_by_digest_gives_the_same_module(registry, built, module, tmp_path, shape):
    out, digests = built
    digest = digests[shape]
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{out / shape}:test", f"docker://{registry}/warden:{shape}")

    # The tag resolves to the very manifest the layout holds, byte for byte.
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry}/warden:{shape}").stdout
    assert oci.digest_of(raw.encode()) == digest
    content_type, manifest = manifest_from_registry(registry, digest)
    assert content_type == oci.MANIFEST
    assert manifest == oci.read_manifest(out / shape)[1]

    pulled = tmp_path / "pulled"
    pulled.mkdir()
    skopeo(
        "copy", "--preserve-digests", "--src-tls-verify=false",
        f"docker://{registry}/warden@{digest}", f"oci:{pulled / shape}:pulled",
    )
    pulled_digest, pulled_manifest = oci.read_manifest(pulled / shape)
    assert pulled_digest == digest
    assert oci.module_of(pulled / shape) == module

    if shape == "compat":
        assert pulled_manifest["annotations"] == {"module.wasm.image/variant": "compat"}
        assert [layer["mediaType"] for layer in pulled_manifest["layers"]] == [oci.TAR_GZIP_LAYER]
        assert pulled_manifest["config"]["mediaType"] == oci.IMAGE_CONFIG
    else:
        assert pulled_manifest["config"]["mediaType"] == oci.WASM_CONFIG
        assert [layer["mediaType"] for layer in pulled_manifest["layers"]] == [oci.WASM_CONFIG, oci.WASM_LAYER]


def test_a_rebuild_pushes_to_the_same_digest(registry, built, module, tmp_path):
    """Building again from the same module and pushing gives the digest the
    registry already has for the first build."""
    first_out, first = built
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{first_out / 'wasm'}:test", f"docker://{registry}/warden:first")
    again = oci.build(module, tmp_path / "again", tag="test")
    assert again == first
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{tmp_path / 'again' / 'wasm'}:test", f"docker://{registry}/warden:again")
    digests = {
        oci.digest_of(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry}/warden:{tag}").stdout.encode())
        for tag in ("first", "again")
    }
    assert digests == {first["wasm"]}


def test_an_unknown_digest_is_not_served(registry, built, tmp_path):
    """Guards the pulls above: pulling by a digest the registry lacks fails."""
    missing = oci.digest_of(b"not pushed")
    result = subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
         f"docker://{registry}/warden@{missing}", f"oci:{tmp_path / 'none'}:x"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
