"""What a task attempt wrote to its pipes, kept by the local scheduler.

A task stores its own logs when it ends. One that dies without ending (a
segfault, SIGKILL, out of memory) stores nothing, yet what it printed before
dying is what explains it: Metaflow keeps those lines too. The scheduler reads
every line anyway (to show it); it also keeps them here, spooled to disk past a
megabyte, and stores them as the attempt's logs only when the task could not.

With a local datastore it also appends them, as they come, to `stdout.live` and
`stderr.live` in the attempt's folder, removed when the attempt ends: what
`logs --follow` (the Client API) reads while the task has stored no log yet.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO, Optional

from ..datastore import layout
from ..datastore.storage import Storage

_SPOOL_BYTES = 1 << 20


class AttemptOutput:
    def __init__(self, live_folder: Optional[str] = None) -> None:
        self._spools = {
            stream: tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES, mode="w+b") for stream in layout.LOGS
        }
        self._live: dict[str, IO[bytes]] = {}
        if live_folder is not None:
            os.makedirs(live_folder, exist_ok=True)
            for stream in layout.LOGS:
                self._live[stream] = open(os.path.join(live_folder, layout.live_log_name(stream)), "ab")

    def line(self, data: bytes, err: bool) -> None:
        stream = layout.LOGS[1] if err else layout.LOGS[0]
        self._spools[stream].write(data + b"\n")
        live = self._live.get(stream)
        if live is not None:
            live.write(data + b"\n")

    def flush(self) -> None:
        """Once a scheduler turn: the lines read so far, readable in the live logs."""
        for live in self._live.values():
            live.flush()

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
        for live in self._live.values():
            live.close()
            try:
                os.unlink(live.name)
            except OSError:
                pass
        self._live.clear()
