"""Every bad input gets a 4xx with a JSON body naming the fault, and changes nothing.

Each test snapshots everything the control plane stores (state machines with
their definitions and executions, rules with their targets, every table item,
every object in the bucket) before the request and compares after it.
"""

from __future__ import annotations

import gzip
import json

import pytest

from flowplane.manifest import RetrySpec
from tests.support.control_plane import EXAMPLES, package_with, project_copy
from tests.support.refusals import refused

pytestmark = pytest.mark.aws

MB = 1024 * 1024


@pytest.fixture
def deployed(control_plane):
    """A control plane where ParameterFlow version 1 is production (deployed by alice)."""
    record = control_plane.deploy("parameter_flow.py")
    assert record["status"] == "DEPLOYED"
    return control_plane


def _parameter_flow_parts(cp):
    manifest, _ = cp.build("parameter_flow.py")
    return manifest, (EXAMPLES / "parameter_flow.py").read_bytes()


# --- the package itself -----------------------------------------------------------------


def test_body_that_is_not_gzip(deployed):
    before = deployed.snapshot()
    r = deployed.post_package(b"def start(self): pass\n" * 10)
    refused(deployed, before, r, 400, field="package", error_contains="not gzip-compressed")


def test_gzip_body_that_is_not_tar(deployed):
    before = deployed.snapshot()
    r = deployed.post_package(gzip.compress(b"hello, no tar here" * 100))
    refused(deployed, before, r, 400, field="package", error_contains="not a readable gzip-compressed tar")


@pytest.mark.parametrize(
    "entry, fragment",
    [
        (("/tmp/evil.py", b"x"), "absolute path '/tmp/evil.py'"),
        (("lib/../../evil.py", b"x"), "path with '..'"),
        (("data", ("sym", "../../home")), "link 'data' -> '../../home' that leads outside"),
        (("creds", ("sym", "/root/.aws/credentials")), "link 'creds' -> '/root/.aws/credentials'"),
        (("h", ("hard", "../outside")), "hard link 'h' -> '../outside'"),
    ],
    ids=["absolute", "dotdot", "relative-link", "absolute-link", "hard-link"],
)
def test_members_escaping_the_root(deployed, entry, fragment):
    manifest, source = _parameter_flow_parts(deployed)
    before = deployed.snapshot()
    r = deployed.post_package(package_with(manifest, source, [entry]))
    body = refused(deployed, before, r, 400, field="package", error_contains=fragment)
    assert body["path"] == entry[0]


def test_package_over_the_size_cap(deployed, monkeypatch):
    manifest, source = _parameter_flow_parts(deployed)
    data = package_with(manifest, source)
    monkeypatch.setenv("FLOWPLANE_MAX_PACKAGE_BYTES", str(len(data) - 1))
    before = deployed.snapshot()
    r = deployed.post_package(data)
    body = refused(deployed, before, r, 413, field="package", code="PayloadTooLarge")
    assert body["size"] == len(data) and body["limit"] == len(data) - 1


def test_presigned_upload_over_the_default_cap(deployed):
    manifest, _ = _parameter_flow_parts(deployed)
    before = deployed.snapshot()
    r = deployed.post_json(
        "/packages", {"sha256": "ab" * 32, "size": 51 * MB, "manifest": manifest.model_dump(mode="json")}
    )
    body = refused(deployed, before, r, 413, field="package")
    assert body["limit"] == 50 * MB


def test_presigned_upload_with_a_bad_sha(deployed):
    manifest, _ = _parameter_flow_parts(deployed)
    before = deployed.snapshot()
    r = deployed.post_json("/packages", {"sha256": "nope", "size": 10, "manifest": manifest.model_dump(mode="json")})
    refused(deployed, before, r, 400, field="sha256")


def test_package_without_the_flow_file(deployed):
    manifest, source = _parameter_flow_parts(deployed)
    from tests.support.control_plane import targz

    before = deployed.snapshot()
    r = deployed.post_package(targz([("manifest.json", manifest.model_dump_json().encode()), ("flow.py", source)]))
    refused(deployed, before, r, 400, field="flow_file", error_contains="no flow file")


def test_package_without_a_manifest(deployed):
    from tests.support.control_plane import targz

    before = deployed.snapshot()
    r = deployed.post_package(targz([("parameter_flow.py", (EXAMPLES / "parameter_flow.py").read_bytes())]))
    refused(deployed, before, r, 400, field="manifest")


