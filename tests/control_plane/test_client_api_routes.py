"""The Client API's read routes (notes/HELPERS.md contract) over recorded runs.

Runs are recorded through the handlers from events of AWS's shapes, then read
back through chalice.test.Client. Every route call counts its DynamoDB requests
on the handlers' own client: no Scan ever, and no more requests than its page
needs (one, except where noted).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from urllib.parse import quote

import pytest
import requests

from chalicelib import http
from flowplane.datastore import layout
from tests.support.recording_events import (
    T0,
    Attempt,
    TaskPlan,
    artifact,
    deliver,
    execution_detail,
    execution_event,
    run_events,
)

pytestmark = pytest.mark.aws

FLOW = "ParameterFlow"
SHA = "ab" * 32
BLOB = b"\x1f\x8bpickled-and-gzipped-bytes"


class Calls:
    def __init__(self) -> None:
        self.ops: Counter = Counter()
        http.aws().table.client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model, **kwargs) -> None:
        self.ops[model.name] += 1

    def total(self) -> int:
        return sum(self.ops.values())


@pytest.fixture
def api(control_plane):
    """ParameterFlow deployed twice (two tokens) with runs recorded from their events."""
    cp = control_plane
    first = cp.deploy("parameter_flow.py", tags=["team:ml"])
    cp.tokens = [first["production_token"]]
    plan = [
        TaskPlan("start", "1", [Attempt(False), Attempt(True, {"alpha": artifact(SHA)})]),
        TaskPlan("end", "1", [Attempt(True, {"alpha": artifact(SHA)})]),
    ]
    for event in run_events(FLOW, FLOW, "e1", plan, parameters={"alpha": 0.5}):
        deliver(cp.client, event)
    # Three more runs of the first deployment, one still running, one failed, one timed out.
    for i, (status, extra) in enumerate(
        [("RUNNING", {}), ("FAILED", {"error": "States.TaskFailed", "cause": "x"}), ("TIMED_OUT", {})], start=2
    ):
        start = T0 + i * 60_000
        deliver(cp.client, execution_event(execution_detail(FLOW, f"e{i}", "RUNNING", start)))
        if status != "RUNNING":
            deliver(cp.client, execution_event(execution_detail(FLOW, f"e{i}", status, start, start + 1000, **extra)))
    time.sleep(0.01)
    second = cp.deploy("parameter_flow.py", new_token=True)
    cp.tokens.append(second["production_token"])
    now = int(time.time() * 1000) + 1000
    deliver(cp.client, execution_event(execution_detail(FLOW, "e5", "RUNNING", now)))
    deliver(cp.client, execution_event(execution_detail(FLOW, "e5", "SUCCEEDED", now, now + 10)))
    bucket = cp.settings.datastore_root[len("s3://") :].split("/")[0]
    cp.aws.packages.client.put_object(Bucket=bucket, Key=f"data/{layout.blob_key(FLOW, SHA)}", Body=BLOB)
    return cp


def get(cp, path: str, most: int = 1, status: int = 200):
    """GET path; check the answer's status and the DynamoDB requests it took."""
    calls = Calls()
    r = cp.get(path)
    assert r.status_code == status, (path, r.status_code, r.json_body)
    assert calls.ops["Scan"] == 0, calls.ops
    assert calls.total() <= most, (path, dict(calls.ops))
    return r.json_body


# --- flows ---------------------------------------------------------------------------------------


def test_flows_and_a_flow(api):
    # One Query: each directory entry carries its own `deleted`.
    assert get(api, "/flows") == {
        "flows": [{"name": FLOW, "created_at": "2025-11-25T00:00:00.000+00:00", "deleted": False}]
    }
    flow = get(api, f"/flows/{FLOW}")
    assert flow["name"] == FLOW and flow["created_at"] == "2025-11-25T00:00:00.000+00:00"
    assert flow["production_token"] == api.tokens[1] and flow["namespace"] == f"production:{api.tokens[1]}"
    assert flow["deleted"] is False and flow["production_version"] == 2


