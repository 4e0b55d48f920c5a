"""What a stage tells the compiler: where jobs run, where data lives.

Batch cannot change a job's image at submit time (ContainerOverrides has no
image field), so an image other than the job definition's needs its own job
definition: whoever registers it passes it per step in `step_job_definitions`.
"""

from __future__ import annotations

import re
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..settings import RESOURCE_PREFIX_PATTERN

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
# Batch accepts a name or an ARN for both; names as in the Batch API reference.
_BATCH_ARN = re.compile(
    r"^arn:aws[a-z-]*:batch:(?P<region>[a-z0-9-]+):\d{12}:(?P<kind>job-queue|job-definition)/"
    r"(?P<name>[A-Za-z0-9_-]{1,128})(:\d+)?$"
)
_BATCH_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}(:\d+)?$")
_BUS = re.compile(
    r"^[A-Za-z0-9/._-]{1,256}$|^arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/[A-Za-z0-9/._-]{1,256}$"
)
_S3_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")


def _batch_ref(value: str, kind: str, field: str) -> str:
    m = _BATCH_ARN.match(value)
    if m:
        if m["kind"] != kind:
            raise ValueError(f"{field}: expected a {kind} ARN, got a {m['kind']} ARN: {value!r}")
        return value
    if not _BATCH_NAME.match(value):
        raise ValueError(f"{field}: not a Batch {kind} name or ARN: {value!r}")
    return value


class CompileSettings(BaseModel):
    """A stage's settings; everything in here ends up in the state machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_queue: str = Field(description="Batch job queue, name or ARN")
    job_definition: str = Field(description="Batch job definition for every step, name or ARN")
    step_job_definitions: dict[str, str] = Field(
        default_factory=dict,
        description="step name -> job definition (e.g. one registered for a custom image)",
    )
    datastore_root: str = Field(description="s3://bucket/prefix where tasks keep artifacts")
    region: str
    event_bus: Optional[str] = Field(None, description="EventBridge bus for task events")
    join_inputs_table: Optional[str] = Field(
        None, description="DynamoDB table of foreach joins' inputs (flowplane/join_inputs.py)"
    )
    production_token: Optional[str] = Field(
        None, description="the deployment's production token: runs are tagged production:<token>"
    )
    stage: Optional[str] = Field(
        None,
        pattern=RESOURCE_PREFIX_PATTERN,
        description="the stage's resource prefix, which its jobs carry so its recorder knows them",
    )

    @field_validator("job_queue")
    @classmethod
    def _queue(cls, v: str) -> str:
        return _batch_ref(v, "job-queue", "job_queue")

    @field_validator("job_definition")
    @classmethod
    def _definition(cls, v: str) -> str:
        return _batch_ref(v, "job-definition", "job_definition")

    @field_validator("step_job_definitions")
    @classmethod
    def _step_definitions(cls, v: dict[str, str]) -> dict[str, str]:
        for step, ref in v.items():
            _batch_ref(ref, "job-definition", f"step_job_definitions[{step!r}]")
        return v

    @field_validator("datastore_root")
    @classmethod
    def _root(cls, v: str) -> str:
        if not _S3_URL.match(v):
            raise ValueError(f"datastore_root must be an s3://bucket[/prefix] URL, got {v!r}")
        return v.rstrip("/")

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not _REGION.match(v):
            raise ValueError(f"region is not an AWS region name: {v!r}")
        return v

    @field_validator("event_bus")
    @classmethod
    def _bus(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not _BUS.match(v):
            raise ValueError(f"event_bus is not an EventBridge bus name or ARN: {v!r}")
        return v

    @model_validator(mode="after")
    def _same_region(self) -> "CompileSettings":
        # A queue in another region would only fail when the first job is submitted.
        refs = {"job_queue": self.job_queue, "job_definition": self.job_definition}
        refs.update({f"step_job_definitions[{s!r}]": r for s, r in self.step_job_definitions.items()})
        for field, ref in refs.items():
            m = _BATCH_ARN.match(ref)
            if m and m["region"] != self.region:
                raise ValueError(f"{field} is in region {m['region']}, the stage is in {self.region}")
        return self

    def job_definition_for(self, step: str) -> str:
        return self.step_job_definitions.get(step, self.job_definition)
