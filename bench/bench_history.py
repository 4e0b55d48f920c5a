"""The embedded plane on the path a new user takes, with an empty history and with 1,000 runs.

Nothing is started by hand and persistence is on: a fresh HOME, no
FLOWPLANE_API_URL, each command a new interpreter exactly as typed
(`python parameter_flow.py step-functions create|trigger|list-runs`, and a
Client API read, `Flow('ParameterFlow').latest_run.data.alpha`). The first
command starts the background service; every later one finds it.

Two users side by side, each with their own HOME and background plane: one
with an empty history (the deployment and a run), one with 1,000 runs. Their
commands alternate, so the load of this shared machine weighs on both alike
and the ratio measures history, not the moment.

The history is built through the embedded plane's own AWS API, the one its
tasks and recorder write through, so the journal records it as it records real
runs: a real ParameterFlow run (11 S3 objects: run, task and attempt records,
artifact index, logs; 9 DynamoDB items; about 30 CloudWatch log lines) is
cloned under 1,000 new run ids (objects and items with the run id rewritten,
the job log streams renamed, the recorder's log lines copied). That is 11,000
artifact objects, 10,000 items and about 30,000 log lines. Their Step Functions
executions are not cloned (the API cannot create a finished execution); the
real runs' are there.

Then: the plane's boot as a user pays it (`flowplane local start` after `stop`,
a new interpreter, until it answers) and as the plane reports it, its idle CPU
over a minute, its memory, and the state folder's bytes per recorded task.
`list-runs` prints up to 100 runs by default, so with a history it shows 100
rows where the empty plane shows one: its row with `--limit 1` compares equal
output.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import BenchContext, Row, flow_path, seed_history, wait_for_no_execution

RUNS = 1000
GOAL_COMMAND_S = 1.0
GOAL_RATIO = 1.2
GOAL_BOOT_S = 2.0
GOAL_IDLE_CPU = 0.02
IDLE_SECONDS = 60.0

READ = ("from flowplane import Flow, namespace; namespace(None); "
        "print(Flow('ParameterFlow').latest_run.data.alpha)")


class User:
    def __init__(self, base: Path, python: str) -> None:
        self.python = python
        self.home = base / "home"
        self.work = base / "work"
        self.home.mkdir(parents=True)
        self.work.mkdir(parents=True)
        self.state = self.home / ".flowplane" / "local"
        self.flow = self.work / "parameter_flow.py"
        self.flow.write_text(flow_path("parameter_flow.py").read_text())
        drop = ("FLOWPLANE_", "AWS_", "MOTO_")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        self.env.update(HOME=str(self.home), FLOWPLANE_USER="bench")

    def run(self, *args: str) -> str:
        done = subprocess.run([self.python, *args], cwd=self.work, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{args} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return done.stdout

    def timed(self, *args: str) -> float:
        t0 = time.perf_counter()
        self.run(*args)
        return time.perf_counter() - t0

    def plane(self) -> dict[str, Any]:
        return json.loads((self.state / "plane.json").read_text())


def _commands(user: User) -> dict[str, list[str]]:
    flow = str(user.flow)
    return {
        "step-functions create": [flow, "step-functions", "create"],
        "step-functions trigger": [flow, "step-functions", "trigger", "--alpha", "0.5"],
        "step-functions list-runs": [flow, "step-functions", "list-runs"],
        "Client API latest_run.data read": ["-c", READ],
    }


def _paired(empty: User, full: User, name: str, repeat: int, extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """Median seconds of the same command for each user, their runs alternating."""
    times: dict[str, list[float]] = {"empty": [], "full": []}
    for _ in range(repeat):
        for label, user in (("empty", empty), ("full", full)):
            times[label].append(user.timed(*_commands(user)[name], *extra))
            _wait_idle(user)
    return statistics.median(times["empty"]), statistics.median(times["full"])


def run(ctx: BenchContext) -> list[Row]:
    rows: list[Row] = []
    repeat = max(ctx.repeat, 5)
    with tempfile.TemporaryDirectory() as tmp:
        empty, full = User(Path(tmp) / "empty", ctx.python), User(Path(tmp) / "full", ctx.python)
        try:
            create = _commands(full)["step-functions create"]
            rows.append(Row("first command: create, starting the background service", full.timed(*create), "s",
                            note="once per machine; later commands find it"))
            empty.run(*_commands(empty)["step-functions create"])
            for user in (empty, full):
                user.run(*_commands(user)["step-functions trigger"])
                _wait_idle(user)
            t0 = time.perf_counter()
            counts = seed_history(full.plane()["endpoint"], RUNS)
            rows.append(Row(f"seeding {RUNS} runs through the embedded AWS API (not a goal)",
                            time.perf_counter() - t0, "s",
                            note=f"{counts['objects']} objects, {counts['items']} items, {counts['log_lines']} log lines"))
            boots = [(_boot(empty), _boot(full)) for _ in range(3)]  # the first after seeding compacts, beside
            _wait_compacted(full)
            for name in _commands(full):
                e, f = _paired(empty, full, name, repeat)
                rows.append(Row(f"{name}, {RUNS} runs held, median", f, "s", goal=GOAL_COMMAND_S,
                                note=f"empty history: {e:.3f} s"))
                rows.append(Row("  ratio to the empty history", f / e, "x", goal=GOAL_RATIO))
            e, f = _paired(empty, full, "step-functions list-runs", repeat, ("--limit", "1"))
            rows.append(Row(f"step-functions list-runs --limit 1, {RUNS} runs held, median", f, "s",
                            note=f"empty history: {e:.3f} s; ratio {f / e:.2f}"))

            wall = statistics.median(b[1][0] for b in boots)
            ready = statistics.median(b[1][1] for b in boots)
            rows.append(Row(f"plane boot, {RUNS} runs held: `flowplane local start` until it answers", wall, "s",
                            goal=GOAL_BOOT_S, note=f"empty history: {statistics.median(b[0][0] for b in boots):.2f} s"))
            rows.append(Row("  of which the plane itself (its 'ready' line)", ready, "s",
                            note=f"empty history: {statistics.median(b[0][1] for b in boots):.2f} s; "
                                 "the rest is the interpreter and imports"))
            cpu = _idle_cpu(full, IDLE_SECONDS)
            rows.append(Row(f"plane idle CPU over {IDLE_SECONDS:.0f} s, {RUNS} runs held", cpu, "share",
                            goal=GOAL_IDLE_CPU, note="share of one core"))
            rows.append(Row(f"plane memory (RSS), {RUNS} runs held", _rss_mb(full), "MB",
                            note=f"empty history: {_rss_mb(empty):.0f} MB"))
            size = sum(p.stat().st_size for p in full.state.rglob("*") if p.is_file() and "jobs" not in p.parts)
            tasks = 2 * (RUNS + counts["real_runs"])
            rows.append(Row("state folder bytes per recorded task", size / tasks, "B",
                            note=f"{size / 1e6:.1f} MB for {tasks} tasks (bodies, journal, logs)"))
        finally:
            for user in (empty, full):
                try:
                    user.run("-m", "flowplane", "local", "stop")
                except RuntimeError:
                    pass
    return rows


def _wait_compacted(user: User, timeout: float = 120.0) -> None:
    """Until the compaction a start began beside the plane is done (one generation left)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(user.state.glob("journal.*.jsonl"))) <= 1 and not list(user.state.glob("*.tmp")):
            return
        time.sleep(0.2)


