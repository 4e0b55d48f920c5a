"""Every key of the control plane's single table (chalicelib/TABLE.md), built here only.

The deploy path, the recorder, the reconciler, the idempotency layer and the
Client API's reads all address the same items; each builds their keys through
this module, so a key's shape is defined once. A leaf: every Lambda imports it.
"""

from __future__ import annotations

import re
from typing import Optional

from flowplane.datastore.layout import indices_of

# Sparse global secondary indexes (bootstrap.py creates them).
BY_TIME = "GSI1"  # GSI1PK = RUNS#<flow>, GSI1SK = <created_at>#<run_id>
BY_STATUS = "GSI2"  # GSI2PK = STATUS#<flow>#<status>[#TAG#<tag>], GSI2SK as GSI1SK
INDEX_KEYS = {
    None: ("PK", "SK"),
    BY_TIME: ("GSI1PK", "GSI1SK"),
    BY_STATUS: ("GSI2PK", "GSI2SK"),
}

# Names become parts of keys, where `#` and `/` separate them: anything else is refused.
FLOW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")
RUN_ID = re.compile(r"^[^#/\s\x00-\x1f\x7f]{1,128}$")
TASK_ID = re.compile(r"^1(\.(0|[1-9][0-9]{0,7}))*$")
# Width of each foreach index in a task's sort key, so tasks list in index order.
INDEX_WIDTH = 8

# --- a deployment name's partition: its head, versions and runs --------------------

FLOW_PREFIX = "FLOW#"
# The deployment head's sort key: which published version is production.
HEAD_SK = "FLOW"
VERSION_PREFIX = "VERSION#"


def flow_pk(name: str) -> str:
    """A deployment's head and versions, and a flow's runs (deployment and flow names share it)."""
    return FLOW_PREFIX + name


def version_sk(version: int) -> str:
    return f"{VERSION_PREFIX}{version:08d}"


def run_sk(run_id: str) -> str:
    return f"RUN#{run_id}"


# A scheduled deployment's pause switch (chalicelib/deploy/pausing.py): apart from the head, so
# pausing never races a deploy's conditional head write, and a redeploy reads it to keep the state.
SCHEDULE_STATE_SK = "SCHEDULE_STATE"
# A backfill's progress (chalicelib/runs/backfill.py), one per deployment and range.
BACKFILL_PREFIX = "BACKFILL#"


def backfill_sk(start: str, end: str) -> str:
    return f"{BACKFILL_PREFIX}{start}#{end}"


# A deployment's run-end notifications (chalicelib/notifications/config.py), and the runs
# notified already (NOTIFIED#<run id>: one message per run end, however often it is announced).
NOTIFY_SK = "NOTIFY"
NOTIFIED_PREFIX = "NOTIFIED#"


def notified_sk(run_id: str) -> str:
    return f"{NOTIFIED_PREFIX}{run_id}"


# The triggers a deployment refused (a payload value its parameter cannot take), newest last.
REFUSED_TRIGGER_PREFIX = "REFUSED_TRIGGER#"


def refused_trigger_sk(at: str, cause_id: str) -> str:
    return f"{REFUSED_TRIGGER_PREFIX}{at}#{cause_id}"


# A triggered deployment's waiting events (chalicelib/triggers/store.py): a partition of its
# own, so that the API, which deletes it with the deployment, may delete nothing of FLOW#.
TRIGGER_STATE_PREFIX = "TRIGGERS#"
TRIGGER_STATE_SK = "STATE"


def trigger_state_pk(deployment: str) -> str:
    return TRIGGER_STATE_PREFIX + deployment


# Which deployments start when which flows finish: one partition, read whole to refuse a
# deploy that would close a loop of @trigger_on_finish flows.
FINISH_TRIGGERS_PK = "FINISH_TRIGGERS"


def finish_triggers_sk(deployment: str) -> str:
    return FLOW_PREFIX + deployment


