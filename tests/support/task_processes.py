"""Task processes started outside the plane (warm interpreters, the zygote): their jobs and
how to watch them end. Shared by the task, local-plane and orphaned-task tests."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowplane.local.forkserver import ForkedTask, Zygote

# The zygote tests' flow: `start` reports what its process looks like (or sleeps with a
# child of its own when SLEEP_WITH_A_CHILD is set); `end` exits 3.
ZYGOTE_FLOW = """
import atexit
import os
import random
import subprocess
import sys
import tempfile
import time

from flowplane import FlowSpec, step


class ZygoteFlow(FlowSpec):
    @step
    def start(self):
        if os.environ.get("SLEEP_WITH_A_CHILD"):
            # A child in the task's group, as a step's own subprocess would be.
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            print("child", child.pid, flush=True)
            time.sleep(600)
        self.pid, self.sid, self.cwd = os.getpid(), os.getsid(0), os.getcwd()
        self.env = dict(os.environ)
        self.fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
        self.tmp = tempfile.gettempdir()
        self.stdin = sys.stdin.read()
        self.random = random.random()
        atexit.register(lambda: open(os.path.join(self.cwd, "ATEXIT"), "w").write("ran"))
        print("hello from the step")
        print("and to stderr", file=sys.stderr)
        self.next(self.end)

    @step
    def end(self):
        raise SystemExit(3)
"""


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWPLANE_", "MOTO_"))}
    env.update(FLOWPLANE_USER="tester", **extra)
    return env


def task_argv(flow: Path, root: Path, step: str) -> list[str]:
    return ["task", "--run-id", "1", "--step", step, "--task-id", "1", "--flow-file", str(flow),
            "--datastore-root", str(root), "--params-json", "{}"]


def job_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return env_for(tmp_path, TMPDIR=str(tmp_path / "tmp"), **extra)


def folder(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir(exist_ok=True)
    return path


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(*pids: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if alive(p)]


def sleeping_task(zygote: Zygote, flow: Path, tmp_path: Path, **extra: str) -> tuple[ForkedTask, int]:
    """A task of `start` sleeping with a child of its own: (the task, the child's pid)."""
    task = zygote.spawn(task_argv(flow, tmp_path / "ds", "start"), job_env(tmp_path, SLEEP_WITH_A_CHILD="1", **extra),
                        str(folder(tmp_path, "sleeper")))
    assert task is not None
    line = task.stdout.readline().split()
    assert line[0] == b"child", task.stderr.read()
    return task, int(line[1])
