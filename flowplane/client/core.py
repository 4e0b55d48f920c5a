"""Metaflow's Client API over Flowplane's providers.

`Metaflow()` lists flows; `Flow`, `Run`, `Step`, `Task` and `DataArtifact` are
built from a pathspec ('Flow/run/step/task/name') or reached from their parent
(iteration, `parent['child']`). Every object must carry the current namespace's
tag; a flow is in a namespace when one of its runs is. Steps, tasks and
artifacts carry their run's tags.

Semantics follow Metaflow's client (metaflow/client/core.py): children iterate
newest first (so a run's steps come in reverse execution order), `run.data` is
the end task's data, a run is successful when its end task is, and
`task.finished` means the task completed without an unhandled error.
"""

from __future__ import annotations

import re
from collections import namedtuple
from datetime import datetime, timezone
from typing import Any, Iterator, Optional

from ..datastore.artifacts import ArtifactRef
from ..datastore.records import AttemptRecord, ErrorInfo, RunRecord, TaskRecord
from ..task.graph import GRAPH_INFO
from ..trigger_events import Trigger
from .exceptions import ChildNotFound, InvalidPathspec, NamespaceMismatch, NotFound
from .lineage import child_refs, graph_of, parent_refs
from .tagging import PRODUCTION_TAGS_FIXED, TaggingError, next_user_tags, tag_list
from .namespaces import get_namespace
from .provider import DeploymentInfo, FlowInfo, Provider, StepInfo
from .run_pages import check_filters, provider_runs_page
from .selection import get_provider
from .times import parse_time, sort_key

# runs_page's namespace when none is given: the current one (None means every namespace).
_CURRENT_NAMESPACE = object()
# A flow's deployment before it was asked of the provider.
_UNREAD = object()

Metadata = namedtuple("Metadata", ["name", "value", "created_at", "type", "task"])

# One pathspec component: a flow, run, step, task or artifact name; never a path trick.
_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$")


def _parse(cls: type, pathspec: Any) -> list[str]:
    example = cls._EXAMPLE  # type: ignore[attr-defined]
    if not isinstance(pathspec, str):
        raise InvalidPathspec(f"{cls.__name__} takes a pathspec string like {example!r}, got {pathspec!r}")
    parts = pathspec.split("/")
    if len(parts) != cls._DEPTH:  # type: ignore[attr-defined]
        raise InvalidPathspec(
            f"{cls.__name__}({pathspec!r}): expected {cls._DEPTH} part(s) separated by '/', "  # type: ignore[attr-defined]
            f"like {example!r}"
        )
    bad = [p for p in parts if not _COMPONENT.match(p) or ".." in p]
    if bad:
        raise InvalidPathspec(
            f"{cls.__name__}({pathspec!r}): {bad[0]!r} is not a valid name "
            "(letters, digits, '_', '-', '.', ':'; not empty)"
        )
    return parts


class TaskException(Exception):
    """The exception a task raised (or a @catch caught), rebuilt from its record.

    Shaped like Metaflow's MetaflowExceptionWrapper: `type`, `exception` (the
    message) and `stacktrace`; `message` and `traceback` name the same things.
    """

    def __init__(self, type: str, message: str, traceback: Optional[str] = None):
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message
        self.traceback = traceback or ""

    @property
    def exception(self) -> str:
        return self.message

    @property
    def stacktrace(self) -> str:
        return self.traceback

    @classmethod
    def from_error(cls, err: ErrorInfo) -> "TaskException":
        return cls(err.type, err.message, err.traceback)

    def __repr__(self) -> str:
        return f"TaskException({self.type!r}, {self.message!r})"


