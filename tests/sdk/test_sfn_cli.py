"""`python flow.py step-functions ...` against the Chalice app in-process (moto behind it)."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import click
import pytest
import requests
from click.testing import CliRunner

from flowplane.api_client import ApiClient
from flowplane.context import FlowContext
from flowplane.decorators import parse_with_option
from chalicelib.resource_names import rule_name, state_machine_name
from flowplane.sfn_cli import API_CLIENT_KEY, load_token, step_functions
from flowplane.user_config import ConfigError, configured_url
from tests.support.control_plane import EXAMPLES, FLOW_CLASSES, load_flow_class, project_copy

pytestmark = pytest.mark.aws

BASE = "https://flowplane.test/api"
PREFIX = "flowplane-local"  # the local stage's resource prefix
HOURLY_RULE = rule_name(PREFIX, "HourlyFlow")


class InProcess:
    """A Transport that calls the app through chalice.test.Client and, like EventBridge,
    delivers the S3 "Object Created" event when a package lands in the bucket."""

    def __init__(self, cp) -> None:
        self.cp = cp
        self.calls: list[tuple[str, str]] = []

    def __call__(self, method, url, headers, body):
        self.calls.append((method, url))
        if not url.startswith(BASE):
            # A presigned S3 URL: moto answers `requests` in-process.
            r = requests.request(method, url, data=body, headers=headers)
            if r.status_code < 300:
                self.cp.deliver(urllib.parse.urlparse(url).path.lstrip("/"))
            return r.status_code, dict(r.headers), r.content
        lowered = {k.lower(): v for k, v in headers.items()}
        r = self.cp.client.http.request(method, url[len(BASE):], headers=lowered, body=body or b"")
        if method == "POST" and url == BASE + "/packages" and r.status_code == 202 and "upload" not in r.json_body:
            self.cp.deliver(r.json_body["package"]["key"])
        return r.status_code, r.headers, r.body


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def cli_for(filename: str, client: ApiClient, user: str = "alice", folder: Path = EXAMPLES, with_=()):
    flow_cls = load_flow_class(folder / filename, FLOW_CLASSES.get(filename, "ParameterFlow"))

    @click.group()
    @click.pass_context
    def cli(ctx):
        ctx.obj = FlowContext.for_class(flow_cls, with_decorators=[parse_with_option(w) for w in with_])
        ctx.obj.user = user
        ctx.meta[API_CLIENT_KEY] = client

    cli.add_command(step_functions)
    return cli


def run(cli, *args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


@pytest.fixture
def api(control_plane, home):
    transport = InProcess(control_plane)
    return ApiClient(BASE, transport)


def test_create_deploys_and_prints_the_namespace(control_plane, api, home):
    result = run(cli_for("parameter_flow.py", api), "step-functions", "create")
    assert result.exit_code == 0, result.output
    head = control_plane.get("/deployments?flow=ParameterFlow").json_body["flow"]
    token = head["production_token"]
    out = result.output
    assert "It seems this is the first time you are deploying ParameterFlow" in out
    assert "A new production token generated." in out
    assert f"production:{token}" in out and f'namespace("production:{token}")' in out
    assert f"step-functions create --authorize {token}" in out
    assert "pushed to AWS Step Functions successfully (version 1)" in out
    assert "No triggers defined" in out
    assert load_token("ParameterFlow") == token


def test_create_prints_the_schedule(control_plane, api):
    result = run(cli_for("hourly_flow.py", api), "step-functions", "create")
    assert result.exit_code == 0, result.output
    assert "triggers automatically via cron(0 * * * ? *)" in result.output
    assert control_plane.aws.schedules.get(HOURLY_RULE)["expression"] == "cron(0 * * * ? *)"


def test_create_again_and_by_another_user_on_this_machine(control_plane, api):
    assert run(cli_for("parameter_flow.py", api), "step-functions", "create").exit_code == 0
    # As Metaflow: the token stored on this machine authorizes the next deploy.
    result = run(cli_for("parameter_flow.py", api, user="bob"), "step-functions", "create")
    assert result.exit_code == 0, result.output
    assert "It seems this is the first time" not in result.output and "(version 2)" in result.output


def test_create_with_a_wrong_token_is_refused(control_plane, api, home):
    assert run(cli_for("parameter_flow.py", api), "step-functions", "create").exit_code == 0
    before = control_plane.snapshot()
    result = run(cli_for("parameter_flow.py", api, user="bob"), "step-functions", "create", "--authorize", "nope")
    assert result.exit_code == 1
    assert "does not match" in result.output and "field authorize" in result.output
    assert control_plane.snapshot() == before


def test_create_with_new_token_and_with_decorators(control_plane, api):
    assert run(cli_for("branch_flow.py", api), "step-functions", "create").exit_code == 0
    first = load_token("BranchFlow")
    result = run(cli_for("branch_flow.py", api, with_=("retry",)), "step-functions", "create", "--new-token",
                 "--max-workers", "7", "--tag", "team:ml")
    assert result.exit_code == 0, result.output
    assert "A new production token generated." in result.output
    assert load_token("BranchFlow") != first
    version = control_plane.get("/deployments?flow=BranchFlow").json_body["versions"][-1]
    assert version["options"]["max_workers"] == 7 and version["options"]["tags"] == ["team:ml"]
    assert [d["kind"] for d in version["options"]["with_decorators"]] == ["retry"]


def test_create_name_option(control_plane, api):
    result = run(cli_for("parameter_flow.py", api), "step-functions", "--name", "params-dev", "create")
    assert result.exit_code == 0, result.output
    assert control_plane.get("/deployments?flow=params-dev").status_code == 200
    trig = run(cli_for("parameter_flow.py", api), "step-functions", "--name", "params-dev", "trigger")
    assert trig.exit_code == 0 and trig.output.strip().splitlines()[-1].startswith("sfn-")


def test_only_json_prints_the_state_machine_and_changes_nothing(control_plane, api):
    before = control_plane.snapshot()
    result = run(cli_for("foreach_flow.py", api), "step-functions", "create", "--only-json", "--max-workers", "3")
    assert result.exit_code == 0, result.output
    definition = json.loads(result.output)
    assert definition["StartAt"] and "States" in definition
    assert control_plane.snapshot() == before


def test_large_packages_go_through_a_presigned_url(control_plane, home):
    cp = control_plane
    transport = InProcess(cp)
    client = ApiClient(BASE, transport, inline_limit=0)
    result = run(cli_for("parameter_flow.py", client), "step-functions", "create")
    assert result.exit_code == 0, result.output
    assert any(not url.startswith(BASE) for _, url in transport.calls)
    [deployment] = cp.get("/deployments?flow=ParameterFlow").json_body["versions"]
    assert cp.get(f"/deployments/{deployment['deployment_id']}").json_body["upload"] == "presigned"


def test_create_refuses_a_flow_failing_lint_before_uploading(control_plane, api, tmp_path):
    source = (EXAMPLES / "parameter_flow.py").read_text().replace("        self.next(self.end)\n", "", 1)
    folder = project_copy(tmp_path, "parameter_flow.py", source)
    result = run(cli_for("parameter_flow.py", api, folder=folder), "step-functions", "create")
    assert result.exit_code == 1
    assert "lint errors; nothing was deployed" in result.output and "'start'" in result.output
    assert api.transport.calls == []


def test_create_shows_the_compile_error_of_a_failed_deployment(control_plane, api, monkeypatch):
    from chalicelib.compiler import CompileError

    def refuse(manifest, url, settings):
        raise CompileError("the graph is too deep for Step Functions")

    monkeypatch.setattr("chalicelib.compiler.compile_state_machine", refuse)
    result = run(cli_for("parameter_flow.py", api), "step-functions", "create")
    assert result.exit_code == 1
    assert "FAILED: cannot compile ParameterFlow: the graph is too deep" in result.output
    assert "stage compile" in result.output and "previous production version" in result.output


def test_trigger_passes_parameters_and_prints_the_run_id(control_plane, api, tmp_path):
    cli = cli_for("parameter_flow.py", api)
    assert run(cli, "step-functions", "create").exit_code == 0
    id_file = tmp_path / "run-id"
    result = run(cli, "step-functions", "trigger", "--alpha", "0.5", "--run-id-file", str(id_file))
    assert result.exit_code == 0, result.output
    run_id = result.output.strip().splitlines()[-1]
    assert run_id.startswith("sfn-") and id_file.read_text() == run_id
    [execution] = control_plane.executions("ParameterFlow")
    assert "sfn-" + execution["name"] == run_id
    described = control_plane.aws.state_machines.client.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(json.loads(described["input"])["Parameters"]) == {"alpha": 0.5}


def test_trigger_help_lists_the_flow_parameters(api):
    result = run(cli_for("parameter_flow.py", api), "step-functions", "trigger", "--help")
    assert result.exit_code == 0 and "--alpha" in result.output and "Learning rate" in result.output


def test_trigger_with_a_mistyped_parameter(control_plane, api):
    cli = cli_for("parameter_flow.py", api)
    assert run(cli, "step-functions", "create").exit_code == 0
    before = control_plane.snapshot()
    result = run(cli, "step-functions", "trigger", "--alpha", "fast")
    assert result.exit_code == 1
    assert "'fast' is not a valid float" in result.output and "field parameters.alpha" in result.output
    assert control_plane.snapshot() == before


def test_trigger_of_a_flow_never_deployed(control_plane, api):
    result = run(cli_for("parameter_flow.py", api), "step-functions", "trigger")
    assert result.exit_code == 1 and "no flow named 'ParameterFlow' is deployed" in result.output


def test_list_runs_prints_a_table(control_plane, api):
    cli = cli_for("parameter_flow.py", api)
    assert run(cli, "step-functions", "list-runs").exit_code == 1  # nothing deployed yet
    assert run(cli, "step-functions", "create").exit_code == 0
    none = run(cli, "step-functions", "list-runs", "--running")
    assert none.exit_code == 0 and "No running runs of ParameterFlow" in none.output
    run_id = run(cli, "step-functions", "trigger").output.strip().splitlines()[-1]
    table = run(cli, "step-functions", "list-runs")
    assert table.exit_code == 0 and run_id in table.output and "Status" in table.output
    status = control_plane.get("/flows/ParameterFlow/runs").json_body["runs"][0]["production_status"]
    flag = {"RUNNING": "--running", "SUCCEEDED": "--succeeded", "FAILED": "--failed"}[status]
    assert run_id in run(cli, "step-functions", "list-runs", flag).output
    other = next(f for f in ("--running", "--succeeded", "--failed") if f != flag)
    assert run_id not in run(cli, "step-functions", "list-runs", other).output


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)
def test_terminate_a_run(control_plane, api):
    cli = cli_for("parameter_flow.py", api)
    assert run(cli, "step-functions", "create").exit_code == 0
    run_id = run(cli, "step-functions", "trigger").output.strip().splitlines()[-1]
    result = run(cli, "step-functions", "terminate", run_id)
    assert result.exit_code == 0 and f"Terminated run {run_id}" in result.output
    assert control_plane.get("/flows/ParameterFlow/runs?status=ABORTED").json_body["runs"][0]["run_id"] == run_id
    again = run(cli, "step-functions", "terminate", run_id)
    assert again.exit_code == 1 and "ABORTED, not RUNNING" in again.output


def test_delete(control_plane, api):
    cli = cli_for("hourly_flow.py", api)
    assert run(cli, "step-functions", "create").exit_code == 0
    refused = run(cli_for("hourly_flow.py", api, user="mallory"), "step-functions", "delete", "--authorize", "guess")
    assert refused.exit_code == 1 and control_plane.aws.schedules.get(HOURLY_RULE) is not None
    result = run(cli, "step-functions", "delete")
    assert result.exit_code == 0, result.output
    assert control_plane.aws.state_machines.client.list_state_machines()["stateMachines"] == []
    assert control_plane.aws.schedules.get(HOURLY_RULE) is None


def _last_line(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)  # runs stay RUNNING
def test_name_option_drives_list_runs_trigger_terminate_and_delete(control_plane, api):
    """As Metaflow's `step-functions --name`: the state machine's name changes, the flow's does not."""
    cp = control_plane
    cli = cli_for("parameter_flow.py", api)
    named = ("step-functions", "--name", "params-dev")
    assert run(cli, *named, "create").exit_code == 0
    # Only params-dev is deployed: the flow's own name has no deployment to list.
    missing = run(cli, "step-functions", "list-runs")
    assert missing.exit_code == 1 and "'ParameterFlow' has no deployment named 'ParameterFlow'" in missing.output
    assert "No runs of params-dev" in run(cli, *named, "list-runs").output
    dev_runs = [_last_line(run(cli, *named, "trigger", "--alpha", "0.5")) for _ in range(2)]
    assert run(cli, "step-functions", "create").exit_code == 0
    own_run = _last_line(run(cli, "step-functions", "trigger"))

    listed = run(cli, *named, "list-runs")
    assert listed.exit_code == 0 and all(r in listed.output for r in dev_runs) and own_run not in listed.output
    own = run(cli, "step-functions", "list-runs")
    assert own_run in own.output and not any(r in own.output for r in dev_runs)
    # The Client API files every run under the flow's class name.
    runs = {r["run_id"]: r for r in cp.get("/flows/ParameterFlow/runs").json_body["runs"]}
    assert set(runs) == {*dev_runs, own_run}
    assert runs[dev_runs[0]]["flow"] == "ParameterFlow" and runs[dev_runs[0]]["parameters"] == {"alpha": 0.5}

    assert "Terminated run" in run(cli, *named, "terminate", dev_runs[0]).output
    aborted = run(cli, *named, "list-runs", "--aborted")
    assert dev_runs[0] in aborted.output and dev_runs[1] not in aborted.output
    # A run of one deployment is not another's to terminate.
    refused = run(cli, "step-functions", "terminate", dev_runs[1])
    assert refused.exit_code == 1 and "no run" in refused.output

    assert run(cli, *named, "delete").exit_code == 0
    machines = [m["name"] for m in cp.aws.state_machines.client.list_state_machines()["stateMachines"]]
    assert machines == [state_machine_name(PREFIX, "ParameterFlow")]
    assert run(cli, *named, "trigger").exit_code == 1
    # Its runs stay listed and readable.
    assert dev_runs[1] in run(cli, *named, "list-runs").output
    assert cp.get(f"/flows/ParameterFlow/runs/{dev_runs[1]}").status_code == 200


