"""`resume`: cloning 1,000 finished foreach tasks, and `logs` to its first line.

Clone: a run whose `start` fanned out to 1,000 `body` tasks, written by the real
task runtime (tests/support/wide_joins.py), is the origin; the figure is what
`resume` does before its first task starts plus every clone: read the origin's
tasks and artifact indices, bring the blobs over, write each clone's records.
Four places the origin can be: the same local datastore (every blob referenced,
none copied), an S3 datastore resumed into a local folder (each distinct blob
streamed once), another S3 prefix (each copied by S3 itself), and a production
run on the user's background plane. For the two S3 ones S3 is moto in this
process: every request takes this one interpreter's CPU, so its 16 concurrent
copies run one at a time and those figures say how many requests were made more
than how long S3 takes (on AWS they wait on the network, side by side).

The production origin is on the path a user takes: a fresh HOME, nothing started
by hand, persistence on. Its history is written into the user's own plane state by
an in-process plane with persistence on, on the user's state folder (each write
journalled by its capture as a request's is): the flow deployed with `python
wide_flow.py step-functions create` through that plane's API, the fan-out's blobs put
in its S3, and its records filed by the plane's own recorder, each task and
execution event handed to the recorder's handler as the plane's router hands it one
from the bus. (Putting the 2,004 events on the running background plane's bus
instead files them at about 80 ms an event: 160 s of set-up, against about 5 ms
handed over directly.) The user's background plane is then started on that state
(`python -m flowplane local start`, as typed) and the origin is read from what it
restored. The clone runs in a new interpreter with the user's environment, as
`resume --origin-run-id sfn-...` does it (find_origin: the SDK finds the running
plane; the control plane's routes over HTTP; each blob from its presigned URL).

Logs: `python flow.py logs RUN/start/1` as a user types it, from the command's
start to its first line on stdout: a local run's task, and a production task on the
same background plane (a ParameterFlow deployed and triggered as typed).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import BenchContext, Row, UserPlane, flow_path, seeding_plane, user_shell

WIDTH = 1_000
CLONE_GOAL = 5.0  # s, issue 17: "a foreach of 1,000 finished tasks clones in seconds"


def run(ctx: BenchContext) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        user = UserPlane(work / "user", ctx.python)
        try:
            return _clone_rows(ctx, work, user) + _logs_rows(ctx, work, user)
        finally:
            user.stop_and_check()


# --- cloning ------------------------------------------------------------------------------------


def _clone_rows(ctx: BenchContext, work: Path, user: UserPlane) -> list[Row]:
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
    rows += _production_clone(ctx, user, flow, root)
    return rows


def _production_clone(ctx: BenchContext, user: UserPlane, flow: Path, root: Path) -> list[Row]:
    """The same fan-out as a production run on the user's background plane (see the module's doc),
    cloned in a new interpreter as `resume` does."""
    import contextlib
    import io

    from flowplane.datastore.artifacts import read_index
    from flowplane.datastore.storage import LocalStorage, S3Storage
    from tests.support import wide_joins
    from tests.support.recording_events import (HANDLERS, T0, execution_detail, execution_event, task_detail,
                                                task_event)

    origin = LocalStorage(str(root))
    refs = [("start", "1")] + [("body", f"1.{i}") for i in range(WIDTH)]
    package = user.work / "wide"  # the flow alone: its folder also holds the origin's datastore
    package.mkdir()
    deployed = package / flow.name
    deployed.write_text(flow.read_text())
    name = "bench-origin"
    run_id = f"sfn-{name}"
    events = [execution_event(execution_detail(wide_joins.FLOW, name, "RUNNING", T0, parameters={"width": WIDTH}))]
    for step, task_id in refs:
        index = read_index(origin, wide_joins.FLOW, "100", step, task_id, 0) or {}
        ids = dict(flow=wide_joins.FLOW, run_id=run_id, step=step, task_id=task_id, attempt=0)
        events.append(task_event(task_detail("started", at=T0 + 100, **ids)))
        entries = {n: {"sha": r.sha, "size": r.size, "type": r.type} for n, r in index.items()}
        events.append(task_event(task_detail("finished", at=T0 + 200, artifacts=entries, **ids)))
    events.append(execution_event(execution_detail(wide_joins.FLOW, name, "FAILED", T0, T0 + 300_000,
                                                   {"width": WIDTH}, error="States.TaskFailed", cause="join")))
    files = [p for p in (root / f"{wide_joins.FLOW}/data").rglob("*") if p.is_file()]

    t0 = time.perf_counter()
    with seeding_plane(user) as plane:
        # Deployed as typed, through this plane's API; the blobs through its S3 API; each event
        # handed to the recorder's handler as the plane's router hands it one from the bus.
        user_shell(user.python, user.work, {**user.env, "FLOWPLANE_API_URL": plane.url})(
            str(deployed), "step-functions", "create")
        s3 = S3Storage(plane.settings.datastore_root, client=plane.session.client("s3"))
        for path in files:
            s3.put_bytes(path.relative_to(root).as_posix(), path.read_bytes())
        with contextlib.redirect_stdout(io.StringIO()):  # the recorder's log and metric lines
            for event in events:
                plane.invoke(HANDLERS[event.source], _envelope(plane, event))
        plane.settle(120)
    setup = time.perf_counter() - t0
    boot = user.start()  # `flowplane local start`, as typed: the origin is read from the restored state
    _wait_recorded(user, wide_joins.FLOW, run_id, lambda run, n: run.status == "failed" and n == WIDTH + 1)

    times = []
    for attempt in range(ctx.repeat):
        got = _clone_in_new_process(ctx, user, deployed, user.work / f"laptop-{attempt}", f"{300 + attempt}", run_id)
        times.append(got["seconds"])
    return [
        Row("  from a production run on the user's background plane, in a new process (median)",
            sorted(times)[len(times) // 2], "s",
            note=f"{got['cloned']:,} tasks, {got['copied']:,} blobs from presigned URLs; persistence on"),
        Row("  (set-up: deployed, the blobs put, the records filed, into the user's plane state)", setup,
            "s", note=f"{len(files):,} blobs, {len(events):,} events; then `local start`: {boot:.1f} s"),
    ]


def _envelope(plane: Any, event: Any) -> dict[str, Any]:
    """The EventBridge event a handler gets for `event` (tests/support/recording_events.py's Event)."""
    import json
    import uuid
    from datetime import datetime, timezone

    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": event.detail_type, "source": event.source,
            "account": plane.account, "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": plane.region, "resources": list(event.resources), "detail": json.loads(json.dumps(event.detail))}


