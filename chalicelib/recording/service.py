"""The recorder and reconciler wired to the stage's table and Step Functions.

Built once per warm Lambda (the versions cache lives as long as it does); each
invocation gets its own Telemetry, flushed when it ends (`with Telemetry() as ...`).
"""

from __future__ import annotations

import weakref
from typing import Any, Optional

from .. import keys
from ..aws import Aws
from .announce import Announcer
from .owners import Owners
from .recorder import Recorder
from .reconcile import Limits, Reconciler, change_from_description
from .store import RecordStore
from .telemetry import Telemetry, logger

# Keyed by the adapters themselves: a new stage or moto world gets a new recorder.
_RECORDERS: "weakref.WeakKeyDictionary[Aws, Recorder]" = weakref.WeakKeyDictionary()


def recorder_for(aws: Aws) -> Recorder:
    rec = _RECORDERS.get(aws)
    if rec is None:
        table = aws.table

        def versions(name: str) -> list[dict[str, Any]]:
            return table.query(keys.flow_pk(name), keys.VERSION_PREFIX)

        def deployment_of_shortened(state_machine: str) -> Optional[str]:
            item = table.get(keys.state_machine_pk(state_machine), keys.STATE_MACHINE_SK)
            return str(item["deployment"]) if item else None

        settings = aws.settings
        owners = Owners(versions, prefix=settings.resource_prefix, resolve=deployment_of_shortened)
        announcer = Announcer(aws.events, settings.event_bus or "default", settings.resource_prefix)
        rec = _RECORDERS[aws] = Recorder(RecordStore(table.t), owners, announcer=announcer)
    return rec


def reset() -> None:
    _RECORDERS.clear()


def record_event(aws: Aws, event: dict[str, Any]) -> dict[str, Any]:
    rec = recorder_for(aws)
    with Telemetry() as rec.telemetry:
        return rec.record(event).to_dict()


def reconcile(aws: Aws, limits: Limits = Limits()) -> dict[str, Any]:
    rec = recorder_for(aws)
    with Telemetry() as rec.telemetry:
        report = Reconciler(rec, aws.state_machines.client, limits).run()
    logger().info("reconciled", extra=report.to_dict())
    return report.to_dict()


def note_execution(aws: Aws, execution_arn: str) -> None:
    """Record an execution the control plane just started or stopped, as Step Functions describes it.

    The run is readable at once rather than when its event arrives; best effort,
    since the event and the reconciler record it anyway.
    """
    rec = recorder_for(aws)
    with Telemetry() as rec.telemetry:
        try:
            desc = aws.state_machines.execution(execution_arn)
            if desc is not None:
                rec.record_execution(change_from_description(desc))
        except Exception as e:  # the run itself started; its record will come from its events
            logger().warning("could not record execution", extra={"execution_arn": execution_arn, "error": repr(e)})