class MetaflowObject:
    """What every client object has: pathspec, parent, tags, namespace check, children."""

    _NAME = "object"
    _DEPTH = 0
    _EXAMPLE = ""

    _provider: Provider
    _components: list[str]
    _parent_obj: Optional["MetaflowObject"]

    def _setup(self, components: list[str], parent: Optional["MetaflowObject"], provider: Optional[Provider]) -> None:
        self._components = list(components)
        self._parent_obj = parent
        self._provider = provider or (parent._provider if parent is not None else get_provider())

    # --- identity ------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._components[-1]

    @property
    def pathspec(self) -> str:
        return "/".join(self._components)

    @property
    def path_components(self) -> list[str]:
        return list(self._components)

    @property
    def parent(self) -> Optional["MetaflowObject"]:
        if self._parent_obj is None and self._DEPTH > 1:
            # The parent of an object in the namespace is in it too (or, for a flow, moot).
            self._parent_obj = _PARENT[type(self)](
                "/".join(self._components[:-1]), _provider=self._provider, _namespace_check=False
            )
        return self._parent_obj

    def __str__(self) -> str:
        return f"{type(self).__name__}('{self.pathspec}')"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.pathspec == self.pathspec  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.pathspec))

    # --- tags and namespace ------------------------------------------------

    def _run_record(self) -> Optional[RunRecord]:
        return None

    @property
    def system_tags(self) -> frozenset[str]:
        rec = self._run_record()
        return frozenset(rec.system_tags) if rec else frozenset()

    @property
    def user_tags(self) -> frozenset[str]:
        rec = self._run_record()
        return frozenset(rec.tags) if rec else frozenset()

    @property
    def tags(self) -> frozenset[str]:
        return self.system_tags | self.user_tags

    def is_in_namespace(self) -> bool:
        ns = get_namespace()
        return ns is None or ns in self.tags

    def _check_namespace(self) -> None:
        if not self.is_in_namespace():
            raise NamespaceMismatch(get_namespace(), str(self))

    @property
    def created_at(self) -> Optional[datetime]:
        raise NotImplementedError

    # --- children ------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def _child(self, id: str) -> "MetaflowObject":
        raise ChildNotFound(f"{self} has no children")

    def __getitem__(self, id: str) -> Any:
        return self._child(id)

    def __contains__(self, id: str) -> bool:
        try:
            self._child(id)
        except NotFound:
            return False
        except NamespaceMismatch:
            return True
        return True

    def _filtered_children(self, *tags: str) -> Iterator[Any]:
        for child in self:
            if all(t in child.tags for t in tags):
                yield child


class Metaflow:
    """Entry point: the flows that have at least one run in the current namespace."""

    def __init__(self) -> None:
        get_namespace()  # the default namespace is chosen on first use, as in Metaflow
        self._provider = get_provider()

    @property
    def flows(self) -> list["Flow"]:
        return list(self)

    def __iter__(self) -> Iterator["Flow"]:
        for info in self._provider.list_flows():
            try:
                yield Flow(info.name, _info=info, _provider=self._provider)
            except NamespaceMismatch:
                continue

    def __getitem__(self, name: str) -> "Flow":
        return Flow(name, _provider=self._provider)

    def __contains__(self, name: str) -> bool:
        try:
            Flow(name, _provider=self._provider)
        except (NotFound, NamespaceMismatch, InvalidPathspec):
            return False
        return True

    def __str__(self) -> str:
        return "Metaflow()"

    __repr__ = __str__


