"""Starting task processes: forked from the runtime, or `python -m flowplane task`.

Forking is the fast path: the runtime has already imported flowplane and the
flow, so a child only runs the task (a fresh interpreter spends ~0.2 s just
importing). The child calls the same `flowplane.task.command.main` with the same
arguments a subprocess or a Batch job gets, in its own process (and process
group), with stdout/stderr on pipes the runtime reads. Where fork is missing,
or with FLOWPLANE_TASK_LAUNCHER=subprocess, tasks start as subprocesses.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import traceback
from typing import Optional, Protocol


class TaskProcess:
    """One running task attempt: its pid and the read ends of its output pipes."""

    def __init__(self, pid: int, stdout_fd: int, stderr_fd: int, popen: Optional[subprocess.Popen] = None):
        self.pid = pid
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd
        self.popen = popen
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        """The exit code once the process ended (negative: killed by that signal)."""
        if self.returncode is None:
            if self.popen is not None:
                self.returncode = self.popen.poll()
            else:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    self.returncode = -1
                    return self.returncode
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        """End the task and anything it started (it leads its own process group)."""
        if self.returncode is not None:
            return
        for kill in (lambda: os.killpg(self.pid, signal.SIGKILL), lambda: os.kill(self.pid, signal.SIGKILL)):
            try:
                kill()
                return
            except (ProcessLookupError, PermissionError):
                continue

    def close(self) -> None:
        if self.popen is not None:
            for f in (self.popen.stdout, self.popen.stderr):
                if f is not None:
                    f.close()
        else:
            for fd in (self.stdout_fd, self.stderr_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass


class Launcher(Protocol):
    name: str

    def launch(self, argv: list[str], close_in_child: list[int]) -> TaskProcess: ...


class ForkLauncher:
    name = "fork"

    def launch(self, argv: list[str], close_in_child: list[int]) -> TaskProcess:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        # Unflushed runtime output would otherwise be written again by the child.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        pid = os.fork()
        if pid == 0:
            _child(argv, out_w, err_w, [out_r, err_r, *close_in_child])  # never returns
        os.close(out_w)
        os.close(err_w)
        return TaskProcess(pid, out_r, err_r)


def _child(argv: list[str], out_w: int, err_w: int, close: list[int]) -> None:
    code = 1
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (devnull, out_w, err_w, *close):
            if fd > 2:
                try:
                    os.close(fd)
                except OSError:
                    pass
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:
            pass
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        # Fresh stream objects: the parent's may hold locks or buffered bytes.
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace")
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
        )
        _reseed()
        from ..task.command import main

        code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code if isinstance(code, int) else 1)


def _reseed() -> None:
    # `random` reseeds itself after fork; numpy's global generator does not, and
    # forked siblings would otherwise draw the same "random" numbers.
    np = sys.modules.get("numpy")
    if np is not None:
        try:
            np.random.seed()
        except Exception:
            pass


class SubprocessLauncher:
    name = "subprocess"

    def launch(self, argv: list[str], close_in_child: list[int]) -> TaskProcess:
        popen = subprocess.Popen(
            [sys.executable, "-m", "flowplane", "task", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        assert popen.stdout is not None and popen.stderr is not None
        return TaskProcess(popen.pid, popen.stdout.fileno(), popen.stderr.fileno(), popen)


def default_launcher() -> Launcher:
    choice = os.environ.get("FLOWPLANE_TASK_LAUNCHER", "").strip().lower()
    if choice not in ("", "fork", "subprocess"):
        raise ValueError(f"FLOWPLANE_TASK_LAUNCHER={choice!r}: use fork or subprocess")
    if choice == "subprocess" or not hasattr(os, "fork"):
        return SubprocessLauncher()
    return ForkLauncher()