def test_a_deployed_flow_without_runs_is_found_and_an_unknown_one_is_not(api):
    api.deploy("hourly_flow.py")
    assert get(api, "/flows/HourlyFlow")["deployed"] is True
    assert get(api, "/flows/HourlyFlow/runs", most=2) == {"runs": [], "next_token": None}
    body = get(api, "/flows/NoSuchFlow", status=404)
    assert body["code"] == "not_found" and "NoSuchFlow" in body["error"]
    assert get(api, "/flows/NoSuchFlow/runs", most=2, status=404)["code"] == "not_found"
    assert get(api, "/flows/" + quote("../etc", safe=""), most=0, status=404)["code"] == "not_found"


def test_a_flow_answers_its_deployed_schedule_and_triggers(api):
    api.deploy("triggered_flow.py")
    triggered = get(api, "/flows/TriggeredFlow")
    assert [e["name"] for e in triggered["triggers"]["trigger"]["events"]] == ["data_updated"]
    assert triggered["triggers"]["trigger_on_finish"] is None and "schedule" not in triggered
    api.deploy("hourly_flow.py")
    hourly = get(api, "/flows/HourlyFlow")
    assert hourly["schedule"] == "cron(0 * * * ? *)" and "triggers" not in hourly


def delete_flow(cp, name: str, user: str = "alice") -> None:
    r = cp.client.http.delete(f"/flows/{name}", headers={"content-type": "application/json"}, body=json.dumps({"user": user}))
    assert r.status_code == 200, r.json_body


def listed(cp) -> dict[str, dict]:
    """GET /flows by name, checked to cost one request."""
    return {f["name"]: f for f in get(cp, "/flows")["flows"]}


def test_deleted_after_a_delete_stays_through_late_runs_and_clears_on_a_redeploy(api):
    delete_flow(api, FLOW)
    assert listed(api)[FLOW]["deleted"] is True and get(api, f"/flows/{FLOW}")["deleted"] is True
    # A run of the deleted deployment recorded late (its events were delayed; it started
    # before every other run) moves the flow's first run, not its `deleted`.
    early = T0 - 3_600_000
    deliver(api.client, execution_event(execution_detail(FLOW, "late", "SUCCEEDED", early, early + 10)))
    entry = listed(api)[FLOW]
    assert entry["deleted"] is True and entry["created_at"] == "2025-11-24T23:00:00.000+00:00"
    again = api.deploy("parameter_flow.py", user="bob")
    assert again["status"] == "DEPLOYED"
    assert listed(api)[FLOW] == {**entry, "deleted": False} and get(api, f"/flows/{FLOW}")["deleted"] is False


def test_a_flow_is_deleted_once_every_deployment_of_it_is(api):
    staging = api.deploy("parameter_flow.py", name="params-staging")
    assert staging["status"] == "DEPLOYED"
    delete_flow(api, FLOW)
    # Still deployed as params-staging.
    assert listed(api)[FLOW]["deleted"] is False and get(api, f"/flows/{FLOW}")["deleted"] is False
    delete_flow(api, "params-staging")
    assert listed(api)[FLOW]["deleted"] is True and get(api, f"/flows/{FLOW}")["deleted"] is True
    api.deploy("parameter_flow.py", name="params-staging")
    assert listed(api)[FLOW]["deleted"] is False


def test_a_deployed_flow_is_listed_from_its_first_run(api):
    api.deploy("hourly_flow.py")
    assert "HourlyFlow" not in listed(api)
    deliver(api.client, execution_event(execution_detail("HourlyFlow", "h1", "RUNNING", T0)))
    assert listed(api)["HourlyFlow"] == {"name": "HourlyFlow", "created_at": "2025-11-25T00:00:00.000+00:00", "deleted": False}


def test_a_failed_deploy_puts_the_flow_entry_back(api, monkeypatch):
    from chalicelib.aws import StateMachines

    delete_flow(api, FLOW)
    monkeypatch.setattr(StateMachines, "point_alias", lambda self, *a: (_ for _ in ()).throw(RuntimeError("alias")))
    assert api.deploy("parameter_flow.py")["status"] == "FAILED"
    assert listed(api)[FLOW]["deleted"] is True
    # A first deploy undone leaves no entry behind.
    assert api.deploy("hourly_flow.py")["status"] == "FAILED"
    item = api.aws.table.t.get_item(Key={"PK": "FLOWS", "SK": "FLOW#HourlyFlow"}).get("Item")
    assert item is None and get(api, "/flows/HourlyFlow", status=404)["code"] == "not_found"


