"""Local runs and the control plane's runs as one Client API, as Metaflow shows them.

`python flow.py run` writes only to the local datastore; the control plane records
only production runs (`sfn-<execution>`). A Metaflow user reads both through the
same `Flow(...)`, so `CombinedProvider` answers from both:

- flows: the union (created_at the earliest of the two);
- a flow's runs: one newest-first listing merged from both (each source filters by
  the namespace itself; a run id both hold is shown once), read lazily so
  `latest_run` costs one small page of the plane's;
- a run id resolves to the source that has it: `sfn-...` is asked of the plane
  first, any other id of the datastore first, the other one after; the run's
  steps, tasks, artifacts and logs are read from where the run was found.

A control plane that fails is never skipped silently. One that does not answer
at all is: configured (FLOWPLANE_API_URL, the config file) -> a ServiceError naming
its URL and how to read local runs only; discovered (a `flowplane local` found
running) and now gone -> a PlaneVanishedWarning, then local runs only. A plane that
answers with an error raises that error (it names the URL) whatever its origin.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Callable, Iterator, Literal, Optional, TypeVar

from ..datastore.artifacts import ArtifactRef
from ..datastore.records import AttemptRecord, RunRecord, TaskRecord, is_production_run_id
from ..datastore.storage import NotFound as StorageNotFound
from .lazy_runs import LazyRuns
from .tagging import PRODUCTION_TAGS_FIXED
from .local import _ok
from .provider import FlowInfo, LogStream, Provider, RunsPage, StepInfo
from .run_pages import merged_page, provider_runs_page
from .service import ServiceError
from .times import sort_key

T = TypeVar("T")
PlaneOrigin = Literal["env", "config", "discovered"]

# Where runs and artifacts were found, remembered for reading their children; bounded
# so a long notebook session listing many runs does not grow without end.
_REMEMBER_MAX = 20_000


class PlaneVanishedWarning(UserWarning):
    """A discovered `flowplane local` stopped answering: only local runs are shown."""


def _earliest(a: str, b: str) -> str:
    if not a or not b:
        return a or b
    return min(a, b, key=sort_key)


def _run_key(rec: RunRecord) -> tuple[Any, str]:
    return (sort_key(rec.created_at), rec.run_id)


class CombinedProvider:
    """Reads the local datastore (`local`) and a control plane (`plane`) as one."""

    def __init__(self, local: Provider, plane: Provider, *, origin: PlaneOrigin = "env",
                 still_running: Optional[Callable[[], bool]] = None,
                 on_vanished: Optional[Callable[[], None]] = None):
        """origin: how the plane was chosen (FLOWPLANE_API_URL, the config file, or found
        running); still_running: asked when a discovered plane stops answering;
        on_vanished: called once it is known gone (get_provider forgets it)."""
        self.local = local
        self.plane = plane
        self.origin = origin
        self._still_running = still_running or (lambda: False)
        self._on_vanished = on_vanished
        self._plane_gone = False
        self._lock = threading.Lock()
        self._run_sources: OrderedDict[tuple[str, str], Provider] = OrderedDict()
        self._sha_sources: OrderedDict[tuple[str, str], Provider] = OrderedDict()

    def describe(self) -> str:
        if self._plane_gone:
            return self.local.describe()
        return f"{self.plane.describe()}+{self.local.describe()}"

    def get_metadata(self) -> str:
        """Metaflow's get_metadata(), one `kind@location` as code written for Metaflow parses it:
        the control plane, Metaflow's metadata service (describe() names both sources)."""
        return self.local.describe() if self._plane_gone else self.plane.describe()

    def describe_run(self, flow: str, run: str) -> str:
        """Where this run's data is read from (a task's ds-type/ds-root metadata)."""
        if not _ok(flow, run):
            return self.describe()
        return self._source(flow, run).describe()

    @property
    def plane_available(self) -> bool:
        return not self._plane_gone

    # --- the plane's failures --------------------------------------------------------

    def _ask_plane(self, call: Callable[[], T], fallback: T) -> T:
        if self._plane_gone:
            return fallback
        try:
            return call()
        except ServiceError as e:
            self._plane_failed(e)
            return fallback

    def _plane_failed(self, error: ServiceError) -> None:
        """Returns only if the plane is known gone (and local reads should go on)."""
        if not error.unreachable:
            raise error
        if self.origin == "discovered":
            if self._still_running():
                raise error  # a hiccup of a plane that is still there: not a reason to hide its runs
            self._vanished(error)
            return
        if self.origin == "env":
            how = "unset FLOWPLANE_API_URL"
        else:
            how = f"set FLOWPLANE_DATASTORE_ROOT={self._local_root()} (which the config file's api_url yields to)"
        raise ServiceError(
            error.url,
            f"{error.reason} (the Client API reads this control plane together with the local datastore "
            f"{self.local.describe()}; its runs are not hidden when it is down: to read only local runs, {how})",
            error.status, error.body, unreachable=True,
        ) from error

    def _vanished(self, error: ServiceError) -> None:
        with self._lock:
            if self._plane_gone:
                return
            self._plane_gone = True
        warnings.warn(
            f"the running `flowplane local` control plane at {self.plane.describe().partition('@')[2]} "
            f"no longer answers ({error.reason}); reading only the local datastore {self.local.describe()} "
            "until it runs again",
            PlaneVanishedWarning,
            stacklevel=4,
        )
        if self._on_vanished is not None:
            self._on_vanished()

    def _local_root(self) -> str:
        return self.local.describe().partition("@")[2]

    # --- remembering where things are -------------------------------------------------

    @staticmethod
    def _put(table: OrderedDict, key: tuple[str, str], source: Provider) -> None:
        table[key] = source
        table.move_to_end(key)
        while len(table) > _REMEMBER_MAX:
            table.popitem(last=False)

    def _remember_run(self, flow: str, run: str, source: Provider) -> None:
        with self._lock:
            self._put(self._run_sources, (flow, run), source)

    def _known_source(self, flow: str, run: str) -> Optional[Provider]:
        with self._lock:
            return self._run_sources.get((flow, run))

    def _order(self, run: str) -> tuple[Provider, Provider]:
        return (self.plane, self.local) if is_production_run_id(run) else (self.local, self.plane)

    def provider_for_run(self, flow: str, run: str) -> Provider:
        """The one provider holding this run (S3(run=Run(...)) reads its objects there)."""
        return self._source(flow, run)

    def _source(self, flow: str, run: str) -> Provider:
        """The provider holding the run (asked for it if not listed yet); the datastore when
        neither has it, so that reads of what does not exist answer empty there."""
        known = self._known_source(flow, run)
        if known is None:
            self.get_run(flow, run)
            known = self._known_source(flow, run)
        return known or self.local

    def _read(self, source: Provider, read: Callable[[Provider], T], empty: T) -> T:
        if source is self.plane:
            return self._ask_plane(lambda: read(self.plane), empty)
        return read(source)

    def _from_run_source(self, flow: str, run: str, read: Callable[[Provider], T], empty: T,
                         found: Optional[Callable[[Provider, T], None]] = None) -> T:
        """`read` of the source holding the run. A run not met yet (a pathspec read straight
        from the provider) is not looked up first: the source its id names is read, then the
        other one if that answered nothing."""
        known = self._known_source(flow, run)
        sources = (known,) if known is not None else self._order(run)
        for source in sources:
            answer = self._read(source, read, empty)
            if answer:
                if known is None:
                    self._remember_run(flow, run, source)
                if found is not None:
                    found(source, answer)
                return answer
        return empty

    # --- flows -----------------------------------------------------------------------

    def list_flows(self) -> list[FlowInfo]:
        merged: dict[str, FlowInfo] = {}
        for info in [*self.local.list_flows(), *self._ask_plane(self.plane.list_flows, [])]:
            have = merged.get(info.name)
            merged[info.name] = info if have is None else FlowInfo(
                name=info.name, created_at=_earliest(have.created_at, info.created_at))
        return [merged[name] for name in sorted(merged)]

    def get_flow(self, flow: str) -> Optional[FlowInfo]:
        if not _ok(flow):
            return None
        local = self.local.get_flow(flow)
        plane = self._ask_plane(lambda: self.plane.get_flow(flow), None)
        if local is None or plane is None:
            return local or plane
        return FlowInfo(name=local.name, created_at=_earliest(local.created_at, plane.created_at),
                        deployment=plane.deployment)

    # --- runs ------------------------------------------------------------------------

    def list_runs(self, flow: str, namespace_tag: Optional[str] = None,
                  limit: Optional[int] = None) -> Sequence:  # Sequence[RunRecord], read lazily
        if not _ok(flow):
            return []
        # Each source's first `limit` runs hold the merged first `limit`: a run ahead of
        # one in the merge is ahead of it in its own source too.
        local = self.local.list_runs(flow, namespace_tag=namespace_tag, limit=limit)
        plane = self._ask_plane(lambda: self.plane.list_runs(flow, namespace_tag=namespace_tag, limit=limit), [])
        return MergedRuns(self, flow, local, plane, None if limit is None else max(0, int(limit)))

    def runs_page(self, flow: str, namespace_tag: Optional[str] = None, tag: Optional[str] = None,
                  status: Optional[str] = None, limit: int = 50, token: Optional[str] = None) -> RunsPage:
        """Both sources' pages merged newest first (run_pages.merged_page): one plane request a page."""
        if not _ok(flow):
            return [], None

        def reader(source: Provider) -> Callable[[int, Optional[str]], RunsPage]:
            def read(n: int, tok: Optional[str]) -> RunsPage:
                page, following = provider_runs_page(source, flow, namespace_tag, tag, status, n, tok)
                for rec in page:
                    self._remember_run(flow, rec.run_id, source)
                return page, following

            return read

        read_plane = reader(self.plane)

        def plane(n: int, tok: Optional[str]) -> RunsPage:
            return self._ask_plane(lambda: read_plane(n, tok), ([], None))

        return merged_page(reader(self.local), None if self._plane_gone else plane, limit, token)

    def set_user_tags(self, flow: str, run: str, tags: list[str]) -> RunRecord:
        if is_production_run_id(run):
            from .tagging import TaggingError

            raise TaggingError(PRODUCTION_TAGS_FIXED)
        return self.local.set_user_tags(flow, run, tags)  # type: ignore[attr-defined]

    def get_run(self, flow: str, run: str) -> Optional[RunRecord]:
        if not _ok(flow, run):
            return None
        for source in self._order(run):
            rec = self._read(source, lambda p: p.get_run(flow, run), None)
            if rec is not None:
                self._remember_run(flow, run, source)
                return rec
        return None

    # --- steps, tasks, attempts ------------------------------------------------------

    # Names that could leave a datastore folder or a route are refused here, before any
    # source is asked (each would refuse them too, but only after the other was asked).

    def list_steps(self, flow: str, run: str) -> list[StepInfo]:
        if not _ok(flow, run):
            return []
        return self._from_run_source(flow, run, lambda p: p.list_steps(flow, run), [])

    def get_step(self, flow: str, run: str, step: str) -> Optional[StepInfo]:
        if not _ok(flow, run, step):
            return None
        return self._from_run_source(flow, run, lambda p: p.get_step(flow, run, step), None)

    def list_tasks(self, flow: str, run: str, step: str) -> list[TaskRecord]:
        if not _ok(flow, run, step):
            return []
        return self._from_run_source(flow, run, lambda p: p.list_tasks(flow, run, step), [])

    def iter_tasks(self, flow: str, run: str, step: str) -> Iterator[TaskRecord]:
        if not _ok(flow, run, step):
            return iter(())
        return self._source(flow, run).iter_tasks(flow, run, step)

    def get_task(self, flow: str, run: str, step: str, task: str) -> Optional[TaskRecord]:
        if not _ok(flow, run, step, task):
            return None
        return self._from_run_source(flow, run, lambda p: p.get_task(flow, run, step, task), None)

    def list_attempts(self, flow: str, run: str, step: str, task: str) -> list[AttemptRecord]:
        if not _ok(flow, run, step, task):
            return []
        return self._from_run_source(flow, run, lambda p: p.list_attempts(flow, run, step, task), [])

    # --- artifacts and logs ----------------------------------------------------------

    def artifact_index(self, flow: str, run: str, step: str, task: str,
                       attempt: int) -> dict[str, ArtifactRef]:
        if not _ok(flow, run, step, task):
            return {}

        def found(source: Provider, index: dict[str, ArtifactRef]) -> None:
            with self._lock:
                for ref in index.values():
                    self._put(self._sha_sources, (flow, ref.sha), source)

        return self._from_run_source(flow, run, lambda p: p.artifact_index(flow, run, step, task, attempt), {},
                                     found)

    def load_artifact(self, flow: str, sha: str) -> Any:
        with self._lock:
            source = self._sha_sources.get((flow, sha))
        if source is self.plane:
            try:
                return self.plane.load_artifact(flow, sha)
            except ServiceError as e:
                self._plane_failed(e)
                raise  # gone, and the value is only there
        if source is not None:
            return source.load_artifact(flow, sha)
        # Not listed through this provider: the datastore is addressed by content, the
        # plane only by the task that listed it (its own error says so).
        try:
            return self.local.load_artifact(flow, sha)
        except StorageNotFound:
            if self._plane_gone:
                raise
            return self.plane.load_artifact(flow, sha)

    def log_times(self, flow: str, run: str, step: str, task: str, attempt: int,
                  stream: LogStream) -> Optional[list[float]]:
        def read(p: Provider) -> Optional[list[float]]:
            times = getattr(p, "log_times", None)
            return times(flow, run, step, task, attempt, stream) if callable(times) else None

        return self._from_run_source(flow, run, read, None)

    def logs(self, flow: str, run: str, step: str, task: str, attempt: int, stream: LogStream) -> str:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"a log stream is 'stdout' or 'stderr', got {stream!r}")
        if not _ok(flow, run, step, task):
            return ""
        return self._from_run_source(flow, run, lambda p: p.logs(flow, run, step, task, attempt, stream), "")

    def list_cards(self, flow: str, run: str, step: str, task: str, attempt: int) -> list[Any]:
        if not _ok(flow, run, step, task):
            return []
        return self._from_run_source(flow, run, lambda p: p.list_cards(flow, run, step, task, attempt), [])


