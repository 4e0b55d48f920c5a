"""The contract between the SDK and the control plane, defined once.

Everything the control plane learns about a flow travels in a `Manifest`: the
graph (read from source with `ast`), the step decorators, the parameters with
their deploy-time defaults already evaluated on the client, and the deploy
options. The SDK builds it, the compile Lambda validates it, and the JSON
Schema (`manifest_json_schema()`) documents it for anyone else.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import limits, projects
from .event_types import EVENT_NAME_PATTERN

MANIFEST_FORMAT = 1
VERSION_RE = re.compile(r"^\d{1,6}\.\d{1,6}\.\d{1,6}([.+-][0-9A-Za-z.+-]{0,40})?$")

# Step names that would shadow FlowSpec machinery or Metaflow's reserved words.
RESERVED_NAMES = frozenset(
    {
        "next",
        "input",
        "index",
        "foreach_stack",
        "merge_artifacts",
        "name",
        "script_name",
        "cmd",
        "params",
        "tags",
        "user",
        "namespace",
        "run_id",
        "task_id",
        "retry_count",
        "parameters",
        "current",
    }
)


def describe_errors(e: "ValidationError") -> str:
    """A pydantic error as a person reads it: `where: what`, one per fault, `; ` between."""
    return "; ".join(
        (f"{'.'.join(str(p) for p in err['loc'])}: " if err["loc"] else "")
        + err["msg"].removeprefix("Value error, ")
        for err in e.errors()
    )


class _Strict(BaseModel):
    # defer_build: schemas are built on first use, not at import (Lambda cold starts, task start-up).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# --- decorators ------------------------------------------------------------


class RetrySpec(_Strict):
    """`@retry`: re-run a failed task; Metaflow's defaults."""

    kind: Literal["retry"] = "retry"
    times: int = Field(3, ge=0, le=20)
    minutes_between_retries: int = Field(2, ge=0, le=24 * 60)


