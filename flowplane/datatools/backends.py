"""Where the `S3` client's bytes live: an S3 bucket, or a local folder for local runs.

Both speak full URLs (`s3://bucket/key`, `file:///abs/path`) so the client
(s3.py) only joins keys to its root and never cares which one it talks to. A
local folder is what `python flow.py run` uses without AWS, as the rest of the
datastore does; content type and user metadata travel beside each file in a
hidden sidecar, as S3 keeps them beside the object.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from ..datastore.storage import atomic_write
from .objects import MetaflowS3AccessDenied, MetaflowS3Exception, MetaflowS3URLException

# Sidecars are hidden from listings by this prefix only: a user's own ".name" keys stay visible.
_SIDECAR = ".s3meta-"
# S3 keeps user metadata as string headers; Metaflow packs a dict into this one.
USER_ATTRIBUTES = "metaflow-user-attributes"


@dataclass(frozen=True)
class Info:
    size: int
    content_type: Optional[str] = None
    metadata: Optional[dict] = None
    last_modified: Optional[int] = None


class Backend(Protocol):
    def put(self, url: str, data: bytes, content_type: Optional[str], metadata: Optional[dict]) -> None: ...

    def head(self, url: str) -> Optional[Info]: ...

    def download(self, url: str, dest: str) -> Optional[Info]:
        """Copy the object to `dest`; None (and no file) when it does not exist."""
        ...

    def list(self, prefix_url: str, recursive: bool) -> list[tuple[str, Optional[int]]]:
        """(url, size) under `prefix_url` (which ends with "/"); size None for a sub-prefix."""
        ...


class LocalBackend:
    """`file://` URLs: a folder under the local datastore root."""

    @staticmethod
    def _path(url: str) -> str:
        # Not percent-decoded: a key's characters are the file's, as `file_url` wrote them.
        return url[len("file://"):]

    @staticmethod
    def _sidecar(path: str) -> str:
        return os.path.join(os.path.dirname(path), _SIDECAR + os.path.basename(path))

    def put(self, url: str, data: bytes, content_type: Optional[str], metadata: Optional[dict]) -> None:
        path = self._path(url)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        meta = {"content_type": content_type, "metadata": metadata}
        # Sidecar first, then the object: a reader never sees an object with another's metadata.
        atomic_write(self._sidecar(path), json.dumps(meta).encode())
        atomic_write(path, data)

    def head(self, url: str) -> Optional[Info]:
        path = self._path(url)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not os.path.isfile(path):
            return None
        try:
            with open(self._sidecar(path), encoding="utf-8") as f:
                meta = json.load(f)
        except (FileNotFoundError, ValueError):
            meta = {}
        return Info(st.st_size, meta.get("content_type"), meta.get("metadata"), int(st.st_mtime))

    def download(self, url: str, dest: str) -> Optional[Info]:
        info = self.head(url)
        if info is None:
            return None
        shutil.copyfile(self._path(url), dest)
        return info

    def list(self, prefix_url: str, recursive: bool) -> list[tuple[str, Optional[int]]]:
        base = self._path(prefix_url)
        out: list[tuple[str, Optional[int]]] = []
        if not os.path.isdir(base):
            return out
        if not recursive:
            for name in sorted(os.listdir(base)):
                if _hidden(name):
                    continue
                full = os.path.join(base, name)
                if os.path.isdir(full):
                    out.append((file_url(full) + "/", None))
                else:
                    out.append((file_url(full), os.path.getsize(full)))
            return out
        for folder, dirs, files in os.walk(base):
            dirs.sort()
            for name in sorted(files):
                if not _hidden(name):
                    full = os.path.join(folder, name)
                    out.append((file_url(full), os.path.getsize(full)))
        return sorted(out)


class S3Backend:
    """`s3://` URLs through one boto3 client shared by the worker threads (clients are thread-safe)."""

    def __init__(self, max_workers: int, client: Any = None):
        self._max_workers = max_workers
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                # One connection per worker, else the pool (10 by default) serialises get_many.
                self._client = boto3.client(
                    "s3", endpoint_url=os.environ.get("FLOWPLANE_S3_ENDPOINT_URL") or None,
                    config=Config(max_pool_connections=self._max_workers, retries={"mode": "standard"}))
            return self._client

    def put(self, url: str, data: bytes, content_type: Optional[str], metadata: Optional[dict]) -> None:
        bucket, key = split_s3(url)
        extra: dict[str, Any] = {}
        if content_type:
            extra["ContentType"] = content_type
        if metadata:
            extra["Metadata"] = {USER_ATTRIBUTES: json.dumps(metadata)}
        self._call(url, lambda: self.client.put_object(Bucket=bucket, Key=key, Body=data, **extra))

    def head(self, url: str) -> Optional[Info]:
        bucket, key = split_s3(url)
        resp = self._call(url, lambda: self.client.head_object(Bucket=bucket, Key=key), missing_ok=True)
        return None if resp is None else _info(resp, resp["ContentLength"])

    def download(self, url: str, dest: str) -> Optional[Info]:
        bucket, key = split_s3(url)
        resp = self._call(url, lambda: self.client.get_object(Bucket=bucket, Key=key), missing_ok=True)
        if resp is None:
            return None
        with open(dest, "wb") as f:
            shutil.copyfileobj(resp["Body"], f, 1 << 20)
        return _info(resp, os.path.getsize(dest))

    def list(self, prefix_url: str, recursive: bool) -> list[tuple[str, Optional[int]]]:
        bucket, prefix = split_s3(prefix_url)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if not recursive:
            kwargs["Delimiter"] = "/"
        out: list[tuple[str, Optional[int]]] = []

        def pages() -> None:
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                out.extend((f"s3://{bucket}/{p['Prefix']}", None) for p in page.get("CommonPrefixes", []))
                out.extend((f"s3://{bucket}/{o['Key']}", int(o["Size"])) for o in page.get("Contents", []))

        self._call(prefix_url, pages)
        return sorted(out)

    def _call(self, url: str, fn: Any, missing_ok: bool = False) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if missing_ok and code in ("404", "NoSuchKey", "NotFound"):
                return None
            if code in ("403", "AccessDenied"):
                raise MetaflowS3AccessDenied(f"access to {url} was denied: check the role's S3 permissions") from None
            raise MetaflowS3Exception(f"{url}: {code or 'error'}: {e}") from None
        except BotoCoreError as e:
            raise MetaflowS3Exception(f"{url}: {e}") from None


def split_s3(url: str) -> tuple[str, str]:
    parsed = urllib.parse.urlsplit(url, allow_fragments=False)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise MetaflowS3URLException(f"not an S3 URL (s3://bucket/key): {url!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def _info(resp: dict, size: int) -> Info:
    meta = resp.get("Metadata") or {}
    user = json.loads(meta[USER_ATTRIBUTES]) if USER_ATTRIBUTES in meta else None
    modified = resp.get("LastModified")
    return Info(size, resp.get("ContentType"), user, int(modified.timestamp()) if modified else None)


def _hidden(name: str) -> bool:
    return name.startswith(_SIDECAR) or name.startswith(".tmp-")


def file_url(path: str) -> str:
    return "file://" + path