class MergedRuns(LazyRuns):
    """Runs newest first from the datastore's list and the plane's (lazy) pages."""

    def __init__(self, owner: CombinedProvider, flow: str, local: Sequence, plane: Sequence,
                 limit: Optional[int]):
        super().__init__(limit)
        self._owner = owner
        self._flow = flow
        self._source = self._merge(local, plane)
        # A failed read ends the merge generator: later reads must fail the same way,
        # not end the listing early as if it were complete.
        self._error: Optional[BaseException] = None

    def _plane_runs(self, plane: Sequence) -> Iterator[RunRecord]:
        owner = self._owner
        it = iter(plane)
        while True:
            if not owner.plane_available:
                return
            try:
                rec = next(it)
            except StopIteration:
                return
            except ServiceError as e:
                owner._plane_failed(e)  # raises unless the plane is gone
                return
            yield rec

    def _merge(self, local: Sequence, plane: Sequence) -> Iterator[RunRecord]:
        owner = self._owner
        local_it, plane_it = iter(local), self._plane_runs(plane)
        a: Optional[RunRecord] = None
        b: Optional[RunRecord] = None
        need_a = need_b = True
        seen: set[str] = set()
        while True:
            # A head is read only when the next run is asked for: a consumer that stops
            # after n runs never costs the plane's next page.
            if need_a:
                a, need_a = next(local_it, None), False
            if need_b:
                b, need_b = next(plane_it, None), False
            if a is None and b is None:
                return
            # Equal keys are one run held twice: the copy of the source its id names.
            take_local = b is None or (a is not None and (
                _run_key(a) > _run_key(b) or (_run_key(a) == _run_key(b) and not is_production_run_id(a.run_id))))
            if take_local:
                rec, source, need_a = a, owner.local, True
            else:
                rec, source, need_b = b, owner.plane, True
            assert rec is not None
            if rec.run_id in seen:
                continue
            seen.add(rec.run_id)
            owner._remember_run(self._flow, rec.run_id, source)
            yield rec

    def _more(self) -> None:
        with self._lock:
            if self._done:
                return
            if self._error is not None:
                raise self._error
            try:
                rec = next(self._source, None)
            except Exception as e:
                self._error = e
                raise
            if rec is None:
                self._done = True
                return
            self._items.append(rec)
            if self._limit is not None and len(self._items) >= self._limit:
                self._done = True

