"""Content-addressed artifacts: pickled, gzip-compressed, stored once per content.

An artifact's id is the sha256 of its pickle, so a value inherited unchanged by
every later task is stored once, and a join can tell whether branches agree by
comparing ids. Large values are pickled through a spooled temporary file while
hashing, then streamed to storage: never held twice in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import tempfile
from dataclasses import asdict, dataclass
from typing import IO, Any, Optional

from . import layout
from .storage import NotFound, Storage

# Pickles below this size stay in memory; larger ones spill to disk while hashing.
_SPOOL_BYTES = 8 << 20
_GZIP_LEVEL = 3
# A stored blob at most this big is also kept by the store that saved it, so the task can
# put it beside its artifact index in the join-inputs table (flowplane/join_inputs.py).
SMALL_BLOB_BYTES = 1024
# ... and at most this many bytes of them, whatever a task saves (an item carries 16 KB).
SMALL_BLOBS_KEPT = 64 << 10


@dataclass(frozen=True)
class ArtifactRef:
    sha: str
    size: int  # bytes of the pickle, before compression
    type: str  # the value's type name, for listings


class _HashingWriter:
    """A file-like sink that hashes and counts what pickle writes, then compresses it."""

    def __init__(self, out: IO[bytes]):
        self._gz = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=_GZIP_LEVEL, mtime=0)
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self._gz.write(data)

    def close(self) -> None:
        self._gz.close()


class ArtifactStore:
    def __init__(self, storage: Storage, flow: str):
        self.storage = storage
        self.flow = flow
        self.small_blobs: dict[str, bytes] = {}  # sha -> stored bytes, of what this store saved
        self._small_bytes = 0

    def save(self, value: Any) -> ArtifactRef:
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            writer = _HashingWriter(spool)
            pickle.dump(value, writer, protocol=pickle.HIGHEST_PROTOCOL)
            writer.close()
            sha = writer.sha.hexdigest()
            key = layout.blob_key(self.flow, sha)
            size = spool.tell()
            if size <= SMALL_BLOB_BYTES and self._small_bytes + size <= SMALL_BLOBS_KEPT:
                spool.seek(0)
                self.small_blobs[sha] = spool.read()
                self._small_bytes += size
            if not self.storage.exists(key):
                spool.seek(0)
                self.storage.put_stream(key, spool)
        return ArtifactRef(sha=sha, size=writer.size, type=type(value).__name__)

    def load(self, sha: str) -> Any:
        stream = self.storage.open_read(layout.blob_key(self.flow, sha))
        try:
            return _unpickle(stream)
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()

    def read_blobs(self, shas: list[str]) -> dict[str, bytes]:
        """The stored (compressed) blobs of `shas`, read at once; a missing one is left out."""
        found = self.storage.get_many([layout.blob_key(self.flow, sha) for sha in shas])
        return {sha: data for sha, data in zip(shas, found) if data is not None}


def _unpickle(stream: IO[bytes]) -> Any:
    with gzip.GzipFile(fileobj=stream, mode="rb") as gz:
        return pickle.load(gz)


def decode_blob(data: bytes) -> Any:
    """A value from its stored blob's bytes (as `read_blobs` gives them)."""
    return _unpickle(io.BytesIO(data))


class TaskArtifacts:
    """One task attempt's artifacts: an index of name → ref, values loaded on demand.

    Implements flowplane.step_inputs.ArtifactSource.
    """

    def __init__(self, store: ArtifactStore, index: dict[str, ArtifactRef]):
        self.store = store
        self.index = dict(index)

    def names(self) -> list[str]:
        return list(self.index)

    def digest(self, name: str) -> str:
        return self.index[name].sha

    def load(self, name: str) -> Any:
        return self.store.load(self.index[name].sha)


def index_to_json(index: dict[str, ArtifactRef]) -> bytes:
    return json.dumps({n: asdict(r) for n, r in sorted(index.items())}, separators=(",", ":")).encode()


def index_from_json(data: bytes) -> dict[str, ArtifactRef]:
    return {n: ArtifactRef(**r) for n, r in json.loads(data).items()}


def write_index(storage: Storage, flow: str, run_id: str, step: str, task_id: str, attempt: int,
                index: dict[str, ArtifactRef]) -> None:
    storage.put_bytes(index_key(flow, run_id, step, task_id, attempt), index_to_json(index))


def index_key(flow: str, run_id: str, step: str, task_id: str, attempt: int) -> str:
    return layout.attempt_key(flow, run_id, step, task_id, attempt, layout.ARTIFACT_INDEX)


def read_index(storage: Storage, flow: str, run_id: str, step: str, task_id: str,
               attempt: int) -> Optional[dict[str, ArtifactRef]]:
    try:
        return index_from_json(storage.get_bytes(index_key(flow, run_id, step, task_id, attempt)))
    except NotFound:
        return None
