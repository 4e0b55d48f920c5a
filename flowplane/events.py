"""Events a task puts on the EventBridge bus, and the control plane records.

The task runtime (on Batch) emits them; the recorder Lambda parses them with
these same models, so the two cannot drift.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from .datastore.records import ErrorInfo
# The source too: the task's sender (flowplane/task_events.py) takes it from here with the models.
from .event_types import TASK_EVENT_DETAIL_TYPES

# The job's stage, as its control plane's resource prefix (the setting of the same
# name), set by the compiled state machine and sent back on every task event so each
# stage records only its own. (FLOWPLANE_STAGE is the control plane's stage name.)
STAGE_ENV = "FLOWPLANE_RESOURCE_PREFIX"


class ArtifactEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha: str
    size: int
    type: str


class TaskEvent(BaseModel):
    """One attempt of one task changing state."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["started", "finished", "failed"]
    flow: str
    run_id: str
    step: str
    task_id: str
    attempt: int = Field(ge=0)
    at: str  # ISO-8601 UTC time of the change, from the task's clock
    foreach_indices: list[int] = Field(default_factory=list)
    # On `finished`: the attempt's artifact index (name -> content address).
    artifacts: Optional[dict[str, ArtifactEntry]] = None
    # On `failed`: what went wrong.
    error: Optional[ErrorInfo] = None
    # The Batch job running the attempt, to join with Batch's own events.
    batch_job_id: Optional[str] = None
    # The stage that ran it (STAGE_ENV); None from tasks compiled before stages were marked.
    stage: Optional[str] = None

    @property
    def detail_type(self) -> str:
        return TASK_EVENT_DETAIL_TYPES[self.kind]

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}/{self.step}/{self.task_id}"
