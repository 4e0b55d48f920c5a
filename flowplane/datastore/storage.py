"""Byte storage behind the datastore: a local folder or an S3 prefix.

One small interface so the artifact store, the local metadata and the Client
API never care which backend holds the bytes. Writes of records are atomic
(local: rename; S3: a PUT is atomic).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from typing import IO, Callable, Iterator, Optional, Protocol

# The datastore's root, when nothing names one: a user's setting, and what the compiler
# gives every Batch job (chalicelib/compiler/asl.py).
ROOT_ENV = "FLOWPLANE_DATASTORE_ROOT"
# `get_many` on S3 reads on at most this many threads (a join's thousands of parents): each
# read waits on the network, not the CPU, and one boto3 client (thread-safe) serves them all.
READERS = 32


class Storage(Protocol):
    root: str

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_stream(self, key: str, stream: IO[bytes]) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def get_many(self, keys: list[str]) -> list[Optional[bytes]]:
        """The objects' bytes in the order asked, None for one that does not exist."""
        ...

    def open_read(self, key: str) -> IO[bytes]: ...

    def exists(self, key: str) -> bool: ...

    def list_dir(self, prefix: str) -> list[str]: ...

    def url(self, key: str) -> str: ...


class NotFound(KeyError):
    pass


class LocalStorage:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    def local_path(self, key: str) -> str:
        """Where `key` is on this machine's disk (what a local process may append to directly)."""
        return self._path(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, data)

    def put_stream(self, key: str, stream: IO[bytes]) -> None:
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(stream, f, 1 << 20)
        os.replace(tmp, path)

    def get_bytes(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(key) from None

    def get_many(self, keys: list[str]) -> list[Optional[bytes]]:
        # A local file is read in microseconds: threads would only add their own cost.
        return [_or_none(self.get_bytes, k) for k in keys]

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise NotFound(key) from None

    def exists(self, key: str) -> bool:
        return os.path.exists(self._path(key))

    def list_dir(self, prefix: str) -> list[str]:
        """Names directly under `prefix` (files and folders), sorted."""
        try:
            return sorted(n for n in os.listdir(self._path(prefix)) if not n.startswith(".tmp-"))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def url(self, key: str) -> str:
        return "file://" + self._path(key)


class S3Storage:
    """`s3://bucket/prefix`; the boto3 client is created on first use."""

    def __init__(self, root: str, client: Optional[object] = None):
        if not root.startswith("s3://"):
            raise ValueError(f"an S3 datastore root starts with s3://, got {root!r}")
        self.root = root.rstrip("/")
        bucket, _, prefix = root[5:].partition("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self):  # noqa: ANN201 - boto3 client
        # Made once under a lock: boto3's default session, which makes it, is not thread-safe.
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                # One connection per reader, else the pool (10 by default) serialises get_many.
                self._client = boto3.client("s3", endpoint_url=os.environ.get("FLOWPLANE_S3_ENDPOINT_URL") or None,
                                            config=Config(max_pool_connections=READERS))
            return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_stream(self, key: str, stream: IO[bytes]) -> None:
        # upload_fileobj sends large bodies in parts, never holding them whole.
        self.client.upload_fileobj(stream, self.bucket, self._key(key))

    def get_bytes(self, key: str) -> bytes:
        return self.open_read(key).read()

    def copy_from(self, source: "S3Storage", key: str) -> None:
        """`key` of another S3 datastore copied here by S3 itself (no bytes through this machine)."""
        self.client.copy_object(Bucket=self.bucket, Key=self._key(key),
                                CopySource={"Bucket": source.bucket, "Key": source._key(key)})

    def get_many(self, keys: list[str]) -> list[Optional[bytes]]:
        if len(keys) <= 1:
            return [_or_none(self.get_bytes, k) for k in keys]
        from concurrent.futures import ThreadPoolExecutor

        self.client  # noqa: B018 - made here, before the threads share it
        with ThreadPoolExecutor(max_workers=min(READERS, len(keys)), thread_name_prefix="flowplane-datastore") as pool:
            return list(pool.map(lambda k: _or_none(self.get_bytes, k), keys))

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self.client.exceptions.NoSuchKey:
            raise NotFound(key) from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError:
            return False

    def list_dir(self, prefix: str) -> list[str]:
        full = self._key(prefix).rstrip("/")
        # The bucket's top level (no prefix, empty key) is listed with an empty Prefix, not "/".
        full = f"{full}/" if full else ""
        names: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
            for cp in page.get("CommonPrefixes", []):
                names.add(cp["Prefix"][len(full) :].rstrip("/"))
            for obj in page.get("Contents", []):
                names.add(obj["Key"][len(full) :])
        return sorted(names)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def _or_none(get: Callable[[str], bytes], key: str) -> Optional[bytes]:
    try:
        return get(key)
    except NotFound:
        return None


def atomic_write(path: str, data: bytes) -> None:
    """Write through a temporary file beside `path` (named `.tmp-*`, which listings skip) and rename."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def storage_for(root: str) -> Storage:
    """The backend for a datastore root: `s3://…` or a local folder."""
    return S3Storage(root) if root.startswith("s3://") else LocalStorage(root)


def default_root() -> str:
    """FLOWPLANE_DATASTORE_ROOT, else `.flowplane/` in the current folder (Metaflow's `.metaflow`)."""
    return os.environ.get(ROOT_ENV) or os.path.join(os.getcwd(), ".flowplane")


def iter_chunks(stream: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    while True:
        chunk = stream.read(size)
        if not chunk:
            return
        yield chunk
