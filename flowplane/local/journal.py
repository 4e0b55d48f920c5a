"""An append-only journal of JSON records: how the embedded plane's state reaches disk.

Each record is one line, written with one `write` on an `O_APPEND` descriptor
before the request that made the change is answered, so a `kill -9` of the
plane loses nothing a client was told is stored (the page cache outlives the
process; `fsync` would only add power-loss safety at ~ms a record).

A torn last line (power loss, a full disk) is the one damage an append can do:
reading stops before it and `Journal` cuts it off before appending. A bad line
anywhere else is corruption, reported as `StateCorrupt` naming the file and
line, never skipped: starting on half the state would silently lose the rest.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

try:  # a few times faster at reading a large history back at start (requirements-dev.txt pins it)
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _JSONError: type[Exception] = orjson.JSONDecodeError

    def encode(record: dict[str, Any]) -> bytes:
        return orjson.dumps(record) + b"\n"

except ImportError:  # the standard library reads and writes the same files
    _loads = json.loads
    _JSONError = ValueError

    def encode(record: dict[str, Any]) -> bytes:
        return (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


class StateCorrupt(RuntimeError):
    """A state file cannot be read; the message names it and what to do."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = Path(path)
        folder = self.path.parent
        super().__init__(
            f"the embedded control plane's state file {self.path} is damaged ({problem}). "
            f"Nothing was changed. To keep the rest of the state, move that file aside "
            f"(mv {self.path} {self.path}.broken) and start again; to start empty, move the whole "
            f"folder aside (mv {folder} {folder}.broken)."
        )


def read_records(path: Path, tolerate_torn_tail: bool = True) -> tuple[list[dict[str, Any]], int]:
    """The records of a journal file and the byte length of its whole lines.

    A last line with no newline is torn (dropped when `tolerate_torn_tail`);
    any other line that is not a JSON object raises StateCorrupt.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return [], 0
    except OSError as e:
        raise StateCorrupt(path, f"cannot be read: {e.strerror}") from None
    end = data.rfind(b"\n") + 1
    if end < len(data) and not tolerate_torn_tail:
        raise StateCorrupt(path, "its last line is cut short")
    records = []
    for number, line in enumerate(data[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = _loads(line)
        except _JSONError as e:
            raise StateCorrupt(path, f"line {number} is not JSON: {e}") from None
        if not isinstance(record, dict) or "t" not in record:
            raise StateCorrupt(path, f"line {number} is not a state record")
        records.append(record)
    return records, end


class Journal:
    """Appends records to one file; thread-safe (moto serves requests on many threads)."""

    def __init__(self, path: Path, valid_length: int) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        # Cut a torn tail off, or the next record would be glued to it.
        if os.fstat(self._fd).st_size > valid_length:
            os.truncate(self.path, valid_length)
        self.bytes_written = 0

    def append(self, *records: dict[str, Any]) -> None:
        if not records:
            return
        data = b"".join(encode(r) for r in records)
        with self._lock:
            if self._fd < 0:
                raise RuntimeError(f"the journal {self.path} is closed")
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self.bytes_written += len(data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def write_whole(path: Path, records: Iterator[dict[str, Any]]) -> int:
    """Write a complete file of records atomically (tmp, fsync, rename); its size."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    size = 0
    with open(tmp, "wb") as f:
        for record in records:
            line = encode(record)
            f.write(line)
            size += len(line)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return size