# --- the manifest against the source ----------------------------------------------------


def test_manifest_with_a_step_decorator_the_source_lacks(deployed):
    manifest, source = _parameter_flow_parts(deployed)
    steps = dict(manifest.graph.steps)
    steps["start"] = steps["start"].model_copy(update={"decorators": [RetrySpec(times=5)]})
    forged = manifest.model_copy(update={"graph": manifest.graph.model_copy(update={"steps": steps})})
    before = deployed.snapshot()
    r = deployed.post_package(package_with(forged, source))
    body = refused(deployed, before, r, 400, step="start", field="graph.steps.start.decorators")
    assert "disagrees with the flow's source" in body["error"] and body["line"] > 0


def test_manifest_with_a_different_graph(deployed):
    manifest, _ = _parameter_flow_parts(deployed)
    # The source gains a step the manifest does not describe.
    source = (EXAMPLES / "parameter_flow.py").read_text().replace(
        "        self.next(self.end)\n",
        "        self.next(self.middle)\n\n    @step\n    def middle(self):\n        self.next(self.end)\n",
        1,
    )
    before = deployed.snapshot()
    r = deployed.post_package(package_with(manifest, source.encode()))
    refused(deployed, before, r, 400, error_contains="disagrees with the flow's source")


def test_manifest_claiming_with_decorators_not_applied(deployed):
    manifest, source = _parameter_flow_parts(deployed)
    forged = manifest.model_copy(
        update={"options": manifest.options.model_copy(update={"with_decorators": [RetrySpec()]})}
    )
    before = deployed.snapshot()
    r = deployed.post_package(package_with(forged, source))
    refused(deployed, before, r, 400, field="graph.steps.end.decorators")


def test_manifest_with_a_mistyped_parameter(deployed):
    manifest, source = _parameter_flow_parts(deployed)
    forged = manifest.model_copy(update={"parameters": [manifest.parameters[0].model_copy(update={"type": "int"})]})
    before = deployed.snapshot()
    r = deployed.post_package(package_with(forged, source))
    refused(deployed, before, r, 400, field="parameters.alpha.type")


# --- the flow -----------------------------------------------------------------------------

LINT_FAILING = '''from flowplane import FlowSpec, step


class ParameterFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.middle)

    @step
    def middle(self):
        self.x = 1

    @step
    def end(self):
        pass
'''


def test_flow_that_fails_lint(deployed, tmp_path):
    folder = project_copy(tmp_path, "parameter_flow.py", LINT_FAILING)
    _, package = deployed.build("parameter_flow.py", folder=folder)
    before = deployed.snapshot()
    r = deployed.post_package(package.data)
    body = refused(deployed, before, r, 400, step="middle")
    assert "fails lint" in body["error"] and body["line"] == 10
    assert body["problems"] and body["problems"][0]["step"] == "middle"


def _scheduled(tmp_path, decorator):
    text = (EXAMPLES / "hourly_flow.py").read_text().replace("@schedule(hourly=True)", decorator)
    return project_copy(tmp_path, "hourly_flow.py", text)


def test_invalid_cron(deployed, tmp_path):
    folder = _scheduled(tmp_path, "@schedule(cron='0 25 * * ? *')")
    _, package = deployed.build("hourly_flow.py", folder=folder)
    before = deployed.snapshot()
    r = deployed.post_package(package.data)
    body = refused(deployed, before, r, 400, field="schedule.cron", expression="cron(0 25 * * ? *)")
    assert "cron(0 25 * * ? *)" in body["error"] and "hour" in body["error"]


def test_cron_with_five_fields(deployed, tmp_path):
    folder = _scheduled(tmp_path, "@schedule(cron='0 10 * * *')")
    _, package = deployed.build("hourly_flow.py", folder=folder)
    before = deployed.snapshot()
    r = deployed.post_package(package.data)
    refused(deployed, before, r, 400, field="schedule.cron", error_contains="cron(0 10 * * *)")


def test_schedule_with_an_unknown_timezone(deployed, tmp_path):
    folder = _scheduled(tmp_path, "@schedule(daily=True, timezone='Europe/Pariss')")
    _, package = deployed.build("hourly_flow.py", folder=folder)
    before = deployed.snapshot()
    r = deployed.post_package(package.data)
    refused(deployed, before, r, 400, field="schedule.timezone", error_contains="unknown time zone 'Europe/Pariss'")


