"""Deploying: upload -> "Object Created" -> compile -> version -> schedule -> record -> production."""

from __future__ import annotations

import json

import pytest
import requests

from chalicelib.aws import Schedules, StateMachines
from chalicelib.deploy.records import Deployments
from tests.support.control_plane import project_copy

pytestmark = pytest.mark.aws

HOURLY_RULE = "flowplane-local-schedule-HourlyFlow"  # the local stage's (chalicelib/resource_names.py)


def _sfn(cp):
    return cp.aws.state_machines.client


def _definition(cp, name):
    return json.loads(_sfn(cp).describe_state_machine(stateMachineArn=cp.aws.state_machine_arn(name))["definition"])


def _stored_definition(cp, key):
    return cp.aws.packages.get_json(key)


def test_upload_answers_202_then_the_arrival_event_deploys(control_plane):
    cp = control_plane
    manifest, package = cp.build("parameter_flow.py")
    r = cp.post_package(package.data)
    assert r.status_code == 202
    body = r.json_body
    assert body["status"] == "PENDING" and body["name"] == "ParameterFlow"
    assert body["package"] == {"sha256": package.sha256, "key": package.key, "size": package.size}
    # Stored content-addressed, exactly the bytes sent.
    assert cp.aws.packages.get(f"packages/{package.sha256}.tar.gz") == package.data
    pending = cp.get(f"/deployments/{body['deployment_id']}").json_body
    assert pending["status"] == "PENDING"
    assert _sfn(cp).list_state_machines()["stateMachines"] == []

    results = cp.deliver(package.key)
    assert results == [{"deployment_id": body["deployment_id"], "status": "DEPLOYED", "version": 1}]
    record = cp.get(f"/deployments/{body['deployment_id']}").json_body
    assert record["status"] == "DEPLOYED"
    assert record["version"] == 1
    assert record["version_arn"].endswith(":stateMachine:flowplane-local-ParameterFlow:1")
    assert record["package_sha256"] == package.sha256
    assert record["deployer"] == "alice"
    assert record["created_at"] and record["updated_at"]
    assert record["options"]["max_workers"] == 100 and "authorize" not in record["options"]
    assert record["production_token"].startswith("parameterflow-")
    assert record["token_minted"] is True
    # The state machine runs what was compiled, and the alias points at version 1.
    listing = cp.get("/deployments?flow=ParameterFlow").json_body
    head = listing["flow"]
    assert head["production_version"] == 1 and head["production_deployment"] == body["deployment_id"]
    assert _definition(cp, "ParameterFlow") == _stored_definition(cp, head["definition_key"])
    alias = _sfn(cp).describe_state_machine_alias(stateMachineAliasArn=head["state_machine_arn"] + ":production")
    assert alias["routingConfiguration"][0]["stateMachineVersionArn"] == record["version_arn"]
    assert [p["name"] for p in head["parameters"]] == ["alpha"]


def test_create_again_makes_version_2_production_and_keeps_version_1_listed(control_plane, tmp_path):
    cp = control_plane
    first = cp.deploy("parameter_flow.py")
    source = _example("parameter_flow.py").read_text()
    changed = source.replace('print("alpha is still %f" % self.alpha)', 'print("alpha stays %f" % self.alpha)')
    assert changed != source
    folder = project_copy(tmp_path, "parameter_flow.py", changed)
    second = cp.deploy("parameter_flow.py", folder=folder)
    assert second["status"] == "DEPLOYED" and second["version"] == 2
    assert second["production_token"] == first["production_token"]  # same deployer keeps the namespace
    listing = cp.get("/deployments?flow=ParameterFlow").json_body
    assert [v["version"] for v in listing["versions"]] == [1, 2]
    assert [v["deployment_id"] for v in listing["versions"]] == [first["deployment_id"], second["deployment_id"]]
    assert listing["flow"]["production_version"] == 2
    assert listing["versions"][0]["package_sha256"] != listing["versions"][1]["package_sha256"]
    # Version 1's record still says what it ran.
    assert cp.get(f"/deployments/{first['deployment_id']}").json_body["version"] == 1


def _example(name):
    from tests.support.control_plane import EXAMPLES

    return EXAMPLES / name