class Flow(MetaflowObject):
    """All runs of one flow, newest first."""

    _NAME = "flow"
    _DEPTH = 1
    _EXAMPLE = "FlowName"

    def __init__(self, pathspec: str, *, _info: Optional[FlowInfo] = None, _provider: Optional[Provider] = None,
                 _namespace_check: bool = True):
        (name,) = _parse(Flow, pathspec)
        self._setup([name], None, _provider)
        info = _info or self._provider.get_flow(name)
        if info is None:
            raise NotFound(f"Flow('{name}') does not exist (datastore {self._provider.describe()})")
        self._info = info
        # Known when the flow was read alone (get_flow); a listing's FlowInfo leaves it to be asked.
        self._deployment: Any = info.deployment if _info is None else _UNREAD
        if _namespace_check:
            self._check_namespace()

    def is_in_namespace(self) -> bool:
        ns = get_namespace()
        return ns is None or bool(self._provider.list_runs(self.id, namespace_tag=ns, limit=1))

    @property
    def created_at(self) -> Optional[datetime]:
        return parse_time(self._info.created_at)

    def __iter__(self) -> Iterator["Run"]:
        for rec in self._provider.list_runs(self.id, namespace_tag=get_namespace()):
            yield Run(_record=rec, _parent=self, _namespace_check=False)

    def _child(self, id: str) -> "Run":
        rec = self._provider.get_run(self.id, id) if _COMPONENT.match(str(id)) else None
        if rec is None:
            raise ChildNotFound(f"Run('{self.id}/{id}') does not exist")
        return Run(_record=rec, _parent=self)

    def runs(self, *tags: str) -> Iterator["Run"]:
        """Runs in the namespace carrying every one of `tags`, newest first."""
        return self._filtered_children(*tags)

    def runs_page(self, *, status: Optional[str] = None, tag: Optional[str] = None, limit: int = 50,
                  token: Optional[str] = None, namespace_tag: Any = _CURRENT_NAMESPACE) -> tuple[list["Run"], Optional[str]]:
        """One page of runs, newest first, and the token of the next (None on the last page): for
        a table paged by a person. In the current namespace unless `namespace_tag` names one (None:
        all); only runs of `status` (running, succeeded, failed) carrying `tag`. Through a control
        plane each page is one request, filtered there, so a filtered page may be short."""
        check_filters(status, limit)
        ns = get_namespace() if namespace_tag is _CURRENT_NAMESPACE else namespace_tag
        page, following = provider_runs_page(self._provider, self.id, ns, tag, status, limit, token)
        return [Run(_record=rec, _parent=self, _namespace_check=False) for rec in page], following

    @property
    def deployment(self) -> Optional[DeploymentInfo]:
        """The flow's production deployment (version, deployer, namespace, schedule, triggers) as the
        control plane keeps it; None for a flow never deployed, or read from the datastore alone."""
        if self._deployment is _UNREAD:
            info = self._provider.get_flow(self.id)
            self._deployment = info.deployment if info is not None else None
        return self._deployment  # type: ignore[return-value]

    @property
    def latest_run(self) -> Optional["Run"]:
        """The newest run in the namespace, finished or not."""
        for run in self:
            return run
        return None

    @property
    def latest_successful_run(self) -> Optional["Run"]:
        for run in self:
            if run.successful:
                return run
        return None