def _wait_recorded(user: UserPlane, flow: str, run_id: str, done: Any, timeout: float = 300.0) -> None:
    """Until the plane's recorder has filed what `done(run, tasks recorded)` wants."""
    from flowplane.client.service import ServiceProvider

    provider = ServiceProvider(user.info()["url"])
    deadline = time.monotonic() + timeout
    while True:
        try:
            run = provider.get_run(flow, run_id)
            n = sum(1 for step in ("start", "body") for _ in provider.iter_tasks(flow, run_id, step))
        except Exception:  # not recorded yet
            run, n = None, 0
        if run is not None and done(run, n):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the plane's recorder did not file {run_id} ({n} tasks, run {run})")
        time.sleep(2.0)


CLONE = """
import json, sys, time
from flowplane.datastore.storage import LocalStorage
from flowplane.resume import Cloner, check_finished, find_origin, plan_resume, read_origin
from flowplane.task.loader import load_flow_file

flow, dest, run_id, origin_run_id = sys.argv[1:]
graph = load_flow_file(flow).context([])[0].graph
t0 = time.perf_counter()
record, provider = find_origin(graph.flow_name, origin_run_id)
check_finished(record)
origin = read_origin(record, provider, list(graph.steps))
plan = plan_resume(graph, origin.graph, record.run_id, origin.statuses)
cloner = Cloner(LocalStorage(dest), graph, origin, plan)
cloner.prepare()
for ref in sorted(cloner.indices):
    cloner.clone(run_id, ref)
print(json.dumps({"seconds": time.perf_counter() - t0, "copied": cloner.copied, "cloned": len(cloner.indices)}))
"""


def _clone_in_new_process(ctx: BenchContext, user: UserPlane, flow: Path, dest: Path, run_id: str,
                          origin_run_id: str) -> dict:
    """What `resume --origin-run-id` does before its first task and for every clone, in a new
    interpreter with the user's environment (the SDK finds the running plane)."""
    import json

    dest.mkdir(parents=True)
    out = user.run("-c", CLONE, str(flow), str(dest), run_id, origin_run_id)
    return json.loads(out.strip().splitlines()[-1])


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


def _logs_rows(ctx: BenchContext, work: Path, user: UserPlane) -> list[Row]:
    from common import user_env

    src = flow_path("parameter_flow.py")
    env = {**user_env(work / "home"), "FLOWPLANE_DATASTORE_ROOT": str(work / "logs-datastore"),
           "FLOWPLANE_EMBEDDED": "0"}
    id_file = work / "local-run-id"
    subprocess.run([ctx.python, str(src), "run", "--run-id-file", str(id_file)], cwd=work, env=env,
                   capture_output=True, check=True, timeout=300)
    local = [_first_line(ctx, src, work, env, f"{id_file.read_text()}/start/1") for _ in range(ctx.repeat)]
    rows = [Row("`logs RUN/start/1` to its first line, a local run (median)", sorted(local)[len(local) // 2], "s")]
    rows.append(_production_logs(ctx, user))
    return rows


def _production_logs(ctx: BenchContext, user: UserPlane) -> Row:
    """A ParameterFlow run on the user's background plane, deployed and triggered as typed."""
    folder = user.work / "params"  # the flow alone: its folder is the package
    folder.mkdir()
    src = folder / "parameter_flow.py"
    src.write_text(flow_path("parameter_flow.py").read_text())
    user.run(str(src), "step-functions", "create")
    run_id = user.run(str(src), "step-functions", "trigger").strip().splitlines()[-1]
    user.wait_idle()
    times = [_first_line(ctx, src, folder, user.env, f"{run_id}/start/1") for _ in range(ctx.repeat)]
    return Row("`logs sfn-.../start/1` to its first line, through the user's background plane (median)",
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
