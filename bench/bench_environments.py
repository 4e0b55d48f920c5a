"""@pypi environments: what a task pays for running in one, and what building one costs.

The path a user takes: a fresh HOME, nothing started by hand, persistence on. Two flows of the
same shape (start -> end), one plain, one whose steps have @pypi (tomli-w, a small pure-Python
wheel), deployed as typed: `python plainbenchflow.py step-functions create` and `python
pypibenchflow.py --environment=pypi step-functions create`, on a plane that holds a realistic
history (its first command deploys ParameterFlow and starts it; that run is then cloned 1,000
times through the plane's AWS API, as bench_history does: `UserPlane.with_history`). Each run is started with `python FLOW.py step-functions trigger`, one
run at a time, and waited for on the plane's Step Functions. After the first run has built the
environment (the archive stored in the bucket), a task of the @pypi flow forks from a zygote
started in its environment: the figure is a task's life as the plane's Batch reports it
(startedAt to stoppedAt: its process started, ran and exited), against the plain flow's (goal:
at most 0.3 s more); and each run from the trigger command's start to the execution's end.
uv's download cache is the machine's (UV_CACHE_DIR, else ~/.cache/uv of the bench's HOME), warm
as on any machine after the first. Then, outside the plane, one environment resolved (the lock,
from the index), built in an empty folder (venv, install, bytecode), archived as production
stores it, and unpacked. Needs the package index (PyPI).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import BenchContext, Row, UserPlane

GOAL_ADDED = 0.3  # s per task, issue 22
LOCAL_QUEUE = "flowplane-local"  # the embedded plane's Batch queue (.chalice/config.json, stage local)

FLOW = '''
from flowplane import FlowSpec, pypi, step


class {name}(FlowSpec):
    {decorator}
    @step
    def start(self):
        {use}
        self.next(self.end)

    {decorator}
    @step
    def end(self):
        {use}


if __name__ == "__main__":
    {name}()
'''


def _write(folder: Path, name: str, with_pypi: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name.lower()}.py"
    path.write_text(FLOW.format(
        name=name,
        decorator='@pypi(packages={"tomli-w": "1.0.0"})' if with_pypi else "",
        use="import tomli_w" if with_pypi else "pass",
    ))
    return path


# The history the user's plane holds while it is measured (bench_history's: a real run, cloned).
HISTORY_RUNS = 1000


def run(ctx: BenchContext) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        user = UserPlane(work / "user", ctx.python)
        user.env["UV_CACHE_DIR"] = os.environ.get("UV_CACHE_DIR") or os.path.expanduser("~/.cache/uv")
        try:
            # The first command (create) starts the plane; it then holds 1,000 runs.
            history = user.with_history(HISTORY_RUNS)
            flows = {}
            for name, with_pypi in (("PlainBenchFlow", False), ("PypiBenchFlow", True)):
                flows[name] = _write(user.work, name, with_pypi)
                args = ["--environment=pypi"] if with_pypi else []
                user.run(str(flows[name]), *args, "step-functions", "create")
            first, _ = _lifetimes(user, flows, "PypiBenchFlow", 1)  # builds the environment, stores its archive
            rows.append(Row("first run of a @pypi flow (its environment built), slowest task", max(first), "s",
                            note="resolving was done at create"))
            _, zygote_run = _lifetimes(user, flows, "PypiBenchFlow", 1)
            plain, plain_runs = _lifetimes(user, flows, "PlainBenchFlow", ctx.repeat)
            cached, cached_runs = _lifetimes(user, flows, "PypiBenchFlow", ctx.repeat)
            rows.append(Row("trigger -> run finished (2 tasks), without @pypi, median", statistics.median(plain_runs), "s",
                            note="from `step-functions trigger` typed"))
            rows.append(Row("trigger -> run finished (2 tasks), @pypi cached, median", statistics.median(cached_runs), "s"))
            rows.append(Row("  the run after the build (the environment's zygote starts)", zygote_run[0], "s",
                            note="once per environment and plane"))
            rows.append(Row("a task without @pypi, start to exit, median", statistics.median(plain), "s",
                            note="Batch's startedAt -> stoppedAt"))
            rows.append(Row("a @pypi task, environment cached, start to exit, median", statistics.median(cached), "s",
                            note="forked by the environment's zygote"))
            rows.append(Row("  added per task by @pypi (cached environment)",
                            max(0.0, statistics.median(cached) - statistics.median(plain)), "s", goal=GOAL_ADDED,
                            note=f"{HISTORY_RUNS:,} runs held by the plane ({history['objects']:,} objects)"))
        finally:
            user.stop_and_check()
        rows += _build_figures(work)
    return rows


def _build_figures(work: Path) -> list[Row]:
    from flowplane.environments import cache
    from flowplane.environments.bucket import write_archive
    from flowplane.environments.resolve import default_python, resolve_one

    rows = []
    saved = os.environ.get(cache.ENVS_DIR_ENV)
    try:
        os.environ[cache.ENVS_DIR_ENV] = str(work / "envs-resolve")
        t0 = time.perf_counter()
        env = resolve_one(default_python(), ["tomli-w==1.0.0"])
        rows.append(Row("resolve one environment (uv pip compile, the index)", time.perf_counter() - t0, "s"))
        os.environ[cache.ENVS_DIR_ENV] = str(work / "envs-build")
        t0 = time.perf_counter()
        path, _ = cache.build(env.id, env)
        rows.append(Row("build it the first time (venv, install, bytecode)", time.perf_counter() - t0, "s",
                        note="uv's download cache warm"))
        archive = work / "env.tar.gz"
        t0 = time.perf_counter()
        with open(archive, "wb") as f:
            write_archive(path, f)
        rows.append(Row("archive it (what the first production task stores)", time.perf_counter() - t0, "s"))
        rows.append(Row("  archive size", archive.stat().st_size / 1e6, "MB",
                        note=f"{_size(path) / 1e6:.0f} MB unpacked; flowplane's own requirements are most of it"))
        os.environ[cache.ENVS_DIR_ENV] = str(work / "envs-unpack")
        t0 = time.perf_counter()
        cache.unpack(env.id, env, str(archive))
        rows.append(Row("unpack it (a later task on a new host)", time.perf_counter() - t0, "s"))
    finally:
        if saved is None:
            os.environ.pop(cache.ENVS_DIR_ENV, None)
        else:
            os.environ[cache.ENVS_DIR_ENV] = saved
    return rows


def _size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files
               if not os.path.islink(os.path.join(d, f)))


def _jobs(batch) -> set[str]:  # noqa: ANN001
    """Every finished Batch job on the plane's queue."""
    ids = set()
    for status in ("SUCCEEDED", "FAILED"):
        for page in batch.get_paginator("list_jobs").paginate(jobQueue=LOCAL_QUEUE, jobStatus=status):
            ids.update(j["jobId"] for j in page["jobSummaryList"])
    return ids