class Run(MetaflowObject):
    """One execution of a flow; its steps iterate in reverse execution order."""

    _NAME = "run"
    _DEPTH = 2
    _EXAMPLE = "FlowName/RunID"

    def __init__(self, pathspec: Optional[str] = None, *, _record: Optional[RunRecord] = None,
                 _parent: Optional[Flow] = None, _provider: Optional[Provider] = None,
                 _namespace_check: bool = True):
        if _record is None:
            parts = _parse(Run, pathspec)
            self._setup(parts, _parent, _provider)
            _record = self._provider.get_run(*parts)
            if _record is None:
                raise NotFound(f"Run('{pathspec}') does not exist (datastore {self._provider.describe()})")
        else:
            self._setup([_record.flow, _record.run_id], _parent, _provider)
        self._record = _record
        if _namespace_check:
            self._check_namespace()

    def _run_record(self) -> RunRecord:
        return self._record

    # --- changing tags (Metaflow 2.7+) --------------------------------------------

    def add_tag(self, tag: str) -> None:
        """Add a user tag; a system tag is already a tag and is not added again."""
        self.replace_tags([], [tag])

    def add_tags(self, tags: Any) -> None:
        self.replace_tags([], tag_list(tags, "tags"))

    def remove_tag(self, tag: str) -> None:
        """Remove a user tag; removing a system tag is a TaggingError, an absent one a no-op."""
        self.replace_tags([tag], [])

    def remove_tags(self, tags: Any) -> None:
        self.replace_tags(tag_list(tags, "tags"), [])

    def replace_tag(self, tag_to_remove: str, tag_to_add: str) -> None:
        self.replace_tags([tag_to_remove], [tag_to_add])

    def replace_tags(self, tags_to_remove: Any, tags_to_add: Any) -> None:
        """Remove then add, in one write; nothing changes when any part is refused."""
        remove = tag_list(tags_to_remove, "tags_to_remove")
        add = tag_list(tags_to_add, "tags_to_add")
        tags = next_user_tags(self._record.tags, self._record.system_tags, remove, add)
        if tags == list(self._record.tags):
            return
        setter = getattr(self._provider, "set_user_tags", None)
        if not callable(setter):
            raise TaggingError(PRODUCTION_TAGS_FIXED)
        self._record = setter(*self._components, tags)

    @property
    def created_at(self) -> Optional[datetime]:
        return parse_time(self._record.created_at)

    @property
    def trigger(self) -> Optional[Trigger]:
        """What started this production run (`@trigger`, `@trigger_on_finish`), as Metaflow's
        `Run.trigger`: None for a run nobody's event started, and for local runs.
        `trigger.run` is the upstream Run, read where this one was."""
        causes = self._record.trigger
        if not causes:
            return None
        provider = self._provider
        return Trigger(causes, lambda pathspec: Run(pathspec, _provider=provider, _namespace_check=False))

    @property
    def origin_run_id(self) -> Optional[str]:
        """The run this one resumed (`python flow.py resume`); None for a run that resumed none."""
        return self._record.origin_run_id

    @property
    def origin_pathspec(self) -> Optional[str]:
        """`Flow/<origin run id>` for a resumed run, as Metaflow's; None otherwise."""
        origin = self._record.origin_run_id
        return f"{self._record.flow}/{origin}" if origin else None

    def __iter__(self) -> Iterator["Step"]:
        infos = [i for i in self._provider.list_steps(*self._components) if not i.step.startswith("_")]
        infos.sort(key=lambda i: sort_key(i.created_at), reverse=True)
        for info in infos:
            yield Step(_info=info, _run=self._record, _parent=self, _namespace_check=False)

    def _child(self, id: str) -> "Step":
        info = self._provider.get_step(*self._components, id) if _COMPONENT.match(str(id)) else None
        if info is None:
            raise ChildNotFound(f"Step('{self.pathspec}/{id}') does not exist")
        # A run's steps and tasks carry its tags: the run was checked when it was made (or made
        # unchecked on purpose, as an upstream run of current.trigger is), so they are not again.
        return Step(_info=info, _run=self._record, _parent=self, _namespace_check=False)

    def steps(self, *tags: str) -> Iterator["Step"]:
        return self._filtered_children(*tags)

    @property
    def end_task(self) -> Optional["Task"]:
        """The end step's task; None until the end step has started."""
        try:
            return self._child("end").task
        except ChildNotFound:
            return None

    @property
    def data(self) -> Optional["MetaflowData"]:
        """The end task's artifacts (`run['end'].task.data`); None until the end step ran."""
        end = self.end_task
        return end.data if end is not None else None

    @property
    def successful(self) -> bool:
        end = self.end_task
        return end.successful if end is not None else False

    @property
    def finished(self) -> bool:
        end = self.end_task
        return end.finished if end is not None else False

    @property
    def finished_at(self) -> Optional[datetime]:
        end = self.end_task
        return end.finished_at if end is not None else None


