"""tools/oci_image.py on its own: the shapes it writes and that they are
reproducible (no registry needed)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import oci_image as oci
import pytest


@pytest.fixture
def layouts(tmp_path, module):
    digests = oci.build(module, tmp_path / "oci", tag="t1")
    return tmp_path / "oci", digests


def test_building_twice_gives_the_same_digests_and_bytes(tmp_path, module):
    first = oci.build(module, tmp_path / "a")
    second = oci.build(module, tmp_path / "b")
    assert first == second
    for shape in oci.SHAPES:
        files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / shape).rglob("*") if p.is_file())
        files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b" / shape).rglob("*") if p.is_file())
        assert [p.parts[1:] for p in files_a] == [p.parts[1:] for p in files_b]
        for rel in files_a:
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_another_module_gives_other_digests(tmp_path, module):
    """Guards the test above: the digest depends on the module."""
    changed = module + b"\0"
    assert oci.build(module, tmp_path / "a") != oci.build(changed, tmp_path / "b")


def test_rebuilding_leaves_no_stale_blob(tmp_path, module):
    oci.build(module + b"\0", tmp_path)
    oci.build(module, tmp_path)
    for shape in oci.SHAPES:
        _, manifest = oci.read_manifest(tmp_path / shape)
        index = json.loads((tmp_path / shape / "index.json").read_text())
        wanted = {manifest["config"]["digest"], index["manifests"][0]["digest"]}
        wanted |= {layer["digest"] for layer in manifest["layers"]}
        present = {"sha256:" + p.name for p in (tmp_path / shape / "blobs" / "sha256").iterdir()}
        assert present == wanted


def test_layouts_are_oci_image_layouts(layouts):
    root, digests = layouts
    for shape in oci.SHAPES:
        layout = root / shape
        assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
        index = json.loads((layout / "index.json").read_text())
        assert index["schemaVersion"] == 2 and index["mediaType"] == oci.INDEX
        [entry] = index["manifests"]
        assert entry["mediaType"] == oci.MANIFEST
        assert entry["annotations"] == {oci.REF_NAME: "t1"}
        assert entry["digest"] == digests[shape]
        # Every JSON document is stored in its one canonical form.
        raw = oci.read_blob(layout, entry["digest"])
        assert raw == oci.canonical_json(json.loads(raw))
        assert entry["size"] == len(raw)


def test_compat_image_holds_plugin_wasm_in_one_fixed_tar_gzip_layer(layouts, module):
    root, _ = layouts
    _, manifest = oci.read_manifest(root / "compat")
    assert manifest["mediaType"] == oci.MANIFEST
    assert manifest["annotations"] == {"module.wasm.image/variant": "compat"}
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    blob = oci.read_blob(root / "compat", layer["digest"])
    # gzip header: no name flag, mtime 0.
    assert blob[3] & 0x08 == 0 and blob[4:8] == b"\0\0\0\0"
    tar_bytes = gzip.decompress(blob)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as archive:
        [member] = archive.getmembers()
        assert (member.name, member.mtime, member.uid, member.gid, member.uname, member.gname, member.mode) == (
            "plugin.wasm", 0, 0, 0, "", "", 0o644,
        )
        assert archive.extractfile(member).read() == module
    config = json.loads(oci.read_blob(root / "compat", manifest["config"]["digest"]))
    # The config names the uncompressed layer, as registries and runtimes check.
    assert config["rootfs"] == {"type": "layers", "diff_ids": [oci.digest_of(tar_bytes)]}
    assert "created" not in config
    assert oci.module_of(root / "compat") == module


def test_wasm_artifact_has_a_runtime_config_and_the_raw_module(layouts, module):
    root, _ = layouts
    _, manifest = oci.read_manifest(root / "wasm")
    assert manifest["config"]["mediaType"] == "application/vnd.module.wasm.config.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.module.wasm.config.v1+json",
        "application/vnd.module.wasm.content.layer.v1+wasm",
    ]
    assert "annotations" not in manifest
    runtime = json.loads(oci.read_blob(root / "wasm", manifest["layers"][0]["digest"]))
    assert runtime["type"] == "envoy_proxy" and runtime["config"]["root_ids"] == ["warden"]
    assert oci.read_blob(root / "wasm", manifest["layers"][1]["digest"]) == module
    assert manifest["layers"][1]["digest"] == oci.digest_of(module)
    assert oci.module_of(root / "wasm") == module


def test_a_tampered_blob_is_caught(layouts):
    root, _ = layouts
    _, manifest = oci.read_manifest(root / "wasm")
    digest = manifest["layers"][1]["digest"]
    path = root / "wasm" / "blobs" / "sha256" / digest.removeprefix("sha256:")
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="does not match"):
        oci.module_of(root / "wasm")


def test_cli_refuses_a_file_that_is_not_wasm(tmp_path, capsys):
    text = tmp_path / "not.wasm"
    text.write_text("hello")
    with pytest.raises(SystemExit):
        oci.main(["--wasm", str(text), "--out", str(tmp_path / "out")])
    assert "not a WebAssembly module" in capsys.readouterr().err
