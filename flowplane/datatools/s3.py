"""`S3`: Metaflow's S3 client, over the run's datastore (roots.py) or any `s3://` prefix.

    with S3(run=self) as s3:                  # this run's objects, in its datastore
        url = s3.put("model.bin", blob)
        objs = s3.get_many(["a", "b"])        # parallel, at most MAX_WORKERS at once

Downloads go to a temporary folder (`S3Object.path`) removed when the scope
closes. The many-object calls run on a bounded thread pool: S3 latency, not
CPU, is what they wait for, and a bound keeps a 100,000-key call from opening
100,000 connections.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import threading
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Optional, TypeVar, Union

from .backends import Backend, Info, LocalBackend, S3Backend
from .objects import MetaflowS3InvalidObject, MetaflowS3NotFound, MetaflowS3URLException, S3Object
from .roots import client_run_root, override_root, task_root

MAX_WORKERS = 16

# Metaflow's argument shapes for put_many/put_files (S3PutObject) and get_many (S3GetObject).
S3PutObject = namedtuple("S3PutObject", "key value path content_type encryption metadata",
                         defaults=(None, None, None, None, None))
S3GetObject = namedtuple("S3GetObject", "key offset length", defaults=(None, None))

PutValue = Union[str, bytes, io.IOBase]
T = TypeVar("T")
R = TypeVar("R")


class S3:
    """Metaflow's `S3(tmproot=".", bucket=None, prefix=None, run=None, s3root=None)`.

    `run=self` in a step (or a client `Run`) scopes keys to that run in its
    datastore; `s3root="s3://bucket/prefix"` to a prefix; neither takes full
    `s3://` URLs.
    """

    def __init__(self, tmproot: str = ".", bucket: Optional[str] = None, prefix: Optional[str] = None,
                 run: Any = None, s3root: Optional[str] = None, encryption: Optional[str] = None,
                 **kwargs: Any):
        # A production run read through the control plane is read through it (service.py).
        self._through: Optional[Backend] = None
        if run is not None:
            if _is_flowspec(run):
                root = task_root()
            else:
                root, self._through = client_run_root(run)
            if bucket or prefix is not None:
                flow, run_id = _flow_and_run(run)
                root, self._through = override_root(root, bucket, prefix, flow, run_id), None
            self._root: Optional[str] = root
        elif s3root:
            if not str(s3root).startswith("s3://"):
                raise MetaflowS3URLException(f"s3root needs to be an S3 URL prefixed with s3://, got {s3root!r}")
            self._root = str(s3root).rstrip("/")
        else:
            self._root = None
        if encryption:
            raise MetaflowS3InvalidObject("encryption= is not supported: the datastore bucket's default encryption "
                                          "applies to every object")
        self._tmproot = tmproot
        self._tmpdir: Optional[str] = None
        self._tmp_lock = threading.Lock()
        self._local = LocalBackend()
        self._s3 = S3Backend(MAX_WORKERS, kwargs.get("external_client"))

    # --- scope -------------------------------------------------------------------

    def __enter__(self) -> "S3":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Delete everything downloaded in this scope."""
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    @property
    def s3root(self) -> Optional[str]:
        return self._root

    # --- URLs --------------------------------------------------------------------

    def _url(self, key: Any) -> str:
        key = getattr(key, "key", key)
        if self._root is None:
            if isinstance(key, str) and key.startswith("s3://") and len(key) > 5:
                return key
            raise MetaflowS3URLException(
                f"{key!r} is not a full s3:// URL: inside a step use S3(run=self), elsewhere S3(s3root='s3://...')")
        if not key:
            return self._root
        if not isinstance(key, str):
            raise MetaflowS3URLException(f"an S3 key is a string, got {type(key).__name__}")
        if key.startswith("s3://"):
            raise MetaflowS3URLException(
                f"don't use absolute S3 URLs when the client has a root ({self._root}): got {key}")
        parts = key.lstrip("/").split("/")
        if ".." in parts:
            # A run's objects stay under its root: "../" would reach another run's, or the datastore's.
            raise MetaflowS3URLException(f"an S3 key may not contain '..' segments: {key!r}")
        return f"{self._root}/{key.lstrip('/')}"

    def _backend(self, url: str) -> Backend:
        if self._through is not None:
            return self._through
        return self._local if url.startswith("file://") else self._s3

    def _tmp(self, url: str) -> str:
        # Made on first download (a scope that only puts leaves no folder), once: the workers race here.
        with self._tmp_lock:
            if self._tmpdir is None:
                self._tmpdir = tempfile.mkdtemp(dir=self._tmproot, prefix="flowplane.s3.")
        return os.path.join(self._tmpdir, hashlib.sha1(url.encode()).hexdigest())

    def _object(self, url: str, path: Optional[str] = None, info: Optional[Info] = None,
                return_info: bool = True) -> S3Object:
        if info is None:
            return S3Object(self._root, url)
        if not return_info:
            return S3Object(self._root, url, path, info.size)
        return S3Object(self._root, url, path, info.size, info.content_type, info.metadata, info.last_modified)

    # --- listing -----------------------------------------------------------------

    def list_paths(self, keys: Optional[Iterable[str]] = None) -> list[S3Object]:
        """The next level under each key: objects (exists) and prefixes (exists == False)."""
        return self._list(keys, recursive=False)

    def list_recursive(self, keys: Optional[Iterable[str]] = None) -> list[S3Object]:
        """Every object under each key, at any depth."""
        return self._list(keys, recursive=True)

    def _list(self, keys: Optional[Iterable[str]], recursive: bool) -> list[S3Object]:
        urls = [self._url(k).rstrip("/") + "/" for k in (list(keys) if keys is not None else [None])]
        listings = _parallel(lambda u: self._backend(u).list(u, recursive), urls)
        return [S3Object(self._root, url, None, size) for listing in listings for url, size in listing]

    # --- reading -----------------------------------------------------------------

    def info(self, key: Optional[str] = None, return_missing: bool = False) -> S3Object:
        """Size, content type and metadata of one object, without its content."""
        return self.info_many([key], return_missing)[0]

    def info_many(self, keys: Iterable[str], return_missing: bool = False) -> list[S3Object]:
        urls = [self._url(k) for k in keys]
        infos = _parallel(lambda u: self._backend(u).head(u), urls)
        return [self._found(u, None, i, True, return_missing) for u, i in zip(urls, infos)]

    def get(self, key: Optional[Union[str, S3GetObject]] = None, return_missing: bool = False,
            return_info: bool = True) -> S3Object:
        """Download one object; a missing one raises MetaflowS3NotFound unless return_missing."""
        return self.get_many([key], return_missing, return_info)[0]

    def get_many(self, keys: Iterable[Union[str, S3GetObject]], return_missing: bool = False,
                 return_info: bool = True) -> list[S3Object]:
        """Download many objects in parallel, results in the order of `keys`."""
        urls = []
        for k in keys:
            if getattr(k, "offset", None) is not None or getattr(k, "length", None) is not None:
                raise MetaflowS3InvalidObject(f"ranged gets (offset/length) are not supported: {k!r}")
            urls.append(self._url(k))
        infos = _parallel(lambda u: self._backend(u).download(u, self._tmp(u)), urls)
        return [self._found(u, self._tmp(u), i, return_info, return_missing) for u, i in zip(urls, infos)]

    def get_recursive(self, keys: Iterable[str], return_info: bool = False) -> list[S3Object]:
        """Download every object under each key."""
        found = self.list_recursive(keys)
        return self.get_many([o.url for o in found] if self._root is None else [o.key for o in found],
                             return_info=return_info)

    def get_all(self, return_info: bool = False) -> list[S3Object]:
        """Download every object under the client's root."""
        if self._root is None:
            raise MetaflowS3URLException("get_all() needs a root: S3(run=...) or S3(s3root=...)")
        return self.get_recursive([None], return_info)  # type: ignore[list-item]

    def _found(self, url: str, path: Optional[str], info: Optional[Info], return_info: bool,
               return_missing: bool) -> S3Object:
        if info is None:
            if not return_missing:
                raise MetaflowS3NotFound(f"{url} does not exist (return_missing=True returns it with exists False)")
            return S3Object(self._root, url)
        return self._object(url, path, info, return_info)

    # --- writing -----------------------------------------------------------------

    def put(self, key: Union[str, S3PutObject], obj: PutValue, overwrite: bool = True,
            content_type: Optional[str] = None, metadata: Optional[dict] = None) -> str:
        """Store a str (UTF-8), bytes or a readable binary file; the object's URL."""
        url = self._url(key)
        self._store(url, _bytes_of(key, obj), overwrite, content_type, metadata)
        return url

    def put_many(self, key_objs: Iterable[Union[tuple[str, PutValue], S3PutObject]],
                 overwrite: bool = True) -> list[tuple[str, str]]:
        """Store (key, value) pairs or S3PutObjects in parallel; [(key, url)]."""
        jobs = []
        for item in key_objs:
            if isinstance(item, S3PutObject):
                key, value, ctype, meta = item.key, item.value, item.content_type, item.metadata
            else:
                key, value = _pair(item)
                ctype = meta = None
            jobs.append((key, self._url(key), _bytes_of(key, value), ctype, meta))
        return self._put_all(jobs, overwrite)

    def put_files(self, key_paths: Iterable[Union[tuple[str, str], S3PutObject]],
                  overwrite: bool = True) -> list[tuple[str, str]]:
        """Store local files, (key, path) pairs or S3PutObjects with `path`; [(key, url)]."""
        jobs = []
        for item in key_paths:
            if isinstance(item, S3PutObject):
                key, path, ctype, meta = item.key, item.path, item.content_type, item.metadata
            else:
                key, path = _pair(item)
                ctype = meta = None
            if not path or not os.path.isfile(path):
                raise MetaflowS3NotFound(f"local file not found for key {key!r}: {path!r}")
            with open(path, "rb") as f:
                jobs.append((key, self._url(key), f.read(), ctype, meta))
        return self._put_all(jobs, overwrite)

    def _put_all(self, jobs: list[tuple[str, str, bytes, Optional[str], Optional[dict]]],
                 overwrite: bool) -> list[tuple[str, str]]:
        # Every key was checked above: a bad one refuses the whole call before anything is written.
        _parallel(lambda j: self._store(j[1], j[2], overwrite, j[3], j[4]), jobs)
        return [(key, url) for key, url, *_ in jobs]

    def _store(self, url: str, data: bytes, overwrite: bool, content_type: Optional[str],
               metadata: Optional[dict]) -> None:
        backend = self._backend(url)
        if not overwrite and backend.head(url) is not None:
            return
        backend.put(url, data, content_type, metadata)


def _parallel(fn: Callable[[T], R], items: list[T]) -> list[R]:
    """`fn` over `items` on at most MAX_WORKERS threads, results in order; the first error is raised."""
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items)), thread_name_prefix="flowplane-s3") as pool:
        return list(pool.map(fn, items))


def _bytes_of(key: Any, obj: Any) -> bytes:
    if isinstance(obj, str):
        return obj.encode("utf-8")
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, io.IOBase) and obj.readable():
        data = obj.read()
        if isinstance(data, bytes):
            return data
    raise MetaflowS3InvalidObject(
        f"the object for key {getattr(key, 'key', key)!r} is not a string, bytes or a readable binary file "
        f"({type(obj).__name__})")


def _pair(item: Any) -> tuple[str, Any]:
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise MetaflowS3InvalidObject(f"expected a (key, value) pair or an S3PutObject, got {item!r}")
    return item[0], item[1]


def _is_flowspec(run: Any) -> bool:
    from ..flowspec import FlowSpec

    return isinstance(run, FlowSpec)


def _flow_and_run(run: Any) -> tuple[str, str]:
    if _is_flowspec(run):
        from ..current import current

        return current.flow_name or "", current.run_id or ""
    parts = run.path_components
    return parts[0], parts[1]
