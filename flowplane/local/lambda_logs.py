"""What the control plane's functions print goes to CloudWatch Logs, as on Lambda.

On AWS a Lambda function's stdout (Powertools' metrics, `print`) lands in
the log group /aws/lambda/<function>, never on anyone's terminal. The plane
calls its functions in-process, from several threads; `LambdaOutput` replaces
sys.stdout with a proxy that sends what a thread writes while it runs a
function to that function's log stream in moto, and everything else to the
real stdout.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterator, Optional, TextIO

GROUP_PREFIX = "/aws/lambda/"


class _Proxy:
    def __init__(self, real: TextIO, owner: "LambdaOutput") -> None:
        self._real = real
        self._owner = owner

    def write(self, text: str) -> int:
        buffer = self._owner._buffer()
        if buffer is None:
            return self._real.write(text)
        buffer.append(text)
        return len(text)

    def flush(self) -> None:
        if self._owner._buffer() is None:
            self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class LambdaOutput:
    """Routes the stdout of function invocations to CloudWatch Logs (moto's, in-process)."""

    def __init__(self, logs_backend: Callable[[], Any]) -> None:
        self._logs_backend = logs_backend
        self._local = threading.local()
        self._real: Optional[TextIO] = None

    def install(self) -> Callable[[], None]:
        self._real = sys.stdout
        proxy = _Proxy(sys.stdout, self)
        sys.stdout = proxy  # type: ignore[assignment]

        def undo() -> None:
            if sys.stdout is proxy:
                sys.stdout = self._real  # type: ignore[assignment]

        return undo

    def _buffer(self) -> Optional[list[str]]:
        return getattr(self._local, "buffer", None)

    @contextlib.contextmanager
    def capture(self, function: str) -> Iterator[None]:
        """While the block runs, this thread's stdout belongs to `function`'s log."""
        if self._buffer() is not None:  # a function calling another: one log
            yield
            return
        self._local.buffer = buffer = []
        try:
            yield
        finally:
            self._local.buffer = None
            text = "".join(buffer)
            if text:
                self._write(function, text)

    def _write(self, function: str, text: str) -> None:
        try:
            backend = self._logs_backend()
            group = GROUP_PREFIX + function
            stream = time.strftime("%Y/%m/%d") + "/[$LATEST]" + uuid.uuid4().hex
            backend.ensure_log_group(group)
            backend.ensure_log_stream(group, stream)
            now = int(time.time() * 1000)
            events = [{"timestamp": now, "message": line} for line in text.splitlines() if line]
            if events:
                backend.put_log_events(group, stream, events)
        except Exception:  # a log line lost must never fail the function
            pass
