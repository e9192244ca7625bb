#!/usr/bin/env python3
"""Writes a one-layer container image as a tar archive, without a container engine.

The archive is at once an OCI image layout (oci-layout, index.json, blobs/sha256/...) and a
docker-archive (manifest.json with RepoTags), so that all of these load it with its name:

    ctr -n k8s.io images import FILE     (containerd: the io.containerd.image.name annotation)
    docker load -i FILE / podman load -i FILE
    skopeo copy oci-archive:FILE ... / docker-archive:FILE ...

Everything in it is deterministic (sorted entries, uid/gid 0, mtime SOURCE_DATE_EPOCH or 0,
gzip without a time stamp), so the same inputs give the same bytes and the same digests.

Example (what hack/build-images.sh does for Argo's executor):

    hack/oci_archive.py --name localhost/mlpipeline/argoexec:0123abcd --out argoexec.tar \\
        --add /usr/local/bin/argoexec "$MLPIPELINE_BIN_DIR/argoexec" \\
        --add /bin/busybox /bin/busybox --symlink /bin/sh busybox --dir /tmp 1777 \\
        --env PATH=/usr/local/bin:/usr/bin:/bin --entrypoint '["argoexec"]'

Standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import posixpath
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"
GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Entry:
    """One member of the layer: a directory, a regular file (from a path or bytes), a symlink."""

    path: str  # absolute path in the image
    kind: str  # "dir", "file", "symlink"
    mode: int = 0o755
    source: Path | None = None
    data: bytes | None = None
    target: str = ""


def image_path(path: str) -> str:
    """'/usr/local/bin/x' -> 'usr/local/bin/x' (tar member names are relative, no '..')."""
    clean = posixpath.normpath("/" + path).lstrip("/")
    if not clean or clean.startswith(".."):
        raise SystemExit(f"oci_archive: bad path in the image: {path!r}")
    return clean


def parse_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise SystemExit(f"oci_archive: bad mode {text!r} (octal, e.g. 1777)") from None
    if not 0 <= mode <= 0o7777:
        raise SystemExit(f"oci_archive: bad mode {text!r}")
    return mode


def layer_entries(args: argparse.Namespace) -> list[Entry]:
    """The members asked for on the command line, plus their missing parent directories."""
    entries: dict[str, Entry] = {}

    def put(entry: Entry) -> None:
        name = image_path(entry.path)
        if name in entries and entries[name] != entry:
            raise SystemExit(f"oci_archive: /{name} is given twice")
        entries[name] = entry

    for dest, mode in args.dir:
        put(Entry(dest, "dir", parse_mode(mode)))
    for dest, src in args.add:
        source = Path(src).resolve()
        if not source.is_file():
            raise SystemExit(f"oci_archive: {src}: not a file")
        put(Entry(dest, "file", source.stat().st_mode & 0o7777, source=source))
    for dest, text in args.text:
        put(Entry(dest, "file", 0o644, data=text.encode()))
    for dest, target in args.symlink:
        put(Entry(dest, "symlink", 0o777, target=target))

    for name in list(entries):
        parent = posixpath.dirname(name)
        while parent:
            entries.setdefault(parent, Entry("/" + parent, "dir", 0o755))
            parent = posixpath.dirname(parent)
    return [entries[name] for name in sorted(entries)]


def write_layer(entries: Sequence[Entry], out: BinaryIO, mtime: int) -> None:
    """An uncompressed tar of the entries, in order, owned by root, with a fixed mtime."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(image_path(entry.path))
            info.mode = entry.mode
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target
                tar.addfile(info)
            elif entry.source is not None:
                info.size = entry.source.stat().st_size
                with entry.source.open("rb") as f:
                    tar.addfile(info, f)
            else:
                data = entry.data or b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