# --- runs ----------------------------------------------------------------------------------------


def run_ids(body: dict) -> list[str]:
    return [r["run_id"] for r in body["runs"]]


def test_runs_newest_first_as_run_records(api):
    body = get(api, f"/flows/{FLOW}/runs")
    assert run_ids(body) == ["sfn-e5", "sfn-e4", "sfn-e3", "sfn-e2", "sfn-e1"] and body["next_token"] is None
    e1 = body["runs"][-1]
    assert e1["status"] == "succeeded" and e1["parameters"] == {"alpha": 0.5} and e1["user"] == "SFN" and e1["owner"] == "alice"
    assert e1["tags"] == ["team:ml"] and f"production:{api.tokens[0]}" in e1["system_tags"]
    from flowplane.datastore.records import RunRecord

    for doc in body["runs"]:
        assert RunRecord.model_validate(doc).run_id == doc["run_id"]


def test_production_statuses_map_to_the_contracts(api):
    runs = {r["run_id"]: r for r in get(api, f"/flows/{FLOW}/runs")["runs"]}
    assert runs["sfn-e2"]["status"] == "running" and runs["sfn-e2"]["finished_at"] is None
    assert runs["sfn-e3"]["status"] == "failed" and runs["sfn-e3"]["error"]["type"] == "States.TaskFailed"
    timed_out = runs["sfn-e4"]
    assert timed_out["status"] == "failed" and timed_out["error"]["type"] == "TIMED_OUT"
    assert timed_out["production_status"] == "TIMED_OUT" and timed_out["finished_at"]


def test_runs_page_by_page_with_next_token(api):
    seen, token, pages = [], None, 0
    while True:
        path = f"/flows/{FLOW}/runs?limit=2" + (f"&next_token={token}" if token else "")
        body = get(api, path, most=2 if token is None else 1)
        seen += run_ids(body)
        pages += 1
        token = body["next_token"]
        if not token:
            break
    assert seen == ["sfn-e5", "sfn-e4", "sfn-e3", "sfn-e2", "sfn-e1"] and pages == 3


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=running", ["sfn-e2"]),
        ("status=succeeded", ["sfn-e5", "sfn-e1"]),
        ("status=failed", ["sfn-e4", "sfn-e3"]),
        ("status=FAILED", ["sfn-e4", "sfn-e3"]),
        ("status=timed_out", ["sfn-e4"]),
        ("namespace=production:{0}", ["sfn-e4", "sfn-e3", "sfn-e2", "sfn-e1"]),
        ("namespace=production:{1}", ["sfn-e5"]),
        # Production runs are the production user's (Metaflow's `user:SFN`), not the deployer's.
        ("namespace=user:SFN", ["sfn-e5", "sfn-e4", "sfn-e3", "sfn-e2", "sfn-e1"]),
        ("namespace=user:alice", []),
        ("tag=team:ml", ["sfn-e4", "sfn-e3", "sfn-e2", "sfn-e1"]),
        ("namespace=production:{0}&status=succeeded", ["sfn-e1"]),
        ("namespace=user:SFN&tag=team:ml&status=failed", ["sfn-e4", "sfn-e3"]),
    ],
)
def test_runs_by_status_namespace_and_tag_in_one_query(api, query, expected):
    query = query.format(*api.tokens)
    body = get(api, f"/flows/{FLOW}/runs?{query}", most=1 if expected else 2)
    assert run_ids(body) == expected


