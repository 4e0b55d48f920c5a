"""Progress lines, as Metaflow prints them:

    2026-11-25 10:00:00.123 Workflow starting (run-id 1764064800123456):
    2026-11-25 10:00:00.130 [1764064800123456/start/1 (pid 4242)] Task is starting.
    2026-11-25 10:00:00.151 [1764064800123456/start/1 (pid 4242)] alpha is 0.010000

Task output goes to our stdout or stderr as the task wrote it; lines are
buffered and flushed once per scheduler turn.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Optional, TextIO


def timestamp() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class Progress:
    def __init__(self, out: Optional[TextIO] = None, err: Optional[TextIO] = None, quiet: bool = False):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        # --quiet: the runtime's own messages go; the tasks' output and the failure summary stay.
        self.quiet = quiet

    def _write(self, stream: TextIO, text: str) -> None:
        try:
            stream.write(text)
        except (OSError, ValueError):
            pass  # nobody is reading our output any more; the run goes on

    def system(self, message: str) -> None:
        if self.quiet:
            return
        self._write(self.out, f"{timestamp()} {message}\n")

    def task(self, label: str, pid: int, message: str, err: bool = False) -> None:
        self._write(self.err if err else self.out, f"{timestamp()} [{label} (pid {pid})] {message}\n")

    def detail(self, message: str) -> None:
        self._write(self.out, f"    {message}\n")

    def flush(self) -> None:
        for stream in (self.out, self.err):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
