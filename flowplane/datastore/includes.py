"""Files `IncludeFile` parameters read on the client, stored by content in the datastore.

The client reads the file (at `run`, `step-functions create`, `trigger`), stores
its bytes once under `layout.include_key`, and the parameter's value travels as
a small descriptor (this module's `IncludeDescriptor`): through the local
runtime, the manifest, the control plane's trigger check and the Step Functions
input alike. The task turns the descriptor back into the file's content, which
is what the step sees and what is stored as the parameter's artifact, as in
Metaflow.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Optional

from . import layout
from .storage import NotFound, Storage

DESCRIPTOR_TYPE = "flowplane-include-v1"
# Every task holds the content in memory and stores it as an artifact: files bigger
# than this belong in S3 (read them in a step), not in a parameter.
MAX_INCLUDE_BYTES = 64 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class IncludeError(ValueError):
    """An included file cannot be read, stored or found; the message names it."""


@dataclass(frozen=True)
class IncludeDescriptor:
    """What an IncludeFile parameter's value is until a task reads the file."""

    sha256: str
    size: int
    is_text: bool = True
    encoding: str = "utf-8"
    type: str = DESCRIPTOR_TYPE

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, value: Any) -> "IncludeDescriptor":
        """A descriptor from its JSON (an object or its text); ValueError says what is wrong."""
        if isinstance(value, IncludeDescriptor):
            return value
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(
                    "an IncludeFile value is the descriptor of an uploaded file; "
                    "give a path to the flow's command line, which uploads it"
                ) from None
        if not isinstance(value, dict) or value.get("type") != DESCRIPTOR_TYPE:
            raise ValueError(f"not an included file's descriptor (expected type {DESCRIPTOR_TYPE!r})")
        unknown = sorted(set(value) - {"sha256", "size", "is_text", "encoding", "type"})
        if unknown:
            raise ValueError(f"unknown descriptor field(s) {unknown}")
        sha, size = value.get("sha256"), value.get("size")
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise ValueError("the descriptor's sha256 must be 64 lowercase hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_INCLUDE_BYTES:
            raise ValueError(f"the descriptor's size must be an integer from 0 to {MAX_INCLUDE_BYTES}")
        is_text, encoding = value.get("is_text", True), value.get("encoding", "utf-8")
        if not isinstance(is_text, bool) or not isinstance(encoding, str) or not encoding:
            raise ValueError("the descriptor's is_text must be a boolean and encoding a name")
        return cls(sha256=sha, size=size, is_text=is_text, encoding=encoding)


def read_include(name: str, path: str, is_text: bool = True, encoding: str = "utf-8") -> tuple[IncludeDescriptor, bytes]:
    """Read the file an IncludeFile parameter names, checked before anything runs or deploys."""
    import os

    what = f"IncludeFile {name!r}"
    if not isinstance(path, str) or not path:
        raise IncludeError(f"{what}: give the path of a file (got {path!r})")
    if "://" in path:
        raise IncludeError(f"{what}: {path!r} is a URL; flowplane includes local files only")
    if not os.path.exists(path):
        raise IncludeError(f"{what}: no file at {path!r}")
    if not os.path.isfile(path):
        raise IncludeError(f"{what}: {path!r} is not a regular file")
    size = os.path.getsize(path)
    if size > MAX_INCLUDE_BYTES:
        raise IncludeError(
            f"{what}: {path!r} is {size:,} bytes, more than the {MAX_INCLUDE_BYTES:,} an included "
            "file may have; put it in S3 and read it in a step"
        )
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_INCLUDE_BYTES + 1)
    except OSError as e:
        raise IncludeError(f"{what}: cannot read {path!r} ({e.strerror})") from None
    if is_text:
        try:
            data.decode(encoding)
        except LookupError:
            raise IncludeError(f"{what}: unknown encoding {encoding!r}") from None
        except UnicodeDecodeError as e:
            raise IncludeError(
                f"{what}: {path!r} is not {encoding} text ({e.reason} at byte {e.start}); "
                "pass is_text=False to include bytes"
            ) from None
    descriptor = IncludeDescriptor(
        sha256=hashlib.sha256(data).hexdigest(), size=len(data), is_text=is_text, encoding=encoding
    )
    return descriptor, data


def store_include(storage: Storage, flow: str, descriptor: IncludeDescriptor, data: bytes) -> None:
    """Write the bytes under their content address (once: the same file is never stored twice)."""
    key = layout.include_key(flow, descriptor.sha256)
    if not storage.exists(key):
        storage.put_bytes(key, data)


def load_include(storage: Storage, flow: str, value: Any, name: Optional[str] = None) -> Any:
    """The content a descriptor stands for: text or bytes, as the parameter declared."""
    descriptor = IncludeDescriptor.parse(value)
    try:
        data = storage.get_bytes(layout.include_key(flow, descriptor.sha256))
    except NotFound:
        raise IncludeError(
            f"IncludeFile {name or '?'!r}: the included file {descriptor.sha256[:12]} is not in the datastore "
            f"{storage.root}"
        ) from None
    if hashlib.sha256(data).hexdigest() != descriptor.sha256:
        raise IncludeError(f"IncludeFile {name or '?'!r}: the stored file does not match its sha256")
    return data.decode(descriptor.encoding) if descriptor.is_text else data
