"""The events AWS sends the control plane, built the way AWS builds them.

moto emits no S3 "Object Created" event and fires no schedule; the tests and
the embedded plane (flowplane/local/) deliver these instead, in AWS's
documented shapes (S3 "Amazon EventBridge event message structure";
EventBridge "Scheduled Event"), so the handlers cannot tell the difference.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any, Optional

from flowplane.event_types import OBJECT_CREATED, S3_SOURCE, SCHEDULE_SOURCE, SCHEDULED_EVENT
from flowplane.package_key import PACKAGE_PREFIX

# What the compile function subscribes to. The bucket is not in the pattern:
# `chalice package` reads the pattern without the stage's settings; the handler
# ignores other buckets.
PACKAGE_CREATED_PATTERN: dict[str, Any] = {
    "source": [S3_SOURCE],
    "detail-type": [OBJECT_CREATED],
    "detail": {"object": {"key": [{"prefix": PACKAGE_PREFIX}]}},
}


def event_time(when: datetime) -> str:
    """An event's `time`, as EventBridge writes it: UTC to the second."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _envelope(
    source: str, detail_type: str, time: str, region: str, account: str, resources: list[str], detail: dict[str, Any]
) -> dict[str, Any]:
    """EventBridge's envelope, common to every event it delivers."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": time,
        "region": region,
        "resources": resources,
        "detail": detail,
    }


def object_created_event(
    bucket: str,
    key: str,
    size: int,
    etag: str = "",
    region: str = "us-east-1",
    account: str = "123456789012",
    time: Optional[str] = None,
    reason: str = "PutObject",
) -> dict[str, Any]:
    detail = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {"key": key, "size": size, "etag": etag.strip('"'), "sequencer": "0" * 18},
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": account,
        "source-ip-address": "127.0.0.1",
        "reason": reason,
    }
    when = time or event_time(datetime.now(timezone.utc))
    return _envelope(S3_SOURCE, OBJECT_CREATED, when, region, account, [f"arn:aws:s3:::{bucket}"], detail)


def scheduled_event(rule_arn: str, time: str, region: str = "us-east-1", account: str = "123456789012") -> dict[str, Any]:
    """What a schedule rule's targets receive when it fires at `time` (event_time's form)."""
    return _envelope(SCHEDULE_SOURCE, SCHEDULED_EVENT, time, region, account, [rule_arn], {})


def _path(event: dict[str, Any], path: str) -> Any:
    # The subset of JSON path EventBridge's InputPathsMap uses here: $.a.b and $.a[0].
    value: Any = event
    for part in re.findall(r"[^.\[\]$]+|\[\d+\]", path):
        value = value[int(part[1:-1])] if part.startswith("[") else value[part]
    return value


def apply_input_transformer(transformer: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """What a target with this InputTransformer receives for `event` (JSON templates only)."""
    text = transformer["InputTemplate"]
    for name, path in transformer.get("InputPathsMap", {}).items():
        value = json.dumps(_path(event, path))
        # As EventBridge: inside quotes a string goes in as its text, elsewhere as JSON.
        if value.startswith('"'):
            text = text.replace(f'"<{name}>"', value)
        text = text.replace(f"<{name}>", value)
    return json.loads(text)
