"""What a `flowplane task` process loads on its way: nothing it does not use.

Every task on Batch (and on the embedded plane's local Batch) is a new process, so
what it imports and which AWS clients it makes is paid once per task. A local task
loads no AWS SDK at all; a task on S3 loads botocore, never boto3 or s3transfer (a
third of the start-up), makes one S3 client for its package and the datastore and
one client per other service it calls, and no part of the SDK meant for users
(click, the Client API) or of the control plane. No timings here: what is loaded is
the regression to catch, the bench (bench/bench_embedded.py) gives the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.support.local_runs import write_flow

pytestmark = pytest.mark.aws

FLOW = """
from flowplane import FlowSpec, Parameter, step

class LeanFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.x = [1, 2, 3]
        self.next(self.end)

    @step
    def end(self):
        print("x is", self.x)
"""

# Runs `python -m flowplane task ...` as Batch does, then writes what the process loaded.
PROBE = """
import atexit, json, runpy, sys

out = sys.argv[1]
sys.argv = ["flowplane", *sys.argv[2:]]


def dump():
    aws = sys.modules.get("flowplane.task.aws")
    clients = sorted({key[0] for key in aws._clients}) if aws else []
    with open(out, "w") as f:
        json.dump({"modules": sorted(sys.modules), "clients": clients}, f)


atexit.register(dump)
runpy.run_module("flowplane", run_name="__main__", alter_sys=True)
"""

# Never on a task's path: the AWS SDK's higher layer, the user-facing CLI and Client
# API, the control plane, the embedded plane, the test doubles; nor, for a step
# without @catch, the fallback's code.
NEVER = ("boto3", "s3transfer", "click", "flowplane.client", "flowplane.api_client", "flowplane.lint",
         "flowplane.local", "flowplane.runtime", "flowplane.sfn_cli", "flowplane.package", "flowplane.demo",
         "flowplane.task.fallback", "chalicelib", "chalice", "moto", "requests")


def run_task(tmp_path: Path, env: dict[str, str], *argv: str) -> dict:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    out = tmp_path / "loaded.json"
    proc = subprocess.run([sys.executable, str(probe), str(out), "task", *argv], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def loaded(found: dict, prefix: str) -> list[str]:
    return [m for m in found["modules"] if m == prefix or m.startswith(prefix + ".")]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWPLANE_", "MOTO_"))}
    env.update(FLOWPLANE_USER="tester", **extra)
    return env


def test_a_local_task_loads_no_aws_sdk(tmp_path):
    flow = write_flow(tmp_path, "lean_flow", FLOW)
    args = ["--run-id", "1", "--task-id", "1", "--flow-file", str(flow), "--datastore-root", str(tmp_path / "ds"),
            "--params-json", "{}"]
    for step in ("start", "end"):
        found = run_task(tmp_path, clean_env(), "--step", step, *args)
        for name in ("botocore", "urllib3", "flowplane.task.aws", "flowplane.events", *NEVER):
            assert not loaded(found, name), f"a local task loaded {loaded(found, name)[:3]}"


@pytest.fixture(scope="module")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_a_task_on_s3_with_events_loads_botocore_only_and_one_client_per_service(tmp_path, moto_server):
    creds = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="local",
                      aws_secret_access_key="local")
    s3.create_bucket(Bucket="lean")
    flow = write_flow(tmp_path, "lean_flow", FLOW)
    # What the local Batch gives a job: the plane's endpoint for every service, its bus, a job id.
    env = clean_env(**creds, AWS_ENDPOINT_URL=moto_server, FLOWPLANE_S3_ENDPOINT_URL=moto_server,
                    FLOWPLANE_EVENT_BUS="default", AWS_BATCH_JOB_ID="job-1")
    args = ["--run-id", "sfn-1", "--task-id", "1", "--flow-file", str(flow), "--datastore-root", "s3://lean/root",
            "--params-json", "{}"]
    for step in ("start", "end"):
        found = run_task(tmp_path, env, "--step", step, *args)
        assert loaded(found, "botocore")
        for name in NEVER:
            assert not loaded(found, name), f"a task on S3 loaded {loaded(found, name)[:3]}"
        # The datastore's S3 client and the events client; no DynamoDB (no foreach), no Batch (no @catch).
        assert found["clients"] == ["events", "s3"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lean", Prefix="root/LeanFlow/runs/").get("Contents", [])]
    assert "root/LeanFlow/runs/sfn-1/end/1/0/stdout.log" in keys and "root/LeanFlow/runs/sfn-1/end/1/_task.json" in keys