def _rss_mb(user: User) -> float:
    pid = int(user.plane()["pid"])
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _boot(user: User) -> tuple[float, float]:
    """`flowplane local stop` then `start`, as a user types them: the start's wall time, and the
    plane's own start time from its log."""
    user.run("-m", "flowplane", "local", "stop")
    log = user.state / "plane.log"
    before = log.read_text() if log.exists() else ""
    wall = user.timed("-m", "flowplane", "local", "start")
    added = log.read_text()[len(before):] if log.exists() else ""
    ready = [line for line in added.splitlines() if "control plane ready at" in line]
    seconds = float(ready[-1].rsplit("(", 1)[1].split()[0]) if ready else float("nan")
    return wall, seconds


def _idle_cpu(user: User, seconds: float) -> float:
    pid = int(user.plane()["pid"])
    _wait_idle(user)
    time.sleep(3)  # let start-up's last work finish

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    c0, t0 = cpu(), time.monotonic()
    time.sleep(seconds)
    return (cpu() - c0) / (time.monotonic() - t0)


def _wait_idle(user: User, timeout: float = 120.0) -> None:
    """Until no execution runs on the plane (so one command's run does not weigh on the next)."""
    wait_for_no_execution(_clients(user)["stepfunctions"], timeout)


def _clients(user: User) -> dict[str, Any]:
    import boto3

    endpoint = user.plane()["endpoint"]
    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")
    return {name: session.client(name, endpoint_url=endpoint) for name in ("s3", "dynamodb", "logs", "stepfunctions")}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for row in run(BenchContext(repeat=int(os.environ.get("REPEAT", "3")))):
        print(row.render())
