"""What the Client API reads runs through: one small interface, and the records it answers with.

`LocalProvider` (local.py) reads the datastore layout (a local folder or an S3
prefix) that local runs and production tasks write; `ServiceProvider` (service.py)
reads the control plane's HTTP API; `CombinedProvider` (combined.py) reads both as
one, as Metaflow shows local and production runs together. `get_provider()`
(selection.py) picks; the classes in core.py never know which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Optional, Protocol, runtime_checkable

from ..datastore.artifacts import ArtifactRef
from ..datastore.records import AttemptRecord, RunRecord, TaskRecord

LogStream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class DeploymentInfo:
    """A flow's production deployment as the control plane keeps it (`Flow.deployment`)."""

    version: Optional[int]
    deployer: Optional[str]
    deployed_at: Optional[str]  # ISO 8601
    namespace: Optional[str]  # production:<token>, None once deleted
    schedule: Optional[str]  # the EventBridge expression, cron(...) or rate(...)
    # The IANA zone a cron schedule fires in (@schedule(timezone=...)); None: UTC.
    timezone: Optional[str] = field(default=None, compare=False, hash=False)
    # The deployed @trigger and @trigger_on_finish ({"trigger": ..., "trigger_on_finish": ...}).
    triggers: Optional[dict[str, Any]] = field(default=None, compare=False, hash=False)
    deleted: bool = False


@dataclass(frozen=True)
class FlowInfo:
    name: str
    created_at: str  # ISO 8601: the first run's creation
    # Only a single flow's read (get_flow) through a control plane knows it; None otherwise.
    deployment: Optional[DeploymentInfo] = None


# One page of a flow's runs, newest first, and the token of the next (None: the last page).
RunsPage = tuple[list[RunRecord], Optional[str]]


@dataclass(frozen=True)
class StepInfo:
    flow: str
    run_id: str
    step: str
    created_at: str  # ISO 8601: its first task's creation
    task_count: Optional[int] = None  # None where counting would read every task (the control plane)


@runtime_checkable
class Provider(Protocol):
    """Reads only. Getters return None for what does not exist; lists return []."""

    def describe(self) -> str:
        """Where the data comes from, as `kind@location` (Metaflow's get_metadata())."""
        ...

    def list_flows(self) -> list[FlowInfo]: ...

    def get_flow(self, flow: str) -> Optional[FlowInfo]: ...

    def list_runs(self, flow: str, namespace_tag: Optional[str] = None,
                  limit: Optional[int] = None) -> list[RunRecord]:
        """Runs newest first; only those carrying `namespace_tag` when given."""
        ...

    def get_run(self, flow: str, run: str) -> Optional[RunRecord]: ...

    def list_steps(self, flow: str, run: str) -> list[StepInfo]: ...

    def get_step(self, flow: str, run: str, step: str) -> Optional[StepInfo]: ...

    def list_tasks(self, flow: str, run: str, step: str) -> list[TaskRecord]: ...

    def iter_tasks(self, flow: str, run: str, step: str) -> Iterator[TaskRecord]:
        """The step's tasks in foreach index order, read a page at a time as they are iterated."""
        ...

    def get_task(self, flow: str, run: str, step: str, task: str) -> Optional[TaskRecord]: ...

    def list_attempts(self, flow: str, run: str, step: str, task: str) -> list[AttemptRecord]:
        """Attempts in order 0, 1, 2..."""
        ...

    def artifact_index(self, flow: str, run: str, step: str, task: str,
                       attempt: int) -> dict[str, ArtifactRef]: ...

    def load_artifact(self, flow: str, sha: str) -> Any:
        """The value, unpickled from a stream (never the whole blob held twice)."""
        ...

    def logs(self, flow: str, run: str, step: str, task: str, attempt: int,
             stream: LogStream) -> str: ...

    def list_cards(self, flow: str, run: str, step: str, task: str, attempt: int) -> list[Any]:
        """The attempt's @card pages (flowplane.cards.store.StoredCard), in the step's order."""
        ...


# Optional beside the interface (a provider without it is paged by Flow.runs_page itself):
#   runs_page(flow, namespace_tag=None, tag=None, status=None, limit=50, token=None) -> RunsPage
# one page of runs carrying both tags, of that status, from the opaque `token` of the page before,
# at most one request to a control plane.
