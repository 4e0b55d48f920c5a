"""The control plane's settings: one model, read from the environment.

`.chalice/config.json` sets these variables per stage (local, dev, prod); the
tests and the embedded local mode set them the same way. Every handler reads
them through `Settings.from_env()` so nothing else touches `os.environ`.
"""

from __future__ import annotations

import os
import re
from typing import Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flowplane.archive import MAX_UNPACKED_CEILING

ENV_PREFIX = "FLOWPLANE_"
# Defined once: resource_names.py builds on it, and jobs carry it as their stage (compiler/settings.py).
RESOURCE_PREFIX_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"
_PREFIX = re.compile(RESOURCE_PREFIX_PATTERN)
MB = 1024 * 1024


class SettingsError(RuntimeError):
    """The stage is misconfigured; the message names the environment variable."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str = "local"
    region: str = "us-east-1"
    bucket: str
    table: str
    # Foreach cardinalities (keyed by `pathspec`, see flowplane/foreach_cardinality.py),
    # read only by state machines compiled before foreaches became Distributed Maps
    # (which read the item list from S3); kept until those are redeployed.
    # `<table>-foreach` unless set.
    foreach_table: Optional[str] = None
    # A foreach join's inputs, put by the tasks ending its body (flowplane/join_inputs.py).
    # `<table>-inputs` unless set.
    join_inputs_table: Optional[str] = None
    # The EventBridge bus tasks put their events on (None: the default bus).
    event_bus: Optional[str] = None
    job_queue: str
    job_definition: str
    # The role Step Functions runs as; resource_names.states_role_name in this account unless set.
    sfn_role_arn: Optional[str] = None
    # The role EventBridge Scheduler invokes the launcher as (zoned schedules);
    # resource_names.scheduler_role_name in this account unless set.
    scheduler_role_arn: Optional[str] = None
    # The launcher Lambda schedules target; Chalice names it `flowplane-<stage>-launch`.
    launcher_arn: Optional[str] = None
    # The account, when no ARN above names it (None: asked of STS once per cold start).
    account: Optional[str] = None
    # Where tasks keep artifacts; s3://<bucket>/data unless set.
    datastore_root: Optional[str] = None
    # What names this stage's state machines and schedule rules (chalicelib/resource_names.py), so
    # stages sharing an account and region keep apart; `flowplane-<stage>` unless set (the
    # stack sets its own name). 40 characters at most: names keep room after it.
    resource_prefix: Optional[str] = Field(None, pattern=_PREFIX.pattern)

    # Images `@batch(image=...)` may name: comma-separated prefixes (registries or
    # repositories, e.g. "123456789012.dkr.ecr.us-east-1.amazonaws.com/ml/,python:");
    # empty: steps run only on the stage's own job definition (chalicelib/deploy/job_definitions.py).
    allowed_images: str = ""
    # `@secrets`: the names the task role may read (`<resource prefix>/` unless set); the
    # stack's JobRole grants secretsmanager:GetSecretValue on exactly these (chalicelib/deploy/secrets_check.py).
    secrets_prefix: Optional[str] = None

    max_package_bytes: int = Field(50 * MB, gt=0)
    # Unpacked size cap, so a small gzip bomb cannot exhaust the Lambda (a package may also
    # unpack to at most 100 times its size, flowplane/archive.py). Tasks unpack with the
    # ceiling, so they never refuse what this stage accepted.
    max_unpacked_bytes: int = Field(500 * MB, gt=0, le=MAX_UNPACKED_CEILING)
    presign_expiry_seconds: int = Field(900, ge=60, le=7 * 24 * 3600)
    # "state_machine": executions start on the state machine ARN, whose current definition
    # is always the production one (works on AWS and moto). "alias": on the production
    # alias (AWS only; moto cannot start executions on aliases).
    execution_target: Literal["state_machine", "alias"] = "state_machine"
    # How long the control plane remembers an idempotency key's answer (chalicelib/idempotency.py):
    # a retry within it gets the first answer; DynamoDB's TTL removes the record after it.
    idempotency_ttl_seconds: int = Field(24 * 3600, ge=1, le=30 * 24 * 3600)
    # On AWS a rule needs a resource policy on the launcher; moto has no launcher function.
    grant_launcher_permission: bool = False

    @property
    def allowed_image_prefixes(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.allowed_images.split(",") if p.strip())

    @model_validator(mode="after")
    def _defaults(self) -> "Settings":
        if self.foreach_table is None:
            object.__setattr__(self, "foreach_table", f"{self.table}-foreach")
        if self.join_inputs_table is None:
            object.__setattr__(self, "join_inputs_table", f"{self.table}-inputs")
        if self.datastore_root is None:
            object.__setattr__(self, "datastore_root", f"s3://{self.bucket}/data")
        if self.resource_prefix is None:
            prefix = f"flowplane-{self.stage}"
            if not _PREFIX.match(prefix):
                raise ValueError(
                    f"the stage {self.stage!r} makes the resource prefix {prefix!r}, which must be 1-40 letters, "
                    "digits, '-' or '_': choose a shorter stage name or set FLOWPLANE_RESOURCE_PREFIX"
                )
            object.__setattr__(self, "resource_prefix", prefix)
        if self.secrets_prefix is None:
            object.__setattr__(self, "secrets_prefix", f"{self.resource_prefix}/")
        return self

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Settings":
        env = os.environ if env is None else env
        values: dict[str, str] = {}
        for name in cls.model_fields:
            key = ENV_PREFIX + name.upper()
            if key in env and env[key] != "":
                values[name] = env[key]
        if "region" not in values:
            region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
            if region:
                values["region"] = region
        try:
            return cls(**values)
        except ValidationError as e:
            problems = "; ".join(
                f"{ENV_PREFIX}{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in e.errors()
            )
            raise SettingsError(f"control plane settings are invalid: {problems}") from None
