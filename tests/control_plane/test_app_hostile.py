"""The attacks of issue 12 through the API and the compile function, each its own test.

Every refusal is a 4xx JSON body naming the field, and changes nothing stored
(the snapshot compares state machines, rules, every item and object). What
reaches the compile function unseen (a presigned upload) ends FAILED with the
same error, and nothing of it is deployed.
"""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest

from tests.support.hostile_packages import MB, PARAMETER_FLOW, add, many_members_package, manifest_of, package, zeros_package
from tests.support.refusals import refused

pytestmark = pytest.mark.aws

DEEP = "[" * 100_000 + "]" * 100_000
NESTED_SOURCE = PARAMETER_FLOW + b"\nX = " + b"-" * 100_000 + b"1\n"


@pytest.fixture
def deployed(control_plane):
    assert control_plane.deploy("parameter_flow.py")["status"] == "DEPLOYED"
    return control_plane


def _through_the_compile_function(cp, data: bytes, manifest) -> dict:
    """A presigned upload: the route sees only the manifest; the compile function sees the bytes."""
    sha = hashlib.sha256(data).hexdigest()
    r = cp.post_json("/packages", {"sha256": sha, "size": len(data), "manifest": json.loads(manifest.model_dump_json())})
    assert r.status_code == 202, r.json_body
    cp.aws.packages.put(f"packages/{sha}.tar.gz", data)
    before = {k: v for k, v in cp.snapshot().items() if k in ("state_machines", "rules")}
    [result] = cp.deliver(f"packages/{sha}.tar.gz")
    assert {k: v for k, v in cp.snapshot().items() if k in ("state_machines", "rules")} == before
    assert result["status"] == "FAILED", result
    return cp.get(f"/deployments/{r.json_body['deployment_id']}").json_body


# --- integrity -------------------------------------------------------------------------------------


def test_a_second_copy_of_the_flow_file_under_another_spelling(deployed):
    evil = PARAMETER_FLOW.replace(b"alpha is", b"pwned; alpha is")
    before = deployed.snapshot()
    r = deployed.post_package(package(lambda tar: add(tar, ".//parameter_flow.py", evil)))
    body = refused(deployed, before, r, 400, field="package", path=".//parameter_flow.py")
    assert "one path once unpacked" in body["error"]


# --- bounded work ------------------------------------------------------------------------------------


def test_200000_members(deployed):
    before = deployed.snapshot()
    r = deployed.post_package(many_members_package(200_000))
    refused(deployed, before, r, 400, field="package", limit=5000)


def test_a_gzip_bomb(deployed):
    before = deployed.snapshot()
    r = deployed.post_package(zeros_package(100 * MB))
    refused(deployed, before, r, 413, field="package", code="PayloadTooLarge", limit=32 * MB)


def test_a_link_target_of_40000_parts(deployed):
    before = deployed.snapshot()
    r = deployed.post_package(package(lambda tar: add(tar, "l", type=tarfile.SYMTYPE, linkname="a/" * 40_000)))
    refused(deployed, before, r, 400, field="package", limit=8192)


# --- no 500s ------------------------------------------------------------------------------------------


def test_compile_of_a_source_nested_past_the_parser(deployed):
    before = deployed.snapshot()
    r = deployed.client.http.post(
        "/compile", headers={"content-type": "application/gzip"}, body=package(source=NESTED_SOURCE, manifest=manifest_of())
    )
    refused(deployed, before, r, 400, field="flow_file")


def test_the_compile_function_with_a_source_nested_past_the_parser(deployed):
    record = _through_the_compile_function(deployed, package(source=NESTED_SOURCE, manifest=manifest_of()), manifest_of())
    assert record["error"]["field"] == "flow_file" and "too deeply" in record["error"]["error"]


def test_a_trigger_body_nested_100000_deep(deployed):
    before = deployed.snapshot()
    r = deployed.client.http.post(
        "/flows/ParameterFlow/runs", headers={"content-type": "application/json"}, body='{"parameters": ' + DEEP + "}"
    )
    refused(deployed, before, r, 400, field="body")


def test_a_package_request_nested_100000_deep(deployed):
    before = deployed.snapshot()
    r = deployed.client.http.post("/packages", headers={"content-type": "application/json"}, body=DEEP)
    refused(deployed, before, r, 400, field="body")


