"""`@batch` and `@environment`: locally a recorded decorator and the step's environment;
compiled, the job's resources, queue and per-image job definition, from the stage's
allowed images (a 400 naming any other, before anything deploys)."""

from __future__ import annotations

import json

import pytest

from chalicelib.deploy.job_definitions import JobDefinitionSpec
from flowplane import batch, environment
from flowplane.decorators import DecoratorArgumentError, parse_with_option
from flowplane.graph import read_source_flow
from tests.support.control_plane import project_copy
from tests.support.feature_flows import BATCH_ENVIRONMENT_FLOW as FLOW
from tests.support.local_runs import RunView, run_cli, write_flow

pytestmark = pytest.mark.aws

def test_locally_the_environment_is_the_steps_and_batch_steps_run_here(tmp_path):
    path = write_flow(tmp_path, "batch_flow", FLOW)
    proc = run_cli(path, tmp_path / "ds", tmp_path, "run")
    assert proc.returncode == 0, proc.stderr
    run = RunView.only(tmp_path / "ds", "BatchFlow")
    assert run.data("start")["seen"] == ("hi", "3")
    assert run.data("end")["seen"] is None  # another step, another environment
    shown = run_cli(path, tmp_path / "ds", tmp_path, "show").stdout
    assert "@environment @batch" in shown and "@resources @batch" in shown


def test_with_batch_attaches_to_every_step_and_keeps_a_steps_own():
    spec = parse_with_option("batch:cpu=3,image=python:3.12")
    assert (spec.cpu, spec.image) == (3, "python:3.12")
    graph = read_source_flow(FLOW, "flow.py").graph.with_decorators([spec])
    assert graph["start"].decorator("batch").image == "python:3.11-slim"


def test_resources_are_the_larger_of_resources_and_batch():
    graph = read_source_flow(FLOW, "flow.py").graph
    end = graph["end"].compute_resources()
    assert (end.cpu, end.memory, end.gpu) == (4, 16000, 0)
    assert graph["start"].compute_resources().memory == 8192


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda: environment(vars={"FLOWPLANE_RUN_ID": "x"}), "are the runtime's"),
        (lambda: environment(vars={"1BAD": "x"}), "not an environment variable name"),
        (lambda: environment(vars={"A": ["x"]}), "must be a string"),
        (lambda: batch(image="python 3"), "without spaces"),
        (lambda: batch(queue="no/slashes"), "queue"),
        (lambda: batch(iam_role="arn:x"), "iam_role"),
    ],
)
def test_bad_arguments_fail_where_they_are_written(make, says):
    with pytest.raises(DecoratorArgumentError, match=says):
        make()


def test_bad_arguments_in_the_source_are_lint_problems():
    src = read_source_flow(FLOW.replace('"N": 3', '"FLOWPLANE_X": 3'), "flow.py")
    assert any("runtime's" in message for _, message in src.problems)


def _register_stage_job_definition(cp) -> None:
    cp.aws.batch.register_job_definition(
        jobDefinitionName=cp.settings.job_definition, type="container",
        containerProperties={"image": "flowplane-local", "command": ["flowplane", "task"],
                             "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                      {"type": "MEMORY", "value": "2048"}]},
    )


def test_the_control_plane_registers_one_job_definition_per_image_and_reuses_it(control_plane, tmp_path):
    cp = control_plane
    _register_stage_job_definition(cp)
    folder = project_copy(tmp_path, "batch_flow.py", FLOW)
    record = cp.deploy("batch_flow.py", folder=folder)
    assert record["status"] == "DEPLOYED", record
    name = JobDefinitionSpec("python:3.11-slim", 256).name(cp.settings.resource_prefix)
    found = cp.aws.batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
    assert len(found) == 1
    container = found[0]["containerProperties"]
    assert container["image"] == "python:3.11-slim" and container["command"] == ["flowplane", "task"]
    assert container["linuxParameters"]["sharedMemorySize"] == 256
    machine = cp.aws.state_machines.client.describe_state_machine(stateMachineArn=cp.aws.state_machine_arn("BatchFlow"))
    states = json.loads(machine["definition"])["States"]
    start, end = states["start"]["Parameters"], states["end"]["Parameters"]
    assert start["JobDefinition"] == name and start["JobQueue"] == "big-queue"
    assert "JobDefinition.$" in end and "JobQueue.$" in end
    assert {"Type": "MEMORY", "Value": "16000"} in end["ContainerOverrides"]["ResourceRequirements"]
    assert {"Type": "VCPU", "Value": "4"} in end["ContainerOverrides"]["ResourceRequirements"]
    # Deployed again: the same job definition, no new revision.
    assert cp.deploy("batch_flow.py", folder=folder, max_workers=7)["status"] == "DEPLOYED"
    assert len(cp.aws.batch.describe_job_definitions(jobDefinitionName=name)["jobDefinitions"]) == 1


def test_an_image_outside_the_allowed_list_is_a_400_naming_it_and_nothing_deploys(control_plane, tmp_path):
    cp = control_plane
    folder = project_copy(tmp_path, "batch_flow.py", FLOW.replace("python:3.11-slim", "evil.io/miner:1"))
    _, package = cp.build("batch_flow.py", folder=folder)
    before = cp.snapshot()
    r = cp.post_package(package.data)
    assert r.status_code == 400
    assert r.json_body["step"] == "start" and r.json_body["image"] == "evil.io/miner:1"
    assert "@batch(image='evil.io/miner:1') is not an allowed image" in r.json_body["error"]
    assert "python:, public.ecr.aws/" in r.json_body["error"]
    assert cp.snapshot() == before