def test_a_duplicate_arrival_event_deploys_once(control_plane):
    cp = control_plane
    _, package = cp.build("branch_flow.py")
    deployment_id = cp.post_package(package.data).json_body["deployment_id"]
    assert cp.deliver(package.key)[0]["status"] == "DEPLOYED"
    before = cp.snapshot()
    assert cp.deliver(package.key) == [{"deployment_id": deployment_id, "status": "SKIPPED"}]
    assert cp.snapshot() == before


def test_the_same_package_deployed_twice_publishes_two_versions(control_plane):
    cp = control_plane
    _, package = cp.build("branch_flow.py")
    ids = [cp.post_package(package.data).json_body["deployment_id"] for _ in range(2)]
    results = cp.deliver(package.key)
    assert [(r["deployment_id"], r["status"], r.get("version")) for r in results] == [
        (ids[0], "DEPLOYED", 1),
        (ids[1], "DEPLOYED", 2),
    ]


def test_with_decorators_are_applied_on_both_sides(control_plane):
    from flowplane.decorators import parse_with_option

    cp = control_plane
    manifest, package = cp.build("branch_flow.py", with_decorators=[parse_with_option("retry:times=2")])
    assert all(s.decorator("retry").times == 2 for s in manifest.graph.steps.values())
    r = cp.post_package(package.data)
    assert r.status_code == 202, r.json_body
    assert cp.deliver(package.key)[0]["status"] == "DEPLOYED"


def test_only_json_compiles_without_changing_anything(control_plane):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    _, package = cp.build("foreach_flow.py", max_workers=3)
    before = cp.snapshot()
    r = cp.client.http.post("/compile", headers={"content-type": "application/gzip"}, body=package.data)
    assert r.status_code == 200, r.json_body
    body = r.json_body
    assert body["name"] == "ForeachFlow" and body["schedule"] is None
    definition = body["state_machine"]
    assert definition["StartAt"] and definition["States"]
    maps = [s for s in _all_states(definition) if s.get("Type") == "Map"]
    assert maps and all(m.get("MaxConcurrency") == 3 for m in maps)
    assert cp.snapshot() == before


def _all_states(definition):
    for state in definition["States"].values():
        yield state
        for branch in state.get("Branches", []):
            yield from _all_states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _all_states(state[key])


def test_presigned_upload_for_large_packages(control_plane):
    cp = control_plane
    manifest, package = cp.build("parameter_flow.py")
    r = cp.post_json(
        "/packages", {"sha256": package.sha256, "size": package.size, "manifest": manifest.model_dump(mode="json")}
    )
    assert r.status_code == 202, r.json_body
    upload = r.json_body["upload"]
    assert upload["method"] == "PUT" and package.sha256 in upload["url"]
    # moto answers the presigned URL in-process for `requests`.
    put = requests.put(upload["url"], data=package.data, headers=upload["headers"])
    assert put.status_code == 200
    assert cp.deliver(package.key)[0]["status"] == "DEPLOYED"
    record = cp.get(f"/deployments/{r.json_body['deployment_id']}").json_body
    assert record["status"] == "DEPLOYED" and record["upload"] == "presigned"


def test_a_presigned_upload_of_other_bytes_fails_the_deployment(control_plane):
    cp = control_plane
    manifest, package = cp.build("parameter_flow.py")
    _, other = cp.build("branch_flow.py")
    r = cp.post_json(
        "/packages", {"sha256": package.sha256, "size": package.size, "manifest": manifest.model_dump(mode="json")}
    )
    # S3 checks the checksum on AWS; moto does not, so the compile function must.
    requests.put(r.json_body["upload"]["url"], data=other.data, headers=r.json_body["upload"]["headers"])
    result = cp.deliver(package.key)[0]
    assert result["status"] == "FAILED"
    record = cp.get(f"/deployments/{r.json_body['deployment_id']}").json_body
    assert record["status"] == "FAILED" and record["error"]["stage"] == "validate"
    assert "sha256" in record["error"]["error"]
    assert _sfn(cp).list_state_machines()["stateMachines"] == []


# --- atomicity: a failed step leaves the previous production running -------------------


def _break(monkeypatch, cls, method, message="injected failure"):
    def fail(*args, **kwargs):
        raise RuntimeError(message)

    monkeypatch.setattr(cls, method, fail)