class Hashing:
    """A write-only file object that counts and hashes what goes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.out.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.out.flush()


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build(args: argparse.Namespace) -> None:
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    created = "1970-01-01T00:00:00Z" if mtime == 0 else _rfc3339(mtime)
    arch = args.arch or GOARCH.get(os.uname().machine, os.uname().machine)
    entries = layer_entries(args)
    out_path = Path(args.out)

    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".oci-archive.") as tmp:
        # The layer: the uncompressed tar's digest is the diff id; the blob is its gzip.
        raw_path = Path(tmp, "layer.tar")
        with raw_path.open("wb") as f:
            raw = Hashing(f)
            write_layer(entries, raw, mtime)  # type: ignore[arg-type]
        diff_id = "sha256:" + raw.sha.hexdigest()
        blob_path = Path(tmp, "layer.blob")
        if args.compress == "gzip":
            with raw_path.open("rb") as src, blob_path.open("wb") as f:
                blob = Hashing(f)
                with gzip.GzipFile(fileobj=blob, mode="wb", mtime=0, filename="") as gz:
                    shutil.copyfileobj(src, gz, 1 << 20)
            raw_path.unlink()
            layer_type = OCI_LAYER_GZIP
        else:
            raw_path.rename(blob_path)
            blob = raw
            layer_type = OCI_LAYER_TAR
        layer_digest = "sha256:" + blob.sha.hexdigest()

        config: dict[str, Any] = {"Env": args.env or []}
        if args.entrypoint is not None:
            config["Entrypoint"] = args.entrypoint
        if args.cmd is not None:
            config["Cmd"] = args.cmd
        if args.user:
            config["User"] = args.user
        if args.workdir:
            config["WorkingDir"] = args.workdir
        if args.label:
            config["Labels"] = dict(label.split("=", 1) for label in args.label)
        image_config = {
            "architecture": arch,
            "os": "linux",
            "created": created,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created, "created_by": "hack/oci_archive.py"}],
        }
        config_bytes = json_bytes(image_config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": digest_of(config_bytes),
                "size": len(config_bytes),
            },
            "layers": [{"mediaType": layer_type, "digest": layer_digest, "size": blob.size}],
        }
        manifest_bytes = json_bytes(manifest)
        tag = args.name.rsplit(":", 1)[1] if ":" in args.name.rsplit("/", 1)[-1] else "latest"
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest_of(manifest_bytes),
                    "size": len(manifest_bytes),
                    "platform": {"architecture": arch, "os": "linux"},
                    "annotations": {CONTAINERD_NAME: args.name, OCI_REF_NAME: tag},
                }
            ],
        }

        def blob_name(digest: str) -> str:
            return "blobs/sha256/" + digest.split(":", 1)[1]

        docker_manifest = [
            {
                "Config": blob_name(digest_of(config_bytes)),
                "RepoTags": [args.name],
                "Layers": [blob_name(layer_digest)],
            }
        ]
        members: list[tuple[str, bytes | Path]] = [
            ("oci-layout", json_bytes({"imageLayoutVersion": "1.0.0"})),
            ("index.json", json_bytes(index)),
            ("manifest.json", json_bytes(docker_manifest)),
            (blob_name(digest_of(config_bytes)), config_bytes),
            (blob_name(digest_of(manifest_bytes)), manifest_bytes),
            (blob_name(layer_digest), blob_path),
        ]
        tmp_out = Path(tmp, "image.tar")
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
            for directory in ("blobs", "blobs/sha256"):
                info = tarfile.TarInfo(directory)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
                tar.addfile(info)
            for name, content in members:
                info = tarfile.TarInfo(name)
                info.mode, info.mtime = 0o644, mtime
                if isinstance(content, Path):
                    info.size = content.stat().st_size
                    with content.open("rb") as blob_file:
                        tar.addfile(info, blob_file)
                else:
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
        tmp_out.replace(out_path)
    print(
        f"oci_archive: {args.name} -> {out_path} "
        f"(manifest {digest_of(manifest_bytes)}, layer {blob.size} bytes)",
        file=sys.stderr,
    )


def _rfc3339(seconds: int) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)  # noqa: UP017
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def json_list(text: str) -> list[str]:
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise argparse.ArgumentTypeError(f"not a JSON list of strings: {text}")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="oci_archive.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", required=True, help="full reference, e.g. localhost/x/y:tag")
    parser.add_argument("--out", required=True, help="the archive to write (replaced atomically)")
    parser.add_argument(
        "--add",
        nargs=2,
        action="append",
        default=[],
        metavar=("DEST", "SRC"),
        help="copy the file SRC to DEST in the image (keeps its mode)",
    )
    parser.add_argument(
        "--text",
        nargs=2,
        action="append",
        default=[],
        metavar=("DEST", "TEXT"),
        help="a file DEST with the content TEXT (mode 0644)",
    )
    parser.add_argument(
        "--symlink",
        nargs=2,
        action="append",
        default=[],
        metavar=("DEST", "TARGET"),
        help="a symlink DEST -> TARGET",
    )
    parser.add_argument(
        "--dir",
        nargs=2,
        action="append",
        default=[],
        metavar=("DEST", "MODE"),
        help="a directory with an octal mode, e.g. --dir /tmp 1777",
    )
    parser.add_argument("--entrypoint", type=json_list, help="JSON list, e.g. '[\"/pause\"]'")
    parser.add_argument("--cmd", type=json_list, help="JSON list")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE")
    parser.add_argument("--user", help="e.g. 65535:65535")
    parser.add_argument("--workdir", help="working directory")
    parser.add_argument("--label", action="append", default=[], help="NAME=VALUE")
    parser.add_argument("--arch", help="GOARCH of the image (default: this machine's)")
    parser.add_argument(
        "--compress",
        choices=["gzip", "none"],
        default="gzip",
        help="layer compression (default gzip)",
    )
    args = parser.parse_args(argv)
    for value in (*args.env, *args.label):
        if "=" not in value:
            parser.error(f"expected NAME=VALUE, got {value!r}")
    build(args)


if __name__ == "__main__":
    main()
