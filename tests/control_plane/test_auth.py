"""The API is not anonymous: IAM (SigV4) on every route but /health; the signer is the deployer.

`chalice.test.Client` does not run API Gateway's authorizers, so "an unsigned
request is refused" is shown in two halves: every route declares the IAM
authorizer (here, in the app's route table; in the packaged template's
methods, tests/control_plane/test_packaging.py), and the handlers trust the signer
API Gateway puts in the request context over anything the client claims.
"""

from __future__ import annotations

import json

import pytest
from chalice import IAMAuthorizer
from chalice.test import Client

from app import app
from chalicelib.identity import OPEN_ROUTES, acting_user, caller_arn
from chalicelib.settings import Settings
from tests.support.control_plane import LOCAL_ENV
from tests.support.identities import ALICE

pytestmark = pytest.mark.aws

MALLORY = "arn:aws:sts::123456789012:assumed-role/Dev/mallory"


def _routes():
    return [(path, method, entry) for path, methods in app.routes.items() for method, entry in methods.items()]


def test_every_route_but_health_requires_iam():
    routes = _routes()
    assert len(routes) >= 8  # the table is really there
    open_ones = [(p, m) for p, m, e in routes if e.authorizer is None]
    assert open_ones == [("/health", "GET")]
    for path, method, entry in routes:
        if (path, method) not in OPEN_ROUTES:
            assert isinstance(entry.authorizer, IAMAuthorizer), (path, method)


def test_health_answers_without_credentials(control_plane):
    r = control_plane.get("/health")
    assert r.status_code == 200 and r.json_body["ok"] is True


# --- who the caller is -------------------------------------------------------------------


def _settings(stage: str) -> Settings:
    return Settings(stage=stage, bucket="b", table="t", job_queue="q", job_definition="d")


@pytest.mark.parametrize(
    "context, expected",
    [
        ({"identity": {"userArn": ALICE, "caller": "AIDAEXAMPLE"}}, ALICE),
        ({"identity": {"caller": "AROAEXAMPLE:session"}}, "AROAEXAMPLE:session"),
        ({"identity": {"sourceIp": "127.0.0.1"}}, None),
        ({"identity": {"userArn": None}}, None),
        ({}, None),
        (None, None),
    ],
)
def test_caller_arn_reads_the_api_gateway_identity(context, expected):
    assert caller_arn(context) == expected


def test_the_local_stage_trusts_the_client_when_nothing_is_signed():
    assert acting_user({"identity": {"sourceIp": "127.0.0.1"}}, _settings("local")) is None
    assert acting_user({"identity": {"userArn": ALICE}}, _settings("local")) == ALICE


def test_other_stages_refuse_a_request_without_a_signer():
    assert acting_user({"identity": {"userArn": ALICE}}, _settings("dev")) == ALICE
    with pytest.raises(Exception) as e:
        acting_user({"identity": {"sourceIp": "1.2.3.4"}}, _settings("prod"))
    assert e.value.status == 403 and e.value.field == "authorization" and "SigV4" in e.value.message


def test_the_signer_is_the_deployer_whatever_the_manifest_says(control_plane, signed_as):
    cp = control_plane
    signed_as(ALICE)
    record = cp.deploy("parameter_flow.py", user="bob")
    assert record["status"] == "DEPLOYED", record
    assert record["deployer"] == ALICE
    head = cp.get("/deployments?flow=ParameterFlow").json_body["flow"]
    assert head["deployer"] == ALICE
    # The same signer redeploys without a token, whatever user the manifest names.
    again = cp.deploy("parameter_flow.py", user="carol")
    assert again["status"] == "DEPLOYED" and again["deployer"] == ALICE


def test_claiming_the_deployers_name_does_not_help_another_signer(control_plane, signed_as):
    cp = control_plane
    signed_as(ALICE)
    assert cp.deploy("parameter_flow.py", user="alice")["status"] == "DEPLOYED"
    before = cp.snapshot()
    signed_as(MALLORY)
    # The manifest says "alice", even the signer's ARN: the signature says mallory.
    for claimed in ("alice", ALICE):
        _, package = cp.build("parameter_flow.py", user=claimed)
        r = cp.post_package(package.data)
        assert r.status_code == 403, r.json_body
        assert r.json_body["field"] == "authorize" and r.json_body["deployer"] == ALICE
    assert cp.snapshot() == before


def test_the_token_still_lets_another_signer_take_over(control_plane, signed_as):
    cp = control_plane
    signed_as(ALICE)
    first = cp.deploy("parameter_flow.py")
    signed_as(MALLORY)
    second = cp.deploy("parameter_flow.py", authorize=first["production_token"])
    assert second["status"] == "DEPLOYED" and second["deployer"] == MALLORY
    assert second["production_token"] == first["production_token"]


def test_presigned_uploads_record_the_signer_too(control_plane, signed_as):
    cp = control_plane
    signed_as(ALICE)
    manifest, package = cp.build("parameter_flow.py", user="bob")
    body = {"sha256": package.sha256, "size": package.size, "manifest": manifest.model_dump(mode="json")}
    r = cp.post_json("/packages", body)
    assert r.status_code == 202, r.json_body
    cp.aws.packages.put(package.key, package.data)  # what the client's PUT to the presigned URL does
    cp.deliver(package.key)
    record = cp.get(f"/deployments/{r.json_body['deployment_id']}").json_body
    assert record["status"] == "DEPLOYED" and record["deployer"] == ALICE


def test_delete_is_checked_against_the_signer_not_the_body(control_plane, signed_as):
    cp = control_plane
    signed_as(ALICE)
    cp.deploy("parameter_flow.py")
    signed_as(MALLORY)
    before = cp.snapshot()
    r = cp.client.http.delete(
        "/flows/ParameterFlow", headers={"content-type": "application/json"}, body='{"user": "%s"}' % ALICE
    )
    assert r.status_code == 403 and r.json_body["field"] == "authorize"
    assert cp.snapshot() == before
    signed_as(ALICE)
    # The signer needs no user in the body.
    r = cp.client.http.delete("/flows/ParameterFlow", headers={"content-type": "application/json"}, body="{}")
    assert r.status_code == 200 and r.json_body["deleted"] is True


def test_a_signed_stage_refuses_an_unsigned_request_and_stores_nothing(control_plane, tmp_path):
    cp = control_plane
    # The local stage's resources under another stage's name: only the stage differs.
    (tmp_path / ".chalice").mkdir()
    stage_env = {**LOCAL_ENV, "FLOWPLANE_STAGE": "dev"}
    (tmp_path / ".chalice" / "config.json").write_text(
        json.dumps({"version": "2.0", "app_name": "flowplane", "stages": {"dev": {"environment_variables": stage_env}}})
    )
    dev = Client(app, stage_name="dev", project_dir=str(tmp_path)).http
    before = cp.snapshot()
    _, package = cp.build("parameter_flow.py")
    r = dev.post("/packages", headers={"content-type": "application/gzip"}, body=package.data)
    assert r.status_code == 403 and r.json_body["field"] == "authorization", r.json_body
    r = dev.delete("/flows/ParameterFlow", headers={"content-type": "application/json"}, body='{"user": "alice"}')
    assert r.status_code == 403 and r.json_body["field"] == "authorization"
    assert cp.snapshot() == before