class Step(MetaflowObject):
    """One step of a run: its tasks (one, or one per foreach item)."""

    _NAME = "step"
    _DEPTH = 3
    _EXAMPLE = "FlowName/RunID/StepName"

    def __init__(self, pathspec: Optional[str] = None, *, _info: Optional[StepInfo] = None,
                 _run: Optional[RunRecord] = None, _parent: Optional[Run] = None,
                 _provider: Optional[Provider] = None, _namespace_check: bool = True):
        if _info is None:
            parts = _parse(Step, pathspec)
            self._setup(parts, _parent, _provider)
            _run = _run or _require_run(self._provider, parts, str(self))
            _info = self._provider.get_step(*parts)
            if _info is None:
                raise NotFound(f"Step('{pathspec}') does not exist")
        else:
            self._setup([_info.flow, _info.run_id, _info.step], _parent, _provider)
            _run = _run or _require_run(self._provider, self._components, str(self))
        self._info = _info
        self._run = _run
        if _namespace_check:
            self._check_namespace()

    def _run_record(self) -> RunRecord:
        return self._run

    @property
    def created_at(self) -> Optional[datetime]:
        return parse_time(self._info.created_at)

    @property
    def origin_pathspec(self) -> Optional[str]:
        """The same step of the run this one resumed; None outside a resumed run (Metaflow's)."""
        origin = self._run.origin_run_id
        return f"{self._run.flow}/{origin}/{self.id}" if origin else None

    def __iter__(self) -> Iterator["Task"]:
        recs = self._provider.list_tasks(*self._components)
        recs.sort(key=lambda r: (sort_key(r.created_at), r.foreach_indices), reverse=True)
        for rec in recs:
            yield Task(_record=rec, _run=self._run, _parent=self, _namespace_check=False)

    def _child(self, id: str) -> "Task":
        rec = self._provider.get_task(*self._components, id) if _COMPONENT.match(str(id)) else None
        if rec is None:
            raise ChildNotFound(f"Task('{self.pathspec}/{id}') does not exist")
        return Task(_record=rec, _run=self._run, _parent=self, _namespace_check=False)

    def tasks(self, *tags: str) -> Iterator["Task"]:
        return self._filtered_children(*tags)

    def tasks_by_index(self) -> Iterator["Task"]:
        """The tasks in foreach index order (`1.2` before `1.10`), read a page at a time as
        iteration goes: the first of a 100,000-item foreach costs one request, not 100.
        Iterating the step itself gives Metaflow's order, newest first, which needs them all."""
        for rec in self._provider.iter_tasks(*self._components):
            yield Task(_record=rec, _run=self._run, _parent=self, _namespace_check=False)

    @property
    def task(self) -> Optional["Task"]:
        """A task of the step: the one task of a step outside a foreach."""
        for t in self:
            return t
        return None

    @property
    def finished_at(self) -> Optional[datetime]:
        """When the last task finished; None while any task has not."""
        times = [t.finished_at for t in self]
        if not times or any(t is None for t in times):
            return None
        return max(times)  # type: ignore[type-var]