class CatchSpec(_Strict):
    """`@catch`: a failed task stores its exception in `var` and the flow goes on."""

    kind: Literal["catch"] = "catch"
    var: Optional[str] = None
    print_exception: bool = True

    @field_validator("var")
    @classmethod
    def _identifier(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.isidentifier():
            raise ValueError(f"var must be a Python identifier, got {v!r}")
        return v


class TimeoutSpec(_Strict):
    """`@timeout`: the three fields add up, as in Metaflow."""

    kind: Literal["timeout"] = "timeout"
    seconds: int = Field(0, ge=0)
    minutes: int = Field(0, ge=0)
    hours: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _positive(self) -> "TimeoutSpec":
        if self.total_seconds <= 0:
            raise ValueError("@timeout needs a positive seconds, minutes or hours")
        return self

    @property
    def total_seconds(self) -> int:
        return self.seconds + 60 * self.minutes + 3600 * self.hours


class ResourcesSpec(_Strict):
    """`@resources`: what a Batch job asks for (memory in MB, as Metaflow)."""

    kind: Literal["resources"] = "resources"
    cpu: float = Field(1, gt=0, le=256)
    memory: int = Field(4096, ge=128)
    gpu: int = Field(0, ge=0, le=16)


class BatchSpec(_Strict):
    """`@batch`: run on AWS Batch with these resources (as @resources, the larger of both
    wins), in `image` (a job definition the control plane registers per image) and `queue`.

    Locally it is recorded and the step runs as a local process, as Metaflow does
    without `--with batch`.
    """

    kind: Literal["batch"] = "batch"
    cpu: float = Field(1, gt=0, le=256)
    memory: int = Field(4096, ge=128)
    gpu: int = Field(0, ge=0, le=16)
    image: Optional[str] = Field(None, min_length=1, max_length=255)
    queue: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9_-]{1,128}$|^arn:aws[a-z-]*:batch:[a-z0-9-]+:\d{12}:job-queue/[A-Za-z0-9_-]{1,128}$")
    # MiB of /dev/shm: a job definition setting (Batch cannot override it per job).
    shared_memory: Optional[int] = Field(None, ge=1)

    @field_validator("image")
    @classmethod
    def _image(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and (v != v.strip() or any(c.isspace() for c in v)):
            raise ValueError(f"image must be an image reference without spaces, got {v!r}")
        return v


# Variables the runtime itself sets: a step must not change what its task runs with.
_RESERVED_ENV_PREFIXES = ("FLOWPLANE_", "AWS_BATCH_")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class EnvironmentSpec(_Strict):
    """`@environment(vars={...})`: set in the task's environment, locally and on Batch."""

    kind: Literal["environment"] = "environment"
    vars: dict[str, str] = Field(default_factory=dict)

    @field_validator("vars", mode="before")
    @classmethod
    def _vars(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            raise ValueError("vars must be a dict of NAME -> value")
        out = {}
        for name, value in v.items():
            check_env_name(name)
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ValueError(f"{name!r}: the value must be a string (or a number), got {type(value).__name__}")
            out[name] = str(value)
        return out


# A Secrets Manager secret's name (its allowed characters) or its ARN.
_SECRET_SOURCE = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$|^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$")


class SecretsSpec(_Strict):
    """`@secrets(sources=[...])`: AWS Secrets Manager secrets (JSON objects) whose keys and
    values are set in the task's environment when it starts (flowplane/task/secrets.py)."""

    kind: Literal["secrets"] = "secrets"
    sources: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: list[str]) -> list[str]:
        for source in v:
            if not _SECRET_SOURCE.match(source):
                raise ValueError(f"{source!r} is not a Secrets Manager secret name or ARN")
        if len(set(v)) != len(v):
            raise ValueError("a secret is named twice")
        return v


def secret_name(source: str) -> str:
    """The secret's name, whether given by name or by ARN (whose name ends with AWS's 6-character suffix)."""
    if source.startswith("arn:"):
        return source.split(":secret:", 1)[1]
    return source


def check_env_name(name: Any) -> str:
    """An environment variable a step may set (@environment, @secrets); else a ValueError naming it."""
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name")
    if name.startswith(_RESERVED_ENV_PREFIXES):
        raise ValueError(f"{name!r}: variables starting with {' or '.join(_RESERVED_ENV_PREFIXES)} are the runtime's")
    return name


# The card types this SDK renders (flowplane/cards/render.py); Metaflow's custom card
# modules are not loaded, since a card type is code and the control plane runs none.
CARD_TYPES = ("default", "blank")


class CardSpec(_Strict):
    """`@card(type="default", id=None, options={}, timeout=45)`: an HTML report of the task,
    rendered in the task process after the step succeeds and stored with its attempt."""

    kind: Literal["card"] = "card"
    type: Literal["default", "blank"] = "default"
    # Metaflow's CARD_ID_PATTERN: the id names the card in `current.card[id]` and file names.
    id: Optional[str] = Field(None, pattern=r"^[a-zA-Z0-9_]{1,80}$")
    options: dict[str, Any] = Field(default_factory=dict)
    timeout: int = Field(45, ge=1, le=3600)

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, v: Any) -> Any:
        if v not in CARD_TYPES:
            raise ValueError(f"unknown card type {v!r} (this SDK renders {' and '.join(map(repr, CARD_TYPES))})")
        return v

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(v, default=str)) > 4096:
            raise ValueError("options must be at most 4 KB as JSON")
        return v


# Kinds a step may carry more than once (Metaflow: several @card, told apart by id).
REPEATABLE_DECORATORS = frozenset({"card"})


def check_repeated(kind: str, existing: list[Any], spec: Any) -> Optional[str]:
    """Why `spec` cannot join the step's `existing` decorators, or None: one of each kind,
    except cards, which must not share an id."""
    same = [d for d in existing if getattr(d, "kind", None) == kind]
    if not same:
        return None
    if kind not in REPEATABLE_DECORATORS:
        return f"@{kind} is given twice"
    card_id = getattr(spec, "id", None)
    if card_id is not None and any(getattr(d, "id", None) == card_id for d in same):
        return f"two @card decorators have id {card_id!r}"
    return None


# --- dependencies: @pypi / @conda (flowplane/environments/ resolves and builds them) ---

