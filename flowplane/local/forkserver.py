"""The plane's side of the task zygote (flowplane/task/zygote.py, which describes the protocol).

`Zygote` starts and stops the fork server; `Zygote.spawn` hands it one job and
returns a `ForkedTask`, which the local Batch supervises as it does a
`subprocess.Popen`: the task's pid (the task's own, leading its session), its
stdout and stderr, `poll`, `wait` and `returncode` (negative for a signal).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from typing import IO, Optional

from .priority import run_below_the_plane

# How long a job waits for the zygote to fork it, the first ones while it still imports.
FORK_SECONDS = 30.0
# How long the zygote has to end its tasks and exit when the plane stops.
STOP_SECONDS = 5.0


class ForkedTask:
    """A task the zygote forked, as `subprocess.Popen` shows a process (what the local Batch uses of it)."""

    stdin = None

    def __init__(self, conn: socket.socket, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self._conn = conn
        self._buffer = b""
        self.stdout, self.stderr = stdout, stderr
        self.pid = 0
        self.returncode: Optional[int] = None

    def _started(self, timeout: float) -> bool:
        """Whether the zygote forked the task (its pid is known then)."""
        self._receive(timeout)
        return self.pid != 0

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            self._receive(0.0)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(["flowplane", "task"], timeout)
            self._receive(left)
        return self.returncode

    def _receive(self, timeout: Optional[float]) -> None:
        """Read what the zygote and the task said, waiting up to `timeout` for a new line."""
        self._conn.settimeout(timeout)
        while self.returncode is None:
            try:
                data = self._conn.recv(4096)
            except (BlockingIOError, TimeoutError):
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            self._buffer += data
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                said = json.loads(line)
                self.pid = self.pid or int(said["pid"])
                if "status" in said:
                    self.returncode = os.waitstatus_to_exitcode(said["status"])
                    self._conn.close()
            if lines:
                return

    def _lost(self) -> None:
        """The zygote went without a word on the task: nothing may outlive it unseen."""
        self._conn.close()
        if self.pid:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.returncode = -signal.SIGKILL

    def abandon(self) -> None:
        """Give up on a task never forked: closing its socket tells the zygote not to run it."""
        self._conn.close()
        for stream in (self.stdout, self.stderr):
            stream.close()


class Zygote:
    """The fork server: started with `env` in `cwd`; it serves jobs whose start `env` fits."""

    def __init__(self, python: str, env: dict[str, str], cwd: str) -> None:
        self.env = env
        self._lock = threading.Lock()
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                [python, "-m", "flowplane.task.zygote"],
                env=env,
                cwd=cwd,
                stdin=theirs,  # its end of the socket; the plane's closing (or death) ends it
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            self._sock.close()
            raise
        finally:
            theirs.close()
        run_below_the_plane(self.process.pid)  # its forks inherit it
        # A zygote that stops answering makes a job wait this long, not forever.
        self._sock.settimeout(FORK_SECONDS)

    def alive(self) -> bool:
        return self.process.poll() is None

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str) -> Optional[ForkedTask]:
        """The job forked as `flowplane ARGV` in `cwd` with exactly `env`; None if the zygote cannot."""
        if not self.alive():
            return None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        task = ForkedTask(ours, open(out_r, "rb"), open(err_r, "rb"))
        message = json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode()
        try:
            with self._lock:
                socket.send_fds(self._sock, [message], [theirs.fileno(), out_w, err_w])
        except OSError:  # gone, stuck, or a message too long
            task.abandon()
            return None
        finally:
            theirs.close()
            os.close(out_w)
            os.close(err_w)
        if not task._started(FORK_SECONDS):
            task.abandon()
            return None
        return task

    def stop(self) -> None:
        """End the zygote and any task it still runs."""
        with self._lock:  # not under a job being sent
            self._sock.close()
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait()
