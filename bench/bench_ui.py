"""`flowplane ui` (issue 18): the run page of a 1,000-task foreach on the embedded plane.

A finished WideForeachFlow run (examples/wide_foreach_flow.py) with 1,000 `score` tasks is
recorded in the plane's table as the recorder writes it (run, step, task and artifact-index
items; its `_graph_info` blob in the plane's S3): running the 1,000 tasks themselves takes
minutes (bench section `wide_foreach`) and is not what is measured. The dashboard is then
served in this process, reading through the Client API over the plane's HTTP API as it does
for a user, and its pages are fetched over HTTP: the first load of the run page (the run's
graph not read yet), a reload, the task page of one item, and the runs table.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import ROOT, BenchContext, Row

WIDTH = 1000
FLOW = "WideForeachFlow"
RUN = "sfn-ui-bench"
RUN_PAGE_GOAL = 1.0  # s, issue 18
T0 = "2026-12-07T12:00:00.000+00:00"


def run(ctx: BenchContext) -> list[Row]:
    from flowplane.local.plane import LocalPlane, PlaneConfig

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        saved = {k: os.environ.get(k) for k in ("HOME", "FLOWPLANE_API_URL")}
        os.environ["HOME"] = str(work / "home")
        try:
            with LocalPlane(PlaneConfig(state_dir=work / "state", persist=False, schedule_seconds=None)) as plane:
                _record_run(plane)
                os.environ["FLOWPLANE_API_URL"] = plane.url
                return _measure(ctx)
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _at(seconds: float) -> str:
    from datetime import datetime, timedelta

    return (datetime.fromisoformat(T0) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def _task(step: str, indices: list[int], began: float, took: float) -> dict[str, Any]:
    from flowplane.datastore import layout

    attempt = {"status": "SUCCEEDED", "created_at": _at(began), "started_at": _at(began),
               "stopped_at": _at(began + took), "exit_code": 0, "batch_job_id": f"job-{step}-{len(indices)}"}
    return {"flow": FLOW, "run_id": RUN, "step": step, "task_id": layout.task_id_for(indices),
            "foreach_indices": indices, "attempts": {"0": attempt}}


def _record_run(plane: Any) -> None:
    """The run as the recorder leaves it once it has succeeded."""
    from chalicelib.recording import run_records
    from chalicelib.recording.store import RecordStore
    from flowplane.datastore.artifacts import ArtifactStore
    from flowplane.datastore.storage import S3Storage
    from flowplane.graph import graph_from_source

    source = ROOT / "examples" / "wide_foreach_flow.py"
    graph = graph_from_source(source.read_text(), str(source))
    os.environ["FLOWPLANE_S3_ENDPOINT_URL"] = plane.endpoint
    ref = ArtifactStore(S3Storage(plane.settings.datastore_root), FLOW).save(graph.model_dump(mode="json"))
    index = {"_graph_info": {"sha": ref.sha, "size": ref.size, "type": ref.type}}
    tasks = [_task("start", [], 0, 2)]
    tasks += [_task("score", [i], 2 + i * 0.05, 1.5) for i in range(WIDTH)]
    tasks += [_task("join", [], 55, 3), _task("end", [], 58, 1)]
    table = plane.session.resource("dynamodb").Table(plane.settings.table)
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


def _measure(ctx: BenchContext) -> list[Row]:
    from flowplane.ui.server import start_in_thread, url_of

    server, _ = start_in_thread()
    base = url_of(server).rstrip("/")
    try:
        run_url = f"{base}/flows/{FLOW}/runs/{RUN}"
        first, status, body = _get(run_url)
        assert status == 200 and b'"tasks": 1000' in body, "the run page does not show the 1,000 tasks"
        again = [_get(run_url)[0] for _ in range(max(3, ctx.repeat))]
        task = statistics.median(_get(f"{run_url}/steps/score/tasks/1.517")[0] for _ in range(ctx.repeat))
        runs = statistics.median(_get(f"{base}/flows/{FLOW}")[0] for _ in range(ctx.repeat))
    finally:
        server.shutdown()
        server.server_close()
    return [
        Row(f"run page, {WIDTH:,}-task foreach, first load", first, "s", goal=RUN_PAGE_GOAL,
            note=f"{len(body) // 1024} KB of HTML; reads the run's graph"),
        Row(f"run page, {WIDTH:,}-task foreach, again (median)", statistics.median(again), "s",
            goal=RUN_PAGE_GOAL),
        Row("task page of one item (median)", task, "s"),
        Row("runs table, first page (median)", runs, "s"),
    ]