# PEP 508 names, optionally with extras (`requests[socks]`).
_PACKAGE_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._,-]+\])?$")
# Metaflow's version strings: a bare version means `==`; or PEP 440 specifiers (`>=1.2,<2`).
_BARE_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!*_-]*$")
_SPECIFIERS = re.compile(r"^\s*(===|==|!=|~=|<=|>=|<|>)\s*[0-9A-Za-z.+!*_-]+\s*(,\s*(===|==|!=|~=|<=|>=|<|>)\s*[0-9A-Za-z.+!*_-]+\s*)*$")
# `python=`: the major.minor (a micro version is accepted and matched on major.minor).
_PYTHON_VERSION = re.compile(r"^3\.(\d{1,2})(\.\d{1,3})?$")


def requirement_line(name: str, version: str) -> str:
    """One `packages={name: version}` entry as a requirement uv reads (Metaflow's meaning)."""
    version = version.strip()
    if not version:
        return name
    if _BARE_VERSION.match(version):
        return f"{name}=={version}"
    return f"{name}{version}"


def _check_packages(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a dict of package name -> version")
    out: dict[str, str] = {}
    for name, version in value.items():
        if not isinstance(name, str) or not _PACKAGE_NAME.match(name):
            if isinstance(name, str) and "::" in name:
                raise ValueError(
                    f"{name!r}: conda channels (channel::package) are not supported: @conda packages are "
                    "resolved from the Python package index as wheels (README, 'Dependencies')"
                )
            raise ValueError(f"{name!r} is not a package name")
        if isinstance(version, (int, float)) and not isinstance(version, bool):
            version = str(version)
        if not isinstance(version, str):
            raise ValueError(f"{name!r}: the version must be a string such as '2.2.2' or '>=2,<3'")
        if version.strip() and not (_BARE_VERSION.match(version.strip()) or _SPECIFIERS.match(version)):
            raise ValueError(
                f"{name!r}: {version!r} is not a version ('2.2.2') or version specifiers ('>=2.0,<3'); "
                "URLs and environment markers are not supported"
            )
        if name.split("[")[0].lower() == "python":
            raise ValueError("give the Python version with python=..., not as a package")
        out[name] = version.strip()
    return out


def _check_python(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not _PYTHON_VERSION.match(value.strip()):
        raise ValueError(
            f"python={value!r}: give a Python 3 version such as '3.11' (ranges are not supported: "
            "an environment is built from one interpreter)"
        )
    return value.strip()


class _DependencySpec(_Strict):
    packages: dict[str, str] = Field(default_factory=dict)
    python: Optional[str] = None
    disabled: Optional[bool] = None

    @field_validator("packages", mode="before")
    @classmethod
    def _packages(cls, v: Any) -> dict[str, str]:
        return _check_packages(v, "packages")

    @field_validator("python", mode="before")
    @classmethod
    def _python(cls, v: Any) -> Optional[str]:
        return _check_python(v)

    @property
    def requirements(self) -> dict[str, str]:
        return dict(self.packages)


class PypiSpec(_DependencySpec):
    """`@pypi(packages={"pandas": "2.2.2"}, python="3.11", disabled=False)`: the step runs in an
    environment with exactly these packages (wheels from the package index), added to @pypi_base's."""

    kind: Literal["pypi"] = "pypi"


class CondaSpec(_DependencySpec):
    """`@conda(packages=..., libraries=..., python=..., disabled=...)`: as Metaflow's signature;
    resolved as @pypi is (wheels from the package index), `libraries` merged under `packages`."""

    kind: Literal["conda"] = "conda"
    libraries: dict[str, str] = Field(default_factory=dict)

    @field_validator("libraries", mode="before")
    @classmethod
    def _libraries(cls, v: Any) -> dict[str, str]:
        return _check_packages(v, "libraries")

    @property
    def requirements(self) -> dict[str, str]:
        return {**self.libraries, **self.packages}


class PypiBaseSpec(_DependencySpec):
    """`@pypi_base(...)` on the flow: the packages every step's environment starts from."""

    lineno: int = 0


class CondaBaseSpec(_DependencySpec):
    """`@conda_base(...)` on the flow, as @pypi_base (Metaflow's `libraries` accepted)."""

    libraries: dict[str, str] = Field(default_factory=dict)
    lineno: int = 0

    @field_validator("libraries", mode="before")
    @classmethod
    def _libraries(cls, v: Any) -> dict[str, str]:
        return _check_packages(v, "libraries")

    @property
    def requirements(self) -> dict[str, str]:
        return {**self.libraries, **self.packages}


StepDecoratorSpec = Annotated[
    Union[
        RetrySpec, CatchSpec, TimeoutSpec, ResourcesSpec, BatchSpec, EnvironmentSpec, SecretsSpec, CardSpec,
        PypiSpec, CondaSpec,
    ],
    Field(discriminator="kind"),
]
STEP_DECORATORS = {
    "retry": RetrySpec,
    "catch": CatchSpec,
    "timeout": TimeoutSpec,
    "resources": ResourcesSpec,
    "batch": BatchSpec,
    "environment": EnvironmentSpec,
    "secrets": SecretsSpec,
    "card": CardSpec,
    "pypi": PypiSpec,
    "conda": CondaSpec,
}


class ScheduleSpec(_Strict):
    """`@schedule` on the flow class, mapped as Metaflow maps it."""

    hourly: bool = False
    daily: bool = True
    weekly: bool = False
    cron: Optional[str] = None
    # An IANA zone: the schedule fires in it through EventBridge Scheduler (chalicelib/deploy/schedules.py);
    # an unknown one is lint's `schedule-timezone`, and the control plane's 400.
    timezone: Optional[str] = None
    lineno: int = 0  # the decorator's line in the flow's file (lint names it)

    @property
    def expression(self) -> Optional[str]:
        """The EventBridge schedule expression: cron wins, then weekly, hourly, daily.

        As in Metaflow, `@schedule(daily=False)` with nothing else means no schedule.
        """
        if self.cron:
            return f"cron({self.cron.strip()})"
        if self.weekly:
            return "cron(0 0 ? * SUN *)"
        if self.hourly:
            return "cron(0 * * * ? *)"
        if self.daily:
            return "cron(0 0 * * ? *)"
        return None


# --- triggers ------------------------------------------------------------------

FLOW_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,79}$"
MAX_TRIGGER_EVENTS = 20
# The only option `options=` takes: start on each event rather than once all have arrived.
TRIGGER_OPTIONS = ("any",)


class EventTriggerSpec(_Strict):
    """One event of `@trigger`: its name, and which payload field sets which parameter."""

    name: str = Field(pattern=EVENT_NAME_PATTERN)
    # flow parameter -> payload field
    parameters: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _metaflow_forms(cls, value: Any) -> Any:
        # Metaflow's forms: "name", {"name": ..., "parameters": {...}} or a list mixing names
        # (same field name) and (parameter, field) pairs.
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and isinstance(value.get("parameters"), (list, tuple)):
            mapping: dict[str, Any] = {}
            for entry in value["parameters"]:
                if isinstance(entry, str):
                    mapping[entry] = entry
                elif isinstance(entry, (list, tuple)) and len(entry) == 2:
                    mapping[entry[0]] = entry[1]
                else:
                    raise ValueError(
                        f"parameters: {entry!r} is neither a name nor a (parameter, payload field) pair"
                    )
            return {**value, "parameters": mapping}
        return value


class FlowTriggerSpec(_Strict):
    """One upstream flow of `@trigger_on_finish`: its production runs that succeed start this one.

    Metaflow's forms: `"FirstFlow"`, `"project.branch.FirstFlow"` and
    `{"name": "FirstFlow", "project": ..., "project_branch": ...}`. An upstream flow named
    without its project is, inside a @project, the same project and branch's
    (`within`, at deploy), and outside one a flow deployed without @project.
    """

    name: str
    project: Optional[str] = None
    branch: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _metaflow_forms(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = {"name": value}
        if isinstance(value, dict):
            value = dict(value)
            if "project_branch" in value:
                value["branch"] = value.pop("project_branch")
            name = value.get("name")
            if isinstance(name, str) and "." in name:
                if name.count(".") < 2 or value.get("project") or value.get("branch"):
                    raise ValueError(
                        f"{name[:200]!r}: name the upstream flow as FlowName or as project.branch.FlowName"
                    )
                value["project"], value["branch"], value["name"] = projects.split_qualified(name)
        return value

    @field_validator("name")
    @classmethod
    def _flow_name(cls, v: str) -> str:
        if not re.match(FLOW_NAME_PATTERN, v):
            raise ValueError(f"{v[:80]!r} is not a flow's class name")
        return v

    @field_validator("project")
    @classmethod
    def _project(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else projects.check_name(v, "the upstream flow's project")

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not projects.BRANCH_RE.match(v):
            # A branch as deployed: user.<name>, test.<name>, prod or prod.<name>.
            raise ValueError(f"{v[:140]!r} is not a project branch (user.NAME, test.NAME, prod or prod.NAME)")
        return v

    @property
    def qualified(self) -> str:
        """`project.branch.Flow` when qualified, else the flow's class name: what its runs announce
        as `RunFinished.project_flow_name`."""
        if self.project and self.branch:
            return projects.qualified_name(self.project, self.branch, self.name)
        return self.name


def _one_or_many(kind: str, single: str, many: str, value: dict[str, Any]) -> dict[str, Any]:
    """`@trigger(event=...)` / `(events=[...])` (and the same for flows) as one list, plus options."""
    if not isinstance(value, dict):
        return value
    value = dict(value)
    one, several = value.pop(single, None), value.pop(many, None)
    if one is not None and several is not None:
        raise ValueError(f"give {single}= or {many}=, not both")
    if several is not None and not isinstance(several, (list, tuple)):
        raise ValueError(f"{many}= takes a list")
    items = [one] if one is not None else list(several or [])
    if not items:
        raise ValueError(f"{kind} needs {single}= or {many}=")
    options = value.pop("options", None) or {}
    if not isinstance(options, dict):
        raise ValueError("options= takes a dict")
    unknown = sorted(set(options) - set(TRIGGER_OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} (known: {', '.join(TRIGGER_OPTIONS)})")
    return {**value, many: items, "any": bool(options.get("any", value.pop("any", False)))}


def _refuse_repeated(what: str, names: list[str]) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} {repeated[0]!r} is named twice")


class TriggerSpec(_Strict):
    """`@trigger` on the flow class: the run starts once every event has arrived since the last
    run it started (Metaflow's rule), or on each of them with `options={"any": True}`."""

    events: list[EventTriggerSpec] = Field(min_length=1, max_length=MAX_TRIGGER_EVENTS)
    any: bool = False
    lineno: int = 0  # the decorator's line in the flow's file

    @model_validator(mode="before")
    @classmethod
    def _decorator_arguments(cls, value: Any) -> Any:
        return _one_or_many("@trigger", "event", "events", value)

    @model_validator(mode="after")
    def _distinct(self) -> "TriggerSpec":
        _refuse_repeated("event", [e.name for e in self.events])
        return self


class TriggerOnFinishSpec(_Strict):
    """`@trigger_on_finish` on the flow class: starts when the upstream flows' production runs
    (in the same namespace) have succeeded, all of them or, with `options={"any": True}`, any."""

    flows: list[FlowTriggerSpec] = Field(min_length=1, max_length=MAX_TRIGGER_EVENTS)
    any: bool = False
    lineno: int = 0  # the decorator's line in the flow's file

    @model_validator(mode="before")
    @classmethod
    def _decorator_arguments(cls, value: Any) -> Any:
        return _one_or_many("@trigger_on_finish", "flow", "flows", value)

    @model_validator(mode="after")
    def _distinct(self) -> "TriggerOnFinishSpec":
        _refuse_repeated("flow", [f.qualified for f in self.flows])
        return self

    def within(self, info: Optional["projects.ProjectInfo"]) -> "TriggerOnFinishSpec":
        """The upstream flows as the deployment listens to them: inside a @project, a flow named
        without project or branch takes the deployment's (as Metaflow's); outside one, a partly
        qualified flow (a project without its branch) is refused, since no run would match."""
        flows = []
        for f in self.flows:
            if info is not None:
                f = f.model_copy(update={"project": f.project or info.name, "branch": f.branch or info.branch})
            elif bool(f.project) != bool(f.branch):
                raise ValueError(
                    f"@trigger_on_finish: {f.name!r} names its project or its branch but not both, and this flow "
                    "has no @project to take the other from; give both, or project.branch.FlowName"
                )
            flows.append(f)
        return self.model_copy(update={"flows": flows})


# --- project -------------------------------------------------------------------


class ProjectSpec(_Strict):
    """`@project(name=..., branch=None, production=False)` on the flow class (flowplane/projects.py)."""

    name: str
    branch: Optional[str] = None
    production: bool = False
    lineno: int = 0  # the decorator's line in the flow's file

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return projects.check_name(v, "")

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else projects.check_name(v, "")


# --- graph -----------------------------------------------------------------

StepType = Literal["start", "linear", "split", "foreach", "join", "end"]


class StepSpec(_Strict):
    name: str
    type: StepType
    out_funcs: list[str] = Field(default_factory=list)
    in_funcs: list[str] = Field(default_factory=list)
    foreach_param: Optional[str] = None
    num_args: int = 1
    has_tail_next: bool = False
    invalid_tail_next: bool = False
    # The enclosing splits (static or foreach), outermost first.
    split_parents: list[str] = Field(default_factory=list)
    # For a split/foreach: the join that closes it.
    matching_join: Optional[str] = None
    decorators: list[StepDecoratorSpec] = Field(default_factory=list)
    lineno: int = 0
    tail_next_lineno: int = 0
    doc: Optional[str] = None

    def decorator(self, kind: str) -> Any:
        for d in self.decorators:
            if d.kind == kind:
                return d
        return None

    def compute_resources(self) -> Optional[ResourcesSpec]:
        """What the Batch job asks for: @resources and @batch, the larger of each (Metaflow's rule)."""
        given = [d for d in (self.decorator("resources"), self.decorator("batch")) if d is not None]
        if not given:
            return None
        return ResourcesSpec(
            cpu=max(d.cpu for d in given), memory=max(d.memory for d in given), gpu=max(d.gpu for d in given)
        )


class DependencyRequest(_Strict):
    """A step's environment as asked for, before it is resolved."""

    kind: Literal["pypi", "conda"] = "pypi"
    packages: dict[str, str] = Field(default_factory=dict)
    python: Optional[str] = None

    def requirement_lines(self) -> list[str]:
        return sorted(requirement_line(n, v) for n, v in self.packages.items())


class GraphSpec(_Strict):
    flow_name: str
    steps: dict[str, StepSpec]
    schedule: Optional[ScheduleSpec] = None
    trigger: Optional[TriggerSpec] = None
    trigger_on_finish: Optional[TriggerOnFinishSpec] = None
    project: Optional[ProjectSpec] = None
    pypi_base: Optional[PypiBaseSpec] = None
    conda_base: Optional[CondaBaseSpec] = None
    doc: Optional[str] = None

    def __getitem__(self, name: str) -> StepSpec:
        return self.steps[name]

    def __contains__(self, name: object) -> bool:
        return name in self.steps

    def __iter__(self):  # type: ignore[override]
        return iter(self.steps.values())

    def dependencies_of(self, step: str, isolated: bool = False) -> Optional["DependencyRequest"]:
        """What the step's environment must hold, Metaflow's rules: @pypi's packages over
        @pypi_base's (and @conda over @conda_base), the step's python= over the base's, its
        `disabled` over the base's. None: the step runs in the task's own environment (no
        decorator, or disabled). `isolated` (--environment=pypi|conda): a step without any
        decorator gets an environment too, holding no package of its own, as in Metaflow.
        A ValueError for a step that mixes PyPI and Conda packages (Metaflow refuses it too)."""
        node = self.steps[step]
        sides = []
        for kind, base in (("pypi", self.pypi_base), ("conda", self.conda_base)):
            own = node.decorator(kind)
            if own is None and base is None:
                continue
            disabled = own.disabled if own is not None and own.disabled is not None else (base.disabled if base else None)
            if disabled:
                return None
            packages = {**(base.requirements if base else {}), **(own.requirements if own else {})}
            python = (own.python if own is not None else None) or (base.python if base else None)
            sides.append((kind, packages, python))
        if not sides:
            return DependencyRequest(kind="pypi") if isolated else None
        with_packages = [s for s in sides if s[1]]
        if len(with_packages) > 1:
            raise ValueError(
                f"step {step!r}: mixing PyPI packages (@pypi/@pypi_base) and Conda packages (@conda/@conda_base) "
                "in one step is not supported (as in Metaflow); use one of them"
            )
        kind, packages, _ = with_packages[0] if with_packages else sides[0]
        # @pypi's python wins over @conda's (Metaflow's order).
        python = next((p for k, _, p in sorted(sides, key=lambda s: s[0] != "pypi") if p), None)
        return DependencyRequest(kind=kind, packages=packages, python=python)

    def sorted_steps(self) -> list[StepSpec]:
        """Steps in a breadth-first order from start (unreachable ones last)."""
        seen: list[str] = []
        frontier = ["start"] if "start" in self.steps else []
        while frontier:
            nxt = []
            for name in frontier:
                if name in seen or name not in self.steps:
                    continue
                seen.append(name)
                nxt.extend(self.steps[name].out_funcs)
            frontier = nxt
        rest = [n for n in self.steps if n not in seen]
        return [self.steps[n] for n in seen + rest]

    def with_decorators(self, specs: list["StepDecoratorSpec"]) -> "GraphSpec":
        """`--with`: attach each decorator to every step that lacks one of its kind."""
        if not specs:
            return self
        steps = {}
        for name, node in self.steps.items():
            kinds = {d.kind for d in node.decorators}
            extra = [d for d in specs if d.kind not in kinds]
            steps[name] = node.model_copy(update={"decorators": [*node.decorators, *extra]})
        return self.model_copy(update={"steps": steps})

    def structure(self) -> dict[str, Any]:
        """What the control plane compares between a manifest and the source."""
        return {
            "flow_name": self.flow_name,
            "schedule": self.schedule.model_dump(exclude={"lineno"}) if self.schedule else None,
            "trigger": self.trigger.model_dump() if self.trigger else None,
            "trigger_on_finish": self.trigger_on_finish.model_dump() if self.trigger_on_finish else None,
            "project": self.project.model_dump() if self.project else None,
            "pypi_base": self.pypi_base.model_dump() if self.pypi_base else None,
            "conda_base": self.conda_base.model_dump() if self.conda_base else None,
            "steps": {
                n: {
                    "type": s.type,
                    "out_funcs": s.out_funcs,
                    "foreach_param": s.foreach_param,
                    "decorators": [d.model_dump() for d in s.decorators],
                }
                for n, s in sorted(self.steps.items())
            },
        }


# --- parameters --------------------------------------------------------------

# "include": an IncludeFile, whose value is the descriptor of a file stored by content.
ParamType = Literal["str", "int", "float", "bool", "json", "include"]


class ParameterSpec(_Strict):
    name: str
    attribute: str  # the class attribute that holds it (self.<attribute>)
    type: ParamType = "str"
    help: Optional[str] = None
    required: bool = False
    # The default after deploy-time evaluation and type conversion; JSON-safe.
    default: Any = None
    has_default: bool = False
    # True when the default was computed from a deploy context.
    deploy_time: bool = False
    lineno: int = 0


# --- the manifest -------------------------------------------------------------


class DeployOptions(_Strict):
    max_workers: int = Field(100, ge=1, le=10000)
    tags: list[str] = Field(default_factory=list)
    name: Optional[str] = None
    # @project: the branch deployed (user.<name>, test.<name>, prod, prod.<name>), as resolved
    # from --branch/--production and the decorator on the client (flowplane/projects.py).
    branch: Optional[str] = Field(None, pattern=projects.BRANCH_RE.pattern)
    authorize: Optional[str] = None
    new_token: bool = False
    # Deploy a @trigger_on_finish flow even though it closes a loop of such flows (warned).
    allow_trigger_loop: bool = False
    # `--with` decorators, already applied to `graph`; kept for the server's check.
    with_decorators: list[StepDecoratorSpec] = Field(default_factory=list)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        # Every run is recorded once per tag, the tag in the key (flowplane/limits.py).
        limits.check_tags(tags)
        return tags


MAX_LOCK_BYTES = 256 * 1024


class LockedEnvironment(_Strict):
    """One resolved environment: the Python it is built for (major.minor) and its lock, uv's
    `pip compile` output: every package at an exact version with the sha256 of each of its
    files, so a run months later installs the same bytes."""

    python: str = Field(pattern=r"^3\.\d{1,2}$")
    lock: str = Field(min_length=1, max_length=MAX_LOCK_BYTES)

    @property
    def id(self) -> str:
        """The environment's name: its content's sha256, what caches and archives are keyed by."""
        import hashlib

        return hashlib.sha256(f"python {self.python}\n{self.lock}".encode("utf-8")).hexdigest()


class Environments(_Strict):
    """The flow's environments (by id) and which step runs in which."""

    locks: dict[str, LockedEnvironment] = Field(default_factory=dict)
    steps: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> "Environments":
        for env_id, env in self.locks.items():
            if env.id != env_id:
                raise ValueError(f"environment {env_id[:80]!r} is not the sha256 of its lock ({env.id})")
        for step, env_id in self.steps.items():
            if env_id not in self.locks:
                raise ValueError(f"step {step!r} names environment {env_id[:80]!r}, which has no lock")
        return self

    def for_step(self, step: str) -> Optional[tuple[str, LockedEnvironment]]:
        env_id = self.steps.get(step)
        return None if env_id is None else (env_id, self.locks[env_id])


class Manifest(_Strict):
    format: Literal[1] = MANIFEST_FORMAT
    flowplane_version: str
    flow_name: str
    # Path of the flow's file inside the package, POSIX style.
    flow_file: str
    graph: GraphSpec
    parameters: list[ParameterSpec] = Field(default_factory=list)
    # Config values (name -> JSON), read on the client at `create` and frozen here: the tasks
    # read them as self.<config>, the control plane computes decorator arguments from them.
    configs: dict[str, Any] = Field(default_factory=dict)
    options: DeployOptions = Field(default_factory=DeployOptions)
    # @pypi/@conda: each environment's lock, resolved on the client at `create`.
    environments: Environments = Field(default_factory=Environments)
    created_by: str = "unknown"
    created_at: Optional[str] = None

    @field_validator("flowplane_version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not VERSION_RE.match(v):
            raise ValueError(f"{v[:40]!r} is not a version (MAJOR.MINOR.PATCH)")
        return v

    @field_validator("flow_file")
    @classmethod
    def _relative(cls, v: str) -> str:
        # The path exactly as the package's reader normalises it (flowplane/archive.py).
        parts = v.split("/")
        if not v or v.startswith("/") or "\\" in v or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"{v[:80]!r} must be a relative POSIX path without '.', '..' or empty parts")
        return v

    @field_validator("created_by")
    @classmethod
    def _user(cls, v: str) -> str:
        if limits.utf8_size(v) > limits.MAX_USER_BYTES:
            raise ValueError(f"the user is over {limits.MAX_USER_BYTES} bytes of UTF-8")
        return v

    @model_validator(mode="after")
    def _locked_steps(self) -> "Manifest":
        # A step that asks for packages runs only in its locked environment, never without it.
        for step in self.environments.steps:
            if step not in self.graph.steps:
                raise ValueError(f"environments: {step!r} is not a step of the flow")
        for name in self.graph.steps:
            request = self.graph.dependencies_of(name)
            if request is None:
                continue
            found = self.environments.for_step(name)
            if found is None:
                raise ValueError(
                    f"step {name!r} has @{request.kind} but no locked environment: deploy with "
                    f"`python flow.py --environment={request.kind} step-functions create`"
                )
            if request.python and found[1].python != ".".join(request.python.split(".")[:2]):
                raise ValueError(f"step {name!r} asks for Python {request.python}, its lock is for {found[1].python}")
        return self

    def parameter(self, name: str) -> Optional[ParameterSpec]:
        for p in self.parameters:
            if p.name == name:
                return p
        return None


# --- versions -------------------------------------------------------------------


def _major_minor(version: str) -> Optional[tuple[int, int]]:
    m = re.match(r"\s*(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def compatible(package_version: str, runtime_version: str) -> bool:
    """A package runs only where flowplane has its major.minor version: the task runtime,
    and the control plane that compiles it (the manifest and the task's command line
    change between minor versions)."""
    pkg = _major_minor(package_version)
    return pkg is not None and pkg == _major_minor(runtime_version)


def supported_range(runtime_version: str) -> str:
    """The SDK versions a runtime of `runtime_version` takes, e.g. ">=0.1.0,<0.2.0"."""
    mm = _major_minor(runtime_version)
    if mm is None:
        return runtime_version
    return f">={mm[0]}.{mm[1]}.0,<{mm[0]}.{mm[1] + 1}.0"


def manifest_json_schema() -> dict[str, Any]:
    return Manifest.model_json_schema()
