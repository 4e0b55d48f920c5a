"""What the Client API hands out from S3 and CloudWatch Logs: artifact URLs and task logs.

A task writes its stdout and stderr apart into the datastore when its attempt
ends (flowplane/datastore/layout.py); until then, the live output is in the
Batch job's CloudWatch stream, where Batch's awslogs driver keeps both streams
in one. So a log is read from the datastore first and from CloudWatch while the
attempt has not stored it yet.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from flowplane.datastore import layout

from ..aws import client_error
from ..errors import ApiError

LOG_FILES = {"stdout": layout.LOGS[0], "stderr": layout.LOGS[1]}
MAX_LOG_PAGES = 50
TRUNCATED = "[... earlier output cut; the whole log is in the datastore or CloudWatch Logs ...]\n"


class DatastoreNotOnS3(ApiError):
    status = 500
    code = "datastore_not_on_s3"


def split_root(root: str) -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, "prefix/") ('' without a prefix)."""
    if not root.startswith("s3://"):
        raise DatastoreNotOnS3(f"the stage's datastore root {root!r} is not on S3", field="datastore_root")
    bucket, _, prefix = root[len("s3://") :].partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def presigned_blob_url(s3: Any, datastore_root: str, key: str, expires: int) -> str:
    bucket, prefix = split_root(datastore_root)
    return s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": prefix + key}, ExpiresIn=int(expires)
    )


# Presigned URLs one request hands out: each is a few hundred bytes (more with a session
# token), so a page stays far below API Gateway's answer limit.
MAX_BLOB_URLS = 500
_SHA = re.compile(r"^[0-9a-f]{64}$")


def blob_url_page(s3: Any, datastore_root: str, flow: str, body: dict[str, Any], expires: int) -> dict[str, Any]:
    """{"urls": {sha: presigned GET}} for the artifact blobs `body["shas"]` of `flow`."""
    from ..errors import BadRequest
    from ..keys import FLOW_NAME

    if not FLOW_NAME.match(flow):
        raise BadRequest(f"{flow!r} is not a flow name", field="flow")
    shas = body.get("shas")
    if not isinstance(shas, list) or not shas:
        raise BadRequest("shas must be a non-empty list of artifact ids (sha256, 64 hex digits)", field="shas")
    if len(shas) > MAX_BLOB_URLS:
        raise BadRequest(f"at most {MAX_BLOB_URLS} shas a request, got {len(shas)}", field="shas")
    bad = [s for s in shas if not isinstance(s, str) or not _SHA.match(s)]
    if bad:
        raise BadRequest(f"{bad[0]!r} is not an artifact id (sha256, 64 lowercase hex digits)", field="shas")
    return {"urls": {sha: presigned_blob_url(s3, datastore_root, layout.blob_key(flow, sha), expires)
                     for sha in shas}}


def _tail(data: bytes, max_bytes: int) -> str:
    """The last max_bytes, marked as cut (a log can outgrow a Lambda's 6 MB answer)."""
    if len(data) > max_bytes:
        data = TRUNCATED.encode() + data[-max_bytes:]
    return data.decode("utf-8", errors="replace")


def _stored_log(s3: Any, datastore_root: str, key: str, max_bytes: int) -> Optional[str]:
    bucket, prefix = split_root(datastore_root)
    try:
        body = s3.get_object(Bucket=bucket, Key=prefix + key)["Body"].read()
    except client_error() as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return _tail(body, max_bytes)


def _cloudwatch_log(logs: Any, group: str, stream: str, max_bytes: int) -> Optional[str]:
    lines: list[str] = []
    size = 0
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
    try:
        for _ in range(MAX_LOG_PAGES):
            page = logs.get_log_events(**kwargs)
            for e in page.get("events", []):
                lines.append(e.get("message", ""))
                size += len(lines[-1]) + 1
            token = page.get("nextForwardToken")
            # The same token back means the end of the stream.
            if not page.get("events") or not token or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
    except client_error() as e:
        if e.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    text = "\n".join(lines) + ("\n" if lines else "")
    return _tail(text.encode(), max_bytes) if size > max_bytes else text


def attempt_log(
    s3: Any,
    logs: Any,
    datastore_root: str,
    pathspec: tuple[str, str, str, str, int],
    stream: str,
    log_group: str,
    log_stream: Optional[str],
    max_bytes: int,
) -> tuple[str, str]:
    """(text, where it came from: datastore | cloudwatch | none)."""
    flow, run_id, step, task_id, attempt = pathspec
    key = layout.attempt_key(flow, run_id, step, task_id, attempt, LOG_FILES[stream])
    stored = _stored_log(s3, datastore_root, key, max_bytes)
    if stored is not None:
        return stored, "datastore"
    if log_stream:
        live = _cloudwatch_log(logs, log_group, log_stream, max_bytes)
        if live is not None:
            return live, "cloudwatch"
    return "", "none"
