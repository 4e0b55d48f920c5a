"""Which deployed version started an execution, and what its runs inherit from it.

A state machine is named after its deployment (`FLOW#<name>` in the table) under
the stage's prefix (chalicelib/resource_names.py: `<prefix>-<name>`, or a
shortened name the table's `STATE_MACHINE#` item maps back); its `VERSION#`
items say when each version went live, with its production token,
deployer and `--tag`s. An execution belongs to the version it names
(`stateMachineVersionArn`, when started on a version or an alias), else to the
version live when it started. Either way the answer depends only on the
execution and the stored versions, never on when an event is processed, so
every event of a run finds the same owner (and console-started runs too).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Optional

from flowplane import projects
from flowplane.datastore.records import PRODUCTION_USER
from flowplane.projects import ProjectInfo

from .. import resource_names
from .events import ExecutionStatusChange

TOKEN_TAG = "production:"
RUNTIME_TAG = "runtime:step-functions"
# A version is recorded a moment after its state machine definition changes; a
# cached list is trusted only for executions that started well before it was read.
CACHE_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class Owner:
    deployment: str
    flow: str
    version: int
    token: str
    deployer: str
    tags: tuple[str, ...] = ()
    branch: Optional[str] = None  # @project's branch deployed (its name starts the deployment's)

    @property
    def project(self) -> Optional[ProjectInfo]:
        if not self.branch or not projects.is_deployment_name(self.deployment):
            return None
        return ProjectInfo(projects.split_qualified(self.deployment)[0], self.branch, self.flow)

    def run_fields(self) -> dict[str, Any]:
        project = self.project
        return {
            "flow": self.flow,
            "deployment": self.deployment,
            "version": self.version,
            "user": PRODUCTION_USER,
            "owner": self.deployer,
            "tags": sorted(set(self.tags)),
            "system_tags": sorted({f"user:{PRODUCTION_USER}", RUNTIME_TAG, f"{TOKEN_TAG}{self.token}",
                                   *(project.tags() if project else [])}),
        }


def _when(text: Any) -> float:
    """Epoch seconds of an ISO time in either of the table's spellings (Z or +00:00)."""
    if not isinstance(text, str) or not text:
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _version(item: dict[str, Any]) -> Optional[Owner]:
    options = item.get("options") or {}
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except ValueError:
            options = {}
    token = item.get("production_token")
    if not token or not item.get("flow_name"):
        return None
    return Owner(
        deployment=str(item.get("name") or ""),
        flow=str(item["flow_name"]),
        version=int(item.get("version") or 0),
        token=str(token),
        deployer=str(item.get("deployer") or "unknown"),
        tags=tuple(str(t) for t in (options.get("tags") or []) if isinstance(t, str)),
        branch=options.get("branch") if isinstance(options.get("branch"), str) else None,
    )


@dataclass
class _Versions:
    fetched_at: float
    items: list[dict[str, Any]] = field(default_factory=list)


class Owners:
    """Versions per deployment, read with one Query and cached while the Lambda is warm.

    `prefix` is the stage's resource prefix: state machines without it are another
    stage's (or nobody's). `resolve` maps a shortened state machine name to its
    deployment (one GetItem, kept for good: the mapping never changes). Without a
    prefix, a state machine's name is its deployment's (recorders built by hand).
    """

    def __init__(
        self,
        query_versions: Callable[[str], list[dict[str, Any]]],
        clock: Callable[[], float] = time.time,
        prefix: Optional[str] = None,
        resolve: Optional[Callable[[str], Optional[str]]] = None,
    ):
        self.query_versions = query_versions
        self.clock = clock
        self.prefix = prefix
        self.resolve = resolve
        self._cache: dict[str, _Versions] = {}
        self._shortened: dict[str, str] = {}

    def ours(self, state_machine: str) -> bool:
        return self.prefix is None or resource_names.is_ours(self.prefix, state_machine)

    def ours_by_stage(self, stage: Optional[str]) -> bool:
        """A Batch job's or task event's stage marker (STAGE_ENV) is this stage's.

        Jobs compiled before stages were marked carry none: those are recorded, as then.
        """
        return self.prefix is None or stage is None or stage == self.prefix

    def deployment(self, state_machine: str) -> Optional[str]:
        """The deployment this stage's state machine belongs to, or None."""
        if self.prefix is None:
            return state_machine or None
        if not resource_names.is_ours(self.prefix, state_machine):
            return None
        if not resource_names.shortened(state_machine):
            return resource_names.deployment_of(self.prefix, state_machine)
        if state_machine not in self._shortened and self.resolve is not None:
            found = self.resolve(state_machine)
            if found is None:
                return None  # not deployed (yet): asked again next time
            self._shortened[state_machine] = found
        return self._shortened.get(state_machine)

    def _versions(self, name: str, started: float, version_arn: Optional[str]) -> list[dict[str, Any]]:
        cached = self._cache.get(name)
        if cached is not None and started < cached.fetched_at - CACHE_MARGIN_SECONDS:
            if version_arn is None or any(v.get("version_arn") == version_arn for v in cached.items):
                return cached.items
        fetched_at = self.clock()
        items = self.query_versions(name)
        self._cache[name] = _Versions(fetched_at, items)
        return items

    def of(self, change: ExecutionStatusChange) -> Optional[Owner]:
        name = self.deployment(change.state_machine_name)
        if not name:
            return None
        started = (change.startDate or 0) / 1000
        items = self._versions(name, started, change.stateMachineVersionArn)
        return pick_version(items, started, change.stateMachineVersionArn)


def pick_version(items: list[dict[str, Any]], started: float, version_arn: Optional[str]) -> Optional[Owner]:
    versions = sorted(items, key=lambda v: int(v.get("version") or 0))
    if version_arn:
        # A re-created state machine numbers its versions from 1 again: the same ARN
        # can name an old version too, so the time still decides between them.
        named = [v for v in versions if v.get("version_arn") == version_arn]
        versions = named or versions
    if not versions:
        return None
    live = [v for v in versions if _when(v.get("deployed_at")) <= started]
    # Started before any recorded deploy (clock skew at the first deploy): the first version.
    return _version(live[-1] if live else versions[0])
