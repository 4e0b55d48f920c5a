"""Two stages (dev and prod) of the control plane in one account and region.

Each stage has its own bucket and tables, as its stack does; what they share is
the account's Step Functions, EventBridge rules and default event bus. Both
deploy the same flow under the same name; neither may touch the other's state
machine or schedule, and each records only its own runs, although every
execution's status change reaches both recorders. The handlers are a few lines
over these functions (chalicelib/routes/); a chalice.test.Client always runs as
the local stage, so the stages are driven through the functions themselves.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any, Iterator

import pytest
from moto import mock_aws

from chalicelib.deploy import removal, rollout, uploads
from chalicelib.aws import Aws
from chalicelib.bootstrap import ensure_resources
from chalicelib.deploy.records import Deployments
from chalicelib.resource_names import rule_name, state_machine_name
from chalicelib.recording import service
from chalicelib.runs import production
from chalicelib.aws_events import apply_input_transformer, scheduled_event
from chalicelib.settings import Settings
from flowplane.local.events import execution_status_event
from flowplane.local.moto_patches import moto_second_execution_fix
from tests.support.control_plane import EXAMPLES, flow_context, project_copy
from tests.support.metric_logs import json_lines, metric_totals

pytestmark = pytest.mark.aws

ACCOUNT = "123456789012"
STAGES = ("dev", "prod")


@pytest.fixture
def stages(monkeypatch) -> Iterator[dict[str, Aws]]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # Executions stay RUNNING: the point is whose they are, not what they do.
    with mock_aws(config={"batch": {"use_docker": False}}), moto_second_execution_fix():
        planes = {}
        for stage in STAGES:
            settings = Settings(
                stage=stage, region="us-east-1", bucket=f"flowplane-{stage}-bucket", table=f"flowplane-{stage}",
                job_queue=f"flowplane-{stage}", job_definition=f"flowplane-{stage}-task", account=ACCOUNT,
                event_bus="default",
            )
            planes[stage] = Aws(settings)
            ensure_resources(planes[stage])
        service.reset()
        yield planes
        service.reset()


def deploy_to(aws: Aws, filename: str, folder=EXAMPLES, **options: Any) -> dict[str, Any]:
    """POST /packages then the package's "Object Created" event, as the two handlers do."""
    from flowplane.manifest import DeployOptions
    from flowplane.package import build_package, manifest_for

    manifest = manifest_for(flow_context(filename, folder=folder), DeployOptions(**options))
    package = build_package(str(folder), manifest)
    accepted = uploads.accept_upload(aws, aws.settings, package.data)
    [done] = rollout.deploy_arrived(aws, aws.settings, {"bucket": {"name": aws.settings.bucket}, "object": {"key": package.key}})
    assert done["status"] == "DEPLOYED", done
    return Deployments(aws.table).get(accepted["deployment_id"])


def status_event(aws: Aws, execution_arn: str) -> dict[str, Any]:
    """The "Execution Status Change" EventBridge delivers to every rule on the default bus."""
    entry = execution_status_event(aws.state_machines.client.describe_execution(executionArn=execution_arn))
    return {
        "version": "0", "id": f"e-{execution_arn[-8:]}", "detail-type": entry["DetailType"], "source": entry["Source"],
        "account": ACCOUNT, "time": "2026-11-24T10:00:00Z", "region": "us-east-1", "resources": entry["Resources"],
        "detail": json.loads(entry["Detail"]),
    }