# --- deployments and the packages they wait for ------------------------------------

DEPLOYMENT_PREFIX = "DEPLOYMENT#"
DEPLOYMENT_SK = "DEPLOYMENT"


def deployment_pk(deployment_id: str) -> str:
    return DEPLOYMENT_PREFIX + deployment_id


def package_pk(sha256: str) -> str:
    return f"PACKAGE#{sha256}"


def package_link_sk(created_at: str, deployment_id: str) -> str:
    """Time first: the compile function takes a package's waiting deployments in upload order."""
    return f"{DEPLOYMENT_PREFIX}{created_at}#{deployment_id}"


STATE_MACHINE_SK = "STATE_MACHINE"


def state_machine_pk(state_machine: str) -> str:
    """A shortened state machine name's item, naming its deployment (see chalicelib/resource_names.py)."""
    return f"STATE_MACHINE#{state_machine}"


# --- the flow directory -------------------------------------------------------------

FLOWS_PK = "FLOWS"


def flow_entry_sk(flow: str) -> str:
    return FLOW_PREFIX + flow


# --- run records ----------------------------------------------------------------------


def run_records_pk(flow: str, run_id: str) -> str:
    """The partition holding a run's steps, tasks and artifact indexes."""
    return f"RUN#{flow}/{run_id}"


def runs_by_time_pk(flow: str) -> str:
    return f"RUNS#{flow}"


def time_sk(created_at: str, run_id: str) -> str:
    return f"{created_at}#{run_id}"


def status_pk(flow: str, status: str, tag: Optional[str] = None) -> str:
    base = f"STATUS#{flow}#{status}"
    return f"{base}#TAG#{tag}" if tag is not None else base


def tag_pk(flow: str, tag: str) -> str:
    return f"TAG#{flow}#{tag}"


STEP_PREFIX = "STEP#"


def step_sk(step: str) -> str:
    return STEP_PREFIX + step


def task_order(task_id: str) -> str:
    """`1`, `1.3`, `1.3.0` -> a sort key in foreach order (1.2 before 1.10)."""
    indices = indices_of(task_id)
    return ".".join(["1", *(f"{i:0{INDEX_WIDTH}d}" for i in indices)])


def task_prefix(step: str) -> str:
    return f"TASK#{step}#"


def task_sk(step: str, task_id: str) -> str:
    return task_prefix(step) + task_order(task_id)


FAILED_TASK_PREFIX = "FAILED#"


def failed_task_sk(step: str, task_id: str) -> str:
    """A task whose latest attempt failed (a marker; the task's own item says if it still has)."""
    return f"{FAILED_TASK_PREFIX}{step}#{task_order(task_id)}"


def step_artifacts_prefix(step: str) -> str:
    """Every artifact index of a step's tasks, in task order (`resume` reads a foreach's at once)."""
    return f"ARTIFACTS#{step}#"


def artifacts_prefix(step: str, task_id: str) -> str:
    return f"{step_artifacts_prefix(step)}{task_order(task_id)}#"


def artifacts_sk_task(sk: str) -> tuple[str, int]:
    """`ARTIFACTS#<step>#<order>#<attempt>` -> (task id, attempt)."""
    _, _, order, attempt = sk.split("#")
    return ".".join(str(int(part)) for part in order.split(".")), int(attempt)


def artifacts_sk(step: str, task_id: str, attempt: int) -> str:
    return artifacts_prefix(step, task_id) + f"{int(attempt):04d}"


# --- the control plane's own bookkeeping -----------------------------------------------

# One reconciler at a time (chalicelib/recording/reconcile.py).
LEASE_PK, LEASE_SK = "RECONCILER", "LEASE"
# Idempotency records: the partition key value and the prefix of the sort key, as
# Powertools' persistence layer is told them (chalicelib/idempotency.py).
IDEMPOTENCY_PK = "IDEMPOTENCY"
IDEMPOTENCY_KEY_PREFIX = "request"
