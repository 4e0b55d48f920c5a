"""A join's inputs' artifacts, read across all inputs at once when the step reads them that way.

`[i.score for i in inputs]` over 10,000 inputs would otherwise be 10,000 GETs, one
after the other. When a second input asks for an artifact, that artifact's blobs are
read for every input at once (the datastore's `get_many`: concurrent on S3) and kept,
compressed, until the step asks; a step that reads one input's `model` reads one blob.
Only small blobs are read ahead, so a join that picks one big model out of thousands
does not download them all. Values are unpickled per input as before: two inputs
holding equal content still get objects of their own.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from ..datastore.artifacts import ArtifactRef, ArtifactStore, TaskArtifacts, decode_blob

# A blob is read ahead only if its pickle is at most this big, and one artifact's
# read-ahead across the inputs holds at most this much (pickled) in memory.
MAX_BLOB_BYTES = 4 << 20
MAX_COLUMN_BYTES = 256 << 20


class ReadAhead:
    """The artifact indices of a join's inputs, in order; blobs read by name across them."""

    def __init__(self, store: ArtifactStore, indices: list[dict[str, ArtifactRef]],
                 blobs: Optional[dict[str, bytes]] = None):
        self.store = store
        self.indices = indices
        self._first_asker: dict[str, int] = {}
        # Blobs already at hand (the join-inputs table carries small ones): never read.
        self._blobs: dict[str, bytes] = dict(blobs or {})
        self._lock = threading.Lock()

    def source(self, position: int) -> "InputArtifacts":
        return InputArtifacts(self, position)

    def load(self, position: int, name: str) -> Any:
        sha = self.indices[position][name].sha
        with self._lock:
            first = self._first_asker.setdefault(name, position)
            if first != position and first >= 0:
                self._first_asker[name] = -1  # read ahead once per name
                self._read_column(name)
            data = self._blobs.get(sha)
        if data is None:
            return self.store.load(sha)
        return decode_blob(data)

    def _read_column(self, name: str) -> None:
        wanted: dict[str, int] = {}
        for index in self.indices:
            ref = index.get(name)
            if ref is not None and ref.size <= MAX_BLOB_BYTES and ref.sha not in self._blobs:
                wanted[ref.sha] = ref.size
        shas, total = [], 0
        for sha, size in wanted.items():
            if total + size > MAX_COLUMN_BYTES:
                break
            shas.append(sha)
            total += size
        self._blobs.update(self.store.read_blobs(shas))


class InputArtifacts(TaskArtifacts):
    """One input's artifacts (flowplane.step_inputs.ArtifactSource), loaded through its join's ReadAhead."""

    def __init__(self, reader: ReadAhead, position: int):
        super().__init__(reader.store, reader.indices[position])
        self.reader = reader
        self.position = position

    def load(self, name: str) -> Any:
        return self.reader.load(self.position, name)
