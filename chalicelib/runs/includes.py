"""Files of `IncludeFile` parameters: where the SDK uploads them, and the trigger's check.

The SDK reads the file and asks for a presigned PUT into the stage's datastore,
at the file's content address (flowplane/datastore/layout.include_key), which S3
checks against the sha256; the control plane never reads the bytes. A trigger
naming an included file that is not there is refused before anything starts.
"""

from __future__ import annotations

from typing import Any

from flowplane.datastore import layout
from flowplane.datastore.includes import MAX_INCLUDE_BYTES, IncludeDescriptor
from flowplane.manifest import ParameterSpec

from ..aws import Aws
from ..errors import BadRequest
from ..keys import FLOW_NAME
from ..query.blobs import split_root
from ..settings import Settings


def presign_include(aws: Aws, settings: Settings, flow: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /flows/{flow}/includes {sha256, size}: where to PUT the file, unless it is stored already."""
    if not FLOW_NAME.match(flow):
        raise BadRequest(f"{flow!r} is not a flow's class name", field="flow")
    sha, size = body.get("sha256"), body.get("size")
    if isinstance(size, int) and not isinstance(size, bool) and size > MAX_INCLUDE_BYTES:
        raise BadRequest(
            f"an included file may have at most {MAX_INCLUDE_BYTES} bytes; this one has {size}", field="size"
        )
    try:
        descriptor = IncludeDescriptor.parse({"type": IncludeDescriptor.type, "sha256": sha, "size": size})
    except ValueError as e:
        raise BadRequest(str(e), field="sha256" if "sha256" in str(e) else "size") from None
    bucket, prefix = split_root(str(settings.datastore_root))
    key = prefix + layout.include_key(flow, descriptor.sha256)
    answer: dict[str, Any] = {"key": key, "exists": aws.packages.size(key, bucket=bucket) is not None}
    if not answer["exists"]:
        url, headers = aws.packages.presign_put(
            key, descriptor.sha256, settings.presign_expiry_seconds, bucket=bucket,
            content_type="application/octet-stream",
        )
        answer["upload"] = {"method": "PUT", "url": url, "headers": headers}
    return answer


def check_included(aws: Aws, settings: Settings, flow: str, specs: list[ParameterSpec],
                   values: dict[str, Any]) -> None:
    """A 400 naming the parameter when a given included file was never uploaded."""
    bucket, prefix = split_root(str(settings.datastore_root))
    for spec in specs:
        if spec.type != "include" or values.get(spec.name) is None:
            continue
        sha = IncludeDescriptor.parse(values[spec.name]).sha256
        if aws.packages.size(prefix + layout.include_key(flow, sha), bucket=bucket) is None:
            raise BadRequest(
                f"IncludeFile {spec.name!r}: the file {sha[:12]} was never uploaded to this stage; "
                "trigger with the flow's command line (--" + spec.name + " PATH), which uploads it",
                field=f"parameters.{spec.name}", parameter=spec.name,
            )
