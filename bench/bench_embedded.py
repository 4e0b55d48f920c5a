"""The embedded control plane, idealised: `step-functions create` end to end, and trigger-to-first-task.

A plane runs in this process, started by hand with persistence off: the
figures of the plane's own work. What a user pays on the default path (the
background service, persistence on, a history of 1,000 runs) is the `history`
section. `create` is timed
as a user types it (`python parameter_flow.py step-functions create`, a new
interpreter each time, FLOWPLANE_API_URL pointing at the plane: packaging,
upload, compile on the plane, the wait for DEPLOYED) and, for the share of the
plane itself, in-process. Trigger-to-first-task is from the trigger's request
to the start of the first task's process (the local Batch's record), and to
that task's first line in CloudWatch Logs. A task's own start-up is from its
process's start to the moment it begins its attempt (the `started_at` of its
attempt record: package download, AWS clients, flow loaded; for a cold process
also the interpreter, the imports and botocore's data), and its whole life for
ParameterFlow's tiny steps, with the CPU all task processes took per task;
first forked by the local Batch's zygote (the default), then in its warm
processes (the fallback), then cold, as every task starts on AWS Batch.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import BenchContext, Row, flow_path, median_time, run_cmd

METAFLOW_CREATE = 4.2  # s, Metaflow's step-functions create against moto (../shared/FACTS.md)


def run(ctx: BenchContext) -> list[Row]:
    from flowplane.api_client import ApiClient
    from flowplane.cli import build_flow_cli
    from flowplane.local.plane import LocalPlane, PlaneConfig

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        saved = {k: os.environ.get(k) for k in ("HOME", "FLOWPLANE_API_URL", "FLOWPLANE_USER")}
        os.environ.update(HOME=str(work / "home"), FLOWPLANE_USER="bench")
        t0 = time.perf_counter()
        plane = LocalPlane(PlaneConfig(state_dir=work / "state", persist=False)).start()
        rows.append(Row("embedded plane start (moto, stack, Chalice server)", time.perf_counter() - t0, "s"))
        try:
            os.environ["FLOWPLANE_API_URL"] = plane.url
            src = flow_path("parameter_flow.py")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))
                   and not (k.startswith("FLOWPLANE_") and k not in ("FLOWPLANE_API_URL", "FLOWPLANE_USER"))}
            command = [ctx.python, str(src), "step-functions", "create"]
            run_cmd(command, src.parent, env)  # the first deployment mints the token; later ones are versions
            cold = median_time(lambda: run_cmd(command, src.parent, env), ctx.repeat)
            rows.append(Row("idealised create (hand-started plane, no persistence), median", cold, "s",
                            note=f"Metaflow against moto: {METAFLOW_CREATE} s"))
            cls = _load(src)
            cli = build_flow_cli(cls)

            def in_process() -> None:
                with contextlib.redirect_stdout(io.StringIO()):
                    cli.main(args=["step-functions", "create"], prog_name="bench", standalone_mode=False)

            rows.append(Row("step-functions create in-process (no interpreter start), median",
                            median_time(in_process, ctx.repeat), "s"))
            client = ApiClient(plane.url)
            spawn, logged, whole, startup, lifetime, cpu = _triggers(plane, client, ctx.repeat)
            rows.append(Row("trigger -> first task's process started, median", statistics.median(spawn), "s"))
            rows.append(Row("trigger -> first task's first line in CloudWatch Logs, median",
                            statistics.median(logged), "s", note="logs are flushed every second"))
            rows.append(Row("trigger -> ParameterFlow run finished (2 tasks), median", statistics.median(whole), "s"))
            rows.append(Row("a task's start-up (process start -> attempt begins), median", statistics.median(startup), "s",
                            note="forked by the zygote: package, AWS clients, flow loaded"))
            rows.append(Row("a task process, start to exit (ParameterFlow's steps), median",
                            statistics.median(lifetime), "s"))
            rows.append(Row("CPU of the task processes, per task", cpu, "s", note="the zygote's and its tasks'"))
            # Without the zygote: a warm process per task (its fallback), which imports for each.
            plane.batch._stop_zygote()
            plane.batch._fill_warm()
            _, _, whole, startup, lifetime, cpu = _triggers(plane, client, ctx.repeat)
            rows.append(Row("  warm: a task's start-up, median", statistics.median(startup), "s"))
            rows.append(Row("  warm: a task process, start to exit, median", statistics.median(lifetime), "s"))
            rows.append(Row("  warm: CPU of the task processes, per task", cpu, "s", note="+ the imports, in each"))
            # Nor warm processes: what every task pays on AWS Batch (a new container's Python).
            plane.batch.warm = 0
            plane.batch._drop_warm()
            _, _, whole, startup, lifetime, cpu = _triggers(plane, client, ctx.repeat)
            rows.append(Row("  cold: a task's start-up, median", statistics.median(startup), "s",
                            note="+ interpreter, imports, botocore's data"))
            rows.append(Row("  cold: a task process, start to exit, median", statistics.median(lifetime), "s"))
            rows.append(Row("  cold: CPU of the task processes, per task", cpu, "s"))
            rows.append(Row("  cold: trigger -> ParameterFlow run finished, median", statistics.median(whole), "s"))
        finally:
            plane.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return rows



def _load(path: Path) -> type:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_parameter_flow", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.ParameterFlow


def _wait(probe, timeout: float = 60.0, step: float = 0.005):
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError("the embedded plane did not get there in time")
        time.sleep(step)


def _triggers(plane, client, repeat: int) -> tuple[list[float], ...]:
    """Trigger ParameterFlow `repeat` times, one run at a time: (spawn, logged, whole, startup,
    lifetime, CPU of the task processes per task)."""
    spawn, logged, whole, startup, lifetime = [], [], [], [], []
    cpu_before, tasks_before = _task_cpu(plane), len(plane.batch.history)
    for _ in range(repeat):
        before = len(plane.batch.history)
        t0 = time.time()
        run_id = client.trigger("ParameterFlow", {"alpha": 0.5})["run_id"]
        first = _wait(lambda: next((r for r in plane.batch.history[before:] if r.run_id == run_id), None))
        spawn.append(first.started - t0)
        _wait(lambda: _first_line(plane, first.job_id))
        logged.append(time.time() - t0)
        plane.wait_for_runs(120)
        whole.append(time.time() - t0)
        for task in (r for r in plane.batch.history[before:] if r.run_id == run_id):
            startup.append(_attempt_started(plane, run_id, task.step) - task.started)
            lifetime.append(task.ended - task.started)
    # The last warm process (started for the next job, importing) is counted only once it is reaped.
    cpu = (_task_cpu(plane) - cpu_before) / (len(plane.batch.history) - tasks_before)
    return spawn, logged, whole, startup, lifetime, cpu


def _task_cpu(plane) -> float:
    """CPU seconds the task processes used so far: those the plane started and reaped, and
    the zygote with the tasks it forked and reaped (read from /proc: they are its children)."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = used.ru_utime + used.ru_stime
    zygote = plane.batch._zygote
    if zygote is not None:
        fields = Path(f"/proc/{zygote.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    return total


def _attempt_started(plane, run_id: str, step: str) -> float:
    """When the task began its attempt: the started_at it recorded in the datastore (epoch s)."""
    from datetime import datetime

    from flowplane.datastore import records
    from flowplane.datastore.storage import S3Storage

    storage = S3Storage(plane.settings.datastore_root, client=plane.session.client("s3"))
    rec = records.read_attempt(storage, "ParameterFlow", run_id, step, "1", 0)
    assert rec is not None, f"no attempt record for {run_id}/{step}"
    return datetime.fromisoformat(rec.started_at).timestamp()


def _first_line(plane, job_id: str) -> bool:
    logs = plane.session.client("logs")
    try:
        events = logs.get_log_events(logGroupName="/aws/batch/job",
                                     logStreamName=f"{plane.settings.job_definition}/default/{job_id}", limit=1)
    except logs.exceptions.ResourceNotFoundException:
        return False
    return bool(events["events"])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for row in run(BenchContext(repeat=int(os.environ.get("REPEAT", "3")))):
        print(row.render())
