"""The environment a task process has on Batch, for running the task runtime in-process against
moto: AWS's test credentials, the S3 datastore, a production token, and none of the per-task
variables a test sets itself (run, step, task, retry, package, endpoint)."""

from __future__ import annotations

import contextlib
from typing import Iterator

import boto3
import pytest
from moto import mock_aws

# Set by Batch per task (or by the plane); each test that runs a task sets the ones it needs.
PER_TASK = ("FLOWPLANE_EXECUTION_INPUT", "FLOWPLANE_RUN_ID", "FLOWPLANE_STEP", "FLOWPLANE_TASK_ID",
            "FLOWPLANE_RETRY_COUNT", "FLOWPLANE_PACKAGE_URL", "FLOWPLANE_S3_ENDPOINT_URL",
            "FLOWPLANE_FOREACH_TABLE", "FLOWPLANE_JOIN_INPUTS_TABLE")


@contextlib.contextmanager
def task_aws(monkeypatch: pytest.MonkeyPatch, bucket: str, root: str, token: str,
             **env: str) -> Iterator[None]:
    """Inside moto, with `bucket` created and the task's environment set: `root` its datastore,
    `token` its production token, `env` whatever else the test's tasks see."""
    for var in PER_TASK:
        monkeypatch.delenv(var, raising=False)
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "FLOWPLANE_DATASTORE_ROOT": root,
        "FLOWPLANE_PRODUCTION_TOKEN": token,
        **env,
    }.items():
        monkeypatch.setenv(var, value)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=bucket)
        yield