def test_deployment_name_that_step_functions_refuses(deployed):
    _, package = deployed.build("parameter_flow.py", name="my flow!")
    before = deployed.snapshot()
    r = deployed.post_package(package.data)
    refused(deployed, before, r, 400, field="options.name")


# --- production tokens -------------------------------------------------------------------


def test_authorize_with_a_wrong_token(deployed):
    _, package = deployed.build("parameter_flow.py", user="bob", authorize="production:not-the-token")
    before = deployed.snapshot()
    r = deployed.post_package(package.data)
    body = refused(deployed, before, r, 403, field="authorize", code="Forbidden", deployer="alice")
    assert "does not match" in body["error"] and "--authorize" in body["error"]
    assert "parameterflow-" not in body["error"]  # the real token is never revealed


def test_another_user_without_a_token(deployed):
    _, package = deployed.build("parameter_flow.py", user="bob")
    before = deployed.snapshot()
    r = deployed.post_package(package.data)
    refused(deployed, before, r, 403, field="authorize", error_contains="deployed by alice")


def test_presigned_request_with_a_wrong_token(deployed):
    manifest, package = deployed.build("parameter_flow.py", user="bob", authorize="wrong")
    before = deployed.snapshot()
    r = deployed.post_json(
        "/packages", {"sha256": package.sha256, "size": package.size, "manifest": manifest.model_dump(mode="json")}
    )
    refused(deployed, before, r, 403, field="authorize")


def test_delete_by_another_user_without_the_token(deployed):
    before = deployed.snapshot()
    r = deployed.client.http.delete(
        "/flows/ParameterFlow", headers={"content-type": "application/json"}, body=json.dumps({"user": "bob"})
    )
    refused(deployed, before, r, 403, field="authorize")


# --- triggering ---------------------------------------------------------------------------


def test_trigger_with_an_unknown_parameter(deployed):
    before = deployed.snapshot()
    r = deployed.post_json("/flows/ParameterFlow/runs", {"parameters": {"beta": "1"}})
    body = refused(deployed, before, r, 400, field="parameters.beta", parameter="beta")
    assert "unknown parameter 'beta'" in body["error"] and "alpha" in body["error"]


def test_trigger_with_a_mistyped_parameter(deployed):
    before = deployed.snapshot()
    r = deployed.post_json("/flows/ParameterFlow/runs", {"parameters": {"alpha": "fast"}})
    body = refused(deployed, before, r, 400, field="parameters.alpha", parameter="alpha")
    assert "'fast' is not a valid float" in body["error"]


def test_trigger_with_parameters_that_are_not_an_object(deployed):
    before = deployed.snapshot()
    r = deployed.post_json("/flows/ParameterFlow/runs", {"parameters": ["alpha", 1]})
    refused(deployed, before, r, 400, field="parameters")


def test_trigger_with_a_body_that_is_not_json(deployed):
    before = deployed.snapshot()
    r = deployed.client.http.post(
        "/flows/ParameterFlow/runs", headers={"content-type": "application/json"}, body="{alpha: 1"
    )
    refused(deployed, before, r, 400, field="body")


def test_trigger_of_a_flow_never_deployed(deployed):
    before = deployed.snapshot()
    r = deployed.post_json("/flows/NoSuchFlow/runs", {})
    refused(deployed, before, r, 404, field="flow")


def test_list_runs_with_an_unknown_status(deployed):
    before = deployed.snapshot()
    r = deployed.get("/flows/ParameterFlow/runs?status=SLEEPING")
    refused(deployed, before, r, 400, field="status")


def test_terminate_with_a_run_id_that_is_not_a_production_run(deployed):
    before = deployed.snapshot()
    r = deployed.post_json("/flows/ParameterFlow/runs/1732000000/terminate", {})
    refused(deployed, before, r, 400, field="run_id")


def test_unknown_deployment(deployed):
    before = deployed.snapshot()
    refused(deployed, before, deployed.get("/deployments/d-20260101T000000Z-00000000"), 404, field="deployment_id")
    refused(deployed, before, deployed.get("/deployments/not-an-id"), 404, field="deployment_id")