def test_list_runs_pages_past_other_deployments_runs(control_plane, api, monkeypatch):
    cli = cli_for("parameter_flow.py", api)
    named = ("step-functions", "--name", "params-dev")
    assert run(cli, *named, "create").exit_code == 0
    assert run(cli, "step-functions", "create").exit_code == 0
    dev_run = _last_line(run(cli, *named, "trigger"))
    own_runs = [_last_line(run(cli, "step-functions", "trigger")) for _ in range(3)]
    pages = []
    original = ApiClient.list_runs

    def spy(self, *args, **kwargs):
        page = original(self, *args, **kwargs)
        pages.append(len(page["runs"]))
        return page

    monkeypatch.setattr(ApiClient, "list_runs", spy)
    # Pages of two: the newest runs are the other deployment's, filtered out of the first pages.
    listed = run(cli, *named, "list-runs", "--limit", "2")
    assert listed.exit_code == 0 and dev_run in listed.output
    assert not any(r in listed.output for r in own_runs) and pages[0] == 0 and len(pages) > 1


def test_the_api_url_comes_from_the_environment_or_the_config_file(monkeypatch, home):
    monkeypatch.delenv("FLOWPLANE_API_URL", raising=False)
    with pytest.raises(ConfigError, match="FLOWPLANE_API_URL"):
        configured_url()
    (home / ".flowplane").mkdir(parents=True)
    (home / ".flowplane" / "config.json").write_text(json.dumps({"api_url": "https://cp.example/dev/"}))
    assert configured_url() == "https://cp.example/dev"
    monkeypatch.setenv("FLOWPLANE_API_URL", "http://127.0.0.1:8000")
    assert configured_url() == "http://127.0.0.1:8000"


def test_an_unreachable_control_plane_is_a_clear_error(monkeypatch, home):
    monkeypatch.setenv("FLOWPLANE_API_URL", "http://127.0.0.1:9")
    result = run(cli_for("parameter_flow.py", ApiClient()), "step-functions", "trigger")
    assert result.exit_code == 1 and "cannot reach http://127.0.0.1:9" in result.output
