"""What a task attempt wrote to its pipes, kept by the local scheduler.

A task stores its own logs when it ends. One that dies without ending (a
segfault, SIGKILL, out of memory) stores nothing, yet what it printed before
dying is what explains it: Metaflow keeps those lines too. The scheduler reads
every line anyway (to show it); it also keeps them here, spooled to disk past a
megabyte, and stores them as the attempt's logs only when the task could not.
"""

from __future__ import annotations

import tempfile

from ..datastore import layout
from ..datastore.storage import Storage

_SPOOL_BYTES = 1 << 20


class AttemptOutput:
    def __init__(self) -> None:
        self._spools = {
            stream: tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES, mode="w+b") for stream in layout.LOGS
        }

    def line(self, data: bytes, err: bool) -> None:
        self._spools[layout.LOGS[1] if err else layout.LOGS[0]].write(data + b"\n")

    def store_if_missing(self, storage: Storage, prefix: str, note: str) -> None:
        """Store both streams unless the task stored its own; `note` ends stderr (why it died)."""
        if storage.exists(f"{prefix}/{layout.LOGS[0]}"):
            return
        self._spools[layout.LOGS[1]].write(note.encode() + b"\n")
        for name, spool in self._spools.items():
            spool.seek(0)
            storage.put_stream(f"{prefix}/{name}", spool)

    def close(self) -> None:
        for spool in self._spools.values():
            spool.close()
