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
from typing import TYPE_CHECKING, Any, Optional, Protocol

if TYPE_CHECKING:
    from ..local.forkserver import ForkedTask


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


class _ZygoteTask(TaskProcess):
    """A task a zygote forked (flowplane/local/forkserver.py), seen as the runtime sees its own."""

    def __init__(self, forked: "ForkedTask") -> None:
        super().__init__(forked.pid, forked.stdout.fileno(), forked.stderr.fileno())
        self.forked = forked

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            self.returncode = self.forked.poll()
        return self.returncode

    def close(self) -> None:
        for stream in (self.forked.stdout, self.forked.stderr):
            stream.close()


class EnvironmentLauncher:
    """@pypi/@conda: tasks of a step with an environment fork from a zygote started in that
    environment (one per environment, for this run), so each starts as fast as a task forked
    from the runtime; every other task starts through `base`. A task whose zygote cannot fork
    it starts through `base` too, and enters its environment by exec (flowplane/environments/enter.py)."""

    def __init__(self, base: Launcher) -> None:
        self.base = base
        self.name = base.name
        # Started at an environment's first task: started all at once, they would compete
        # for the cores the first tasks need.
        self._zygotes: dict[str, Any] = {}

    def launch(self, argv: list[str], close_in_child: list[int]) -> TaskProcess:
        env_id = argv[argv.index("--python-env") + 1] if "--python-env" in argv else None
        zygote = self._zygote(env_id) if env_id else None
        if zygote is not None:
            forked = zygote.spawn(["task", *argv], zygote.env, os.getcwd())
            if forked is not None:
                return _ZygoteTask(forked)
        return self.base.launch(argv, close_in_child)

    def _zygote(self, env_id: str) -> Any:
        from ..environments import cache
        from ..environments.enter import task_environment
        from ..local.forkserver import Zygote

        zygote = self._zygotes.get(env_id)
        if zygote is None or not zygote.alive():
            path = cache.ready_path(env_id)
            if path is None:
                return None
            try:
                zygote = Zygote(cache.python_of(path), task_environment(dict(os.environ), path, env_id), os.getcwd())
            except OSError:
                return None
            self._zygotes[env_id] = zygote
        return zygote

    def close(self) -> None:
        """Stop the zygotes (after the run: no task of theirs runs any more)."""
        zygotes, self._zygotes = list(self._zygotes.values()), {}
        for zygote in zygotes:
            zygote.stop()


def default_launcher() -> Launcher:
    choice = os.environ.get("FLOWPLANE_TASK_LAUNCHER", "").strip().lower()
    if choice not in ("", "fork", "subprocess"):
        raise ValueError(f"FLOWPLANE_TASK_LAUNCHER={choice!r}: use fork or subprocess")
    if choice == "subprocess" or not hasattr(os, "fork"):
        return SubprocessLauncher()
    return ForkLauncher()
