"""DynamoDB requests per Client API call, counted through the routes against moto.

A flow is deployed through the control plane and a few runs are recorded from
events of AWS's shapes; then every read route is called through
chalice.test.Client while a botocore hook counts the requests its DynamoDB
client sends. Goal: one request a page, no Scan ever.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections import Counter
from typing import Any

from common import BenchContext, Row

FLOW = "ParameterFlow"
RUNS = 12


def _world() -> Any:
    """Stage env, moto, the stage's resources, the app's test client (tests/support/control_plane.py)."""
    from tests.support.control_plane import LOCAL_ENV

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        os.environ[key] = "testing"
    os.environ["AWS_DEFAULT_REGION"] = LOCAL_ENV["FLOWPLANE_REGION"]
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(LOCAL_ENV)


def _record_runs(cp: Any) -> None:
    from tests.support.recording_events import T0, Attempt, TaskPlan, artifact, deliver, run_events

    plan = [
        TaskPlan("start", "1", [Attempt(False), Attempt(True, {"alpha": artifact("ab" * 32)})]),
        TaskPlan("end", "1", [Attempt(True, {"alpha": artifact("ab" * 32)})]),
    ]
    for r in range(RUNS):
        final = "SUCCEEDED" if r % 3 else "FAILED"
        for event in run_events(FLOW, FLOW, f"e{r}", plan, final=final, start=T0 + r * 60_000):
            deliver(cp.client, event)


def run(ctx: BenchContext) -> list[Row]:
    _world()
    from chalice.test import Client
    from moto import mock_aws

    from app import app
    from chalicelib import http
    from chalicelib.aws import Aws
    from chalicelib.bootstrap import ensure_resources
    from chalicelib.settings import Settings
    from tests.support.control_plane import MOTO_CONFIG, ROOT as TESTS_ROOT, ControlPlane

    rows: list[Row] = []
    with mock_aws(config=MOTO_CONFIG):
        http.reset()
        aws = Aws(Settings.from_env())
        ensure_resources(aws)
        with Client(app, stage_name="local", project_dir=str(TESTS_ROOT)) as client:
            cp = ControlPlane(client, aws)
            token = cp.deploy("parameter_flow.py", tags=["team:ml"])["production_token"]
            with contextlib.redirect_stdout(io.StringIO()):  # the recorder's log and metric lines
                _record_runs(cp)
            ops: Counter = Counter()
            http.aws().table.client.meta.events.register("before-call.dynamodb", lambda model, **kw: ops.update([model.name]))
            first_page = cp.get(f"/flows/{FLOW}/runs?limit=5").json_body
            task = f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1"
            calls = [
                ("GET /flows", "/flows"),
                ("GET /flows/{flow}", f"/flows/{FLOW}"),
                ("GET /flows/{flow}/runs, page of 5", f"/flows/{FLOW}/runs?limit=5"),
                ("GET .../runs, next page", f"/flows/{FLOW}/runs?limit=5&next_token={first_page['next_token']}"),
                ("GET .../runs?status=failed", f"/flows/{FLOW}/runs?status=failed"),
                ("GET .../runs?namespace=production:<token>", f"/flows/{FLOW}/runs?namespace=production:{token}"),
                # Production runs are the user SFN's, as in Metaflow (user:alice would list none,
                # and an empty listing pays one more request to tell it from a 404).
                ("GET .../runs?namespace=user:SFN&tag=team:ml", f"/flows/{FLOW}/runs?namespace=user:SFN&tag=team:ml"),
                ("GET .../runs?deployment=<name> (list-runs)", f"/flows/{FLOW}/runs?deployment={FLOW}&limit=5"),
                ("GET .../runs/{run}", f"/flows/{FLOW}/runs/sfn-e1"),
                ("GET .../steps", f"/flows/{FLOW}/runs/sfn-e1/steps"),
                ("GET .../steps/{step}", f"/flows/{FLOW}/runs/sfn-e1/steps/start"),
                ("GET .../steps/{step}/tasks", f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks"),
                ("GET .../tasks/{task} (with attempts)", task),
                ("GET .../artifacts", task + "/artifacts"),
                ("GET .../artifacts/{name} (presigned URL)", task + "/artifacts/alpha"),
                ("GET .../logs/stdout", task + "/logs/stdout?attempt=1"),
            ]
            scans = 0
            for label, path in calls:
                ops.clear()
                r = cp.get(path)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.json_body}")
                scans += ops["Scan"]
                rows.append(Row(f"DynamoDB requests: {label}", sum(ops.values()), "req", goal=1))
            # Row cannot take a goal of 0 (it shows a ratio): the verdict goes in the note.
            rows.append(Row("Scans across all Client API calls", scans, "req", note="goal 0: " + ("ok" if scans == 0 else "OVER")))
        http.reset()
    return rows
