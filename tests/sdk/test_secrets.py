"""`@secrets(sources=[...])`: Secrets Manager values in the task's environment, never stored."""

from __future__ import annotations

import json
import os

import pytest

from flowplane.decorators import DecoratorArgumentError, secrets
from flowplane.graph import read_source_flow
from flowplane.lint import lint
from flowplane.task.errors import TaskSetupError
from flowplane.task.secrets import secret_environment
from tests.support.control_plane import flow_context, project_copy
from tests.support.feature_flows import SECRETS_FLOW as FLOW
from tests.support.feature_flows import SECRET_PASSWORD as PASSWORD
from tests.support.local_runs import USER, RunView, run_cli, write_flow

pytestmark = pytest.mark.aws


@pytest.fixture()
def secrets_manager(monkeypatch):
    """A moto server the flow's task processes reach (AWS_ENDPOINT_URL), stopped after the test."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    import boto3
    import requests

    # moto's backends are process-wide: start from none of an earlier test's secrets.
    requests.post(env["AWS_ENDPOINT_URL"] + "/moto-api/reset", timeout=10)
    client = boto3.client("secretsmanager", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    client.create_secret(Name="flowplane-local/db", SecretString=json.dumps({"DB_USER": "app", "DB_PASSWORD": PASSWORD}))
    client.create_secret(Name="flowplane-local/api", SecretString=json.dumps({"API_PORT": 8443}))
    client.create_secret(Name="flowplane-local/text", SecretString="not json")
    try:
        yield env
    finally:
        server.stop()


def test_sources_are_checked_where_they_are_written():
    for bad, says in [(["bad name!"], "is not a Secrets Manager secret name or ARN"), (["a", "a"], "a secret is named twice")]:
        with pytest.raises(DecoratorArgumentError, match=says):
            secrets(sources=bad)
    src = read_source_flow(FLOW.replace('"flowplane-local/api"', '"has space"'), "f.py")
    assert any("is not a Secrets Manager secret name or ARN" in str(e) for e in lint(src))


def test_secret_values_become_variables_and_bad_ones_are_named_without_their_values():
    store = {"a": '{"X": "1", "N": 2}', "b": '{"X": "2"}', "list": "[1]", "bad": '{"FLOWPLANE_RUN_ID": "x"}'}
    assert secret_environment(["a"], store.__getitem__) == {"X": "1", "N": "2"}
    for sources, says in [
        (["a", "b"], "'X' is in both 'a' and 'b'"),
        (["list"], "the secret 'list' must hold a JSON object"),
        (["bad"], "the secret 'bad': 'FLOWPLANE_RUN_ID': variables starting with FLOWPLANE_"),
    ]:
        with pytest.raises(TaskSetupError, match=says):
            secret_environment(sources, store.__getitem__)


def test_a_run_gives_the_step_its_secrets_and_stores_none_of_them(tmp_path, monkeypatch, secrets_manager):
    monkeypatch.setenv("FLOWPLANE_USER", USER)
    path = write_flow(tmp_path, "secret_flow", FLOW)
    root = tmp_path / "ds"
    proc = run_cli(path, root, tmp_path, "run")
    assert proc.returncode == 0, proc.stderr
    run = RunView.only(root, "SecretFlow")
    assert run.data("start")["seen"] == ("app", len(PASSWORD), "8443")
    assert run.data("end")["not_here"] is None  # only the decorated step's process has them
    stored = b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())
    assert PASSWORD.encode() not in stored and PASSWORD not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "source, says",
    [
        ("flowplane-local/nope", "@secrets: no secret 'flowplane-local/nope' in Secrets Manager"),
        ("flowplane-local/text", "@secrets: the secret 'flowplane-local/text' must hold a JSON object"),
    ],
)
def test_an_unknown_or_malformed_secret_fails_the_task_naming_it(tmp_path, monkeypatch, secrets_manager, source, says):
    monkeypatch.setenv("FLOWPLANE_USER", USER)
    path = write_flow(tmp_path, "secret_flow", FLOW.replace('"flowplane-local/api"', json.dumps(source)))
    proc = run_cli(path, tmp_path / "ds", tmp_path, "run")
    assert proc.returncode != 0
    assert says in proc.stdout + proc.stderr
    run = RunView.only(tmp_path / "ds", "SecretFlow")
    assert run.record.status == "failed"


def test_the_control_plane_refuses_a_secret_outside_the_stages_prefix(control_plane, tmp_path):
    source = FLOW.replace('"flowplane-local/api"', '"team-x/api"')
    folder = project_copy(tmp_path, "secret_flow.py", source)
    _, package = control_plane.build("secret_flow.py", folder=folder)
    before = control_plane.snapshot()
    for r in (
        control_plane.post_package(package.data),
        control_plane.client.http.post("/compile", headers={"content-type": "application/gzip"}, body=package.data),
    ):
        assert r.status_code == 400, r.json_body
        assert "step 'start': @secrets names 'team-x/api', but this stage's tasks may read only secrets whose names start with 'flowplane-local/'" in json.dumps(r.json_body)
    assert control_plane.snapshot() == before
    ok = project_copy(tmp_path, "secret_flow.py", FLOW)
    _, package = control_plane.build("secret_flow.py", folder=ok)
    r = control_plane.client.http.post("/compile", headers={"content-type": "application/gzip"}, body=package.data)
    assert r.status_code == 200, r.json_body
