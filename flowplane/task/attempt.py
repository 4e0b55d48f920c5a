"""One attempt of one task: the step run, @catch and @timeout, the transition checked, the artifacts stored.

A `Task` is what prepare.py found; `run` runs the attempt with its output
captured, reads its inputs through `TaskInputs` (inputs.py) and writes what
it leaves through `Recorder` (recording.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterator, Optional

from .. import job
from ..context import username
from ..current import current
from ..datastore import records
from ..datastore.artifacts import ArtifactStore, write_index
from ..datastore.storage import Storage
from ..manifest import CatchSpec, GraphSpec, Manifest, StepSpec
from ..projects import ProjectInfo
from ..trigger_events import Trigger
from .errors import ExceptionWrapper, FailureHandledByCatch, TaskTimeout, TransitionError, type_name, user_traceback
from .graph import GRAPH_INFO
from .inputs import TaskInputs
from .loader import LoadedFlow
from .outcome import EXIT_FAILED, EXIT_OK, Outcome
from .output import CapturedOutput
from .persist import ArtifactPersistError, LoadTracker, persist
from .recording import Recorder, batch_job_id

if TYPE_CHECKING:  # annotations only: the runtime imports no FlowSpec (flowspec -> cli -> task)
    from ..flowspec import FlowSpec


@dataclass
class Task:
    loaded: LoadedFlow
    graph: GraphSpec
    node: StepSpec
    run_id: str
    task_id: str
    indices: list[int]
    attempt: int
    storage: Storage
    params: dict[str, Any]  # as given: what the run record keeps (an IncludeFile's descriptor)
    param_values: dict[str, Any]  # what the step sees and stores (an IncludeFile's content)
    param_attrs: dict[str, str]  # parameter name -> the flow attribute it is declared as
    param_names: list[str]
    tags: list[str]
    production: bool = False
    token: Optional[str] = None
    manifest: Optional[Manifest] = None
    trigger: Optional[Trigger] = None  # what started a production run (current.trigger)
    scheduled_time: Optional[datetime] = None  # a scheduled or backfilled run's tick (current.scheduled_time)
    project: Optional[ProjectInfo] = None  # @project's name and branch
    origin_run_id: Optional[str] = None  # the run a `resume` started from

    def __post_init__(self) -> None:
        self.flow_name = self.graph.flow_name
        self.step = self.node.name
        self.store = ArtifactStore(self.storage, self.flow_name)
        self.inputs = TaskInputs(self.storage, self.store, self.graph, self.run_id, self.step, self.task_id)
        self.recorder = Recorder(self)
        if self.manifest is not None:
            # On Batch the job's own user means nothing: the run is the production user's,
            # and its owner whoever deployed it.
            self.user = records.PRODUCTION_USER
            self.owner: Optional[str] = os.environ.get("FLOWPLANE_USER") or self.manifest.created_by
        else:
            self.user = username()
            self.owner = None
        self.pathspec = f"{self.flow_name}/{self.run_id}/{self.step}/{self.task_id}"
        retry = self.node.decorator("retry")
        retry_times = retry.times if retry else 0
        self.catch_spec: Optional[CatchSpec] = self.node.decorator("catch")
        has_catch = self.catch_spec is not None
        # @catch keeps an exception once @retry's attempts are spent; past them, its
        # fallback attempts run no user code and tell how the earlier attempts died.
        self.catching = has_catch and self.attempt >= retry_times
        self.fallback = job.is_fallback(self.attempt, retry_times, has_catch)
        # No attempt follows this one if it fails: the task has failed.
        self.last_attempt = self.attempt >= job.attempts_before_failing(retry_times, has_catch)

    # --- the attempt -------------------------------------------------------------

    def run(self) -> int:
        started = records.now_iso()
        try:
            with CapturedOutput() as out:
                try:
                    self.recorder.start(started)
                    outcome = self._attempt()
                finally:
                    current._set()
            self.recorder.save_logs(out)
            out.close()
            self.recorder.end(started, outcome)
        except Exception as e:
            # Our own failure (the datastore is unreachable, ...): still name the task.
            print(f"Task {self.pathspec} (attempt {self.attempt}) failed: {type_name(e)}: {e}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK if outcome.ok else EXIT_FAILED

    def _attempt(self) -> Outcome:
        outcome = Outcome()
        tracker = LoadTracker()
        flow: Optional[FlowSpec] = None
        try:
            flow, inputs = self.inputs.build_flow(self.loaded, self.param_values, self.indices, tracker)
            self._set_current()
            if self.fallback:
                raise self._fallback_failure()
            with _time_limit(self._timeout(), self.step):
                if self.node.type == "join":
                    getattr(flow, self.step)(inputs)
                else:
                    getattr(flow, self.step)()
            outcome.num_splits = self._check_transition(flow)
            outcome.ok = True
            if self.catch_spec is not None and self.catch_spec.var:
                # As Metaflow: no exception, so the variable says None (downstream tests it).
                flow.__dict__[self.catch_spec.var] = None
        except BaseException as e:  # user code may raise anything, SystemExit included
            outcome.error = e
            outcome.error_text = user_traceback(e)
        if outcome.error is not None:
            self._catch(flow, outcome)
        if flow is not None:
            try:
                params = self._param_artifacts(flow) if outcome.ok else self._by_attribute()
                index = persist(flow, self.store, tracker, params, best_effort=not outcome.ok)
                index.setdefault(GRAPH_INFO, self.inputs.graph_info_ref())
                write_index(self.storage, self.flow_name, self.run_id, self.step, self.task_id, self.attempt, index)
                outcome.artifacts = index
            except ArtifactPersistError as e:
                outcome.ok, outcome.caught = False, False
                outcome.error, outcome.error_text = e, f"{type_name(e)}: {e}\n"
        if outcome.ok and outcome.num_splits is not None:
            self.recorder.foreach(outcome.num_splits)
        if outcome.ok and flow is not None and self._card_specs():
            self._render_cards(outcome.artifacts or {})
        if not outcome.ok:
            print(
                f"Task {self.pathspec} (attempt {self.attempt}) failed:\n{outcome.error_text}",
                file=sys.stderr,
                end="",
            )
        return outcome

    def _catch(self, flow: Optional[FlowSpec], outcome: Outcome) -> None:
        """@catch once @retry's attempts are spent: keep the exception, take the graph's transition, succeed."""
        spec = self.catch_spec
        if spec is None or not self.catching or flow is None:
            return
        assert outcome.error is not None
        wrapper = ExceptionWrapper(type_name(outcome.error), str(outcome.error), outcome.error_text)
        if spec.var:
            flow.__dict__[spec.var] = wrapper
        if spec.print_exception:
            print(f"@catch caught an exception from {self.pathspec}:\n{outcome.error_text}", file=sys.stderr, end="")
        outcome.ok, outcome.caught = True, True

    def _fallback_failure(self) -> FailureHandledByCatch:
        """@catch's fallback: the exception to keep, naming what became of the earlier attempts.

        The attempts that died unrecorded are recorded as failed on the way: that is
        what they were, and the datastore's records then say so.
        """
        from .fallback import batch_describe_jobs, earlier_attempts, fallback_message, record_as_failed

        key = (self.storage, self.flow_name, self.run_id, self.step, self.task_id)
        on_batch = batch_job_id() is not None
        try:
            earlier = earlier_attempts(*key, self.attempt, describe_jobs=batch_describe_jobs if on_batch else None)
            record_as_failed(*key, earlier)
        except Exception as e:  # the records cannot be read: still keep the failure, said plainly
            return FailureHandledByCatch(
                f"step {self.step!r} raised no exception that @catch could keep; what became of its earlier "
                f"attempts is unknown ({type_name(e)}: {e}). @catch's fallback attempt {self.attempt} records "
                "this instead of running the step again."
            )
        return FailureHandledByCatch(fallback_message(self.step, self.attempt, earlier))

    # --- what the step sees -------------------------------------------------------

    def _set_current(self) -> None:
        namespace = f"production:{self.token}" if self.token else f"user:{self.user}"
        info: dict[str, Any] = dict(
            flow_name=self.flow_name,
            run_id=self.run_id,
            step_name=self.step,
            task_id=self.task_id,
            retry_count=self.attempt,
            username=self.user,
            namespace=namespace,
            is_production=self.production,
            tags=[*self.system_tags(), *self.tags],
            parameter_names=list(self.param_names),
            origin_run_id=self.origin_run_id,
            trigger=self.trigger,
            scheduled_time=self.scheduled_time,
            # S3(run=self) keeps the run's objects in this same datastore (flowplane/datatools/roots.py).
            datastore_root=self.storage.root,
        )
        if self.project is not None:
            # With @project, is_production is Metaflow's: the production branch, deployed or not.
            info.update(self.project.current())
        current._set(**info)
        if self._card_specs():
            from ..cards.collector import CardComponentCollector

            current._info["card"] = CardComponentCollector(self._card_specs())

    def _card_specs(self) -> list[Any]:
        return [d for d in self.node.decorators if d.kind == "card"]

    def _render_cards(self, index: dict[str, Any]) -> None:
        """The step's @card pages, after its artifacts are stored (the default card shows them)."""
        from ..cards.task_cards import render_and_store
        from ..datastore.artifacts import TaskArtifacts

        values = TaskArtifacts(self.store, index)
        task = {"pathspec": self.pathspec, "step": self.step, "task_id": self.task_id, "attempt": self.attempt,
                "created_at": records.now_iso()}
        render_and_store(self._card_specs(), current.card, task, index, values.load, self.storage,
                         (self.flow_name, self.run_id, self.step, self.task_id, self.attempt), _time_limit)

    def system_tags(self) -> list[str]:
        """The run's system tags: whose it is, and where it runs."""
        project = self.project.tags() if self.project else []
        if self.production:
            tags = [f"user:{self.user}", "runtime:step-functions"]
            return tags + ([f"production:{self.token}"] if self.token else []) + project
        return [f"user:{self.user}", "runtime:local", *project]

    def _timeout(self) -> float:
        spec = self.node.decorator("timeout")
        return float(spec.total_seconds) if spec else 0.0

    def _check_transition(self, flow: FlowSpec) -> Optional[int]:
        """The step's `self.next()` must be what the graph (read from source) says."""
        transition = flow.__dict__.get("_transition")
        expected = self.node.out_funcs
        if self.node.type == "end":
            if transition is not None:
                raise TransitionError(f"step {self.step!r} is the end step and must not call self.next()")
            return None
        if transition is None:
            raise TransitionError(
                f"step {self.step!r} finished without calling self.next(); the graph says "
                f"self.next({_describe(expected, self.node.foreach_param)})"
            )
        names, foreach, num_splits = transition
        if list(names) != list(expected) or foreach != self.node.foreach_param:
            raise TransitionError(
                f"step {self.step!r} called self.next({_describe(names, foreach)}) but the graph, read from "
                f"the source, says self.next({_describe(expected, self.node.foreach_param)}); "
                "a step must always take the transition its last line names"
            )
        return num_splits

    def _param_artifacts(self, flow: FlowSpec) -> dict[str, Any]:
        assigned = sorted(a for a in self.param_attrs.values() if a in flow.__dict__)
        if assigned:
            raise ArtifactPersistError(
                f"step {self.step!r} assigned self.{assigned[0]}, which is a Parameter; parameters are read-only"
            )
        return self._by_attribute()

    def _by_attribute(self) -> dict[str, Any]:
        """Parameter values as artifacts: named by the attribute, as Metaflow stores them
        (`name_ = Parameter("who")` is the artifact `name_`), and also by the parameter's own
        name where it differs, as flowplane always has (`Run.data.deployment_info` of the shared
        DeploymentInfoFlow, whose attribute is `info`)."""
        out: dict[str, Any] = {}
        for name, value in self.param_values.items():
            out[name] = value
            out[self.param_attrs.get(name, name)] = value
        return out


def _describe(names: list[str], foreach: Optional[str]) -> str:
    text = ", ".join(f"self.{n}" for n in names)
    return f"{text}, foreach={foreach!r}" if foreach else text


@contextlib.contextmanager
def _time_limit(seconds: float, step: str) -> Iterator[None]:
    """@timeout inside the task, so @retry and @catch see it as the step's exception.

    The local runtime also kills a task that overstays (one that blocks the
    signal); on Batch the job's own timeout does.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TaskTimeout(f"step {step!r} timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
