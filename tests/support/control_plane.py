"""The control plane in-process for its tests (no tests here).

`control_plane_on_moto` (the `control_plane` fixture, tests/conftest.py) gives a
moto world (S3, DynamoDB, Step Functions executing state machines, EventBridge,
Batch without docker) with the stage's resources created, a `chalice.test.Client`
on the app, and helpers to deploy the example flows, deliver the S3 "Object
Created" event moto never emits, and snapshot everything stored so a refusal can
be shown to have changed nothing.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from chalice.test import Client
from moto import mock_aws

from tests.support.paths import ROOT

EXAMPLES = ROOT / "examples"
LOCAL_ENV: dict[str, str] = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["local"][
    "environment_variables"
]
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "batch": {"use_docker": False}}

from app import app  # noqa: E402
from chalicelib import http  # noqa: E402
from chalicelib.aws import Aws  # noqa: E402
from chalicelib.bootstrap import ensure_resources  # noqa: E402
from chalicelib.aws_events import object_created_event  # noqa: E402
from chalicelib.settings import Settings  # noqa: E402
from flowplane.context import FlowContext  # noqa: E402
from flowplane.local.moto_patches import (  # noqa: E402,F401  (see there why)
    moto_early_stop_fix,
    moto_events_fix,
    moto_second_execution_fix,
)
from flowplane.manifest import DeployOptions, Manifest  # noqa: E402
from flowplane.package import Package, build_package, manifest_for  # noqa: E402


def load_flow_class(path: Path, class_name: str) -> type:
    """Import a flow file the way `python flow.py` would, without running its CLI."""
    module_name = f"_flowplane_test_{path.stem}_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return getattr(module, class_name)


FLOW_CLASSES = {
    "parameter_flow.py": "ParameterFlow",
    "hourly_flow.py": "HourlyFlow",
    "branch_flow.py": "BranchFlow",
    "foreach_flow.py": "ForeachFlow",
    "deployment_info_flow.py": "DeploymentInfoFlow",
}


def flow_context(filename: str, user: str = "alice", folder: Optional[Path] = None, with_decorators=None) -> FlowContext:
    path = (folder or EXAMPLES) / filename
    cls = load_flow_class(path, FLOW_CLASSES.get(filename) or _class_in(path))
    ctx = FlowContext.for_class(cls, with_decorators=with_decorators)
    ctx.user = user
    return ctx


def _class_in(path: Path) -> str:
    import ast

    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef):
            return node.name
    raise AssertionError(f"no class in {path}")


def targz(entries: list[tuple[str, Any]]) -> bytes:
    """A tar.gz by hand, for packages the SDK would never build.

    entries: (name, bytes) for files, (name, ("sym", target)), (name, ("hard", target)),
    (name, ("dir",)), (name, ("fifo",)).
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if isinstance(content, tuple):
                kind = content[0]
                info.type = {
                    "sym": tarfile.SYMTYPE,
                    "hard": tarfile.LNKTYPE,
                    "dir": tarfile.DIRTYPE,
                    "fifo": tarfile.FIFOTYPE,
                }[kind]
                if kind in ("sym", "hard"):
                    info.linkname = content[1]
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def package_with(manifest: Manifest, source: bytes, extra: Optional[list[tuple[str, Any]]] = None) -> bytes:
    entries: list[tuple[str, Any]] = [
        ("manifest.json", manifest.model_dump_json().encode()),
        (manifest.flow_file, source),
    ]
    return targz(entries + list(extra or []))


