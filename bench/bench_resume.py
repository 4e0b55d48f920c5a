"""`resume`: cloning 1,000 finished foreach tasks, and `logs` to its first line.

Clone: a run whose `start` fanned out to 1,000 `body` tasks, written by the real
task runtime (tests/support/wide_joins.py), is the origin; the figure is what
`resume` does before its first task starts plus every clone: read the origin's
tasks and artifact indices, bring the blobs over, write each clone's records.
Three places the origin can be: the same local datastore (every blob referenced,
none copied), an S3 datastore resumed into a local folder (each distinct blob
streamed once), and another S3 prefix (each copied by S3 itself). S3 is moto
in this process: every request takes this one interpreter's CPU, so its 16 concurrent
copies run one at a time and the S3 figures say how many requests were made more than
how long S3 takes (on AWS they wait on the network, side by side).

Logs: `python flow.py logs RUN/start/1` as a user types it, from the command's
start to its first line on stdout: a local run's task, and a production task read
through the embedded plane.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import BenchContext, Row, flow_path

WIDTH = 1_000
CLONE_GOAL = 5.0  # s, issue 17: "a foreach of 1,000 finished tasks clones in seconds"


def run(ctx: BenchContext) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        return _clone_rows(work) + _logs_rows(ctx, work)


# --- cloning ------------------------------------------------------------------------------------


def _clone_rows(work: Path) -> list[Row]:
    from flowplane.datastore import records
    from flowplane.datastore.storage import LocalStorage
    from tests.support import wide_joins

    flow = wide_joins.write_flow(work)
    root = work / "datastore"
    t0 = time.perf_counter()
    wide_joins.run_fan_out(flow, root, WIDTH, run_id="100")
    origin_storage = LocalStorage(str(root))
    records.write_run(origin_storage, records.RunRecord(
        flow=wide_joins.FLOW, run_id="100", user="bench", status="failed", parameters={"width": WIDTH}))
    setup = time.perf_counter() - t0

    rows = []
    seconds, copied, cloned = _clone(flow, origin_storage, origin_storage, "201")
    rows.append(Row(f"clone {cloned:,} finished tasks (a {WIDTH:,}-item foreach), same datastore", seconds, "s",
                    goal=CLONE_GOAL, note=f"{copied} blobs copied"))
    with _moto_s3() as s3_root:
        from flowplane.datastore.storage import S3Storage

        s3_origin = S3Storage(f"{s3_root}/origin")
        _upload(root, s3_origin)
        seconds, copied, cloned = _clone(flow, s3_origin, LocalStorage(str(work / "laptop")), "202")
        rows.append(Row("  from an S3 datastore into a local folder", seconds, "s",
                        note=f"{copied:,} distinct blobs streamed once; S3 is moto in this process"))
        seconds, copied, cloned = _clone(flow, s3_origin, S3Storage(f"{s3_root}/other"), "203")
        rows.append(Row("  from one S3 prefix into another", seconds, "s",
                        note=f"{copied:,} blobs copied server-side; records written one PUT each"))
    rows.append(Row("  (set-up: the real task runtime wrote the origin)", setup, "s"))
    rows += _production_clone(work, flow, root)
    return rows


def _production_clone(work: Path, flow: Path, root: Path) -> list[Row]:
    """The same fan-out as a production run: its blobs in the control plane's S3 datastore, its
    records filed by the recorder from task events, read through the control plane's routes
    (the Chalice app in this process, on moto), each blob from its presigned URL."""
    import contextlib
    import io

    import pytest

    from flowplane.client.service import ServiceProvider
    from flowplane.datastore.artifacts import read_index
    from flowplane.datastore.records import read_task
    from flowplane.datastore.storage import LocalStorage, S3Storage
    from tests.support import wide_joins
    from tests.support.control_plane import control_plane_on_moto
    from tests.support.production_runs import BASE, InProcess, moto_opener
    from tests.support.recording_events import T0, deliver, execution_detail, execution_event, task_detail, task_event

    origin = LocalStorage(str(root))
    refs = [("start", "1")] + [("body", f"1.{i}") for i in range(WIDTH)]
    with pytest.MonkeyPatch.context() as mp, control_plane_on_moto(mp) as cp:
        t0 = time.perf_counter()
        package = work / "package"  # the flow alone: its folder also holds the origin's datastore
        package.mkdir()
        (package / flow.name).write_text(flow.read_text())
        cp.deploy(flow.name, folder=package)
        s3 = S3Storage(cp.settings.datastore_root, client=cp.aws.packages.client)
        blobs = f"{wide_joins.FLOW}/data"
        for path in (root / blobs).rglob("*"):
            if path.is_file():
                s3.put_bytes(path.relative_to(root).as_posix(), path.read_bytes())
        name = "bench-origin"
        events = [execution_event(execution_detail(wide_joins.FLOW, name, "RUNNING", T0, parameters={"width": WIDTH}))]
        for step, task_id in refs:
            index = read_index(origin, wide_joins.FLOW, "100", step, task_id, 0) or {}
            ids = dict(flow=wide_joins.FLOW, run_id=f"sfn-{name}", step=step, task_id=task_id, attempt=0)
            events.append(task_event(task_detail("started", at=T0 + 100, **ids)))
            entries = {n: {"sha": r.sha, "size": r.size, "type": r.type} for n, r in index.items()}
            events.append(task_event(task_detail("finished", at=T0 + 200, artifacts=entries, **ids)))
            assert read_task(origin, wide_joins.FLOW, "100", step, task_id) is not None
        events.append(execution_event(execution_detail(wide_joins.FLOW, name, "FAILED", T0, T0 + 300_000,
                                                       {"width": WIDTH}, error="States.TaskFailed", cause="join")))
        with contextlib.redirect_stdout(io.StringIO()):  # the recorder's log and metric lines
            for event in events:
                deliver(cp.client, event)
        setup = time.perf_counter() - t0
        transport = InProcess(cp)
        provider = ServiceProvider(BASE, transport=transport, open_url=moto_opener)
        seconds, copied, cloned = _clone(flow, provider, LocalStorage(str(work / "laptop-prod")), "204",
                                         run_id_of_origin=f"sfn-{name}")
        requests_made = len(transport.calls)
    return [
        Row("  from a production run, through the control plane", seconds, "s",
            note=f"{requests_made} API requests, {copied:,} blobs from presigned URLs (moto in this process)"),
        Row("  (set-up: the production run's blobs put in S3, its records filed from task events)", setup, "s"),
    ]


def _clone(flow: Path, origin: Any, dest: Any, run_id: str, run_id_of_origin: str = "100") -> tuple[float, int, int]:
    """What resume does for the clones, timed: (seconds, blobs copied, tasks cloned). `origin`:
    the storage holding the origin run, or the Client API provider to read it through."""
    from flowplane.client.local import LocalProvider
    from flowplane.resume import Cloner, plan_resume, read_origin
    from flowplane.task.loader import load_flow_file

    graph = load_flow_file(str(flow)).context([])[0].graph
    provider = origin if hasattr(origin, "get_run") else LocalProvider(origin)
    t0 = time.perf_counter()
    record = provider.get_run(graph.flow_name, run_id_of_origin)
    origin_run = read_origin(record, provider, list(graph.steps))
    plan = plan_resume(graph, origin_run.graph, run_id_of_origin, origin_run.statuses)
    cloner = Cloner(dest, graph, origin_run, plan)
    cloner.prepare()
    for ref in sorted(cloner.indices):
        cloner.clone(run_id, ref)
    return time.perf_counter() - t0, cloner.copied, len(cloner.indices)


class _moto_s3:
    """An in-process S3 (moto) with one bucket; its root URL."""

    def __enter__(self) -> str:
        from moto import mock_aws

        self._saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                      "AWS_DEFAULT_REGION", "FLOWPLANE_S3_ENDPOINT_URL")}
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        os.environ.pop("FLOWPLANE_S3_ENDPOINT_URL", None)
        self._mock = mock_aws()
        self._mock.start()
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench")
        return "s3://bench"

    def __exit__(self, *exc: Any) -> None:
        self._mock.stop()
        for k, v in self._saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _upload(local: Path, storage: Any) -> None:
    for path in local.rglob("*"):
        if path.is_file():
            storage.put_bytes(path.relative_to(local).as_posix(), path.read_bytes())


# --- logs ---------------------------------------------------------------------------------------


def _logs_rows(ctx: BenchContext, work: Path) -> list[Row]:
    from common import user_env

    src = flow_path("parameter_flow.py")
    env = {**user_env(work / "home"), "FLOWPLANE_DATASTORE_ROOT": str(work / "logs-datastore"),
           "FLOWPLANE_EMBEDDED": "0"}
    id_file = work / "local-run-id"
    subprocess.run([ctx.python, str(src), "run", "--run-id-file", str(id_file)], cwd=work, env=env,
                   capture_output=True, check=True, timeout=300)
    local = [_first_line(ctx, src, work, env, f"{id_file.read_text()}/start/1") for _ in range(ctx.repeat)]
    rows = [Row("`logs RUN/start/1` to its first line, a local run (median)", sorted(local)[len(local) // 2], "s")]
    rows.append(_production_logs(ctx, work, src))
    return rows


def _production_logs(ctx: BenchContext, work: Path, src: Path) -> Row:
    from flowplane.local.plane import LocalPlane, PlaneConfig
    from tests.support.embedded_plane import sdk, trigger, wait_for_run

    saved = {k: os.environ.get(k) for k in ("HOME", "FLOWPLANE_API_URL", "FLOWPLANE_USER")}
    os.environ.update(HOME=str(work / "plane-home"), FLOWPLANE_USER="bench")
    try:
        with LocalPlane(PlaneConfig(state_dir=work / "state", persist=False, schedule_seconds=None)) as plane:
            os.environ["FLOWPLANE_API_URL"] = plane.url
            sdk(src, "step-functions", "create")
            run_id = trigger(src)
            wait_for_run(plane, "ParameterFlow", run_id)
            from common import user_env

            env = {**user_env(work / "plane-home"), "FLOWPLANE_API_URL": plane.url}
            times = [_first_line(ctx, src, work, env, f"{run_id}/start/1") for _ in range(ctx.repeat)]
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return Row("`logs sfn-.../start/1` to its first line, through the embedded plane (median)",
               sorted(times)[len(times) // 2], "s")


def _first_line(ctx: BenchContext, src: Path, work: Path, env: dict[str, str], path: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen([ctx.python, str(src), "logs", path, "--stdout"], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    took = time.perf_counter() - t0
    proc.communicate(timeout=120)
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"`logs {path}` printed nothing (exit {proc.returncode})")
    return took
