"""`current`: what a running task knows about itself, as in Metaflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from datetime import datetime

    from .trigger_events import Trigger


class Current:
    def __init__(self) -> None:
        self._info: dict[str, Any] = {}

    def _set(self, **info: Any) -> None:
        self._info = dict(info)

    def _get(self, key: str) -> Any:
        return self._info.get(key)

    @property
    def is_running_flow(self) -> bool:
        return bool(self._info)

    @property
    def flow_name(self) -> Optional[str]:
        return self._get("flow_name")

    @property
    def run_id(self) -> Optional[str]:
        return self._get("run_id")

    @property
    def step_name(self) -> Optional[str]:
        return self._get("step_name")

    @property
    def task_id(self) -> Optional[str]:
        return self._get("task_id")

    @property
    def retry_count(self) -> int:
        return int(self._get("retry_count") or 0)

    @property
    def origin_run_id(self) -> Optional[str]:
        return self._get("origin_run_id")

    @property
    def pathspec(self) -> Optional[str]:
        if not self._info:
            return None
        return "/".join((self.flow_name or "", self.run_id or "", self.step_name or "", self.task_id or ""))

    @property
    def username(self) -> Optional[str]:
        return self._get("username")

    @property
    def namespace(self) -> Optional[str]:
        return self._get("namespace")

    @property
    def is_production(self) -> bool:
        """With @project, whether this is its production branch (`--production`), as Metaflow's;
        without, whether the run is a deployed (Step Functions) one."""
        return bool(self._get("is_production"))

    @property
    def project_name(self) -> Optional[str]:
        """The flow's @project name; None without @project."""
        return self._get("project_name")

    @property
    def branch_name(self) -> Optional[str]:
        """The @project branch: `user.<name>`, `test.<name>`, `prod` or `prod.<name>`."""
        return self._get("branch_name")

    @property
    def is_user_branch(self) -> bool:
        return bool(self._get("is_user_branch"))

    @property
    def project_flow_name(self) -> Optional[str]:
        """`<project>.<branch>.<FlowName>`: the deployment's name."""
        return self._get("project_flow_name")

    def get(self, key: str, default: Any = None) -> Any:
        """A value of `current` by name, or `default` when it has none (Metaflow's `current.get`)."""
        value = getattr(self, key, None) if not key.startswith("_") else None
        return default if value is None else value

    @property
    def parameter_names(self) -> list[str]:
        """The flow's Config and Parameter attribute names, as Metaflow lists them (configs first)."""
        return list(self._get("parameter_names") or [])

    @property
    def tags(self) -> list[str]:
        return list(self._get("tags") or [])

    @property
    def trigger(self) -> Optional["Trigger"]:
        """What started this production run: `.event`/`.events`, `.run`/`.runs` (the upstream
        runs), `trigger[name]`, as Metaflow's; None when nothing did, and in local runs."""
        return self._get("trigger")

    @property
    def scheduled_time(self) -> Optional["datetime"]:
        """The time (UTC) a scheduled production run was scheduled for, by its schedule or a
        backfill of it; None for any other run, and in local runs."""
        return self._get("scheduled_time")

    @property
    def card(self) -> Any:
        """The step's cards' components (flowplane/cards/collector.py); a step without
        @card gets an empty collector, whose append warns and changes nothing."""
        collector = self._info.get("card")
        if collector is None:
            from .cards.collector import CardComponentCollector

            collector = self._info["card"] = CardComponentCollector([])
        return collector

    def __repr__(self) -> str:
        return f"<current {self.pathspec or '(not in a task)'}>"


current = Current()
