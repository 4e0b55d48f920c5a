"""Shared bits of the benchmark sections: rows, timing, the flows to measure."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
SHARED_FLOWS = ROOT.parent / "shared" / "flows"
EXAMPLES = ROOT / "examples"
# The compile section measures the compiler tests' own fixtures (tests/support/compiler_shapes.py:
# the long stage settings, the N-step flow), so the figures and the byte-budget tests agree.
# tests/ is a package: its helpers import as tests.support.*, from the repository root, as under pytest.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))


def flow_path(name: str) -> Path:
    """The shared flow if this machine has ../shared, else the project's own example."""
    shared = SHARED_FLOWS / name
    return shared if shared.exists() else EXAMPLES / name


@dataclass
class BenchContext:
    metaflow_python: Optional[str] = None
    repeat: int = 3
    python: str = sys.executable


@dataclass
class Row:
    what: str
    value: float
    unit: str
    goal: Optional[float] = None  # lower is better
    note: str = ""

    def render(self) -> str:
        text = f"  {self.what:<58} {self.value:>10.3f} {self.unit:<6}"
        if self.goal is not None:
            verdict = "ok" if self.value <= self.goal else "OVER"
            text += f" goal <= {self.goal:g} {self.unit} ({self.value / self.goal:.2f}x of goal, {verdict})"
        if self.note:
            text += f"  {self.note}"
        return text


def user_env(home: Path) -> dict[str, str]:
    """A new user's environment: this one without any flowplane, AWS or moto setting, HOME at `home`."""
    drop = ("FLOWPLANE_", "AWS_", "MOTO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOME=str(home), FLOWPLANE_USER="bench")
    return env


def user_shell(python: str, work: Path, env: dict[str, str]) -> Callable[..., str]:
    """`run(*args)`: `python *args` in `work` with `env`; its stdout (a failure raises with its output)."""

    def run(*args: str) -> str:
        done = subprocess.run([python, *args], cwd=work, env=env, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"{args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return done.stdout

    return run


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_cmd(cmd: list[str], cwd: Path, env: Optional[dict] = None) -> None:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
