"""A run's `S3(run=...)` objects for the Client API: one page of a listing, each object
with a presigned GET, so `S3(run=Run(...))` reads a production run's objects with no
AWS credentials of its own (flowplane/datatools/service.py is the caller)."""

from __future__ import annotations

from typing import Any, Optional

from flowplane.datastore import layout

from ..errors import BadRequest
from .blobs import split_root

MAX_KEYS = 1000
MAX_PREFIX = 1024  # S3's own key length limit


def check_prefix(prefix: str) -> str:
    """A key prefix under the run's root: relative, without '..' segments, within S3's key length."""
    if len(prefix) > MAX_PREFIX:
        raise BadRequest(f"prefix is longer than {MAX_PREFIX} characters", field="prefix")
    if prefix.startswith("/") or ".." in prefix.split("/"):
        raise BadRequest(f"prefix must be relative to the run, without '..' segments: {prefix!r}", field="prefix")
    return prefix


def list_run_objects(s3: Any, datastore_root: str, flow: str, run_id: str, prefix: str, recursive: bool,
                     token: Optional[str], expires: int) -> dict[str, Any]:
    bucket, base = split_root(datastore_root)
    run_base = f"{base}{layout.datatools_prefix(flow, run_id)}/"
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": run_base + check_prefix(prefix), "MaxKeys": MAX_KEYS}
    if not recursive:
        kwargs["Delimiter"] = "/"
    if token:
        kwargs["ContinuationToken"] = token
    page = s3.list_objects_v2(**kwargs)
    objects = [{
        "key": o["Key"][len(run_base):],
        "size": int(o["Size"]),
        "url": s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": o["Key"]},
                                         ExpiresIn=int(expires)),
    } for o in page.get("Contents", [])]
    return {
        "root": f"s3://{bucket}/{run_base.rstrip('/')}",
        "objects": objects,
        "prefixes": [p["Prefix"][len(run_base):] for p in page.get("CommonPrefixes", [])],
        "next": page.get("NextContinuationToken") if page.get("IsTruncated") else None,
    }