def test_runs_of_one_deployment_of_the_flow(api):
    """`step-functions --name params-staging list-runs`: runs stay filed under the flow's class name."""
    assert api.deploy("parameter_flow.py", name="params-staging")["status"] == "DEPLOYED"
    now = int(time.time() * 1000) + 1000
    deliver(api.client, execution_event(execution_detail("params-staging", "s1", "RUNNING", now)))
    staging = get(api, f"/flows/{FLOW}/runs?deployment=params-staging")
    assert run_ids(staging) == ["sfn-s1"] and staging["runs"][0]["flow"] == FLOW
    assert run_ids(get(api, f"/flows/{FLOW}/runs?deployment=params-staging&status=running")) == ["sfn-s1"]
    assert run_ids(get(api, f"/flows/{FLOW}/runs?deployment={FLOW}")) == ["sfn-e5", "sfn-e4", "sfn-e3", "sfn-e2", "sfn-e1"]
    assert "sfn-s1" in run_ids(get(api, f"/flows/{FLOW}/runs"))
    # No such deployment of this flow (an empty page pays one more request to say so).
    assert get(api, f"/flows/{FLOW}/runs?deployment=nope", most=2, status=404)["field"] == "deployment"
    api.deploy("hourly_flow.py")
    assert get(api, f"/flows/{FLOW}/runs?deployment=HourlyFlow", most=2, status=404)["field"] == "deployment"
    assert get(api, f"/flows/{FLOW}/runs?deployment=" + quote("a/b", safe=""), most=0, status=400)["field"] == "deployment"


def test_a_filtered_listing_pages_too(api):
    first = get(api, f"/flows/{FLOW}/runs?namespace=user:SFN&limit=3")
    assert run_ids(first) == ["sfn-e5", "sfn-e4", "sfn-e3"] and first["next_token"]
    rest = get(api, f"/flows/{FLOW}/runs?namespace=user:SFN&limit=3&next_token={first['next_token']}")
    assert run_ids(rest) == ["sfn-e2", "sfn-e1"]


def test_a_run(api):
    run = get(api, f"/flows/{FLOW}/runs/sfn-e1")
    assert run["status"] == "succeeded" and run["finished_at"] and run["execution_arn"].endswith(":e1")
    assert get(api, f"/flows/{FLOW}/runs/sfn-nope", status=404)["code"] == "not_found"


# --- bad parameters: 400 naming the field, before anything is read ------------------------------


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("status=sleeping", "status"),
        ("namespace=", "namespace"),
        ("namespace=%20user:alice", "namespace"),
        ("namespace=production:", "namespace"),
        ("namespace=user:%0Aalice", "namespace"),
        ("tag=", "tag"),
        ("next_token=not-a-token", "next_token"),
        ("next_token=", "next_token"),
        ("next_token=" + "A" * 3000, "next_token"),
    ],
)
def test_bad_listing_parameters_are_400(api, query, field):
    body = get(api, f"/flows/{FLOW}/runs?{query}", most=0, status=400)
    assert body["field"] == field and body["error"]


def test_a_next_token_only_works_for_the_listing_it_came_from(api):
    token = get(api, f"/flows/{FLOW}/runs?limit=1")["next_token"]
    for other in ("status=running", "namespace=user:SFN"):
        body = get(api, f"/flows/{FLOW}/runs?{other}&next_token={token}", most=0, status=400)
        assert body["field"] == "next_token"
    status_token = get(api, f"/flows/{FLOW}/runs?status=failed&limit=1")["next_token"]
    assert get(api, f"/flows/{FLOW}/runs?status=succeeded&next_token={status_token}", most=0, status=400)["field"] == "next_token"
    api.deploy("hourly_flow.py")
    assert get(api, f"/flows/HourlyFlow/runs?next_token={token}", most=0, status=400)["field"] == "next_token"


def test_a_forged_token_is_refused(api):
    import base64

    def forge(doc) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    good = {"PK": "FLOW#ParameterFlow", "SK": "RUN#sfn-e1", "GSI1PK": "RUNS#ParameterFlow", "GSI1SK": "x"}
    for doc in (
        {"i": "GSI1", "k": {**good, "GSI1PK": "RUNS#OtherFlow"}},  # another partition
        {"i": "GSI1", "k": {**good, "Extra": "x"}},  # other attributes
        {"i": "GSI1", "k": {**good, "SK": 7}},  # not a string
        {"i": "GSI2", "k": good},  # another index
        ["not", "an", "object"],
    ):
        body = get(api, f"/flows/{FLOW}/runs?next_token={forge(doc)}", most=0, status=400)
        assert body["field"] == "next_token"


