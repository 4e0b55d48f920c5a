"""`chalice package` output: the template AWS's validators accept, the bundle that imports.

Slow: packaging runs chalice (it resolves requirements.txt for Lambda's platform).
The module packages once, the way `make package` does, into a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

from app import app
from tests.support.paths import ROOT

VENV_BIN = Path(sys.executable).parent
# Lambda's own limits on a zip deployment package.
LAMBDA_ZIP_LIMIT = 50 * 1024 * 1024
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
# What the Python Lambda runtime provides besides the standard library: the AWS SDK.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "urllib3", "jmespath", "dateutil", "six")

pytestmark = [pytest.mark.slow, pytest.mark.aws]

def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="packaging", AWS_SECRET_ACCESS_KEY="packaging", AWS_DEFAULT_REGION="us-east-1")
    return env


def _checkout(dest: Path) -> Path:
    """What a fresh clone holds of the app: no chalice cache, no byte code, vendor/ a link.

    Packaging a copy also keeps parallel test workers from sharing .chalice/deployments.
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "deployments", "deployed")
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("chalicelib", "flowplane", ".chalice", "infra", "vendor"):
        shutil.copytree(ROOT / name, dest / name, symlinks=True, ignore=ignore)
    assert (dest / "vendor" / "flowplane").is_symlink()
    return dest


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("package")
    (base / "project").mkdir()
    project = _checkout(base / "project")
    out = base / "out"
    cmd = [
        str(VENV_BIN / "chalice"), "package", "--stage", "dev",
        "--merge-template", "infra/resources.json", str(out),
    ]
    r = subprocess.run(cmd, cwd=project, env=_offline_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


@pytest.fixture(scope="module")
def template(packaged) -> dict[str, Any]:
    return json.loads((packaged / "sam.json").read_text())


@pytest.fixture(scope="module")
def transformed(template) -> dict[str, Any]:
    """The SAM template as CloudFormation, by AWS's own SAM translator."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    sam = json.loads(json.dumps(template))
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            # What `aws cloudformation package` does with ./deployment.zip.
            resource["Properties"]["CodeUri"] = "s3://artifacts/deployment.zip"
    old = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        return transform(sam, {}, NoManagedPolicies())
    finally:
        if old is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = old


def _cfn_lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "cfn-lint"), str(path)], capture_output=True, text=True, timeout=300)


def test_cfn_lint_passes_the_packaged_template_and_its_sam_translation(packaged, transformed, tmp_path):
    r = _cfn_lint(packaged / "sam.json")
    assert r.returncode == 0, r.stdout + r.stderr
    translated = tmp_path / "cfn.json"
    translated.write_text(json.dumps(transformed))
    r = _cfn_lint(translated)
    assert r.returncode == 0, r.stdout + r.stderr


def test_cfn_lint_would_catch_a_broken_template(template, tmp_path):
    """The lint test above means something: the same linter fails a template with one fault."""
    broken = json.loads(json.dumps(template))
    broken["Resources"]["Table"]["Properties"]["BillingMode"] = "SOMETIMES"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    r = _cfn_lint(path)
    assert r.returncode != 0 and "SOMETIMES" in r.stdout


def _methods(definition: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method.upper()): op
        for path, ops in definition["paths"].items()
        for method, op in ops.items()
        if method != "options"
    }


def test_every_api_method_but_health_requires_sigv4_in_the_template(template, transformed):
    definition = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    scheme = definition["securityDefinitions"]["sigv4"]
    assert scheme == {
        "in": "header", "type": "apiKey", "name": "Authorization", "x-amazon-apigateway-authtype": "awsSigv4",
    }
    methods = _methods(definition)
    app_routes = {(path, method) for path, ms in app.routes.items() for method in ms}
    assert set(methods) == app_routes
    for key, op in methods.items():
        if key == ("/health", "GET"):
            assert "security" not in op
        else:
            assert op.get("security") == [{"sigv4": []}], key
    # What CloudFormation receives after the SAM transform: the same API definition.
    rest_apis = [r for r in transformed["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    assert len(rest_apis) == 1
    assert _methods(rest_apis[0]["Properties"]["Body"]) == methods


def test_every_function_gets_the_stacks_names_and_its_own_role(transformed):
    functions = {k: r for k, r in transformed["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    assert {"APIHandler", "Compile", "Launch"} <= set(functions)
    roles = set()
    for name, fn in functions.items():
        env = fn["Properties"]["Environment"]["Variables"]
        assert env["FLOWPLANE_BUCKET"] == {"Ref": "Bucket"}, name
        assert env["FLOWPLANE_TABLE"] == {"Ref": "Table"}, name
        assert env["FLOWPLANE_SFN_ROLE_ARN"] == {"Fn::GetAtt": ["StatesRole", "Arn"]}, name
        assert env["FLOWPLANE_STAGE"] == "dev" and env["FLOWPLANE_GRANT_LAUNCHER_PERMISSION"] == "false"
        assert fn["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": "LambdaLogGroup"}
        roles.add(json.dumps(fn["Properties"]["Role"]))
    assert len(roles) == len(functions)
    # The launcher's ARN, as the compile function is told it, is the launcher's real name.
    launcher_arn = functions["Compile"]["Properties"]["Environment"]["Variables"]["FLOWPLANE_LAUNCHER_ARN"]["Fn::Sub"]
    assert launcher_arn.endswith(":function:" + functions["Launch"]["Properties"]["FunctionName"]["Fn::Sub"])


def test_the_compile_rule_hears_only_this_stacks_bucket(transformed):
    rules = [r for r in transformed["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    compile_rules = [r for r in rules if r["Properties"].get("EventPattern", {}).get("source") == ["aws.s3"]]
    assert len(compile_rules) == 1
    assert compile_rules[0]["Properties"]["EventPattern"]["detail"]["bucket"] == {"name": [{"Ref": "Bucket"}]}


def test_the_recording_rules_hear_only_this_stacks_executions_and_jobs(transformed):
    # Stages share the account's default bus: each recorder is invoked for its own stack's
    # state machines and job queue only (the recorder also checks, for hand-made rules).
    rules = [r["Properties"].get("EventPattern", {}) for r in transformed["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    [executions] = [p for p in rules if p.get("source") == ["aws.states"]]
    assert executions["detail"]["stateMachineArn"] == [{"prefix": {"Fn::Sub": (
        "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-")}}]
    assert executions["detail-type"] == ["Step Functions Execution Status Change"]
    [jobs] = [p for p in rules if p.get("source") == ["aws.batch"]]
    assert jobs["detail"] == {"container": {"command": ["flowplane"]}, "jobQueue": [{"Ref": "JobQueue"}]}
    [tasks] = [p for p in rules if p.get("source") == ["flowplane.task"]]
    assert "detail" not in tasks  # tasks of flows deployed before stage markers carry none

    # The patterns, resolved as CloudFormation would for a stack, against
    # events of AWS's shapes (EventBridge's own matching, as moto implements it).
    from moto.events.models import EventPattern

    from tests.support.recording_events import ACCOUNT, QUEUE, REGION, T0, execution_detail, job_detail

    def resolved(pattern: dict, stack: str, queue: str) -> EventPattern:
        text = json.dumps(pattern).replace(json.dumps({"Ref": "JobQueue"}), json.dumps(queue))
        sub = json.dumps({"Fn::Sub": executions["detail"]["stateMachineArn"][0]["prefix"]["Fn::Sub"]})
        arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{stack}-"
        return EventPattern.load(text.replace(sub, json.dumps(arn)))

    def event(source: str, detail_type: str, detail: dict) -> dict:
        return {"source": source, "detail-type": detail_type, "account": ACCOUNT, "region": REGION, "detail": detail}

    execution = execution_detail("ParameterFlow", "e1", "RUNNING", T0)  # flowplane-local-ParameterFlow
    job = job_detail("ParameterFlow", "sfn-e1", "start", "1", 0, "RUNNING", "j1", T0)
    ours, theirs = "flowplane-local", "flowplane-prod"
    for stack, matches in ((ours, True), (theirs, False), ("flowplane-loc", False)):
        pattern = resolved(executions, stack, QUEUE)
        assert pattern.matches_event(event("aws.states", "Step Functions Execution Status Change", execution)) is matches
    other_queue = QUEUE.replace(QUEUE.rsplit("/", 1)[1], "another-queue")
    for queue, matches in ((QUEUE, True), (other_queue, False)):
        assert resolved(jobs, ours, queue).matches_event(event("aws.batch", "Batch Job State Change", job)) is matches


def _bundle_report(zip_path: Path) -> tuple[int, int, dict[str, int]]:
    with zipfile.ZipFile(zip_path) as z:
        infos = z.infolist()
    by_top: dict[str, int] = {}
    for i in infos:
        top = i.filename.split("/", 1)[0]
        by_top[top] = by_top.get(top, 0) + i.file_size
    return zip_path.stat().st_size, sum(i.file_size for i in infos), by_top


def test_the_bundle_holds_flowplane_and_fits_lambda(packaged):
    zipped, unzipped, by_top = _bundle_report(packaged / "deployment.zip")
    largest = sorted(by_top.items(), key=lambda kv: -kv[1])[:6]
    print(f"\ndeployment.zip: {zipped / 1e6:.2f} MB zipped, {unzipped / 1e6:.2f} MB unzipped; largest: {largest}")
    assert zipped < LAMBDA_ZIP_LIMIT and unzipped < LAMBDA_UNZIPPED_LIMIT
    with zipfile.ZipFile(packaged / "deployment.zip") as z:
        names = set(z.namelist())
    for needed in ("app.py", "chalicelib/deploy/rollout.py", "flowplane/manifest.py", "flowplane/graph.py", "flowplane/package.py"):
        assert needed in names
    # Dev tools and caches stay out of the Lambda.
    assert not any(n.split("/", 1)[0] in ("moto", "pytest", "cfnlint", "tests") for n in names)
    assert not any("__pycache__" in n for n in names)


def _runtime_sdk(tmp: Path) -> Path:
    """The AWS SDK as Lambda's runtime provides it (links to this venv's copies)."""
    sdk = tmp / "runtime-sdk"
    sdk.mkdir()
    import importlib.util

    for name in RUNTIME_PROVIDED:
        spec = importlib.util.find_spec(name)
        assert spec and spec.origin, name
        origin = Path(spec.origin)
        src = origin.parent if origin.name == "__init__.py" else origin
        (sdk / src.name).symlink_to(src)
    return sdk


PROBE = textwrap.dedent(
    """
    import base64, json, sys
    bundle, package_path = sys.argv[1], sys.argv[2]
    import app
    import chalicelib.routes.runs as runs_routes
    import flowplane
    assert flowplane.__file__.startswith(bundle), flowplane.__file__
    for absent in ("moto", "pytest", "click", "rich"):
        try:
            __import__(absent)
        except ImportError:
            pass
        else:
            raise SystemExit(f"{absent} is importable: the environment is not clean")

    def call(method, path, body=None, content_type="application/json"):
        event = {
            "resource": path, "path": path, "httpMethod": method,
            "headers": {"content-type": content_type}, "multiValueHeaders": {},
            "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": None, "stageVariables": None,
            "requestContext": {"resourcePath": path, "httpMethod": method, "path": path,
                               "identity": {"userArn": "arn:aws:iam::123456789012:user/alice"}},
            "body": base64.b64encode(body).decode() if body else None, "isBase64Encoded": bool(body),
        }
        return app.app(event, None)

    health = call("GET", "/health")
    assert health["statusCode"] == 200, health
    # The compiler end to end, inside the bundle: graph read from the source, ASL out.
    compiled = call("POST", "/compile", open(package_path, "rb").read(), "application/gzip")
    assert compiled["statusCode"] == 200, compiled
    body = json.loads(compiled["body"])
    states = body["state_machine"]["States"]
    assert body["flow_name"] == "ParameterFlow", body
    assert states["start"]["Resource"] == states["end"]["Resource"] == "arn:aws:states:::batch:submitJob.sync", body
    assert callable(runs_routes.launch)
    print("ok", sorted(m for m in sys.modules if m.split(".")[0] in ("flowplane", "chalicelib")).__len__())
    """
)


def test_app_imports_and_answers_from_the_unzipped_bundle_in_a_clean_interpreter(packaged, tmp_path):
    bundle = tmp_path / "bundle"
    with zipfile.ZipFile(packaged / "deployment.zip") as z:
        z.extractall(bundle)
    sdk = _runtime_sdk(tmp_path)
    from tests.support.control_plane import flow_context
    from flowplane.manifest import DeployOptions
    from flowplane.package import build_package, manifest_for

    ctx = flow_context("parameter_flow.py")
    package = build_package(str(ROOT / "examples"), manifest_for(ctx, DeployOptions()))
    package_path = tmp_path / "package.tar.gz"
    package_path.write_bytes(package.data)
    env = {
        "PATH": "/usr/bin:/bin",
        # -I ignores PYTHONPATH: the path is set by the probe's runner below.
        "FLOWPLANE_STAGE": "dev", "FLOWPLANE_BUCKET": "flowplane-dev-bucket", "FLOWPLANE_TABLE": "flowplane-dev",
        "FLOWPLANE_JOB_QUEUE": "arn:aws:batch:us-east-1:123456789012:job-queue/q", "FLOWPLANE_JOB_DEFINITION": "flowplane-dev-task",
        "FLOWPLANE_ACCOUNT": "123456789012", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
    }
    # -I: no user site, no PYTHON* variables; -S: no site-packages at all. Only the standard
    # library, the bundle and the runtime's SDK are importable.
    runner = f"import sys; sys.path[:0] = [{str(bundle)!r}, {str(sdk)!r}]; sys.argv[1:] = [{str(bundle)!r}, {str(package_path)!r}]; exec(sys.stdin.read())"
    r = subprocess.run(
        [sys.executable, "-I", "-S", "-c", runner], input=PROBE, cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr


def test_importing_app_loads_neither_boto3_nor_the_deploy_logic():
    """Every Lambda of the stack imports app.py cold; boto3 and the compiler load on first use
    (bench/bench_cold_import.py measures the time this keeps off a cold start)."""
    probe = (
        "import sys, app; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 's3transfer') "
        "or m in ('chalicelib.deploy', 'chalicelib.runs', 'chalicelib.compiler', 'chalicelib.recording.service')); "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import app loaded: {out.stdout.strip()}"