def test_a_json_parameter_value_nested_100000_deep(control_plane):
    assert control_plane.deploy("deployment_info_flow.py")["status"] == "DEPLOYED"
    before = control_plane.snapshot()
    r = control_plane.post_json("/flows/DeploymentInfoFlow/runs", {"parameters": {"deployment_info": DEEP}})
    refused(control_plane, before, r, 400, field="parameters.deployment_info", parameter="deployment_info")


# --- numbers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1e999", "nan", "Infinity", "1" * 5000, 1e300 * 1e300], ids=["1e999", "nan", "Infinity", "5000-digits", "inf"])
def test_a_float_parameter_that_cannot_round_trip(deployed, value):
    before = deployed.snapshot()
    r = deployed.client.http.post(
        "/flows/ParameterFlow/runs",
        headers={"content-type": "application/json"},
        body=json.dumps({"parameters": {"alpha": value}}),  # Python writes inf as Infinity
    )
    refused(deployed, before, r, 400, field="parameters.alpha", parameter="alpha")
    json.loads(r.body, parse_constant=lambda c: pytest.fail(f"the answer holds {c}"))


def test_a_raw_nan_in_the_body(deployed):
    before = deployed.snapshot()
    r = deployed.client.http.post(
        "/flows/ParameterFlow/runs", headers={"content-type": "application/json"}, body='{"parameters": {"alpha": NaN}}'
    )
    refused(deployed, before, r, 400, field="parameters.alpha", parameter="alpha")


# --- what recording or AWS cannot hold ----------------------------------------------------------------------


def test_a_3000_character_tag(deployed):
    _, built = deployed.build("parameter_flow.py", tags=["ok"])
    manifest = json.loads(tarfile.open(fileobj=__import__("io").BytesIO(built.data), mode="r:gz").extractfile("manifest.json").read())
    manifest["options"]["tags"] = ["t" * 3000]
    before = deployed.snapshot()
    r = deployed.post_package(package(raw_manifest=json.dumps(manifest).encode()))
    body = refused(deployed, before, r, 400, field="manifest.options.tags")
    assert "500 bytes" in body["error"]


def test_a_5_mib_parameter_value(control_plane):
    # Accepted before, and the run never recorded (its item over DynamoDB's 400 KB).
    assert control_plane.deploy("deployment_info_flow.py")["status"] == "DEPLOYED"
    before = control_plane.snapshot()
    r = control_plane.post_json("/flows/DeploymentInfoFlow/runs", {"parameters": {"deployment_info": {"blob": "x" * (5 * MB)}}})
    body = refused(control_plane, before, r, 400, field="parameters.deployment_info", parameter="deployment_info", limit=16384)
    assert "AWS Batch" in body["error"]


def test_an_accepted_run_is_recorded(deployed):
    r = deployed.post_json("/flows/ParameterFlow/runs", {"parameters": {"alpha": 0.5}})
    assert r.status_code == 201
    run = deployed.get(f"/flows/ParameterFlow/runs/{r.json_body['run_id']}").json_body
    assert run["run_id"] == r.json_body["run_id"]


# --- manifest lies -------------------------------------------------------------------------------------------


def _lying(**update):
    m = manifest_of()
    return m.model_copy(update={"parameters": [m.parameters[0].model_copy(update=update)]})


@pytest.mark.parametrize(
    "manifest, field",
    [
        (_lying(default="not-a-number"), "parameters.alpha.default"),
        (_lying(default=999.0), "parameters.alpha.default"),
        (manifest_of().model_copy(update={"flowplane_version": "99.0.0"}), "flowplane_version"),
    ],
    ids=["not-a-number", "999-not-0.01", "version-99"],
)
def test_a_lying_manifest_is_refused_on_upload_and_in_the_compile_function(deployed, manifest, field):
    before = deployed.snapshot()
    r = deployed.post_package(package(manifest=manifest))
    refused(deployed, before, r, 400, field=field)
    if field == "flowplane_version":
        return  # the presigned request is refused up front too (below)
    record = _through_the_compile_function(deployed, package(manifest=manifest), manifest)
    assert record["error"]["field"] == field


def test_a_presigned_request_from_an_unsupported_sdk(deployed):
    manifest = manifest_of().model_copy(update={"flowplane_version": "99.0.0"})
    before = deployed.snapshot()
    r = deployed.post_json("/packages", {"sha256": "ab" * 32, "size": 10, "manifest": json.loads(manifest.model_dump_json())})
    refused(deployed, before, r, 400, field="flowplane_version", supported=">=0.1.0,<0.2.0")
