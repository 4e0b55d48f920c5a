"""The task's stdout and stderr: shown live and kept for the attempt's logs.

Python-level writes go both to the real stream (the local runtime's pipe, or
CloudWatch on Batch) and to a spool that is stored as `stdout.log` /
`stderr.log` in the attempt's folder when the task ends.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from array import array
from typing import Any, TextIO

_SPOOL_BYTES = 1 << 20


class Tee(io.TextIOBase):
    def __init__(self, stream: TextIO):
        self.stream = stream
        self.spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES, mode="w+b")
        # When each line ended (epoch seconds): Task.loglines gives them, as Metaflow's mflog does.
        self.line_times = array("d")

    def write(self, text: str) -> int:
        try:
            self.stream.write(text)
            if "\n" in text:
                # Line by line, so the runtime shows progress as it happens.
                self.stream.flush()
        except (OSError, ValueError):
            pass  # the reader went away; the log still gets everything
        self.spool.write(text.encode("utf-8", "replace"))
        ends = text.count("\n")
        if ends:
            self.line_times.extend([time.time()] * ends)
        return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def contents(self) -> Any:
        """The captured bytes as a readable stream, from the start."""
        self.spool.seek(0)
        return self.spool

    def times_text(self) -> bytes:
        """One line-end time per line, a line each (a last line without newline has none)."""
        return "".join(f"{t:.6f}\n" for t in self.line_times).encode()


class CapturedOutput:
    """Context manager that tees sys.stdout/sys.stderr for the task's duration."""

    def __enter__(self) -> "CapturedOutput":
        self._saved = (sys.stdout, sys.stderr)
        self.stdout = Tee(sys.stdout)
        self.stderr = Tee(sys.stderr)
        sys.stdout, sys.stderr = self.stdout, self.stderr
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stdout.flush()
        self.stderr.flush()
        sys.stdout, sys.stderr = self._saved

    def close(self) -> None:
        self.stdout.spool.close()
        self.stderr.spool.close()
