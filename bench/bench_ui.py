"""`flowplane ui` (issue 18): the run page of a 1,000-task foreach, on the user's background plane.

The path a user takes: a fresh HOME, nothing started by hand. `python wide_foreach_flow.py
step-functions create` (examples/wide_foreach_flow.py) is the first command and starts the
background plane (persistence on). A finished WideForeachFlow run with 1,000 `score` tasks is
then written through that plane's own AWS API (its moto endpoint, as the recorder's writes
reach it, so its journal records them): the run, step, task and artifact-index items in its
table, the `_graph_info` blob in its S3. Running the 1,000 tasks themselves takes minutes
(bench section `wide_foreach`) and is not what is measured. The plane is stopped and started
again (`flowplane local stop` / `start`), so the run is read from the restored state, as on any
later day. Then `python -m flowplane ui --no-browser` in a new process, as the user types it,
and its pages fetched over HTTP: the first load of the run page (the run's graph not read yet),
a reload, the task page of one item, and the runs table. The plane is stopped at the end.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import LOCAL_DATASTORE_ROOT, LOCAL_TABLE, ROOT, BenchContext, Row, UserPlane

WIDTH = 1000
FLOW = "WideForeachFlow"
RUN = "sfn-ui-bench"
RUN_PAGE_GOAL = 1.0  # s, issue 18
T0 = "2026-12-07T12:00:00.000+00:00"


def run(ctx: BenchContext) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        user = UserPlane(Path(tmp) / "user", ctx.python)
        try:
            flow = user.work / "wide_foreach_flow.py"
            flow.write_text((ROOT / "examples" / "wide_foreach_flow.py").read_text())
            first = user.timed(str(flow), "step-functions", "create")
            t0 = time.perf_counter()
            _record_run(user)
            seeded = time.perf_counter() - t0
            user.stop()
            boot = user.start()
            rows = _measure(ctx, user)
            rows.append(Row("  (set-up: the first command, `step-functions create`, starting the plane)", first, "s"))
            rows.append(Row("  (set-up: the run written through the plane's AWS API)", seeded, "s",
                            note=f"{2 * (WIDTH + 3)} items; then `local start` after `stop`: {boot:.1f} s"))
            return rows
        finally:
            user.stop_and_check()


def _at(seconds: float) -> str:
    from datetime import datetime, timedelta

    return (datetime.fromisoformat(T0) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def _task(step: str, indices: list[int], began: float, took: float) -> dict[str, Any]:
    from flowplane.datastore import layout

    attempt = {"status": "SUCCEEDED", "created_at": _at(began), "started_at": _at(began),
               "stopped_at": _at(began + took), "exit_code": 0, "batch_job_id": f"job-{step}-{len(indices)}"}
    return {"flow": FLOW, "run_id": RUN, "step": step, "task_id": layout.task_id_for(indices),
            "foreach_indices": indices, "attempts": {"0": attempt}}


def _record_run(user: UserPlane) -> None:
    """The run as the recorder leaves it once it has succeeded, written through the plane's AWS API."""
    from chalicelib.recording import run_records
    from chalicelib.recording.store import RecordStore
    from flowplane.datastore.artifacts import ArtifactStore
    from flowplane.datastore.storage import S3Storage
    from flowplane.graph import graph_from_source

    source = ROOT / "examples" / "wide_foreach_flow.py"
    graph = graph_from_source(source.read_text(), str(source))
    storage = S3Storage(LOCAL_DATASTORE_ROOT, client=user.client("s3"))
    ref = ArtifactStore(storage, FLOW).save(graph.model_dump(mode="json"))
    index = {"_graph_info": {"sha": ref.sha, "size": ref.size, "type": ref.type}}
    tasks = [_task("start", [], 0, 2)]
    tasks += [_task("score", [i], 2 + i * 0.05, 1.5) for i in range(WIDTH)]
    tasks += [_task("join", [], 55, 3), _task("end", [], 58, 1)]
    table = user.resource("dynamodb").Table(LOCAL_TABLE)
    store = RecordStore(table)
    run = {"flow": FLOW, "run_id": RUN, "started_at": T0, "stopped_at": _at(59), "status": "SUCCEEDED",
           "user": "SFN", "owner": "bench", "tags": [], "system_tags": ["user:SFN", "runtime:step-functions"],
           "parameters": {"width": WIDTH}}
    with table.batch_writer() as batch:
        for item in run_records.run_items(run):
            batch.put_item(Item=item)
        for doc in tasks:
            batch.put_item(Item=run_records.task_item(doc))
            batch.put_item(Item=run_records.artifacts_item(FLOW, RUN, doc["step"], doc["task_id"], 0, index))
    for step, began in (("start", 0), ("score", 2), ("join", 55), ("end", 58)):
        store.note_step(FLOW, RUN, step, _at(began))
    store.note_flow(FLOW, T0)


def _get(url: str) -> tuple[float, int, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as answer:
        body = answer.read()
        status = answer.status
    return time.perf_counter() - t0, status, body


def _measure(ctx: BenchContext, user: UserPlane) -> list[Row]:
    t0 = time.perf_counter()
    ui = subprocess.Popen([user.python, "-m", "flowplane", "ui", "--no-browser"], cwd=user.work, env=user.env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert ui.stdout is not None
        line = ui.stdout.readline()
        if "http://" not in line:
            raise RuntimeError(f"`flowplane ui` did not print its URL: {line!r} {ui.stderr.read() if ui.stderr else ''}")
        listening = time.perf_counter() - t0
        base = line.split("http://", 1)[1].split()[0].rstrip("/")
        base = f"http://{base}"
        run_url = f"{base}/flows/{FLOW}/runs/{RUN}"
        first, status, body = _get(run_url)
        assert status == 200 and b'"tasks": 1000' in body, "the run page does not show the 1,000 tasks"
        again = [_get(run_url)[0] for _ in range(max(3, ctx.repeat))]
        task = statistics.median(_get(f"{run_url}/steps/score/tasks/1.517")[0] for _ in range(ctx.repeat))
        runs = statistics.median(_get(f"{base}/flows/{FLOW}")[0] for _ in range(ctx.repeat))
    finally:
        ui.send_signal(signal.SIGINT)
        try:
            ui.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            ui.kill()
            ui.communicate()
    return [
        Row(f"run page, {WIDTH:,}-task foreach, first load", first, "s", goal=RUN_PAGE_GOAL,
            note=f"{len(body) // 1024} KB of HTML; a new `flowplane ui`, reads the run's graph"),
        Row(f"run page, {WIDTH:,}-task foreach, again (median)", statistics.median(again), "s",
            goal=RUN_PAGE_GOAL),
        Row("task page of one item (median)", task, "s"),
        Row("runs table, first page (median)", runs, "s"),
        Row("  `flowplane ui` started until it printed its URL", listening, "s"),
    ]