def test_two_stages_deploy_the_same_flow_without_touching_each_other(stages, tmp_path):
    dev, prod = stages["dev"], stages["prod"]
    deployed = {stage: deploy_to(aws, "hourly_flow.py") for stage, aws in stages.items()}
    sfn = dev.state_machines.client
    assert sorted(m["name"] for m in sfn.list_state_machines()["stateMachines"]) == [
        "flowplane-dev-HourlyFlow", "flowplane-prod-HourlyFlow",
    ]
    for stage, aws in stages.items():
        assert deployed[stage]["state_machine_arn"].endswith(f":stateMachine:flowplane-{stage}-HourlyFlow")
        rule = aws.schedules.get(f"flowplane-{stage}-schedule-HourlyFlow")
        assert rule["expression"] == "cron(0 * * * ? *)"
        # Each stage's schedule fires its own launcher.
        assert [t["Arn"] for t in rule["targets"]] == [f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:flowplane-{stage}-launch"]
    prod_definition = sfn.describe_state_machine(stateMachineArn=prod.state_machine_arn("HourlyFlow"))["definition"]
    prod_rule = prod.schedules.get(rule_name("flowplane-prod", "HourlyFlow"))

    # dev moves on (a new version with another schedule, then deleted); prod does not notice.
    text = (EXAMPLES / "hourly_flow.py").read_text().replace("@schedule(hourly=True)", "@schedule(cron='0 10 * * ? *')")
    again = deploy_to(dev, "hourly_flow.py", folder=project_copy(tmp_path, "hourly_flow.py", text))
    assert again["version"] == 2
    assert dev.schedules.get(rule_name("flowplane-dev", "HourlyFlow"))["expression"] == "cron(0 10 * * ? *)"
    assert sfn.describe_state_machine(stateMachineArn=prod.state_machine_arn("HourlyFlow"))["definition"] == prod_definition
    assert prod.schedules.get(rule_name("flowplane-prod", "HourlyFlow")) == prod_rule
    assert Deployments(prod.table).head("HourlyFlow")["production_version"] == 1

    removal.delete_flow(dev, "HourlyFlow", {"user": "alice"})
    assert [m["name"] for m in sfn.list_state_machines()["stateMachines"]] == ["flowplane-prod-HourlyFlow"]
    assert dev.schedules.get(rule_name("flowplane-dev", "HourlyFlow")) is None
    assert prod.schedules.get(rule_name("flowplane-prod", "HourlyFlow")) == prod_rule
    # prod's schedule still starts prod's production version.
    payload = apply_input_transformer(prod_rule["targets"][0]["InputTransformer"], scheduled_event(prod_rule["arn"], "2026-11-24T10:00:00Z"))
    started = production.launch(prod, prod.settings, payload)
    assert started["started"] is True and ":execution:flowplane-prod-HourlyFlow:" in started["execution_arn"]
    # The same tick delivered to dev's launcher (a rule of another stage) starts nothing there.
    assert production.launch(dev, dev.settings, payload)["started"] is False


def test_each_recorder_records_its_own_stages_runs_and_counts_the_others(stages, capsys):
    dev, prod = stages["dev"], stages["prod"]
    for aws in stages.values():
        deploy_to(aws, "parameter_flow.py")
    started = {stage: production.trigger(aws, aws.settings, "ParameterFlow", {"parameters": {"alpha": 0.5}}) for stage, aws in stages.items()}
    capsys.readouterr()
    # Both recorders hear both executions, the way the default bus delivers them.
    outcomes = {
        (recorder, stage): service.record_event(stages[recorder], status_event(aws, started[stage]["execution_arn"]))
        for recorder in STAGES
        for stage, aws in stages.items()
    }
    for recorder in STAGES:
        other = "prod" if recorder == "dev" else "dev"
        assert outcomes[(recorder, recorder)]["recorded"] is True
        refused = outcomes[(recorder, other)]
        assert refused["recorded"] is False and "not a state machine of this stage" in refused["reason"]
        assert f"flowplane-{recorder}-" in refused["reason"]
    totals = metric_totals(json_lines(capsys.readouterr().out))
    assert totals[("EventsOfOtherStages", ())] == 2 and totals[("EventsRejected", ())] == 2
    for stage, aws in stages.items():
        from chalicelib.query.reads import Reads

        listed = Reads(aws.table.t).runs("ParameterFlow")["runs"]
        assert [r["run_id"] for r in listed] == [started[stage]["run_id"]]
        assert listed[0]["parameters"] == {"alpha": 0.5}
    # The reconciler sweeps only its own stage's state machines.
    with contextlib.redirect_stdout(io.StringIO()):
        assert service.reconcile(dev)["machines"] == 1 and service.reconcile(prod)["machines"] == 1


def envelope(source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0", "id": f"e-{abs(hash(json.dumps(detail, sort_keys=True)))}", "detail-type": detail_type,
        "source": source, "account": ACCOUNT, "time": "2026-11-24T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": detail,
    }


def test_each_stages_jobs_carry_its_prefix_and_each_recorder_records_only_its_own_tasks(stages, capsys):
    from chalicelib.query.reads import Reads
    from flowplane.events import STAGE_ENV, TASK_EVENT_DETAIL_TYPES
    from tests.support.recording_events import T0, job_detail, task_detail

    for stage, aws in stages.items():
        deploy_to(aws, "parameter_flow.py")
        definition = json.loads(aws.state_machines.client.describe_state_machine(
            stateMachineArn=aws.state_machine_arn("ParameterFlow"))["definition"])
        env = definition["States"][definition["StartAt"]]["Parameters"]["fp"]["env"]
        assert {"Name": STAGE_ENV, "Value": f"flowplane-{stage}"} in env
    capsys.readouterr()

    def events(stage: str | None, run_id: str) -> list[dict[str, Any]]:
        ids = dict(flow="ParameterFlow", run_id=run_id, step="start", task_id="1")
        job = job_detail(**ids, retry=0, status="RUNNING", job_id=f"job-{run_id}", created=T0, started=T0, log_stream="s/1", stage=stage)
        task = task_detail("started", **ids, attempt=0, at=T0, job_id=f"job-{run_id}", stage=stage)
        return [
            envelope("aws.batch", "Batch Job State Change", job),
            envelope("flowplane.task", TASK_EVENT_DETAIL_TYPES["started"], task),
        ]

    # Batch and task events go to every stage's recorder, as the default bus delivers them.
    for recorder, aws in stages.items():
        for stage in STAGES:
            for event in events(f"flowplane-{stage}", f"sfn-{stage}-run"):
                outcome = service.record_event(aws, event)
                assert outcome["recorded"] is (stage == recorder), outcome
                if stage != recorder:
                    assert f"belongs to the stage 'flowplane-{stage}', not to 'flowplane-{recorder}'" in outcome["reason"]
        # Jobs compiled before stages were marked carry no prefix: recorded, as they were then.
        for event in events(None, "sfn-unmarked"):
            assert service.record_event(aws, event)["recorded"] is True
    totals = metric_totals(json_lines(capsys.readouterr().out))
    assert totals[("EventsOfOtherStages", ())] == 4 and totals[("EventsRejected", ())] == 4
    from chalicelib.errors import NotFound

    for stage, aws in stages.items():
        reads = Reads(aws.table.t)
        task = reads.task("ParameterFlow", f"sfn-{stage}-run", "start", "1")
        assert task["attempts"][0]["batch_job_id"] == f"job-sfn-{stage}-run"
        other = "prod" if stage == "dev" else "dev"
        with pytest.raises(NotFound):
            reads.task("ParameterFlow", f"sfn-{other}-run", "start", "1")


def test_a_deployment_name_past_the_limits_deploys_runs_and_is_recorded(stages):
    dev = stages["dev"]
    name = "n" * 80  # the longest deployment name: its state machine and rule names are cut and hashed
    record = deploy_to(dev, "hourly_flow.py", name=name)
    machine = record["state_machine_arn"].split(":")[6]
    assert machine == state_machine_name("flowplane-dev", name) and len(machine) == 80
    rule = dev.schedules.get(rule_name("flowplane-dev", name))
    assert len(rule["arn"].rsplit("/", 1)[-1]) == 64
    payload = apply_input_transformer(rule["targets"][0]["InputTransformer"], scheduled_event(rule["arn"], "2026-11-24T10:00:00Z"))
    started = production.launch(dev, dev.settings, payload)
    assert started["started"] is True and len(started["run_id"]) <= len("sfn-") + 80
    # The recorder maps the cut name back to its deployment through the table.
    outcome = service.record_event(dev, status_event(dev, started["execution_arn"]))
    assert outcome["recorded"] is True and outcome["pathspec"] == f"HourlyFlow/{started['run_id']}"
    from chalicelib.query.reads import Reads

    [run] = Reads(dev.table.t).runs("HourlyFlow", deployment=name)["runs"]
    assert run["run_id"] == started["run_id"]
    answer = production.trigger(dev, dev.settings, name, {})
    assert answer["flow"] == "HourlyFlow" and answer["deployment"] == name
    removal.delete_flow(dev, name, {"user": "alice"})
    assert dev.state_machines.client.list_state_machines()["stateMachines"] == []
    assert dev.schedules.get(rule_name("flowplane-dev", name)) is None
