"""Property, end to end: for every route, any request gets no 5xx; a refusal is a 4xx JSON body
naming the field and changes nothing stored; an accepted trigger is a recorded run.

The strategies are those of tests/control_plane/test_hostile_property.py (tests/support/hostile_strategies.py),
sent through the Chalice app on moto. Fewer examples than the pure tests: each one
snapshots the whole store twice.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hostile_strategies import HOSTILE, JSON_VALUES, packages, trigger_bodies

pytestmark = pytest.mark.aws

# A quarter of the profile's examples (tests/support/hostile_strategies.py): each snapshots the store twice.
SETTINGS = settings(
    HOSTILE,
    max_examples=max(5, HOSTILE.max_examples // 4),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Path parameters: real names, and what a hostile caller would put there instead.
SEGMENTS = st.one_of(
    st.sampled_from(["ParameterFlow", "start", "1", "sfn-x", "d-20260101T000000Z-00000000", "0", "-", "_"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/?#%"), min_size=1, max_size=40),
    st.sampled_from(["x" * 3000, "\u00e9" * 600, "FLOW#x", "a#b", "sfn-" + "e" * 500, "..", "%2F"]),
)
GET_ROUTES = [
    "/deployments/{a}",
    "/deployments?flow={a}",
    "/flows/{a}/runs?status={b}",
    "/flows/{a}",
    "/flows?token={a}",
    "/flows/{a}/runs/{b}",
    "/flows/{a}/runs/{b}/steps",
    "/flows/{a}/runs/{b}/steps/{c}",
    "/flows/{a}/runs/{b}/steps/{c}/tasks",
    "/flows/{a}/runs/{b}/steps/{c}/tasks/{d}",
    "/flows/{a}/runs/{b}/steps/{c}/tasks/{d}/artifacts",
    "/flows/{a}/runs/{b}/steps/{c}/tasks/{d}/artifacts/{a}",
    "/flows/{a}/runs/{b}/steps/{c}/tasks/{d}/logs/{b}",
]


@pytest.fixture
def deployed(control_plane):
    assert control_plane.deploy("parameter_flow.py")["status"] == "DEPLOYED"
    return control_plane


def _answered(cp, before: dict[str, Any], r: Any, may_store: bool = False) -> None:
    assert r.status_code < 500, (r.status_code, r.body[:500])
    if r.status_code >= 400:
        assert r.headers.get("Content-Type", "").startswith("application/json"), r.body[:200]
        body = json.loads(r.body, parse_constant=lambda c: pytest.fail(f"the answer holds {c}"))
        assert isinstance(body.get("error"), str) and body["error"]
        assert any(k in body for k in ("field", "step", "line")), body
        assert cp.snapshot() == before, "a refused request changed what is stored"
    elif not may_store:
        assert cp.snapshot() == before, "a read changed what is stored"


@SETTINGS
@given(data=packages(), route=st.sampled_from(["/packages", "/compile"]))
def test_any_package_on_any_package_route(deployed, data, route):
    before = deployed.snapshot()
    r = deployed.client.http.post(route, headers={"content-type": "application/gzip"}, body=data)
    _answered(deployed, before, r, may_store=route == "/packages")


@SETTINGS
@given(text=trigger_bodies())
def test_any_trigger_body(deployed, text):
    before = deployed.snapshot()
    r = deployed.client.http.post("/flows/ParameterFlow/runs", headers={"content-type": "application/json"}, body=text)
    _answered(deployed, before, r, may_store=True)
    if r.status_code == 201:  # accepted: always a recorded run
        run_id = r.json_body["run_id"]
        assert deployed.get(f"/flows/ParameterFlow/runs/{run_id}").status_code == 200


@SETTINGS
@given(body=JSON_VALUES, route=st.sampled_from(["/packages", "/flows/ParameterFlow/runs/sfn-x/terminate", "/flows/ParameterFlow"]))
def test_any_json_body_on_the_other_json_routes(deployed, body, route):
    before = deployed.snapshot()
    method = deployed.client.http.delete if route == "/flows/ParameterFlow" else deployed.client.http.post
    r = method(route, headers={"content-type": "application/json"}, body=json.dumps(body))
    _answered(deployed, before, r)


@SETTINGS
@given(route=st.sampled_from(GET_ROUTES), a=SEGMENTS, b=SEGMENTS, c=SEGMENTS, d=SEGMENTS)
def test_any_path_on_any_read_route(deployed, route, a, b, c, d):
    before = deployed.snapshot()
    path = route.format(**{k: quote(v, safe="") for k, v in dict(a=a, b=b, c=c, d=d).items()})
    _answered(deployed, before, deployed.get(path))


@SETTINGS
@given(a=SEGMENTS, b=SEGMENTS, route=st.sampled_from(["terminate", "delete", "trigger"]))
def test_any_path_on_any_write_route(deployed, a, b, route):
    before = deployed.snapshot()
    http = deployed.client.http
    headers = {"content-type": "application/json"}
    a, b = quote(a, safe=""), quote(b, safe="")
    if route == "terminate":
        r = http.post(f"/flows/{a}/runs/{b}/terminate", headers=headers, body="{}")
    elif route == "delete":
        r = http.delete(f"/flows/{a}", headers=headers, body=json.dumps({"user": b}))
    else:
        r = http.post(f"/flows/{a}/runs", headers=headers, body="{}")
    _answered(deployed, before, r, may_store=r.status_code < 300)


@SETTINGS
@given(data=packages())
def test_any_package_through_the_compile_function(deployed, data):
    """A presigned upload reaches the compile function unseen by the API: it deploys or it
    fails with a refusal naming the fault, never an unexpected exception, and deploys nothing."""
    import hashlib

    from tests.support.hostile_packages import manifest_of

    sha = hashlib.sha256(data).hexdigest()
    r = deployed.post_json("/packages", {"sha256": sha, "size": max(len(data), 1), "manifest": json.loads(manifest_of().model_dump_json())})
    assert r.status_code == 202, r.json_body
    deployed.aws.packages.put(f"packages/{sha}.tar.gz", data)
    machines = deployed.snapshot()["state_machines"]
    # The same bytes may have come before: take this request's deployment.
    [result] = [d for d in deployed.deliver(f"packages/{sha}.tar.gz") if d["deployment_id"] == r.json_body["deployment_id"]]
    if result["status"] == "FAILED":
        error = result["error"]
        assert any(k in error for k in ("field", "step", "line")), error
        assert deployed.snapshot()["state_machines"] == machines
    else:
        assert result["status"] == "DEPLOYED", result
