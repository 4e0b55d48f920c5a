"""Check an uploaded package before anything is stored or deployed.

A package is untrusted bytes: it is opened as a gzip tar in memory, every
member is checked (no absolute paths, no `..`, no links leaving the folder,
no devices), sizes are capped packed and unpacked, and only two members are
read: `manifest.json` and the flow file it names. Nothing is extracted to
disk and nothing in it is imported or run.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import zlib
from dataclasses import dataclass
from typing import Optional

from pydantic import ValidationError

from flowplane.graph import SourceFlow
from flowplane.manifest import Manifest
from flowplane.package import MANIFEST_NAME, package_key

from .errors import BadRequest, PayloadTooLarge
from .flowcheck import check_flow

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_LINK_HOPS = 40
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:[\\/]")
_MAX_FLOW_FILE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class ValidatedPackage:
    sha256: str
    size: int
    manifest: Manifest
    source: SourceFlow
    data: bytes

    @property
    def key(self) -> str:
        return package_key(self.sha256)


def check_size(size: int, cap: int) -> None:
    if size > cap:
        raise PayloadTooLarge(
            f"the package is {size} bytes; the limit is {cap} bytes (FLOWPLANE_MAX_PACKAGE_BYTES)",
            field="package",
            size=size,
            limit=cap,
        )


def _member_name(raw: str) -> str:
    name = raw
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _is_absolute(name: str) -> bool:
    return name.startswith("/") or name.startswith("\\") or bool(_WINDOWS_ABS.match(name))


def _resolve(path: str, links: dict[str, str]) -> Optional[list[str]]:
    """`path`'s components with the archive's own symlinks followed; None if it leaves the root.

    Checking each link's target on its own is not enough: `a/b -> ..` stays inside,
    but `c -> a/b/..` then leaves it. Following links as a filesystem would catches that.
    """
    parts: list[str] = []
    todo = [p for p in path.split("/") if p not in ("", ".")]
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        candidate = "/".join([*parts, part])
        if candidate in links:
            hops += 1
            target = links[candidate]
            if hops > _MAX_LINK_HOPS or _is_absolute(target):
                return None
            todo = [p for p in target.split("/") if p not in ("", ".")] + todo
            continue
        parts.append(part)
    return parts


def _open_archive(data: bytes) -> tarfile.TarFile:
    if not data.startswith(_GZIP_MAGIC):
        raise BadRequest(
            "the package is not gzip-compressed: expected a .tar.gz made by `step-functions create`",
            field="package",
        )
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
        tar.getmembers()  # reads the whole index: a truncated or non-tar body fails here
        return tar
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise BadRequest(f"the package is not a readable gzip-compressed tar archive ({e})", field="package") from None


def inspect_members(tar: tarfile.TarFile, max_unpacked: int) -> dict[str, tarfile.TarInfo]:
    """Regular files by name, after refusing anything that could write outside the folder."""
    files: dict[str, tarfile.TarInfo] = {}
    links: dict[str, str] = {}
    hardlinks: dict[str, str] = {}
    total = 0
    for m in tar.getmembers():
        raw = m.name
        if _is_absolute(raw):
            raise BadRequest(f"the package holds an absolute path {raw!r}; paths must be relative", field="package", path=raw)
        name = _member_name(raw)
        if ".." in name.replace("\\", "/").split("/"):
            raise BadRequest(f"the package holds a path with '..': {raw!r}", field="package", path=raw)
        if m.issym():
            links[name] = m.linkname
        elif m.islnk():
            hardlinks[name] = m.linkname
        elif m.isfile():
            total += m.size
            if total > max_unpacked:
                raise PayloadTooLarge(
                    f"the package unpacks to more than {max_unpacked} bytes", field="package", limit=max_unpacked
                )
            files[name] = m
        elif not m.isdir():
            raise BadRequest(
                f"the package holds {raw!r}, which is neither a file, a folder nor a link", field="package", path=raw
            )
    for name, target in links.items():
        parent = name.rsplit("/", 1)[0] if "/" in name else ""
        if _is_absolute(target) or _resolve(f"{parent}/{target}", links) is None:
            raise BadRequest(
                f"the package holds a link {name!r} -> {target!r} that leads outside the package",
                field="package",
                path=name,
            )
    for name, target in hardlinks.items():
        if _is_absolute(target) or _resolve(target, links) is None:
            raise BadRequest(
                f"the package holds a hard link {name!r} -> {target!r} that leads outside the package",
                field="package",
                path=name,
            )
    return files


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(member)
    assert f is not None  # a regular file always has content
    return f.read()


def parse_manifest(raw: bytes) -> Manifest:
    try:
        return Manifest.model_validate_json(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise BadRequest(
            f"{MANIFEST_NAME}: {loc + ': ' if loc else ''}{err['msg']}",
            field=f"manifest.{loc}" if loc else "manifest",
        ) from None


def validate_package(data: bytes, max_bytes: int, max_unpacked: int) -> ValidatedPackage:
    """Everything that can be known about a package without running it, or a 4xx."""
    check_size(len(data), max_bytes)
    tar = _open_archive(data)
    with tar:
        files = inspect_members(tar, max_unpacked)
        if MANIFEST_NAME not in files:
            raise BadRequest(
                f"the package has no {MANIFEST_NAME} at its root; build it with `step-functions create`",
                field="manifest",
            )
        manifest = parse_manifest(_read(tar, files[MANIFEST_NAME]))
        flow_file = manifest.flow_file
        if flow_file not in files:
            raise BadRequest(
                f"no flow file: the manifest names {flow_file!r}, which is not a file in the package",
                field="flow_file",
            )
        member = files[flow_file]
        if member.size > _MAX_FLOW_FILE_BYTES:
            raise BadRequest(f"the flow file {flow_file!r} is larger than 5 MB", field="flow_file")
        raw_source = _read(tar, member)
    try:
        source_text = raw_source.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(f"the flow file {flow_file!r} is not UTF-8 text ({e.reason})", field="flow_file") from None
    source = check_flow(manifest, source_text)
    return ValidatedPackage(
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), manifest=manifest, source=source, data=data
    )
