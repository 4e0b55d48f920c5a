"""Idempotency keys on the control plane's mutating routes (chalicelib/idempotency.py)."""

from __future__ import annotations

import json
import time

import pytest

from chalicelib import http
from flowplane.idempotency_key import HEADER, IN_PROGRESS_CODE, REPLAYED_HEADER, REUSED_CODE
from tests.support.paths import ROOT

pytestmark = pytest.mark.aws

def _post(cp, path, body, key=None, content_type="application/json"):
    headers = {"content-type": content_type}
    if key is not None:
        headers[HEADER] = key
    data = body if isinstance(body, bytes) else json.dumps(body)
    return cp.client.http.post(path, headers=headers, body=data)


def _idempotency_items(cp):
    return cp.aws.table.query("IDEMPOTENCY")


def test_a_repeated_trigger_key_gets_the_first_answer_and_starts_one_run(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    first = _post(cp, "/flows/ParameterFlow/runs", {"parameters": {"alpha": "0.5"}}, key="k-1")
    again = _post(cp, "/flows/ParameterFlow/runs", {"parameters": {"alpha": "0.5"}}, key="k-1")
    assert first.status_code == again.status_code == 201, again.json_body
    assert again.json_body == first.json_body
    assert again.headers.get(REPLAYED_HEADER) == "true" and REPLAYED_HEADER not in first.headers
    assert len(cp.executions("ParameterFlow")) == 1
    other = _post(cp, "/flows/ParameterFlow/runs", {"parameters": {"alpha": "0.5"}}, key="k-2")
    assert other.json_body["run_id"] != first.json_body["run_id"]
    assert len(cp.executions("ParameterFlow")) == 2
    # Records expire through the table's TTL attribute.
    items = _idempotency_items(cp)
    assert len(items) == 2 and all(i["ttl"] > time.time() + 3600 for i in items)


def test_the_same_key_for_another_request_is_a_422_naming_the_key(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    assert _post(cp, "/flows/ParameterFlow/runs", {"parameters": {"alpha": "0.5"}}, key="k-1").status_code == 201
    r = _post(cp, "/flows/ParameterFlow/runs", {"parameters": {"alpha": "0.7"}}, key="k-1")
    assert r.status_code == 422
    assert r.json_body["code"] == REUSED_CODE and r.json_body["field"] == HEADER and r.json_body["key"] == "k-1"
    assert "'k-1'" in r.json_body["error"]
    assert len(cp.executions("ParameterFlow")) == 1


def test_a_refusal_is_not_remembered(control_plane):
    cp = control_plane
    r = _post(cp, "/flows/ParameterFlow/runs", {}, key="k-1")
    assert r.status_code == 404
    cp.deploy("parameter_flow.py")
    # The first try changed nothing, so the key is free to act now.
    r = _post(cp, "/flows/ParameterFlow/runs", {}, key="k-1")
    assert r.status_code == 201 and REPLAYED_HEADER not in r.headers


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "caf\u00e9"])
def test_a_malformed_key_is_a_400_and_changes_nothing(control_plane, key):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    r = _post(cp, "/flows/ParameterFlow/runs", {}, key=key)
    assert r.status_code == 400 and r.json_body["field"] == HEADER, r.json_body
    assert cp.executions("ParameterFlow") == []


def test_a_key_still_in_progress_is_a_409_to_ask_again(control_plane, monkeypatch):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    from chalicelib import idempotency

    seen = []

    def trigger_meanwhile(*args, **kwargs):
        # The same request again while the first holds its key.
        seen.append(_post(cp, "/flows/ParameterFlow/runs", {}, key="k-1"))
        return real(*args, **kwargs)

    from chalicelib.runs import production

    real = production.trigger
    monkeypatch.setattr(production, "trigger", trigger_meanwhile)
    first = _post(cp, "/flows/ParameterFlow/runs", {}, key="k-1")
    assert first.status_code == 201
    (inner,) = seen
    assert inner.status_code == 409 and inner.json_body["code"] == IN_PROGRESS_CODE
    assert inner.headers["Retry-After"] == str(idempotency.IN_PROGRESS_RETRY_AFTER)
    assert len(cp.executions("ParameterFlow")) == 1


def test_a_trigger_replayed_after_its_record_expired_names_the_same_run(control_plane, monkeypatch):
    """Documented (README): past the record's life the request is handled again, but the run
    is named after the key, so Step Functions refuses a second execution: same run, no new one."""
    cp = control_plane
    monkeypatch.setenv("FLOWPLANE_IDEMPOTENCY_TTL_SECONDS", "1")
    http.reset()
    cp.deploy("parameter_flow.py")
    first = _post(cp, "/flows/ParameterFlow/runs", {}, key="k-1")
    time.sleep(2.1)
    again = _post(cp, "/flows/ParameterFlow/runs", {}, key="k-1")
    assert again.status_code == 201 and REPLAYED_HEADER not in again.headers  # handled afresh
    assert again.json_body["run_id"] == first.json_body["run_id"]
    assert len(cp.executions("ParameterFlow")) == 1


def test_delete_and_terminate_answer_a_repeat_with_the_first_answer(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    run = _post(cp, "/flows/ParameterFlow/runs", {}).json_body["run_id"]
    stop = [_post(cp, f"/flows/ParameterFlow/runs/{run}/terminate", {}, key="t-1") for _ in range(2)]
    assert [r.status_code for r in stop] == [200, 200] and stop[0].json_body == stop[1].json_body
    body = json.dumps({"user": "alice"})
    gone = [
        cp.client.http.request("DELETE", "/flows/ParameterFlow", headers={"content-type": "application/json", HEADER: "d-1"}, body=body)
        for _ in range(2)
    ]
    assert [r.status_code for r in gone] == [200, 200] and gone[1].headers[REPLAYED_HEADER] == "true"


def test_a_repeated_package_upload_makes_one_deployment(control_plane):
    cp = control_plane
    _, package = cp.build("parameter_flow.py")
    answers = [_post(cp, "/packages", package.data, key="p-1", content_type="application/gzip") for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json_body["deployment_id"] == answers[1].json_body["deployment_id"]
    assert len(cp.aws.table.query(f"PACKAGE#{package.sha256}")) == 1


def test_requests_without_a_key_act_as_before(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    ids = {_post(cp, "/flows/ParameterFlow/runs", {}).json_body["run_id"] for _ in range(2)}
    assert len(ids) == 2 and _idempotency_items(cp) == []


def test_only_a_keyed_request_imports_powertools_idempotency():
    """~183 ms of cold import (shared/FACTS.md): reads and keyless requests never pay it."""
    import subprocess
    import sys

    code = (
        "import sys, app\n"
        "from chalice.test import Client\n"
        "with Client(app.app) as c:\n"
        "    assert c.http.get('/health').status_code == 200\n"
        "print(any(m.startswith('aws_lambda_powertools.utilities.idempotency') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(ROOT))
    assert out.stdout.strip() == "False", out.stderr