class Task(MetaflowObject):
    """One task: its artifacts, logs, status and error, for its latest attempt
    (or the attempt chosen with `attempt=`)."""

    _NAME = "task"
    _DEPTH = 4
    _EXAMPLE = "FlowName/RunID/StepName/TaskID"

    def __init__(self, pathspec: Optional[str] = None, attempt: Optional[int] = None, *,
                 _record: Optional[TaskRecord] = None, _run: Optional[RunRecord] = None,
                 _parent: Optional[Step] = None, _provider: Optional[Provider] = None,
                 _namespace_check: bool = True):
        if _record is None:
            parts = _parse(Task, pathspec)
            self._setup(parts, _parent, _provider)
            _run = _run or _require_run(self._provider, parts, str(self))
            _record = self._provider.get_task(*parts)
            if _record is None:
                raise NotFound(f"Task('{pathspec}') does not exist")
        else:
            self._setup([_record.flow, _record.run_id, _record.step, _record.task_id], _parent, _provider)
            _run = _run or _require_run(self._provider, self._components, str(self))
        self._record = _record
        self._run = _run
        self._attempts: Optional[list[AttemptRecord]] = None
        self._index: Optional[dict[str, ArtifactRef]] = None
        self._attempt = self._choose_attempt(attempt)
        if _namespace_check:
            self._check_namespace()

    def _run_record(self) -> RunRecord:
        return self._run

    # --- attempts --------------------------------------------------------

    def _all_attempts(self) -> list[AttemptRecord]:
        if self._attempts is None:
            self._attempts = self._provider.list_attempts(*self._components)
        return self._attempts

    def _choose_attempt(self, attempt: Optional[int]) -> Optional[int]:
        numbers = [a.attempt for a in self._all_attempts()]
        if attempt is None:
            if self._record.final_attempt is not None:
                return self._record.final_attempt
            return max(numbers) if numbers else None
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
            raise ValueError(f"attempt is a number 0, 1, 2..., got {attempt!r}")
        if attempt not in numbers:
            have = ", ".join(map(str, numbers)) or "none"
            raise NotFound(f"Task('{self.pathspec}') has no attempt {attempt} (attempts: {have})")
        return attempt

    def _attempt_record(self) -> Optional[AttemptRecord]:
        for a in self._all_attempts():
            if a.attempt == self._attempt:
                return a
        return None

    def _is_latest(self) -> bool:
        numbers = [a.attempt for a in self._all_attempts()]
        latest = self._record.final_attempt if self._record.final_attempt is not None else max(numbers, default=None)
        return self._attempt == latest

    @property
    def current_attempt(self) -> Optional[int]:
        """The attempt this object shows (the latest unless `attempt=` chose one)."""
        return self._attempt

    def _status(self) -> str:
        att = self._attempt_record()
        if self._is_latest() and self._record.status in ("succeeded", "failed"):
            return self._record.status
        return att.status if att is not None else self._record.status

    def _error(self) -> Optional[ErrorInfo]:
        att = self._attempt_record()
        if att is not None and att.error is not None:
            return att.error
        return self._record.error if self._is_latest() else None

    # --- status ----------------------------------------------------------

    @property
    def created_at(self) -> Optional[datetime]:
        return parse_time(self._record.created_at)

    @property
    def finished(self) -> bool:
        """The task completed: it succeeded, or its error was handled (@catch)."""
        return self._status() == "succeeded"

    @property
    def successful(self) -> bool:
        """Completed with no error at all (a @catch'd task is finished, not successful)."""
        return self.finished and self._error() is None

    @property
    def finished_at(self) -> Optional[datetime]:
        att = self._attempt_record()
        if att is not None and att.finished_at:
            return parse_time(att.finished_at)
        return parse_time(self._record.finished_at) if self._is_latest() else None

    @property
    def exception(self) -> Any:
        """The exception that failed the task, or that @catch caught; None if there was none."""
        err = self._error()
        if err is not None:
            return TaskException.from_error(err)
        if "_exception" in self._artifact_index():
            return self._artifact("_exception").data
        return None

    @property
    def index(self) -> Optional[int]:
        """The index in the innermost foreach, None outside any foreach."""
        return self._record.foreach_indices[-1] if self._record.foreach_indices else None

    @property
    def runtime_name(self) -> Optional[str]:
        for t in self.system_tags:
            if t.startswith("runtime:"):
                return t.split(":", 1)[1]
        return None

    @property
    def origin_pathspec(self) -> Optional[str]:
        """The task this one was cloned from by `resume`; None for a task that ran (Metaflow's)."""
        return self._record.origin

    def _origin_task(self) -> Optional["Task"]:
        """A clone's origin task, read wherever it is (a production run through the control plane)."""
        if not self._record.origin:
            return None
        try:
            return Task(self._record.origin, _provider=self._provider, _namespace_check=False)
        except NotFound:
            return None

    # --- logs ------------------------------------------------------------

    def _log_source(self) -> tuple["Task", Optional[int]]:
        """Whose logs these are: a clone ran nothing, so its origin's (as Metaflow shows them)."""
        origin = self._origin_task() if self._record.origin and self._is_latest() else None
        return (origin, origin._attempt) if origin is not None else (self, self._attempt)

    def _log(self, stream: str) -> str:
        task, attempt = self._log_source()
        if attempt is None:
            return ""
        return task._provider.logs(*task._components, attempt, stream)  # type: ignore[arg-type]

    @property
    def stdout(self) -> str:
        return self._log("stdout")

    @property
    def stderr(self) -> str:
        return self._log("stderr")

    def loglines(self, stream: str, as_unicode: bool = True) -> Iterator[tuple[Optional[datetime], Any]]:
        """(UTC time the line was written, line) for each line of `stream`, as Metaflow's.

        The time is None where the provider keeps none (a production run read through the
        control plane, or a line a task that died could not time).
        """
        task, attempt = self._log_source()
        text = task._provider.logs(*task._components, attempt, stream) if attempt is not None else ""  # type: ignore[arg-type]
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        times = None
        reader = getattr(task._provider, "log_times", None)
        if attempt is not None and callable(reader):
            times = reader(*task._components, attempt, stream)
        for i, line in enumerate(lines):
            when = None
            if times is not None and i < len(times):
                when = datetime.fromtimestamp(times[i], tz=timezone.utc)
            yield when, (line if as_unicode else line.encode("utf-8"))

    # --- the runtime DAG (Metaflow 2.12) -----------------------------------

    def _lineage(self, find: Any) -> list[str]:
        if GRAPH_INFO not in self._artifact_index():
            return []  # a task that died before storing anything
        flow, run, step, task_id = self._components
        graph = graph_of(self._artifact(GRAPH_INFO).data)

        def task_ids(name: str) -> list[str]:
            return [t.task_id for t in self._provider.list_tasks(flow, run, name)]

        return [f"{flow}/{run}/{ref.step}/{ref.task_id}" for ref in find(graph, step, task_id, task_ids)]

    @property
    def parent_task_pathspecs(self) -> Iterator[str]:
        """Pathspecs of the tasks this one took its inputs from (none for start)."""
        return iter(self._lineage(parent_refs))

    @property
    def child_task_pathspecs(self) -> Iterator[str]:
        """Pathspecs of the tasks that took this one's outputs (none for end, or not yet run)."""
        return iter(self._lineage(child_refs))

    @property
    def parent_tasks(self) -> Iterator["Task"]:
        for pathspec in self.parent_task_pathspecs:
            yield Task(pathspec, _provider=self._provider, _namespace_check=False)

    @property
    def child_tasks(self) -> Iterator["Task"]:
        for pathspec in self.child_task_pathspecs:
            yield Task(pathspec, _provider=self._provider, _namespace_check=False)

    # --- metadata --------------------------------------------------------

    @property
    def metadata(self) -> list[Metadata]:
        """Facts about the task's attempts, oldest first, as Metaflow's metadata entries."""
        # A provider reading more than one source (combined.py) says which one holds this run.
        describe_run = getattr(self._provider, "describe_run", None)
        where = describe_run(*self._components[:2]) if callable(describe_run) else self._provider.describe()
        kind, _, root = where.partition("@")
        created = self._record.created_at
        out = [
            Metadata("ds-type", kind, created, "ds-type", self),
            Metadata("ds-root", root, created, "ds-root", self),
            Metadata("user", self._run.user, created, "user", self),
            Metadata("foreach-indices", ",".join(map(str, self._record.foreach_indices)), created,
                     "foreach-indices", self),
        ]
        if self.runtime_name:
            out.append(Metadata("runtime", self.runtime_name, created, "runtime", self))
        if self._run.origin_run_id:
            # As Metaflow records them on every task of a resumed run, and the origin task on a clone.
            out.append(Metadata("origin-run-id", self._run.origin_run_id, created, "origin-run-id", self))
        if self._record.origin:
            out.append(Metadata("origin-task-id", self._record.origin.rsplit("/", 1)[1], created,
                                "origin-task-id", self))
        for att in self._all_attempts():
            if self._attempt is not None and att.attempt > self._attempt:
                break
            out.append(Metadata("attempt", str(att.attempt), att.started_at, "attempt", self))
            if att.log_location:
                out.append(Metadata("log_location", att.log_location, att.started_at, "log_location", self))
            if att.status in ("succeeded", "failed"):
                ended = att.finished_at or att.started_at
                out.append(Metadata("attempt-done", str(att.attempt), ended, "attempt-done", self))
                out.append(Metadata("attempt_ok", str(att.status == "succeeded"), ended, "internal_attempt_status",
                                    self))
            if att.exit_code is not None:
                out.append(Metadata("exit_code", str(att.exit_code), att.finished_at or att.started_at,
                                    "exit_code", self))
        return out

    @property
    def metadata_dict(self) -> dict[str, str]:
        """Name → value, the latest value of each name (as Metaflow's)."""
        return {m.name: m.value for m in sorted(self.metadata, key=lambda m: sort_key(m.created_at))}

    # --- artifacts -------------------------------------------------------

    def _artifact_index(self) -> dict[str, ArtifactRef]:
        if self._index is None:
            self._index = (
                {} if self._attempt is None else self._provider.artifact_index(*self._components, self._attempt)
            )
        return self._index

    def _artifact(self, name: str) -> "DataArtifact":
        ref = self._artifact_index().get(name)
        if ref is None:
            names = ", ".join(n for n in sorted(self._artifact_index()) if not n.startswith("_")) or "none"
            raise ArtifactNotFound(
                f"DataArtifact('{self.pathspec}/{name}') does not exist (the task's artifacts: {names})"
            )
        return DataArtifact(_task=self, _name=name, _ref=ref)

    def _child(self, id: str) -> "DataArtifact":
        return self._artifact(id)

    def __iter__(self) -> Iterator["DataArtifact"]:
        for name in sorted(self._artifact_index()):
            if not name.startswith("_"):
                yield DataArtifact(_task=self, _name=name, _ref=self._artifact_index()[name])

    @property
    def data(self) -> "MetaflowData":
        """`task.data.<name>`: artifact values, loaded on first access."""
        return MetaflowData(self)

    @property
    def artifacts(self) -> Any:
        """`task.artifacts.<name>`: the DataArtifact objects."""
        arts = list(self)
        return namedtuple("MetaflowArtifacts", [a.id for a in arts])._make(arts)


