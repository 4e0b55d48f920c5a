"""`flowplane task`: run one attempt of one task, locally or on AWS Batch.

    flowplane task --run-id R --step S --task-id T [--retry-count N]
                   (--flow-file PATH | --package s3://bucket/packages/<sha256>.tar.gz)
                   [--datastore-root ROOT] [--params-json JSON] [--tag T ...] [--with SPEC ...]

The task finds its inputs from the graph and its own id (`task_graph`), runs
the step, checks the transition it took against the graph, stores its
artifacts, logs and records, and exits 0 (succeeded, or failed and caught by
`@catch`) or 1. The local runtime forks and calls `main` with the same
arguments; Batch runs the same command. Values missing from the command line
come from FLOWPLANE_* environment variables (what the Batch job is given).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Iterator, Optional

from .current import current
from .context import username
from .datastore import layout, records
from .datastore.artifacts import ArtifactStore, TaskArtifacts, read_index, write_index
from .datastore.storage import S3Storage, Storage, default_root, storage_for
from .flowspec import FlowSpec, ForeachFrame, Input, Inputs
from .manifest import CatchSpec, GraphSpec, Manifest, StepSpec
from .task_errors import (
    ExceptionWrapper,
    FailureHandledByCatch,
    TaskSetupError,
    TaskTimeout,
    TransitionError,
    type_name,
    user_traceback,
)
from .task_graph import GRAPH_INFO, TaskIdError, TaskRef, check_task_id, foreach_splits, parents_of
from .task_loader import LoadedFlow, fetch_package, flow_file_in, load_flow_file
from .task_output import CapturedOutput
from .task_params import from_json_option, given_values, resolve, specs_from_parameters, with_included_files
from .task_persist import ArtifactPersistError, LoadTracker, persist

EXIT_OK = 0
EXIT_FAILED = 1


if TYPE_CHECKING:
    import argparse


def build_parser() -> "argparse.ArgumentParser":
    import argparse

    env = os.environ.get
    p = argparse.ArgumentParser(prog="flowplane task", description="Run one attempt of one task of a flow.")
    p.add_argument("--run-id", default=env("FLOWPLANE_RUN_ID"))
    p.add_argument("--step", default=env("FLOWPLANE_STEP"))
    p.add_argument("--task-id", default=env("FLOWPLANE_TASK_ID"))
    p.add_argument("--retry-count", type=int, default=int(env("FLOWPLANE_RETRY_COUNT") or 0))
    source = p.add_mutually_exclusive_group()
    source.add_argument("--flow-file")
    source.add_argument("--package", default=None)
    p.add_argument("--datastore-root", default=None)
    p.add_argument("--params-json", default=None)
    p.add_argument("--configs-json", default=None)
    p.add_argument("--tag", action="append", default=[], dest="tags")
    p.add_argument("--with", action="append", default=[], dest="with_specs", metavar="SPEC")
    return p


_VALUE_OPTIONS = {
    "--run-id": "run_id",
    "--step": "step",
    "--task-id": "task_id",
    "--retry-count": "retry_count",
    "--flow-file": "flow_file",
    "--package": "package",
    "--datastore-root": "datastore_root",
    "--params-json": "params_json",
    "--configs-json": "configs_json",
}
_LIST_OPTIONS = {"--tag": "tags", "--with": "with_specs"}


def _fast_parse(argv: list[str]) -> Optional[SimpleNamespace]:
    """The usual, well-formed command line without building an argparse parser.

    Every task pays for its argument parsing; argparse costs a few milliseconds
    (regexes, gettext lookups). Anything unusual returns None and goes to
    argparse, which gives the proper usage errors.
    """
    env = os.environ.get
    values: dict[str, Any] = {
        "run_id": env("FLOWPLANE_RUN_ID"), "step": env("FLOWPLANE_STEP"), "task_id": env("FLOWPLANE_TASK_ID"),
        "retry_count": env("FLOWPLANE_RETRY_COUNT") or "0", "flow_file": None, "package": None,
        "datastore_root": None, "params_json": None, "configs_json": None, "tags": [], "with_specs": [],
    }
    seen = set()
    it = iter(argv)
    for option in it:
        value = next(it, None)
        if value is None:
            return None
        if option in _VALUE_OPTIONS and option not in seen:
            seen.add(option)
            values[_VALUE_OPTIONS[option]] = value
        elif option in _LIST_OPTIONS:
            values[_LIST_OPTIONS[option]].append(value)
        else:
            return None
    if values["flow_file"] is not None and values["package"] is not None:
        return None  # argparse explains that they exclude each other
    try:
        values["retry_count"] = int(values["retry_count"])
    except ValueError:
        return None
    return SimpleNamespace(**values)


def main(argv: Optional[list[str]] = None) -> int:
    """The `flowplane task` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _quick_exit()
    # A crash in native code (a segfault) then leaves the Python traceback on stderr,
    # which the scheduler keeps as the attempt's log (the task cannot store it itself).
    import faulthandler

    try:
        faulthandler.enable()
    except (OSError, ValueError):  # stderr is no file (the task run in-process by a test harness)
        pass
    args = _fast_parse(argv) or build_parser().parse_args(argv)
    if not args.flow_file and not args.package:
        args.package = os.environ.get("FLOWPLANE_PACKAGE_URL")
    label = f"{args.run_id}/{args.step}/{args.task_id}"
    try:
        task = prepare(args)
    except TaskSetupError as e:
        print(f"flowplane task {label}: {e}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as e:  # the datastore is unreachable, ...: still say which task
        import traceback

        print(f"flowplane task {label}: could not start: {type_name(e)}: {e}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return EXIT_FAILED
    return task.run()


_exit_registered = False


def _quick_exit() -> None:
    """Let the process end without a last full garbage collection over every object.

    A task process exits right after its task; the interpreter's final collections
    walk every object botocore and pydantic left (~100 ms of a task process here).
    Freezing them once every other atexit handler has run (registered first, so it
    runs last; the step's handlers run as usual, and objects freed by reference
    counting are finalized as usual) skips that walk. What Python never promised at
    exit, __del__ of objects left in reference cycles, is what this gives up.
    """
    global _exit_registered
    if not _exit_registered:
        import atexit
        import gc

        _exit_registered = True
        atexit.register(gc.freeze)


def prepare(args: Any) -> "Task":
    """Everything checked before anything is written: a bad input changes nothing."""
    missing = [f"--{n.replace('_', '-')}" for n in ("run_id", "step", "task_id") if not getattr(args, n)]
    if not args.flow_file and not args.package:
        missing.append("--flow-file or --package")
    if missing:
        raise TaskSetupError("missing " + ", ".join(missing))
    if args.retry_count < 0:
        raise TaskSetupError(f"--retry-count must be 0 or more, got {args.retry_count}")
    production = args.package is not None
    if production:
        package_dir, manifest = fetch_package(args.package)
        loaded = load_flow_file(flow_file_in(package_dir, manifest), manifest)
    else:
        manifest = None
        loaded = load_flow_file(args.flow_file, configs=_configs(getattr(args, "configs_json", None)))
    missing_configs = [c.name for c in loaded.source.configs if c.name not in loaded.configs]
    if missing_configs:
        raise TaskSetupError(
            f"no value for the config(s) {', '.join(map(repr, missing_configs))}: they are read when the run "
            "starts (or the flow is deployed) and given to every task (--configs-json)"
        )
    with_specs = _with_specs(args.with_specs)
    _, graph = loaded.context(with_specs)
    try:
        indices = check_task_id(graph, args.step, args.task_id)
    except TaskIdError as e:
        raise TaskSetupError(str(e)) from None
    node = graph[args.step]
    if node.type == "foreach" and node.decorator("catch") is not None:
        raise TaskSetupError(f"step {node.name!r}: @catch is not supported on a foreach split step (as in Metaflow)")
    environment = node.decorator("environment")
    if environment is not None:
        # This process runs only this task: its environment is the step's, locally and on Batch
        # alike, for the step's code and whatever it starts.
        os.environ.update(environment.vars)
    secrets = node.decorator("secrets")
    if secrets is not None and secrets.sources:
        from .task_secrets import secret_environment

        # Read before anything is written, so an unknown secret fails the task cleanly.
        os.environ.update(secret_environment(secrets.sources))
    root = args.datastore_root or default_root()
    storage = _storage(root)
    param_specs = list(manifest.parameters) if manifest else specs_from_parameters(_flow_parameters(loaded))
    given = given_values(args.params_json, os.environ.get("FLOWPLANE_EXECUTION_INPUT"))
    if given is None:
        run = records.read_run(storage, graph.flow_name, args.run_id)
        given = dict(run.parameters) if run else {}
    params = resolve(param_specs, given)
    token = os.environ.get("FLOWPLANE_PRODUCTION_TOKEN") or None
    return Task(
        loaded=loaded,
        graph=graph,
        node=node,
        run_id=args.run_id,
        task_id=args.task_id,
        indices=indices,
        attempt=args.retry_count,
        storage=storage,
        params=params,
        param_values=with_included_files(param_specs, params, storage, graph.flow_name),
        param_attrs={s.name: s.attribute for s in param_specs},
        param_names=parameter_names(loaded.source.configs, param_specs),
        tags=list(args.tags),
        production=production or token is not None,
        token=token,
        manifest=manifest,
    )


def parameter_names(configs: list[Any], specs: list[Any]) -> list[str]:
    """current.parameter_names: Metaflow yields the configs, then the Parameters in dir() order."""
    return sorted(c.attribute for c in configs) + sorted(s.attribute for s in specs)


def _configs(text: Optional[str]) -> dict[str, Any]:
    """--configs-json: the Config values the local run read when it started."""
    return from_json_option(text, "--configs-json", "config values") if text else {}


def _storage(root: str) -> Storage:
    if root.startswith("s3://"):
        from .task_aws import s3

        # The package's client: one S3 client per task process.
        return S3Storage(root, client=s3())
    return storage_for(root)


def _with_specs(values: list[str]) -> list[Any]:
    from .decorators import DecoratorArgumentError, parse_with_option

    try:
        return [parse_with_option(v) for v in values]
    except DecoratorArgumentError as e:
        raise TaskSetupError(str(e)) from None


def _flow_parameters(loaded: LoadedFlow) -> list[Any]:
    ctx, _ = loaded.context([])
    return ctx.parameters()


@dataclass
class Outcome:
    """How the attempt ended."""

    ok: bool = False
    error: Optional[BaseException] = None
    error_text: Optional[str] = None  # the traceback to store with the error
    caught: bool = False
    num_splits: Optional[int] = None
    artifacts: Optional[dict[str, Any]] = None  # the stored index


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
    _records: dict[TaskRef, records.TaskRecord] = field(default_factory=dict)
    _sources: dict[TaskRef, TaskArtifacts] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.events = None
        if os.environ.get("FLOWPLANE_EVENT_BUS"):
            # Only on Batch: the event model and boto3 stay out of local tasks.
            from .task_events import EventSender

            self.events = EventSender.from_env()
        self.flow_name = self.graph.flow_name
        self.step = self.node.name
        self.store = ArtifactStore(self.storage, self.flow_name)
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
        # @catch keeps an exception once @retry's attempts are spent; past them, its
        # fallback attempts run no user code and tell how the earlier attempts died.
        self.catching = self.fallback = False
        last = retry_times
        if self.catch_spec is not None:
            from .task_fallback import attempts_before_failing, is_fallback  # @catch steps only

            self.catching = self.attempt >= retry_times
            self.fallback = is_fallback(self.attempt, retry_times, True)
            last = attempts_before_failing(retry_times, True)
        # No attempt follows this one if it fails: the task has failed.
        self.last_attempt = self.attempt >= last

    # --- the attempt -------------------------------------------------------------

    def run(self) -> int:
        started = records.now_iso()
        try:
            with CapturedOutput() as out:
                try:
                    self._record_start(started)
                    outcome = self._attempt()
                finally:
                    current._set()
            self._save_logs(out)
            out.close()
            self._record_end(started, outcome)
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
            flow, inputs = self._build_flow(tracker)
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
                index.setdefault(GRAPH_INFO, self._graph_info_ref())
                write_index(self.storage, self.flow_name, self.run_id, self.step, self.task_id, self.attempt, index)
                outcome.artifacts = index
            except ArtifactPersistError as e:
                outcome.ok, outcome.caught = False, False
                outcome.error, outcome.error_text = e, f"{type_name(e)}: {e}\n"
        if outcome.ok and outcome.num_splits is not None:
            self._record_foreach(outcome.num_splits)
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
        from .task_fallback import batch_describe_jobs, earlier_attempts, fallback_message, record_as_failed

        key = (self.storage, self.flow_name, self.run_id, self.step, self.task_id)
        on_batch = self._batch_job_id() is not None
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

    # --- building the FlowSpec ------------------------------------------------------

    def _build_flow(self, tracker: LoadTracker) -> tuple[FlowSpec, Optional[Inputs]]:
        flow = self.loaded.flow_cls(use_cli=False)
        d = flow.__dict__
        d["_flowplane_params"] = dict(self.param_values)
        d["_flowplane_configs"] = self.loaded.configs
        parents = parents_of(self.graph, self.step, self.task_id, self._num_splits)
        inputs = None
        if self.node.type == "join":
            inputs = Inputs([Input(p.ref.step, tracker.wrap(self._artifacts(p.ref)), p.index) for p in parents])
        elif parents:
            d["_flowplane_inherited"] = tracker.wrap(self._artifacts(parents[0].ref))
        splits = foreach_splits(self.graph, self.step, self.task_id)
        # The values (self.input, foreach_stack()) are read through the flow when asked.
        d["_flowplane_foreach_stack"] = [
            ForeachFrame(step=s.step, index=i, num_splits=self._num_splits(s), var=self.graph[s.step].foreach_param)
            for s, i in zip(splits, self.indices)
        ]
        return flow, inputs

    def _graph_info_ref(self) -> Any:
        """The run's graph as an internal artifact (Metaflow's `_graph_info`), stored once per run.

        The Client API derives Task.parent_tasks / child_tasks from it, locally and in
        production alike. A task inherits its parent's copy; a join takes its first input's.
        """
        for parent in parents_of(self.graph, self.step, self.task_id, self._num_splits)[:1]:
            ref = self._artifacts(parent.ref).index.get(GRAPH_INFO)
            if ref is not None:
                return ref
        return self.store.save(self.graph.model_dump(mode="json"))

    def _task_record(self, ref: TaskRef) -> records.TaskRecord:
        rec = self._records.get(ref)
        if rec is None:
            rec = records.read_task(self.storage, self.flow_name, self.run_id, ref.step, ref.task_id)
            if rec is None:
                raise TaskSetupError(f"the input task {self.flow_name}/{self.run_id}/{ref} has not run")
            if rec.status != "succeeded" or rec.final_attempt is None:
                raise TaskSetupError(
                    f"the input task {self.flow_name}/{self.run_id}/{ref} has not succeeded (status {rec.status})"
                )
            self._records[ref] = rec
        return rec

    def _artifacts(self, ref: TaskRef) -> TaskArtifacts:
        source = self._sources.get(ref)
        if source is None:
            attempt = self._task_record(ref).final_attempt
            index = read_index(self.storage, self.flow_name, self.run_id, ref.step, ref.task_id, attempt or 0)
            if index is None:
                raise TaskSetupError(f"the input task {self.flow_name}/{self.run_id}/{ref} stored no artifacts")
            source = self._sources[ref] = TaskArtifacts(self.store, index)
        return source

    def _num_splits(self, ref: TaskRef) -> int:
        attempt = self._task_record(ref).final_attempt or 0
        key = layout.attempt_key(self.flow_name, self.run_id, ref.step, ref.task_id, attempt, layout.FOREACH_RECORD)
        try:
            return int(json.loads(self.storage.get_bytes(key))["num_splits"])
        except (KeyError, ValueError, TypeError) as e:
            raise TaskSetupError(f"the foreach task {self.flow_name}/{self.run_id}/{ref} left no cardinality ({e})") from None

    def _set_current(self) -> None:
        namespace = f"production:{self.token}" if self.token else f"user:{self.user}"
        current._set(
            flow_name=self.flow_name,
            run_id=self.run_id,
            step_name=self.step,
            task_id=self.task_id,
            retry_count=self.attempt,
            username=self.user,
            namespace=namespace,
            is_production=self.production,
            tags=[*self._system_tags(), *self.tags],
            parameter_names=list(self.param_names),
            origin_run_id=None,
            # S3(run=self) keeps the run's objects in this same datastore (flowplane/datatools/roots.py).
            datastore_root=self.storage.root,
        )
        if self._card_specs():
            from .cards.collector import CardComponentCollector

            current._info["card"] = CardComponentCollector(self._card_specs())

    def _card_specs(self) -> list[Any]:
        return [d for d in self.node.decorators if d.kind == "card"]

    def _render_cards(self, index: dict[str, Any]) -> None:
        """The step's @card pages, after its artifacts are stored (the default card shows them)."""
        from .cards.task_cards import render_and_store
        from .datastore.artifacts import TaskArtifacts

        values = TaskArtifacts(self.store, index)
        task = {"pathspec": self.pathspec, "step": self.step, "task_id": self.task_id, "attempt": self.attempt,
                "created_at": records.now_iso()}
        render_and_store(self._card_specs(), current.card, task, index, values.load, self.storage,
                         (self.flow_name, self.run_id, self.step, self.task_id, self.attempt), _time_limit)

    def _system_tags(self) -> list[str]:
        if self.production:
            tags = [f"user:{self.user}", "runtime:step-functions"]
            return tags + ([f"production:{self.token}"] if self.token else [])
        return [f"user:{self.user}", "runtime:local"]

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

    # --- records --------------------------------------------------------------------

    def _task_rec(self) -> records.TaskRecord:
        rec = records.TaskRecord(
            flow=self.flow_name, run_id=self.run_id, step=self.step, task_id=self.task_id,
            foreach_indices=self.indices,
        )
        if self.attempt > 0:
            previous = records.read_task(self.storage, self.flow_name, self.run_id, self.step, self.task_id)
            if previous is not None:
                rec.created_at = previous.created_at
        return rec

    def _record_start(self, started: str) -> None:
        if self.production and self.step == "start":
            self._ensure_run_record()
        self._task_record_now = rec = self._task_rec()
        rec.status, rec.attempts = "running", self.attempt + 1
        records.write_task(self.storage, rec)
        records.write_attempt(
            self.storage, self.flow_name, self.run_id, self.step, self.task_id,
            records.AttemptRecord(
                attempt=self.attempt, started_at=started, log_location=self._log_prefix(),
                batch_job_id=self._batch_job_id(),
            ),
        )
        self._send("started")

    def _record_end(self, started: str, outcome: Outcome) -> None:
        finished = records.now_iso()
        error = None
        if outcome.error is not None:
            error = records.ErrorInfo(
                type=type_name(outcome.error), message=str(outcome.error), traceback=outcome.error_text
            )
        records.write_attempt(
            self.storage, self.flow_name, self.run_id, self.step, self.task_id,
            records.AttemptRecord(
                attempt=self.attempt,
                status="succeeded" if outcome.ok else "failed",
                started_at=started,
                finished_at=finished,
                exit_code=EXIT_OK if outcome.ok else EXIT_FAILED,
                error=error,
                log_location=self._log_prefix(),
                batch_job_id=self._batch_job_id(),
            ),
        )
        rec = self._task_record_now
        rec.error = error
        if outcome.ok:
            rec.status, rec.final_attempt, rec.finished_at = "succeeded", self.attempt, finished
        elif self.last_attempt:
            rec.status, rec.final_attempt, rec.finished_at = "failed", self.attempt, finished
        else:
            rec.status = "running"  # @retry (or @catch's fallback) will start another attempt
        records.write_task(self.storage, rec)
        if self.production and self.step == "end" and outcome.ok:
            self._finish_run_record(finished)
        if outcome.ok:
            self._send("finished", artifacts=outcome.artifacts or {}, error=error)
        else:
            # A failed attempt keeps what it had saved, as a local run shows it (Metaflow does too).
            self._send("failed", artifacts=outcome.artifacts or None, error=error)

    def _send(self, kind: str, **extra: Any) -> None:
        if self.events is not None:
            self.events.send(
                kind, self.flow_name, self.run_id, self.step, self.task_id, self.attempt, self.indices, **extra
            )

    @staticmethod
    def _batch_job_id() -> Optional[str]:
        # Batch keeps the job's exit code and reason: a later attempt can ask what killed this one.
        return os.environ.get("AWS_BATCH_JOB_ID") or None

    def _log_prefix(self) -> str:
        return layout.attempt_prefix(self.flow_name, self.run_id, self.step, self.task_id, self.attempt)

    def _save_logs(self, out: CapturedOutput) -> None:
        prefix = self._log_prefix()
        for name, tee in zip(layout.LOGS, (out.stdout, out.stderr)):
            self.storage.put_stream(f"{prefix}/{name}", tee.contents())
            self.storage.put_bytes(f"{prefix}/{layout.log_times_name(name)}", tee.times_text())

    def _record_foreach(self, num_splits: int) -> None:
        key = layout.attempt_key(self.flow_name, self.run_id, self.step, self.task_id, self.attempt, layout.FOREACH_RECORD)
        self.storage.put_bytes(key, json.dumps({"num_splits": num_splits}).encode())
        table = os.environ.get("FLOWPLANE_FOREACH_TABLE")
        if table:
            # Step Functions reads the cardinality from DynamoDB before its Map state.
            from .foreach_cardinality import record_cardinality
            from .task_aws import client

            record_cardinality(
                table, self.flow_name, self.run_id, self.step, self.task_id, num_splits, client=client("dynamodb")
            )

    def _ensure_run_record(self) -> None:
        if records.read_run(self.storage, self.flow_name, self.run_id) is None:
            records.write_run(
                self.storage,
                records.RunRecord(
                    flow=self.flow_name, run_id=self.run_id, user=self.user, owner=self.owner, tags=list(self.tags),
                    system_tags=self._system_tags(), parameters=_jsonable(self.params),
                ),
            )

    def _finish_run_record(self, finished: str) -> None:
        run = records.read_run(self.storage, self.flow_name, self.run_id)
        if run is not None and run.status == "running":
            run.status, run.finished_at = "succeeded", finished
            records.write_run(self.storage, run)


def _describe(names: list[str], foreach: Optional[str]) -> str:
    text = ", ".join(f"self.{n}" for n in names)
    return f"{text}, foreach={foreach!r}" if foreach else text


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values, default=str))


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