# --- steps, tasks, attempts --------------------------------------------------------------------------


def test_steps_and_a_step(api):
    steps = get(api, f"/flows/{FLOW}/runs/sfn-e1/steps")["steps"]
    assert [s["name"] for s in steps] == ["start", "end"] and all(s["created_at"] for s in steps)
    assert get(api, f"/flows/{FLOW}/runs/sfn-e1/steps/start") == steps[0]
    # A run whose tasks have not started has no steps yet; a run that does not exist is a 404.
    assert get(api, f"/flows/{FLOW}/runs/sfn-e2/steps", most=2) == {"steps": []}
    assert get(api, f"/flows/{FLOW}/runs/sfn-nope/steps", most=2, status=404)["code"] == "not_found"
    assert get(api, f"/flows/{FLOW}/runs/sfn-e1/steps/train", status=404)["code"] == "not_found"


def test_tasks_of_a_step_and_a_task_with_its_attempts(api):
    tasks = get(api, f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks")
    assert [t["task_id"] for t in tasks["tasks"]] == ["1"]
    t = tasks["tasks"][0]
    assert t["status"] == "succeeded" and t["attempts"] == 2 and t["final_attempt"] == 1 and t["error"] is None
    task = get(api, f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1")
    assert [a["attempt"] for a in task["attempts"]] == [0, 1]
    failed, ok = task["attempts"]
    assert failed["status"] == "failed" and failed["exit_code"] == 1 and failed["error"]["type"] == "ValueError"
    assert failed["log_location"] and ok["log_location"] and ok["status"] == "succeeded"
    from flowplane.datastore.records import AttemptRecord, TaskRecord

    assert TaskRecord.model_validate({**task, "attempts": len(task["attempts"])}).final_attempt == 1
    assert all(AttemptRecord.model_validate(a) for a in task["attempts"])


def test_missing_tasks_are_404(api):
    for path in (
        f"/flows/{FLOW}/runs/sfn-e1/steps/train/tasks",
        f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1.4",
        f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1.04",
        f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/banana",
    ):
        assert get(api, path, status=404)["code"] == "not_found"


def test_foreach_tasks_list_in_index_order_and_page(api):
    api.deploy("foreach_flow.py")
    plan = [TaskPlan("square", f"1.{i}", [Attempt(True)]) for i in (10, 2, 0, 1)]
    for event in run_events("ForeachFlow", "ForeachFlow", "f1", plan):
        deliver(api.client, event)
    base = "/flows/ForeachFlow/runs/sfn-f1/steps/square/tasks"
    body = get(api, base)
    assert [t["task_id"] for t in body["tasks"]] == ["1.0", "1.1", "1.2", "1.10"]
    assert [t["foreach_indices"] for t in body["tasks"]] == [[0], [1], [2], [10]]
    page = get(api, base + "?limit=3")
    assert len(page["tasks"]) == 3 and page["next_token"]
    rest = get(api, base + f"?limit=3&next_token={page['next_token']}")
    assert [t["task_id"] for t in rest["tasks"]] == ["1.10"]


# --- artifacts ------------------------------------------------------------------------------------------


def test_artifacts_of_the_final_attempt_or_a_given_one(api):
    base = f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1/artifacts"
    assert get(api, base) == {"attempt": 1, "artifacts": {"alpha": artifact(SHA)}}
    assert get(api, base + "?attempt=1") == {"attempt": 1, "artifacts": {"alpha": artifact(SHA)}}
    # The failed attempt stored no index.
    assert get(api, base + "?attempt=0", status=404)["code"] == "not_found"
    assert get(api, base + "?attempt=x", most=0, status=400)["field"] == "attempt"
    assert get(api, base + "?attempt=-1", most=0, status=400)["field"] == "attempt"


def test_an_artifact_value_through_a_presigned_url(api):
    body = get(api, f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1/artifacts/alpha")
    assert body["sha"] == SHA and body["size"] == 10 and body["type"] == "builtins.int" and body["attempt"] == 1
    fetched = requests.get(body["url"], timeout=10)
    assert fetched.status_code == 200 and fetched.content == BLOB
    missing = get(api, f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1/artifacts/beta", status=404)
    assert missing["code"] == "not_found" and "beta" in missing["error"]


def test_a_steps_artifact_indexes_in_task_order_a_page_a_query(api):
    api.deploy("foreach_flow.py")
    other = "cd" * 32
    plan = [
        TaskPlan("square", "1.10", [Attempt(True, {"x": artifact(SHA)})]),
        TaskPlan("square", "1.2", [Attempt(False, {"x": artifact(other)}), Attempt(True, {"x": artifact(SHA)})]),
        TaskPlan("square", "1.0", [Attempt(True, {"x": artifact(other)})]),
    ]
    for event in run_events("ForeachFlow", "ForeachFlow", "f2", plan):
        deliver(api.client, event)
    base = "/flows/ForeachFlow/runs/sfn-f2/steps/square/artifacts"
    body = get(api, base)
    assert [(i["task_id"], i["attempt"]) for i in body["indexes"]] == [("1.0", 0), ("1.2", 0), ("1.2", 1), ("1.10", 0)]
    assert body["indexes"][2]["artifacts"] == {"x": artifact(SHA)} and body["next_token"] is None
    page = get(api, base + "?limit=3")
    assert len(page["indexes"]) == 3 and page["next_token"]
    rest = get(api, base + f"?limit=3&next_token={page['next_token']}")
    assert [(i["task_id"], i["attempt"]) for i in rest["indexes"]] == [("1.10", 0)]
    assert get(api, "/flows/ForeachFlow/runs/sfn-f2/steps/join/artifacts") == {"indexes": [], "next_token": None}
    assert get(api, base + "?limit=1001", most=0, status=400)["field"] == "limit"


def post_blobs(cp, flow: str, body: object, status: int = 200):
    calls = Calls()
    r = cp.client.http.post(f"/flows/{flow}/blobs", headers={"content-type": "application/json"},
                            body=json.dumps(body))
    assert r.status_code == status, (r.status_code, r.json_body)
    assert calls.total() == 0  # presigning reads no table
    return r.json_body


def test_presigned_urls_of_blobs_by_sha(api):
    urls = post_blobs(api, FLOW, {"shas": [SHA]})["urls"]
    assert set(urls) == {SHA}
    fetched = requests.get(urls[SHA], timeout=10)
    assert fetched.status_code == 200 and fetched.content == BLOB


@pytest.mark.parametrize("body, says", [
    ({}, "shas must be a non-empty list"),
    ({"shas": []}, "shas must be a non-empty list"),
    ({"shas": "ab" * 32}, "shas must be a non-empty list"),
    ({"shas": ["AB" * 32]}, "is not an artifact id"),
    ({"shas": ["../../secret"]}, "is not an artifact id"),
    ({"shas": ["ab" * 32] * 501}, "at most 500 shas a request, got 501"),
])
def test_bad_blob_url_requests_are_400_naming_shas(api, body, says):
    answer = post_blobs(api, FLOW, body, status=400)
    assert answer["field"] == "shas" and says in answer["error"]


def test_blob_urls_of_a_flow_name_that_cannot_exist_are_400(api):
    assert post_blobs(api, "no.such-flow", {"shas": [SHA]}, status=400)["field"] == "flow"


# --- logs -------------------------------------------------------------------------------------------------


def test_logs_from_cloudwatch_while_running_then_from_the_datastore(api):
    task = get(api, f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1")
    stream = task["attempts"][1]["log_location"]
    base = f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1/logs"
    assert get(api, base + "/stdout?attempt=1") == {"attempt": 1, "text": "", "source": "none"}
    logs = api.aws.session.client("logs", region_name=api.settings.region)
    logs.create_log_group(logGroupName="/aws/batch/job")
    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
    logs.put_log_events(
        logGroupName="/aws/batch/job",
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000) + i, "message": f"line {i}"} for i in range(3)],
    )
    assert get(api, base + "/stdout") == {"attempt": 1, "text": "line 0\nline 1\nline 2\n", "source": "cloudwatch"}
    bucket = api.settings.datastore_root[len("s3://") :].split("/")[0]
    key = "data/" + layout.attempt_key(FLOW, "sfn-e1", "start", "1", 1, "stderr.log")
    api.aws.packages.client.put_object(Bucket=bucket, Key=key, Body=b"only stderr\n")
    assert get(api, base + "/stderr?attempt=1") == {"attempt": 1, "text": "only stderr\n", "source": "datastore"}


def test_bad_and_missing_logs(api):
    base = f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1/logs"
    assert get(api, base + "/stdall", most=0, status=400)["field"] == "stream"
    assert get(api, base + "/stdout?attempt=9", status=404)["code"] == "not_found"
    assert get(api, base + "/stdout?attempt=nine", most=1, status=400)["field"] == "attempt"
    assert get(api, f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1.7/logs/stdout", status=404)["code"] == "not_found"


def test_a_huge_log_answers_with_its_tail_marked_as_cut(api):
    from chalicelib.query.blobs import TRUNCATED
    from chalicelib.routes.client_api import MAX_LOG_BYTES

    bucket = api.settings.datastore_root[len("s3://") :].split("/")[0]
    key = "data/" + layout.attempt_key(FLOW, "sfn-e1", "start", "1", 1, "stdout.log")
    body = b"".join(b"line %07d\n" % i for i in range(MAX_LOG_BYTES // 6))
    api.aws.packages.client.put_object(Bucket=bucket, Key=key, Body=body)
    text = get(api, f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1/logs/stdout?attempt=1")["text"]
    assert text.startswith(TRUNCATED) and text.endswith(body[-100:].decode())
    assert len(text) == len(TRUNCATED) + MAX_LOG_BYTES


def test_a_wide_nested_foreach_pages_in_index_order_one_query_a_page(api):
    """A nested foreach's tasks (ids up to 1.99999.11), written as the recorder writes them and
    in no particular order: every page is one Query, and the pages together are index order
    (1.2.9 before 1.2.10, 1.9.x before 1.10.x before 1.99999.x)."""
    from chalicelib.recording.run_records import task_item

    wide = (0, 1, 2, 9, 10, 11, 99, 100, 99_999)
    positions = [(i, j) for i in wide for j in wide[:6]]
    positions.sort(key=lambda p: str(p))  # any order but index order
    with http.aws().table.t.batch_writer() as batch:
        for i, j in positions:
            tid = layout.task_id_for([i, j])
            batch.put_item(Item=task_item({"flow": "NestFlow", "run_id": "sfn-w", "step": "inner", "task_id": tid,
                                           "status": "succeeded", "foreach_indices": [i, j],
                                           "created_at": "2026-12-07T12:00:00.000+00:00"}))
    base = "/flows/NestFlow/runs/sfn-w/steps/inner/tasks?limit=20"
    listed, token, pages = [], None, 0
    while True:
        calls = Calls()
        body = get(api, base + (f"&next_token={token}" if token else ""))
        assert calls.ops == {"Query": 1}
        pages += 1
        listed += [tuple(t["foreach_indices"]) for t in body["tasks"]]
        token = body["next_token"]
        if not token:
            break
    assert listed == sorted(positions) and len(listed) == 54
    assert pages == 3  # 20, 20, 14: a short page has no LastEvaluatedKey, so no next_token


def test_a_next_token_from_another_steps_tasks_is_refused(api):
    from chalicelib.recording.run_records import task_item

    with http.aws().table.t.batch_writer() as batch:
        for step in ("a", "b"):
            for i in range(3):
                batch.put_item(Item=task_item({"flow": "NestFlow", "run_id": "sfn-t", "step": step,
                                               "task_id": f"1.{i}", "foreach_indices": [i]}))
    token = get(api, "/flows/NestFlow/runs/sfn-t/steps/a/tasks?limit=2")["next_token"]
    body = get(api, f"/flows/NestFlow/runs/sfn-t/steps/b/tasks?limit=2&next_token={token}", most=0, status=400)
    assert body["field"] == "next_token" and "another listing" in body["error"]