class DataArtifact(MetaflowObject):
    """One artifact of a task: `.data` (loaded when read), `.sha`, `.size`, `.type`."""

    _NAME = "artifact"
    _DEPTH = 5
    _EXAMPLE = "FlowName/RunID/StepName/TaskID/ArtifactName"

    def __init__(self, pathspec: Optional[str] = None, *, _task: Optional[Task] = None, _name: Optional[str] = None,
                 _ref: Optional[ArtifactRef] = None, _namespace_check: bool = True):
        if _task is None:
            parts = _parse(DataArtifact, pathspec)
            _task = Task("/".join(parts[:4]), _namespace_check=_namespace_check)
            found = _task._artifact(parts[4])
            _name, _ref = found.id, found._ref
        assert _name is not None and _ref is not None
        self._setup([*_task.path_components, _name], _task, None)
        self._task = _task
        self._ref = _ref

    def _run_record(self) -> RunRecord:
        return self._task._run

    @property
    def data(self) -> Any:
        return self._provider.load_artifact(self._components[0], self._ref.sha)

    @property
    def sha(self) -> str:
        return self._ref.sha

    @property
    def size(self) -> int:
        """Bytes of the pickled value."""
        return self._ref.size

    @property
    def type(self) -> str:
        return self._ref.type

    @property
    def created_at(self) -> Optional[datetime]:
        # Artifacts are stored as the attempt ends.
        return self._task.finished_at or self._task.created_at

    @property
    def finished_at(self) -> Optional[datetime]:
        return self.created_at


class ArtifactNotFound(ChildNotFound, AttributeError):
    """A missing artifact: KeyError for `task['x']`, AttributeError for `task.data.x`
    (so `hasattr` and `getattr(..., default)` work)."""


class MetaflowData:
    """`task.data`: attribute access to artifact values, each loaded once when first read."""

    def __init__(self, task: Task):
        self._task = task
        self._values: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in self._values:
            self._values[name] = self._task._artifact(name).data
        return self._values[name]

    def __contains__(self, name: str) -> bool:
        return name in self._task._artifact_index()

    def __iter__(self) -> Iterator[str]:
        return iter(n for n in sorted(self._task._artifact_index()) if not n.startswith("_"))

    def __str__(self) -> str:
        return "<MetaflowData: %s>" % ", ".join(self)

    __repr__ = __str__


def _require_run(provider: Provider, parts: list[str], what: str) -> RunRecord:
    rec = provider.get_run(parts[0], parts[1])
    if rec is None:
        raise NotFound(f"{what} does not exist: there is no Run('{parts[0]}/{parts[1]}')")
    return rec


_PARENT: dict[type, type] = {Run: Flow, Step: Run, Task: Step, DataArtifact: Task}
