"""A fork server for `flowplane task` (a "zygote"): the imports every task does, paid once.

The embedded plane's local Batch starts one `python -m flowplane.task.zygote`. It
does what a warm process does ahead of its job (warm.preload: flowplane's modules,
botocore's data) and then forks one child per job; the child takes on the job as a
warm process does (warm.become) and runs `flowplane task`, leaving the zygote's
loop and ending through the interpreter's usual exit (atexit handlers, threads,
the exit code). Each job is still its own process, in its own session.

The protocol (flowplane/local/forkserver.py is the plane's side). The zygote's
stdin is a SOCK_SEQPACKET socket from the plane; each message is one job, JSON
{"argv", "env", "cwd"} as warm.py takes it, carrying three descriptors: a stream
socket for this job, then the write ends of the job's stdout and stderr. On the
job's socket come JSON lines: {"pid": N} from the task once it leads its own
session (the plane may signal its group from then on), then {"pid": N,
"status": W}, its wait status, from the zygote when it has ended.
- The plane's socket ends (the plane stopped, or was killed): every task's group
  is killed and the zygote exits.
- A job's socket ends: no one waits for that task any more; its group is killed.
- The zygote's end of a job's socket closes with no status (it died): the plane
  kills the task's group. Both killed at once, the tasks live on until the next
  plane on the folder ends them (end_orphaned_tasks, as for any task then).

Forking copies only the forking thread: the zygote stays single-threaded and
holds no client, connection or lock when it forks (preload makes none). What a
task inherits that a process started for it would not have: as in a warm
process, `__main__` and `sys.path[0]` are the zygote's; and the seed of str
hashing (read once, as the interpreter starts) is the same in all its tasks.
`random` is reseeded in each child (Python does that at every fork).
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import socket
import sys
import threading
from typing import Any, Optional

from . import warm

# A job's message (its environment, mostly) is far below this; a longer one is refused.
MAX_MESSAGE = 1 << 20
# The descriptors each job brings: its socket, stdout, stderr.
JOB_FDS = 3


class _Server:
    def __init__(self, plane: socket.socket) -> None:
        self.pid = os.getpid()
        self.plane = plane
        self.tasks: dict[int, socket.socket] = {}  # task pid -> its job's socket
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.plane, selectors.EVENT_READ, "plane")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "ended")
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the selector (wakeup fd)
        signal.set_wakeup_fd(self.wake_w)

    def run(self) -> Optional[dict[str, Any]]:
        """Serve until the plane goes (None), or return the job in a forked child."""
        while True:
            for key, _ in self.selector.select():
                if key.data == "plane":
                    message, fds, flags, _ = socket.recv_fds(self.plane, MAX_MESSAGE, JOB_FDS)
                    if not message:
                        _close(fds)
                        return None
                    job = self._take(message, fds, flags)
                    if job is not None:
                        return job
                elif key.data == "ended":
                    self._reap()
                else:  # the job's socket ended (or spoke out of turn): its task is not waited for
                    self._drop(key.data, kill=True)

    def _take(self, message: bytes, fds: list[int], flags: int) -> Optional[dict[str, Any]]:
        if len(fds) != JOB_FDS or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            _close(fds)  # not a job: its socket closes unanswered, the plane starts it another way
            return None
        conn = socket.socket(fileno=fds[0])
        try:
            job = json.loads(message)
        except ValueError:
            conn.close()
            _close(fds[1:])
            return None
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # nothing of the zygote's may reach the task's output
        pid = os.fork()
        if pid == 0:
            self._become_task(conn, fds[1], fds[2])
            return job
        _close(fds[1:])
        self.tasks[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, pid)
        return None

    def _become_task(self, conn: socket.socket, stdout: int, stderr: int) -> None:
        """In the child: a session of its own, the job's streams, none of the zygote's descriptors."""
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        for fd, target in ((null, 0), (stdout, 1), (stderr, 2)):
            if fd != target:  # (were the zygote started without a stderr, a job's could be 2)
                os.dup2(fd, target)
                os.close(fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # Closing, never unregistering: the epoll set is shared with the zygote.
        self.selector.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        self.plane.detach()  # fd 0, /dev/null now
        for other in self.tasks.values():
            other.close()
        self.tasks.clear()
        gc.enable()
        try:
            conn.sendall(_line(pid=os.getpid()))
        finally:
            conn.close()

    def _reap(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.tasks.get(pid)
            if conn is not None:
                try:
                    conn.sendall(_line(pid=pid, status=status))
                except OSError:
                    pass
                self._drop(pid, kill=False)

    def _drop(self, pid: int, kill: bool) -> None:
        conn = self.tasks.pop(pid, None)
        if conn is None:
            return  # reaped already (its socket's event came in the same batch)
        self.selector.unregister(conn)
        conn.close()
        if kill:
            _kill_group(pid)

    def end(self) -> None:
        """The plane is gone: so are its tasks."""
        for pid in list(self.tasks):
            self._drop(pid, kill=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _close(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _line(**fields: int) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def serve(plane: socket.socket) -> Optional[dict[str, Any]]:
    """The zygote's loop: None when the plane has gone, or a job, returned in its forked task."""
    if threading.active_count() != 1:
        raise RuntimeError("the zygote must be single-threaded to fork")
    server = _Server(plane)
    job = None
    try:
        job = server.run()
    finally:
        if os.getpid() == server.pid:
            server.end()
    return job


def main() -> int:
    try:
        warm.preload()
    except Exception:  # noqa: BLE001 - the tasks import for themselves then, and report what fails
        pass
    # What is loaded now stays as it is: a task's collections then leave the pages it
    # shares with the zygote alone (copy-on-write), as Python's docs advise a pre-fork server.
    gc.freeze()
    gc.disable()
    job = serve(socket.socket(fileno=0))
    if job is None:
        return 0
    argv = warm.become(job)
    from ..cli import main as flowplane_main

    return flowplane_main(argv)


if __name__ == "__main__":
    sys.exit(main())
