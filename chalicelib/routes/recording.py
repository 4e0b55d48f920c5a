"""Recording run metadata from EventBridge, and the reconciler that repairs it.

Three rules, one per kind of event, so each Lambda hears only what it records.
The recorder itself is imported on the first event: the API Lambda loads this
module too and must not pay for it.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Rate

from flowplane.event_types import (
    BATCH_DETAIL_TYPE,
    BATCH_SOURCE,
    SFN_DETAIL_TYPE,
    SFN_SOURCE,
    TASK_EVENT_DETAIL_TYPES,
    TASK_EVENT_SOURCE,
)

from ..http import aws

bp = Blueprint(__name__)

EXECUTION_PATTERN = {"source": [SFN_SOURCE], "detail-type": [SFN_DETAIL_TYPE]}
# Only jobs running `flowplane task` (an array pattern matches any element).
JOB_PATTERN = {
    "source": [BATCH_SOURCE],
    "detail-type": [BATCH_DETAIL_TYPE],
    "detail": {"container": {"command": ["flowplane"]}},
}
TASK_PATTERN = {"source": [TASK_EVENT_SOURCE], "detail-type": list(TASK_EVENT_DETAIL_TYPES.values())}


def _record(event: Any) -> dict[str, Any]:
    from ..recording.service import record_event

    return record_event(aws(), event.to_dict())


@bp.on_cw_event(EXECUTION_PATTERN, name="record_execution")
def record_execution(event: Any) -> dict[str, Any]:
    return _record(event)


@bp.on_cw_event(JOB_PATTERN, name="record_job")
def record_job(event: Any) -> dict[str, Any]:
    return _record(event)


@bp.on_cw_event(TASK_PATTERN, name="record_task")
def record_task(event: Any) -> dict[str, Any]:
    return _record(event)


@bp.schedule(Rate(5, unit=Rate.MINUTES), name="reconcile", description="Repair runs whose events were missed")
def reconcile(event: Any) -> dict[str, Any]:
    from ..recording.service import reconcile as run_reconciler

    return run_reconciler(aws())
