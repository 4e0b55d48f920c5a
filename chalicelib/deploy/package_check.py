"""Check an uploaded package before anything is stored or deployed.

A package is untrusted bytes: it is read as a stream by flowplane/archive.py
(the reader the task extracts with too, so what is checked here is what runs),
which checks every member (no absolute paths, no `..`, no two members on one
path, nothing written through a link, no links leaving the folder, no devices
or hard links) and caps every size on the way. Only two members are read:
`manifest.json` and the flow file it names. Nothing is extracted to disk and
nothing in it is imported or run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import IO, Optional

from pydantic import ValidationError

from flowplane.archive import ArchiveError, ArchiveLimits, Entry, Listing, Stop, scan
from flowplane.graph import SourceFlow
from flowplane.manifest import Manifest
from flowplane.package import MANIFEST_NAME
from flowplane.package_key import package_key

from ..errors import ApiError, BadRequest, PayloadTooLarge
from .source_check import check_flow

# A package is named by its sha256, as 64 lowercase hex digits.
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_FLOW_FILE_BYTES = 5 * 1024 * 1024
# A manifest of a 1,000-step flow is ~300 KB; nothing legitimate comes near this.
MAX_MANIFEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ValidatedPackage:
    sha256: str
    size: int
    manifest: Manifest
    source: SourceFlow
    data: bytes
    # Of the flow file's bytes as checked: the task runs a file with this digest.
    source_sha256: str = ""

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


def refusal(e: ArchiveError) -> ApiError:
    """An archive refusal as the API answers it: 413 for size alone, else 400; the member named."""
    extra = {k: v for k, v in (("path", e.path), ("limit", e.limit)) if v is not None}
    if e.too_large:
        return PayloadTooLarge(e.message, field="package", **extra)
    return BadRequest(e.message, field="package", **extra)


def check_manifest_size(size: int) -> None:
    if size > MAX_MANIFEST_BYTES:
        raise PayloadTooLarge(
            f"{MANIFEST_NAME} is {size} bytes; the limit is {MAX_MANIFEST_BYTES} bytes",
            field="manifest",
            size=size,
            limit=MAX_MANIFEST_BYTES,
        )


def _read_members(data: bytes, limits: ArchiveLimits) -> tuple[Listing, Optional[Manifest], Optional[bytes]]:
    """One pass over the whole archive: every check, the manifest, and the flow file when
    it comes after the manifest (the SDK's sorted packages mostly); else `_read_file`."""
    manifest: list[Manifest] = []
    flow: list[bytes] = []

    def on_file(entry: Entry, f: IO[bytes]) -> None:
        if entry.name == MANIFEST_NAME:
            check_manifest_size(entry.size)
            manifest.append(parse_manifest(f.read()))
        elif manifest and entry.name == manifest[0].flow_file and entry.size <= MAX_FLOW_FILE_BYTES:
            flow.append(f.read())

    listing = scan(data, limits, on_file)
    return listing, (manifest[0] if manifest else None), (flow[0] if flow else None)


def _read_file(data: bytes, limits: ArchiveLimits, name: str) -> bytes:
    found: list[bytes] = []

    def on_file(entry: Entry, f: IO[bytes]) -> None:
        if entry.name == name:
            found.append(f.read())
            raise Stop

    scan(data, limits, on_file)
    if not found:  # the first pass saw it: the bytes cannot have changed
        raise BadRequest(f"the flow file {name!r} could not be read back from the package", field="flow_file")
    return found[0]


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
    limits = ArchiveLimits.for_package(len(data), max_unpacked)
    try:
        listing, manifest, raw_source = _read_members(data, limits)
        if manifest is None:
            raise BadRequest(
                f"the package has no {MANIFEST_NAME} at its root; build it with `step-functions create`",
                field="manifest",
            )
        flow_file = manifest.flow_file
        member = listing.files.get(flow_file)
        if member is None:
            raise BadRequest(
                f"no flow file: the manifest names {flow_file!r}, which is not a file in the package",
                field="flow_file",
            )
        if member.size > MAX_FLOW_FILE_BYTES:
            raise BadRequest(
                f"the flow file {flow_file!r} is {member.size} bytes; the limit is {MAX_FLOW_FILE_BYTES}",
                field="flow_file",
                limit=MAX_FLOW_FILE_BYTES,
            )
        if raw_source is None:
            raw_source = _read_file(data, limits, flow_file)
    except ArchiveError as e:
        raise refusal(e) from None
    try:
        source_text = raw_source.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(f"the flow file {flow_file!r} is not UTF-8 text ({e.reason})", field="flow_file") from None
    source = check_flow(manifest, source_text)
    return ValidatedPackage(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        manifest=manifest,
        source=source,
        data=data,
        source_sha256=hashlib.sha256(raw_source).hexdigest(),
    )
