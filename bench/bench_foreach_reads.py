"""Reading a wide foreach back: a join's inputs from S3, and a step's tasks through the Client API,
on the user's background plane.

Join: the foreach's tasks are run by the real task runtime into a folder (moto in-process for
the items they put in the join-inputs table). Their 90,000 objects and the join-inputs items are
then written into the user's own plane state, too many for the HTTP API (90,000 PUTs over the
loopback would take longer than everything measured): an in-process plane with persistence on
(the default) is started on the user's state folder (a fresh HOME's ~/.flowplane/local), the
objects are put into its moto S3 backend and the items through its DynamoDB API (both journalled
by the plane's capture exactly as real writes, flowplane/local/capture.py), the 10,000 task items
of the Client API part likewise, and it is stopped. Then the user's background plane is started
(`python -m flowplane local start`, as typed) and restores that state: the history the figures
are read from. A separate process, as a join task on the plane is (the plane's endpoint and
join-inputs table in its environment), loads the join's inputs as the runtime does
(`TaskInputs.join_sources`: a Query page at a time from the table) and reads one artifact of
every input, the join's common pattern. Beside it, the same join without the table (every
record, then every artifact index, read concurrently from S3), and the before-style figure that
reads each parent's record and index one after the other.

Client API: see `_client_pages`. The background plane is stopped at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from common import (LOCAL_DATASTORE_ROOT, LOCAL_JOIN_INPUTS_TABLE, BenchContext, Row, UserPlane,
                    seeding_plane)

WIDE = 10_000
NARROW = 1_000
JOIN_GOAL = 2.0  # s, issue 15: 10,000 inputs from S3 on the embedded plane


def run(ctx: BenchContext) -> list[Row]:
    from tests.support import wide_joins

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        user = UserPlane(work / "user", ctx.python)
        saved = os.environ.get("HOME")
        os.environ["HOME"] = str(work / "home")
        try:
            flow = wide_joins.write_flow(work)
            local = work / "datastore"
            t0 = time.perf_counter()
            items = _fan_out(flow, local)
            fan_out = time.perf_counter() - t0
        finally:
            os.environ.pop("HOME") if saved is None else os.environ.__setitem__("HOME", saved)
        try:
            t0 = time.perf_counter()
            with seeding_plane(user) as plane:
                assert plane.settings.datastore_root == LOCAL_DATASTORE_ROOT
                assert plane.settings.join_inputs_table == LOCAL_JOIN_INPUTS_TABLE
                objects = _upload(plane, local, LOCAL_DATASTORE_ROOT)
                entries = _put_join_inputs(plane, items)
                _put_task_items(plane)
                plane.settle(600)
            seed = time.perf_counter() - t0
            boot = user.start()
            rows = _join_rows(ctx, user, fan_out) + _client_pages(user)
            rows.append(Row("  (set-up: written into the user's plane state, persistence on)", seed, "s",
                            note=f"{objects:,} objects, {entries:,} join-inputs items, {WIDE:,} task items"))
            rows.append(Row("  (set-up: `flowplane local start` restoring it)", boot, "s"))
            return rows
        finally:
            user.stop_and_check()


# --- the join's inputs ------------------------------------------------------------------------


def _fan_out(flow: Path, local: Path) -> list[dict]:
    """Both fan-outs by the real task runtime; the join-inputs items its body tasks put."""
    import boto3
    from moto import mock_aws

    from flowplane import job, join_inputs
    from tests.support import wide_joins

    table = "join-inputs"
    saved = {k: os.environ.get(k) for k in (job.JOIN_INPUTS_TABLE, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")}
    os.environ.update({job.JOIN_INPUTS_TABLE: table, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        with mock_aws():
            ddb = boto3.client("dynamodb")
            ddb.create_table(
                TableName=table, BillingMode="PAY_PER_REQUEST",
                KeySchema=list(join_inputs.KEY_SCHEMA), AttributeDefinitions=list(join_inputs.ATTRIBUTE_DEFINITIONS))
            for width, run_id in ((WIDE, "wide"), (NARROW, "narrow")):
                wide_joins.run_fan_out(flow, local, width, run_id=run_id)
            return [i for page in ddb.get_paginator("scan").paginate(TableName=table) for i in page["Items"]]
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _join_rows(ctx: BenchContext, user: UserPlane, fan_out: float) -> list[Row]:
    from flowplane import job

    rows: list[Row] = []
    root = LOCAL_DATASTORE_ROOT
    endpoint = user.info()["endpoint"]
    # What a task process on the plane has in its environment to reach the plane's AWS.
    env = {**user.env, "FLOWPLANE_S3_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL": endpoint,
           "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
           job.JOIN_INPUTS_TABLE: LOCAL_JOIN_INPUTS_TABLE}
    without = {k: v for k, v in env.items() if k != job.JOIN_INPUTS_TABLE}
    for width, run_id in ((WIDE, "wide"), (NARROW, "narrow")):
        got = _measure_in_process_of_its_own(ctx, env, root, run_id, width, serial=False)
        goal = JOIN_GOAL if width == WIDE else None
        rows.append(Row(f"join input loading, {width:,} inputs, from the join-inputs table", got["load"], "s",
                        goal=goal, note=f"{got['requests']}; the user's background plane"))
        rows.append(Row(f"  then one artifact of each of the {width:,} inputs", got["touch"], "s"))
        serial = width == NARROW  # the one-by-one reads take minutes at 10,000
        s3 = _measure_in_process_of_its_own(ctx, without, root, run_id, width, serial)
        rows.append(Row("  without the table: records + indices from S3, concurrently", s3["load"], "s",
                        note=f"{s3['requests']}; {s3['load'] / got['load']:.0f}x the table's"))
        if serial:
            rows.append(Row(f"  before: {width:,} inputs read one by one (record, HEAD, index)",
                            s3["serial"], "s", note=f"{s3['serial'] / got['load']:.0f}x the table's"))
    rows.append(Row("  (set-up: the real task runtime ran both fan-outs)", fan_out, "s",
                    note=f"{WIDE + NARROW + 2:,} tasks"))
    return rows


def _put_join_inputs(plane: Any, items: list[dict]) -> int:
    ddb = plane.session.client("dynamodb")
    table = plane.settings.join_inputs_table
    for start in range(0, len(items), 25):
        request: Any = {table: [{"PutRequest": {"Item": i}} for i in items[start:start + 25]]}
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or None
    return len(items)


def _upload(plane: object, local: Path, root: str) -> int:
    """Every file under `local` into the plane's S3 at `root`, straight into moto's store (no HTTP):
    90,000 PUTs over the loopback would take longer than everything measured. The plane's capture
    wraps this very method, so each put is journalled (its body under objects/) as a request's is."""
    from moto.s3.models import s3_backends

    bucket, _, prefix = root[5:].partition("/")
    backend = s3_backends[plane.account]["aws"]  # type: ignore[attr-defined]
    n = 0
    for path in local.rglob("*"):
        if path.is_file():
            backend.put_object(bucket, f"{prefix}/{path.relative_to(local).as_posix()}", path.read_bytes())
            n += 1
    return n