def _lifetimes(user: UserPlane, flows: dict[str, Path], flow: str, repeat: int) -> tuple[list[float], list[float]]:
    """Trigger `flow` `repeat` times as the user does, one run at a time: each task's life as Batch
    reports it (start to exit), and each run's time from the trigger command to the execution's end."""
    batch, sfn = user.client("batch"), user.client("stepfunctions")
    machine = next(m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]
                   if m["name"].endswith(flow))
    out, runs = [], []
    for _ in range(repeat):
        before = _jobs(batch)
        t0 = time.perf_counter()
        run_id = user.run(str(flows[flow]), "step-functions", "trigger").strip().splitlines()[-1]
        arn = machine.replace(":stateMachine:", ":execution:") + ":" + run_id.removeprefix("sfn-")
        deadline = time.monotonic() + 600
        while (status := sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{flow} {run_id} still running")
            time.sleep(0.05)
        runs.append(time.perf_counter() - t0)
        if status != "SUCCEEDED":
            raise RuntimeError(f"{flow} {run_id}: {status}")
        new = sorted(_jobs(batch) - before)
        jobs = batch.describe_jobs(jobs=new)["jobs"] if new else []
        assert len(jobs) == 2 and all(j["status"] == "SUCCEEDED" for j in jobs), f"{flow} {run_id}: {jobs}"
        out += [(j["stoppedAt"] - j["startedAt"]) / 1000 for j in jobs]
    return out, runs


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for row in run(BenchContext(repeat=int(os.environ.get("REPEAT", "3")))):
        print(row.render())