@dataclass
class ControlPlane:
    client: Client
    aws: Aws

    @property
    def settings(self) -> Settings:
        return self.aws.settings

    # --- requests ---------------------------------------------------------

    def post_package(self, data: bytes, content_type: str = "application/gzip") -> Any:
        return self.client.http.post("/packages", headers={"content-type": content_type}, body=data)

    def post_json(self, path: str, body: Any) -> Any:
        return self.client.http.post(path, headers={"content-type": "application/json"}, body=json.dumps(body))

    def get(self, path: str) -> Any:
        return self.client.http.get(path)

    def deliver(self, key: str) -> Any:
        """The S3 "Object Created" event EventBridge would deliver for `key`."""
        s3 = self.aws.packages.client
        head = s3.head_object(Bucket=self.settings.bucket, Key=key)
        event = object_created_event(
            self.settings.bucket, key, int(head["ContentLength"]), head.get("ETag", ""), self.settings.region
        )
        return self.client.lambda_.invoke("compile", event).payload

    # --- deploying the examples -------------------------------------------------

    def build(
        self,
        filename: str,
        user: str = "alice",
        folder: Optional[Path] = None,
        with_decorators=None,
        **options: Any,
    ) -> tuple[Manifest, Package]:
        ctx = flow_context(filename, user, folder, with_decorators)
        manifest = manifest_for(ctx, DeployOptions(**options))
        return manifest, build_package(str(folder or EXAMPLES), manifest)

    def deploy(self, filename: str, user: str = "alice", folder: Optional[Path] = None, **options: Any) -> dict:
        """Upload, deliver the arrival event, and return the deployment record."""
        _, package = self.build(filename, user, folder, **options)
        r = self.post_package(package.data)
        assert r.status_code == 202, r.json_body
        deployment_id = r.json_body["deployment_id"]
        self.deliver(package.key)
        return self.get(f"/deployments/{deployment_id}").json_body

    # --- what is stored ---------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every state machine (with definition), rule (with targets), record and object."""
        sfn = self.aws.state_machines.client
        events = self.aws.schedules.client
        machines = {}
        for m in sfn.list_state_machines()["stateMachines"]:
            d = sfn.describe_state_machine(stateMachineArn=m["stateMachineArn"])
            runs = sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"]
            machines[m["name"]] = (d["definition"], sorted(e["name"] for e in runs))
        rules = {}
        for r in events.list_rules(NamePrefix="flowplane-")["Rules"]:
            targets = events.list_targets_by_rule(Rule=r["Name"])["Targets"]
            rules[r["Name"]] = (r.get("ScheduleExpression"), json.dumps(targets, sort_keys=True))
        ddb = self.aws.session.client("dynamodb", region_name=self.settings.region)
        items = sorted(
            json.dumps(i, sort_keys=True) for i in ddb.scan(TableName=self.settings.table).get("Items", [])
        )
        objects = sorted(
            (o["Key"], o["ETag"])
            for o in self.aws.packages.client.list_objects_v2(Bucket=self.settings.bucket).get("Contents", [])
        )
        return {"state_machines": machines, "rules": rules, "items": items, "objects": objects}

    def executions(self, name: str) -> list[dict[str, Any]]:
        arn = self.aws.state_machine_arn(name)
        return self.aws.state_machines.client.list_executions(stateMachineArn=arn)["executions"]


@contextmanager
def control_plane_on_moto(monkeypatch: pytest.MonkeyPatch, execute: bool = True) -> Iterator[ControlPlane]:
    """The `control_plane` fixture's world (tests/conftest.py); execute=False for executions that stay RUNNING."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", LOCAL_ENV["FLOWPLANE_REGION"])
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for key, value in LOCAL_ENV.items():
        monkeypatch.setenv(key, value)
    config = MOTO_CONFIG if execute else {"batch": {"use_docker": False}}
    # On AWS a schedule rule hears no bus events; moto sends them every PutEvents (patch 6); and a
    # run can be stopped the moment it starts (patch 17).
    with mock_aws(config=config), moto_second_execution_fix(), moto_events_fix(), moto_early_stop_fix():
        http.reset()
        aws = Aws(Settings.from_env())
        ensure_resources(aws)
        yield ControlPlane(Client(app, stage_name="local", project_dir=str(ROOT)), aws)
        http.reset()


def project_copy(tmp_path: Path, filename: str, source: Optional[str] = None) -> Path:
    """A folder holding one flow file (optionally rewritten), to deploy variants of it."""
    folder = tmp_path / "flow"
    folder.mkdir(exist_ok=True)
    text = (EXAMPLES / filename).read_text() if source is None else source
    (folder / filename).write_text(text)
    return folder