def _measure_in_process_of_its_own(ctx: BenchContext, env: dict, root: str, run_id: str, width: int,
                                   serial: bool) -> dict:
    here = Path(__file__).resolve()
    cmd = [ctx.python, str(here), "measure-join", root, run_id, str(width), "1" if serial else "0"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(here.parent.parent), timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"the join measurement failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_join(root: str, run_id: str, width: int, serial: bool) -> dict:
    """In its own process: load a join's inputs from S3 as the task runtime does, and read them."""
    from flowplane.datastore import records
    from flowplane.datastore.artifacts import ArtifactStore, read_index
    from flowplane.datastore.storage import S3Storage
    from flowplane.task.inputs import TaskInputs
    from tests.support.wide_joins import FLOW, body_refs

    from flowplane.task.aws import client

    counts = {"S3": 0, "DynamoDB": 0}
    storage = S3Storage(root)
    storage.client.meta.events.register("before-call.s3", lambda **kw: counts.__setitem__("S3", counts["S3"] + 1))
    client("dynamodb").meta.events.register(
        "before-call.dynamodb", lambda **kw: counts.__setitem__("DynamoDB", counts["DynamoDB"] + 1))
    store = ArtifactStore(storage, FLOW)
    refs = body_refs(width)
    graph = SimpleNamespace(flow_name=FLOW)  # join_sources needs only the flow's name of the graph
    inputs = TaskInputs(storage, store, graph, run_id, "join", "1")  # type: ignore[arg-type]
    t0 = time.perf_counter()
    sources = inputs.join_sources(refs, "body")
    load = time.perf_counter() - t0
    out = {"load": load, "requests": ", ".join(f"{n:,} {what} requests" for what, n in counts.items() if n)}
    t0 = time.perf_counter()
    squares = [s.load("square") for s in sources]
    out["touch"] = time.perf_counter() - t0
    assert squares == [i * i for i in range(width)], "inputs out of index order"
    if serial:
        t0 = time.perf_counter()
        for ref in refs:
            rec = records.read_task(storage, FLOW, run_id, ref.step, ref.task_id)
            key = f"{FLOW}/runs/{run_id}/{ref.step}/{ref.task_id}/{rec.final_attempt}/artifacts.json"
            storage.exists(key)  # what read_index asked before reading
            read_index(storage, FLOW, run_id, ref.step, ref.task_id, rec.final_attempt or 0)
        out["serial"] = time.perf_counter() - t0
    return out


# --- the Client API's pages ---------------------------------------------------------------------


def _put_task_items(plane: Any) -> None:
    """10,000 tasks of one step, the recorder's own items, put in batches into the plane's table."""
    from chalicelib.recording.run_records import task_item
    from flowplane.datastore import layout

    table = plane.session.resource("dynamodb").Table(plane.settings.table)
    with table.batch_writer() as batch:
        for i in range(WIDE):
            tid = layout.task_id_for([i])
            batch.put_item(Item=task_item({"flow": "WideFlow", "run_id": "sfn-pages", "step": "body", "task_id": tid,
                                           "status": "succeeded", "foreach_indices": [i],
                                           "created_at": "2026-12-07T12:00:00.000+00:00"}))


# In a new interpreter with the user's environment: the plane's provider the Client API reads
# production runs through, on the running plane the SDK discovers (flowplane/client/selection.py).
CLIENT_PAGES = """
import json, sys, time
from flowplane.client.selection import discovered_plane_url
from flowplane.client.service import TASK_PAGE, ServiceProvider

wide = int(sys.argv[1])
provider = ServiceProvider(discovered_plane_url())
first = time.perf_counter()
tasks = provider.iter_tasks("WideFlow", "sfn-pages", "body")
next(tasks)
first = time.perf_counter() - first
t0 = time.perf_counter()
seen = [t.foreach_indices[0] for t in provider.iter_tasks("WideFlow", "sfn-pages", "body")]
whole = time.perf_counter() - t0
assert seen == list(range(wide)), "tasks out of index order"
print(json.dumps({"first": first, "whole": whole, "page": TASK_PAGE}))
"""


def _client_pages(user: UserPlane) -> list[Row]:
    """10,000 tasks of one step recorded in the plane's table (the recorder's own items, seeded
    with the rest), read in a new process through the Client API's provider over the user's
    background plane's HTTP API: one request a page, each one DynamoDB Query
    (tests/control_plane/test_client_api_routes.py)."""
    got = json.loads(user.run("-c", CLIENT_PAGES, str(WIDE)).strip().splitlines()[-1])
    pages = -(-WIDE // got["page"])
    return [
        Row(f"Client API: page through {WIDE:,} tasks of a step, index order", got["whole"], "s",
            note=f"{pages} pages of {got['page']}; a new process, the user's background plane"),
        Row("  per page (one HTTP request, one DynamoDB Query)", got["whole"] / pages, "s"),
        Row("  the first task of the step (one page)", got["first"], "s"),
    ]


if __name__ == "__main__" and sys.argv[1:2] == ["measure-join"]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    _, _, root_, run_, width_, serial_ = sys.argv
    print(json.dumps(measure_join(root_, run_, int(width_), serial_ == "1")))
