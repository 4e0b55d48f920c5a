"""Which deployments start when which flows finish, and the loops a deploy would close.

`@trigger_on_finish` names upstream flows by class name (inside a @project, by
`<project>.<branch>.<Flow>`); a deployment whose flow names, through such a chain,
the flow being deployed would start itself forever.
Metaflow only warns about this in its documentation; here `create` refuses it,
naming the loop, unless told to allow it. The deployed edges live in one
partition (keys.FINISH_TRIGGERS_PK), read whole: one Query per check.
"""

from __future__ import annotations

from typing import Optional

from flowplane.manifest import TriggerOnFinishSpec
from flowplane.projects import ProjectInfo

from .. import keys
from ..aws import Table
from ..errors import BadRequest


def upstream_of(finish: Optional[TriggerOnFinishSpec],
                project: Optional[ProjectInfo]) -> Optional[TriggerOnFinishSpec]:
    """The upstream flows a deployment listens to: inside a @project, those named without one are
    the same project and branch's (Metaflow's rule); a BadRequest for a half-qualified name."""
    if finish is None:
        return None
    try:
        return finish.within(project)
    except ValueError as e:
        raise BadRequest(str(e), field="trigger_on_finish", line=finish.lineno or None) from None


def put(table: Table, deployment: str, flow_name: str, finish: Optional[TriggerOnFinishSpec]) -> None:
    """Record (or, without @trigger_on_finish, forget) the deployment's upstream flows.

    `flow_name` is how the deployment's own runs are named to its downstream flows
    (resource_names.finish_node), `finish` the upstream flows as resolved by `upstream_of`."""
    if finish is None:
        table.t.delete_item(Key={"PK": keys.FINISH_TRIGGERS_PK, "SK": keys.finish_triggers_sk(deployment)})
        return
    table.put({"PK": keys.FINISH_TRIGGERS_PK, "SK": keys.finish_triggers_sk(deployment), "type": "finish_triggers",
               "deployment": deployment, "flow_name": flow_name, "upstream": sorted(f.qualified for f in finish.flows)})


def remove(table: Table, deployment: str) -> None:
    put(table, deployment, deployment, None)


def loop_through(table: Table, deployment: str, flow_name: str,
                 finish: Optional[TriggerOnFinishSpec]) -> Optional[list[str]]:
    """The loop of flows (first == last) the deployment would close, or None."""
    if finish is None:
        return None
    # flow -> the flows that start when it finishes
    starts: dict[str, set[str]] = {}
    for item in table.query(keys.FINISH_TRIGGERS_PK, keys.FLOW_PREFIX):
        if item["deployment"] == deployment:
            continue  # this deploy replaces it
        for upstream in item.get("upstream") or []:
            starts.setdefault(upstream, set()).add(item["flow_name"])
    for upstream in finish.flows:
        starts.setdefault(upstream.qualified, set()).add(flow_name)
    # A path from flow_name back to itself, shortest first (breadth-first).
    paths = [[flow_name]]
    seen = {flow_name}
    while paths:
        nxt = []
        for path in paths:
            for downstream in sorted(starts.get(path[-1], ())):
                if downstream == flow_name:
                    return [*path, flow_name]
                if downstream not in seen:
                    seen.add(downstream)
                    nxt.append([*path, downstream])
        paths = nxt
    return None


def describe(loop: list[str]) -> str:
    return " -> ".join(loop)


