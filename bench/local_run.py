"""Wall time of `python foreach_flow.py run` (13 tasks), median of N runs.

    .venv/bin/python bench/local_run.py [--repeat 3] [--flow PATH] [--launcher fork|subprocess]

Each run is a fresh interpreter in a fresh folder with its own datastore, as a
user would type it; the figure includes interpreter start-up and imports.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FLOW = ROOT.parent / "shared" / "flows" / "foreach_flow.py"
METAFLOW_SECONDS = 3.1  # ../shared/FACTS.md: Metaflow 2.19.39 on this machine


def time_run(flow: Path, launcher: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        target = work / flow.name
        shutil.copy(flow, target)
        env = {
            **os.environ,
            "FLOWPLANE_DATASTORE_ROOT": str(work / ".flowplane"),
            "FLOWPLANE_TASK_LAUNCHER": launcher,
        }
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(target), "run"], cwd=work, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--flow", type=Path, default=DEFAULT_FLOW)
    parser.add_argument("--launcher", choices=["fork", "subprocess"], default="fork")
    args = parser.parse_args()
    times = [time_run(args.flow, args.launcher) for _ in range(args.repeat)]
    median = statistics.median(times)
    runs = ", ".join(f"{t:.3f}" for t in times)
    print(f"flowplane run {args.flow.name} ({args.launcher}): median {median:.3f} s of {args.repeat} [{runs}]")
    print(f"  vs Metaflow {METAFLOW_SECONDS} s: {median / METAFLOW_SECONDS:.2f}x (goal <= 0.33x, {METAFLOW_SECONDS / 3:.2f} s)")


if __name__ == "__main__":
    main()
