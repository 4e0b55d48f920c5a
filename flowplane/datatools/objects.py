"""What the `S3` client hands back (Metaflow's `S3Object`) and the errors it raises.

Kept apart from the client so the backends (backends.py) build results without
importing the client, and user code can catch the errors by Metaflow's names.
"""

from __future__ import annotations

import os
from typing import Optional


class MetaflowS3Exception(Exception):
    """Any failure of the S3 client that is not one of the more precise ones below."""

    headline = "S3 access failed"


class MetaflowS3URLException(MetaflowS3Exception):
    headline = "Invalid S3 URL"


class MetaflowS3NotFound(MetaflowS3Exception):
    headline = "S3 object not found"


class MetaflowS3AccessDenied(MetaflowS3Exception):
    headline = "S3 access denied"


class MetaflowS3InvalidObject(MetaflowS3Exception):
    headline = "Not a storable object"


class S3Object:
    """One object (or, from `list_paths`, one prefix) under the client's root.

    `path` is a temporary local copy, deleted when the `S3` scope closes; `blob`
    and `text` read it. `exists` is False for a prefix and for a missing key asked
    with `return_missing=True`.
    """

    def __init__(self, prefix: Optional[str], url: str, path: Optional[str] = None, size: Optional[int] = None,
                 content_type: Optional[str] = None, metadata: Optional[dict] = None,
                 last_modified: Optional[int] = None):
        self._url = url
        self._path = path
        self._size = os.stat(path).st_size if path else size
        self._content_type = content_type
        self._metadata = metadata
        self._last_modified = last_modified
        if prefix is None or prefix == url:
            self._key, self._prefix = url, None
        else:
            self._key, self._prefix = url[len(prefix.rstrip("/")) + 1:].rstrip("/"), prefix

    @property
    def exists(self) -> bool:
        return self._size is not None

    @property
    def downloaded(self) -> bool:
        return bool(self._path)

    @property
    def url(self) -> str:
        return self._url

    @property
    def prefix(self) -> Optional[str]:
        return self._prefix

    @property
    def key(self) -> str:
        return self._key

    @property
    def path(self) -> Optional[str]:
        return self._path

    @property
    def blob(self) -> Optional[bytes]:
        if not self._path:
            return None
        with open(self._path, "rb") as f:
            return f.read()

    @property
    def text(self) -> Optional[str]:
        blob = self.blob
        return None if blob is None else blob.decode("utf-8", errors="replace")

    @property
    def size(self) -> Optional[int]:
        return self._size

    @property
    def has_info(self) -> bool:
        return self._content_type is not None or self._metadata is not None

    @property
    def metadata(self) -> Optional[dict]:
        return self._metadata

    @property
    def content_type(self) -> Optional[str]:
        return self._content_type

    @property
    def last_modified(self) -> Optional[int]:
        return self._last_modified

    def __str__(self) -> str:
        if self._path:
            return f"<S3Object {self._url} ({self._size} bytes, local)>"
        if self._size is not None:
            return f"<S3Object {self._url} ({self._size} bytes, in S3)>"
        return f"<S3Object {self._url} (object does not exist)>"

    __repr__ = __str__