def _variant(tmp_path):
    text = _example("hourly_flow.py").read_text().replace('print("time is %s" % now)', 'print("now: %s" % now)')
    return project_copy(tmp_path, "hourly_flow.py", text)


@pytest.mark.parametrize(
    "cls, method, stage",
    [
        (Schedules, "put", "schedule"),
        (Deployments, "promote", "record"),
        (StateMachines, "point_alias", "alias"),
    ],
)
def test_a_failed_step_leaves_the_previous_production_running(control_plane, monkeypatch, tmp_path, cls, method, stage):
    cp = control_plane
    first = cp.deploy("hourly_flow.py")
    assert first["status"] == "DEPLOYED"
    head_before = cp.get("/deployments?flow=HourlyFlow").json_body
    definition_before = _definition(cp, "HourlyFlow")
    rule_before = cp.aws.schedules.get(HOURLY_RULE)

    _break(monkeypatch, cls, method)
    second = cp.deploy("hourly_flow.py", folder=_variant(tmp_path))
    assert second["status"] == "FAILED"
    assert second["error"]["stage"] == stage
    assert "injected failure" in second["error"]["error"]
    assert "rollback_problems" not in second["error"]
    # Production is still version 1: the same definition runs, the same rule fires, the records agree.
    assert _definition(cp, "HourlyFlow") == definition_before
    assert cp.aws.schedules.get(HOURLY_RULE) == rule_before
    after = cp.get("/deployments?flow=HourlyFlow").json_body
    assert after["flow"]["production_version"] == 1
    assert after["flow"]["production_deployment"] == first["deployment_id"]
    assert [v["version"] for v in after["versions"]] == [1]
    # The head is as it was; only its write counter moved on (it never goes back, so
    # a deployment that read the old head cannot win against the restore).
    assert {k: v for k, v in after["flow"].items() if k != "revision"} == {
        k: v for k, v in head_before["flow"].items() if k != "revision"
    }
    alias = _sfn(cp).describe_state_machine_alias(stateMachineAliasArn=cp.aws.state_machine_arn("HourlyFlow") + ":production")
    assert alias["routingConfiguration"][0]["stateMachineVersionArn"] == first["version_arn"]


def test_a_failed_first_deploy_leaves_nothing_behind(control_plane, monkeypatch):
    cp = control_plane
    _break(monkeypatch, Deployments, "promote")
    record = cp.deploy("hourly_flow.py")
    assert record["status"] == "FAILED" and record["error"]["stage"] == "record"
    assert _sfn(cp).list_state_machines()["stateMachines"] == []
    assert cp.aws.schedules.get(HOURLY_RULE) is None
    assert cp.get("/deployments?flow=HourlyFlow").status_code == 404


def test_a_compile_error_fails_the_deployment_with_its_reason(control_plane, monkeypatch):
    from chalicelib.compiler import CompileError

    def refuse(manifest, package_url, settings):
        raise CompileError("step 'start': resources too large for the queue")

    monkeypatch.setattr("chalicelib.compiler.compile_state_machine", refuse)
    cp = control_plane
    record = cp.deploy("parameter_flow.py")
    assert record["status"] == "FAILED"
    assert record["error"]["stage"] == "compile"
    assert "resources too large" in record["error"]["error"]
    assert _sfn(cp).list_state_machines()["stateMachines"] == []


# --- production tokens ----------------------------------------------------------------


def test_another_user_deploys_with_the_token_and_keeps_the_namespace(control_plane):
    cp = control_plane
    first = cp.deploy("parameter_flow.py", user="alice")
    token = first["production_token"]
    second = cp.deploy("parameter_flow.py", user="bob", authorize=f"production:{token}")
    assert second["status"] == "DEPLOYED" and second["production_token"] == token
    assert second["token_minted"] is False
    # Bob deployed last: he may deploy again without the token; Alice now needs it.
    assert cp.deploy("parameter_flow.py", user="bob")["status"] == "DEPLOYED"
    _, package = cp.build("parameter_flow.py", user="alice")
    assert cp.post_package(package.data).status_code == 403


