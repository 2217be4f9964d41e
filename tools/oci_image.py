#!/usr/bin/env python3
"""Package the filter's .wasm as OCI image layouts, reproducibly.

Two shapes, each an OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/…``) under the output folder (docs/deploy.md):

``compat/``
    An OCI image with one ``application/vnd.oci.image.layer.v1.tar+gzip``
    layer holding ``plugin.wasm`` and the manifest annotation
    ``module.wasm.image/variant: compat`` (what Istio's WasmPlugin and
    Envoy Gateway read).
``wasm/``
    The two-layer Wasm artifact: a runtime config
    (``application/vnd.module.wasm.config.v1+json``) and the raw module
    (``application/vnd.module.wasm.content.layer.v1+wasm``).

The same module always gives the same digests: every JSON document is
written with sorted keys and no spaces, the tar entry has fixed mode,
owner and timestamp (0), and the gzip header has no name and time 0.
Nothing else goes in (no build time, no host name).

    python3 tools/oci_image.py --wasm target/warden_filter.wasm --out target/oci

prints one line per layout: its name, the manifest digest and the path.
Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
TAR_GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"
WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
VARIANT_ANNOTATION = "module.wasm.image/variant"
TITLE = "org.opencontainers.image.title"
REF_NAME = "org.opencontainers.image.ref.name"
PLUGIN_FILE = "plugin.wasm"
# The filter's root context id (`root_id` in the Envoy configuration).
ROOT_ID = "warden"
# The proxy-wasm ABI the filter exports (proxy-wasm Rust SDK).
ABI_VERSION = "proxy_abi_version_0_2_1"
SHAPES = ("compat", "wasm")


def canonical_json(value: Any) -> bytes:
    """One fixed serialization: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}
    if annotations:
        found["annotations"] = dict(annotations)
    return found


def plugin_tar(module: bytes) -> bytes:
    """An uncompressed tar holding only `plugin.wasm`, with no metadata that
    depends on the machine or the time (ustar: no PAX times, no user names)."""
    info = tarfile.TarInfo(PLUGIN_FILE)
    info.size = len(module)
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(module))
    return buffer.getvalue()


def fixed_gzip(data: bytes) -> bytes:
    """gzip with no file name and modification time 0 in its header."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as stream:
        stream.write(data)
    return buffer.getvalue()


def compat_image(module: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The compat variant: (manifest, blobs by digest)."""
    layer_tar = plugin_tar(module)
    layer = fixed_gzip(layer_tar)
    config = canonical_json(
        {
            "architecture": "wasm",
            "os": "wasip1",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(layer_tar)]},
        }
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": descriptor(IMAGE_CONFIG, config),
        "layers": [descriptor(TAR_GZIP_LAYER, layer)],
        "annotations": {VARIANT_ANNOTATION: "compat"},
    }
    return manifest, {digest_of(config): config, digest_of(layer): layer}


def wasm_artifact(module: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The two-layer Wasm artifact ("oci" variant): (manifest, blobs by digest).
    The runtime config is both the manifest's config and the first layer."""
    runtime = canonical_json({"type": "envoy_proxy", "abiVersions": [ABI_VERSION], "config": {"root_ids": [ROOT_ID]}})
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": descriptor(WASM_CONFIG, runtime),
        "layers": [
            descriptor(WASM_CONFIG, runtime, {TITLE: "runtime-config.json"}),
            descriptor(WASM_LAYER, module, {TITLE: PLUGIN_FILE}),
        ],
    }
    return manifest, {digest_of(runtime): runtime, digest_of(module): module}


BUILDERS = {"compat": compat_image, "wasm": wasm_artifact}


def write_layout(directory: Path, manifest: dict[str, Any], blobs: dict[str, bytes], tag: str) -> str:
    """Write an OCI image layout holding one manifest tagged `tag` (the
    folder is replaced, so no stale blob stays); return the manifest digest."""
    if directory.exists():
        shutil.rmtree(directory)
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True)
    manifest_bytes = canonical_json(manifest)
    for data in [*blobs.values(), manifest_bytes]:
        (blob_dir / digest_of(data).removeprefix("sha256:")).write_bytes(data)
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [descriptor(MANIFEST, manifest_bytes, {REF_NAME: tag})],
    }
    (directory / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (directory / "index.json").write_bytes(canonical_json(index))
    return digest_of(manifest_bytes)


def build(module: bytes, out: Path, tag: str = "latest") -> dict[str, str]:
    """Both layouts under `out` (`out/compat`, `out/wasm`); manifest digest by shape."""
    digests = {}
    for shape in SHAPES:
        manifest, blobs = BUILDERS[shape](module)
        digests[shape] = write_layout(out / shape, manifest, blobs, tag)
    return digests


# --- reading a layout back (used by the tests, handy for a look) ---------


def read_blob(layout: Path, digest: str) -> bytes:
    """A blob of the layout, checked against its digest."""
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256":
        raise ValueError(f"unsupported digest {digest}")
    data = (layout / "blobs" / "sha256" / hexdigest).read_bytes()
    if digest_of(data) != digest:
        raise ValueError(f"blob {digest} does not match its content")
    return data


def read_manifest(layout: Path) -> tuple[str, dict[str, Any]]:
    """(digest, manifest) of the layout's one manifest."""
    index = json.loads((layout / "index.json").read_text())
    manifests = index.get("manifests", [])
    if len(manifests) != 1:
        raise ValueError(f"{layout}: expected one manifest in index.json, found {len(manifests)}")
    digest = manifests[0]["digest"]
    return digest, json.loads(read_blob(layout, digest))


def module_of(layout: Path) -> bytes:
    """The Wasm module in a layout of either shape, extracted as Istio does:
    the `plugin.wasm` of a single tar+gzip layer, or the raw module layer."""
    _, manifest = read_manifest(layout)
    layers = manifest["layers"]
    if len(layers) == 1 and layers[0]["mediaType"] == TAR_GZIP_LAYER:
        with tarfile.open(fileobj=io.BytesIO(read_blob(layout, layers[0]["digest"])), mode="r:gz") as archive:
            member = archive.extractfile(PLUGIN_FILE)
            if member is None:
                raise ValueError(f"{layout}: {PLUGIN_FILE} is not a regular file")
            return member.read()
    wasm = [layer for layer in layers if layer["mediaType"] == WASM_LAYER]
    if len(layers) == 2 and len(wasm) == 1:
        return read_blob(layout, wasm[0]["digest"])
    raise ValueError(f"{layout}: neither a compat image nor a two-layer Wasm artifact")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasm", type=Path, required=True, help="the filter module (.wasm)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the layouts (compat/, wasm/)")
    parser.add_argument("--tag", default="latest", help="the tag in each index.json (default: latest)")
    args = parser.parse_args(argv)
    module = args.wasm.read_bytes()
    if not module.startswith(b"\0asm"):
        parser.error(f"{args.wasm} is not a WebAssembly module")
    for shape, digest in build(module, args.out, args.tag).items():
        print(f"{shape} {digest} {args.out / shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
