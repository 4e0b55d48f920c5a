"""The names of a stage's AWS resources: a deployment's, and the role its state machines run as.

A deployment is named by `--name`, else by its flow's class name; a flow with
`@project` by `<project>.<branch>.<FlowName>` (flowplane/projects.py), each branch
its own deployment. Its state
machine and its schedule rule both start with the stage's `resource_prefix`
(Settings: `flowplane-<stage>`, and the stack's name on AWS), so two stages in one account and region never touch
each other's resources, and each stage's IAM policies grant it only its own
(`stateMachine:<prefix>-*`, `rule/<prefix>-schedule-*`). The rule's
`schedule-` keeps schedules apart from the rules the stack itself owns
(`<stack>-<LogicalId>-...` on AWS, `<app>-<stage>-<handler>` in the embedded
plane).

A name too long for its service (Step Functions 80, EventBridge 64) is cut and
ends in a hash of the deployment name, so it stays unique. Only such shortened
names are exactly the limit long; shorter ones read back to their deployment
without asking anyone (`deployment_of`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Optional

from flowplane import projects

from .errors import BadRequest

STATE_MACHINE_MAX = 80
RULE_MAX = 64
SCHEDULE_INFIX = "schedule-"
# A triggered flow's rules: one for published events, one for upstream runs' ends.
TRIGGER_INFIXES = {"event": "trigger-event-", "finish": "trigger-finish-"}
_HASH = 8
# A deployment's name ends its state machine's, so it is held to Step Functions' characters.
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def deployment_name(flow_name: str, name: Optional[str]) -> str:
    """The deployment's name: `--name`, else the flow's."""
    value = name or flow_name
    if not NAME_RE.match(value):
        raise BadRequest(
            f"deployment name {value!r} must be 1-80 letters, digits, '-' or '_' (a Step Functions name)",
            field="options.name" if name else "flow_name",
        )
    return value


def is_deployment_name(value: str) -> bool:
    """A name a deployment can have: `--name`'s or the flow's, or `<project>.<branch>.<Flow>`."""
    return bool(NAME_RE.match(value)) or projects.is_deployment_name(value)


def project_of(manifest: Any) -> Optional[projects.ProjectInfo]:
    """The @project branch a manifest deploys, checked against the flow's decorator; None
    without @project. A BadRequest for a branch the decorator does not allow."""
    spec, branch = manifest.graph.project, manifest.options.branch
    if spec is None:
        if branch:
            raise BadRequest(f"branch {branch!r} is given, but the flow has no @project", field="options.branch")
        return None
    if manifest.options.name:
        raise BadRequest("--name is not supported for a flow with @project: use --branch instead", field="options.name")
    if not branch:
        raise BadRequest("a flow with @project deploys a branch, and the manifest names none", field="options.branch")
    allowed = None
    if spec.branch:
        allowed = {f"prod.{spec.branch}"} if spec.production else {f"test.{spec.branch}", f"prod.{spec.branch}"}
    elif spec.production:
        allowed = {"prod"}
    if allowed is not None and branch not in allowed:
        raise BadRequest(
            f"branch {branch!r} is not the one @project(...) at line {spec.lineno} deploys "
            f"({' or '.join(sorted(allowed))})", field="options.branch", line=spec.lineno,
        )
    info = projects.ProjectInfo(spec.name, branch, manifest.flow_name)
    try:
        projects.check_length(info.project_flow_name)
    except projects.ProjectError as e:
        raise BadRequest(str(e), field="options.branch") from None
    return info


def manifest_deployment(manifest: Any) -> str:
    """The deployment a manifest deploys: `<project>.<branch>.<Flow>` under @project, else
    `--name`, else the flow's name."""
    info = project_of(manifest)
    if info is not None:
        return info.project_flow_name
    return deployment_name(manifest.flow_name, manifest.options.name)


def finish_node(name: str, flow_name: str) -> str:
    """How a deployment's runs are named by `@trigger_on_finish` (RunFinished.project_flow_name):
    a project deployment by its own name (`<project>.<branch>.<Flow>`), any other by its flow's."""
    return name if projects.is_deployment_name(name) else flow_name


def states_role_name(stage: str) -> str:
    """The role the stage's state machines run as, when the stack does not name it
    (FLOWPLANE_SFN_ROLE_ARN); the embedded plane creates it under this name."""
    return f"flowplane-{stage}-states"


def scheduler_role_name(stage: str) -> str:
    """The role EventBridge Scheduler invokes the launcher as, when the stack does not name it
    (FLOWPLANE_SCHEDULER_ROLE_ARN)."""
    return f"flowplane-{stage}-scheduler"


def _fit(full: str, deployment: str, limit: int) -> str:
    if len(full) < limit:
        return full
    digest = hashlib.sha256(deployment.encode()).hexdigest()[:_HASH]
    return f"{full[: limit - _HASH - 1]}-{digest}"


def state_machine_name(prefix: str, deployment: str) -> str:
    """`<prefix>-<deployment>`, shortened with a hash past Step Functions' 80 characters."""
    return _fit(f"{prefix}-{deployment}", deployment, STATE_MACHINE_MAX)


def rule_name(prefix: str, deployment: str) -> str:
    """`<prefix>-schedule-<deployment>`, shortened with a hash past EventBridge's 64 characters."""
    return _fit(f"{prefix}-{SCHEDULE_INFIX}{deployment}", deployment, RULE_MAX)


def trigger_rule_name(prefix: str, deployment: str, kind: str) -> str:
    """`<prefix>-trigger-event-<deployment>` / `-trigger-finish-`, shortened as rule_name is."""
    return _fit(f"{prefix}-{TRIGGER_INFIXES[kind]}{deployment}", deployment, RULE_MAX)


def is_ours(prefix: str, state_machine: str) -> bool:
    """Whether a state machine is named by this stage (not another stage's, nor anyone else's)."""
    return state_machine.startswith(prefix + "-") and len(state_machine) > len(prefix) + 1


def deployment_of(prefix: str, state_machine: str) -> Optional[str]:
    """The deployment this stage's state machine is named after; None when the name was
    shortened (the table's `STATE_MACHINE#` item says) or is not this stage's."""
    if not is_ours(prefix, state_machine) or len(state_machine) >= STATE_MACHINE_MAX:
        return None
    return state_machine[len(prefix) + 1 :]


def shortened(state_machine: str) -> bool:
    return len(state_machine) >= STATE_MACHINE_MAX
