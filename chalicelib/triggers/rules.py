"""A triggered flow's EventBridge rules, made at deploy like its schedule's.

Two rules per deployment at most, on the stage's bus, both targeting the
launcher (as schedule rules do):

- `<prefix>-trigger-event-<name>` hears the published events `@trigger` names;
- `<prefix>-trigger-finish-<name>` hears the ends of the upstream flows'
  production runs of this stage that succeeded (`@trigger_on_finish`).

Their input transformer hands the launcher the deployment's name and the event's
id, time, source, detail-type and detail: the launcher starts the run (see
chalicelib/triggers/launch.py). Only quoted string placeholders and one unquoted
object (`<detail>`) are used, which EventBridge and moto fill alike.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from flowplane.event_types import PUBLISHED_EVENT_SOURCE, RUN_FINISHED_DETAIL_TYPE, RUN_FINISHED_SOURCE
from flowplane.manifest import TriggerOnFinishSpec, TriggerSpec

from ..resource_names import TRIGGER_INFIXES, trigger_rule_name

KINDS = tuple(TRIGGER_INFIXES)


def patterns(trigger: Optional[TriggerSpec], finish: Optional[TriggerOnFinishSpec],
             stage: str) -> dict[str, dict[str, Any]]:
    """kind -> event pattern, for the decorators the flow has."""
    out: dict[str, dict[str, Any]] = {}
    if trigger is not None:
        out["event"] = {"source": [PUBLISHED_EVENT_SOURCE], "detail-type": sorted({e.name for e in trigger.events})}
    if finish is not None:
        out["finish"] = {
            "source": [RUN_FINISHED_SOURCE],
            "detail-type": [RUN_FINISHED_DETAIL_TYPE],
            # By RunFinished.project_flow_name: a project's runs by `<project>.<branch>.<Flow>`, others
            # by their class name, so a branch hears only the branches it names.
            "detail": {"project_flow_name": sorted({f.qualified for f in finish.flows}), "status": ["SUCCEEDED"],
                       "stage": [stage]},
        }
    return out


def input_transformer(name: str) -> dict[str, Any]:
    """What the launcher receives: {"flow": name, "event": {id, time, source, detail-type, detail}}."""
    return {
        "InputPathsMap": {"id": "$.id", "time": "$.time", "source": "$.source", "type": "$.detail-type",
                          "detail": "$.detail"},
        "InputTemplate": '{"flow": %s, "event": {"id": "<id>", "time": "<time>", "source": "<source>", '
                         '"detail-type": "<type>", "detail": <detail>}}' % json.dumps(name),
    }


def apply(aws: Any, name: str, trigger: Optional[TriggerSpec], finish: Optional[TriggerOnFinishSpec]) -> list[str]:
    """Make the deployment's rules what its decorators say (removing the others); returns their names."""
    prefix = str(aws.settings.resource_prefix)
    bus = aws.settings.event_bus or "default"
    wanted = patterns(trigger, finish, prefix)
    made = []
    for kind in KINDS:
        rule = trigger_rule_name(prefix, name, kind)
        if kind in wanted:
            aws.schedules.put_pattern(rule, wanted[kind], f"flowplane {kind} trigger of {name}",
                                      aws.launcher_arn, input_transformer(name), bus)
            made.append(rule)
        else:
            aws.schedules.remove(rule, bus)
    return made


def remove(aws: Any, name: str) -> None:
    apply(aws, name, None, None)