def test_new_token_starts_a_new_namespace(control_plane):
    cp = control_plane
    first = cp.deploy("parameter_flow.py")
    second = cp.deploy("parameter_flow.py", new_token=True)
    assert second["status"] == "DEPLOYED" and second["token_minted"] is True
    assert second["production_token"] != first["production_token"]
    head = cp.get("/deployments?flow=ParameterFlow").json_body["flow"]
    assert head["production_token"] == second["production_token"]


def test_deploy_name_option_names_the_state_machine(control_plane):
    cp = control_plane
    record = cp.deploy("parameter_flow.py", name="params-staging")
    assert record["status"] == "DEPLOYED" and record["name"] == "params-staging"
    assert record["state_machine_arn"].endswith(":stateMachine:flowplane-local-params-staging")


def _as_before_stage_prefixes(cp, name: str) -> dict:
    """Point a deployment's head at a state machine and rule named as before the stage's prefix."""
    sfn, events = _sfn(cp), cp.aws.schedules.client
    described = sfn.describe_state_machine(stateMachineArn=cp.aws.state_machine_arn(name))
    old = sfn.create_state_machine(name=name, definition=described["definition"], roleArn=described["roleArn"])["stateMachineArn"]
    events.put_rule(Name=f"flowplane-{name}", ScheduleExpression="cron(0 * * * ? *)", State="ENABLED")
    cp.aws.table.update(f"FLOW#{name}", "FLOW", {"state_machine_arn": old, "rule_name": f"flowplane-{name}"})
    cp.aws.state_machines.delete(cp.aws.state_machine_arn(name))
    return {"state_machine_arn": old, "rule": f"flowplane-{name}"}


def test_redeploying_a_flow_deployed_before_stage_prefixes_moves_it_and_retires_the_old_names(control_plane):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    old = _as_before_stage_prefixes(cp, "HourlyFlow")
    again = cp.deploy("hourly_flow.py")
    assert again["status"] == "DEPLOYED" and again["state_machine_arn"] == cp.aws.state_machine_arn("HourlyFlow")
    assert [m["name"] for m in _sfn(cp).list_state_machines()["stateMachines"]] == ["flowplane-local-HourlyFlow"]
    assert cp.aws.schedules.get(old["rule"]) is None and cp.aws.schedules.get(HOURLY_RULE) is not None
    assert cp.post_json("/flows/HourlyFlow/runs", {}).status_code == 201


def test_a_failed_move_leaves_the_old_state_machine_in_production(control_plane, monkeypatch):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    old = _as_before_stage_prefixes(cp, "HourlyFlow")
    _break(monkeypatch, StateMachines, "point_alias")
    assert cp.deploy("hourly_flow.py")["status"] == "FAILED"
    # The new state machine and rule are gone again; the old ones still run production.
    assert [m["stateMachineArn"] for m in _sfn(cp).list_state_machines()["stateMachines"]] == [old["state_machine_arn"]]
    assert cp.aws.schedules.get(HOURLY_RULE) is None and cp.aws.schedules.get(old["rule"]) is not None
    assert cp.get("/deployments?flow=HourlyFlow").json_body["flow"]["state_machine_arn"] == old["state_machine_arn"]


def test_deleting_a_flow_deployed_before_stage_prefixes_removes_its_old_names(control_plane):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    old = _as_before_stage_prefixes(cp, "HourlyFlow")
    r = cp.client.http.delete("/flows/HourlyFlow", headers={"content-type": "application/json"}, body=json.dumps({"user": "alice"}))
    assert r.status_code == 200 and r.json_body["state_machine_arn"] == old["state_machine_arn"]
    assert _sfn(cp).list_state_machines()["stateMachines"] == [] and cp.aws.schedules.get(old["rule"]) is None


def test_compile_event_for_other_buckets_or_keys_is_ignored(control_plane):
    from chalicelib.aws_events import object_created_event

    cp = control_plane
    before = cp.snapshot()
    for bucket, key in (("someone-elses", "packages/" + "0" * 64 + ".tar.gz"), (cp.settings.bucket, "packages/x.tar.gz")):
        assert cp.client.lambda_.invoke("compile", object_created_event(bucket, key, 10)).payload == []
    assert cp.snapshot() == before


def test_deploy_module_keeps_the_compiler_import_lazy():
    import inspect

    from chalicelib.deploy import definition

    # The API Lambda must not import the compiler for every route.
    assert "compiler import" not in inspect.getsource(definition).split("def compile_definition")[0]
