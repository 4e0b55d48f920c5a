"""Manifest -> Amazon States Language, with Metaflow's semantics on Step Functions.

Shape of what comes out:

- a first Pass state (`flowplane-context`) evaluates once what every task shares:
  the Batch queue and job definition and the job environment (flowplane/job.py:
  the run id `sfn-<execution name>`, the whole execution input as JSON, which
  holds "Parameters", the package's URL, the datastore's root, ...).
  It becomes the state data `{"fp": {...}}`; tasks refer to it by path, which
  keeps each task state near 0.5 KB whatever the URLs' length;
- every step is one Task state (`batch:submitJob.sync`) named after the step; its
  job runs `flowplane task --step S --task-id T --retry-count N`, the task id
  being `1` outside any foreach and `$.tid` inside, the retry count
  `$$.State.RetryCount`;
- a static split is the split's Task, then a Parallel state with one branch per
  out step (each branch runs up to, not including, the join), then the join;
- a foreach is the split's Task (which writes its item list to the datastore in
  S3), a Distributed Map reading that list whose child executions get
  `{"fp": ..., "tid": "<parent tid>.<index>"}` (chalicelib/compiler/foreach.py),
  then the join;
- every state passes its input through (`ResultPath: null`, the Map keeps only its
  iteration count), so the state data never grows with the graph;
- `@retry` and `@catch` become a Retry on the job failing (`@catch` adds
  Metaflow's fallback attempts, where the task runtime records the failure
  instead of running user code, and exits 0); there is no ASL Catch: a step whose
  fallbacks cannot run either fails the execution right there, as in Metaflow;
  `@timeout` is enforced inside the task (an exception @retry and @catch see) and,
  as a backstop for a task that blocks the signal, by Batch's attempt timeout.
  There is no TimeoutSeconds, as in Metaflow: the state's clock would also count
  the time the job waits in the queue and its container starts, so a short
  `@timeout` would fail attempts (fallback attempts too) before they ran.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from flowplane import job
from flowplane.datastore.storage import ROOT_ENV, S3Storage
from flowplane.events import STAGE_ENV
from flowplane.manifest import GraphSpec, Manifest, StepSpec

from . import foreach
from .intrinsics import escape_literal, format_call, run_id_expr
from .settings import CompileSettings

SUBMIT_JOB_SYNC = "arn:aws:states:::batch:submitJob.sync"

# Metaflow's state machines retry Batch API throttling this way.
BATCH_THROTTLE_RETRY = {
    "ErrorEquals": ["Batch.AWSBatchException"],
    "IntervalSeconds": 2,
    "MaxAttempts": 10,
    "BackoffRate": 2,
    "JitterStrategy": "FULL",
}
# What a failed or timed-out job surfaces as; @retry and @catch retry these only
# (States.ALL would also swallow States.Runtime, i.e. a broken definition).
JOB_FAILED = ["States.TaskFailed", "States.Timeout"]
# The first state puts what all tasks share under this field of the state data.
CONTEXT_STATE = "flowplane-context"
CONTEXT_FIELD = "fp"
CONTEXT_PATH = f"$.{CONTEXT_FIELD}"
# Batch takes strings only; $$.State.RetryCount is a number (0 on the first attempt).
RETRY_COUNT = format_call(["", ""], ["$$.State.RetryCount"])
# ASL caps state names at 80 characters; the longest suffix added is "-parallel".
MAX_STEP_NAME = 80 - len("-parallel")
# Batch refuses an attempt timeout under 60 seconds.
BATCH_MIN_ATTEMPT_SECONDS = 60
# Batch's clock starts with the container; the task's @timeout alarm starts once the
# package and the inputs are loaded. The grace lets the alarm fire first, so the step
# ends with an exception @catch can keep rather than a kill.
BATCH_TIMEOUT_GRACE_SECONDS = 60

_JOB_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")
_S3_PACKAGE = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$")


class CompileError(ValueError):
    """The manifest cannot become a state machine; the message names the step at fault."""


def compile_state_machine(manifest: Manifest, package_url: str, settings: CompileSettings) -> dict[str, Any]:
    """The ASL definition (a dict) running `manifest`'s flow from the package at `package_url`."""
    if not _S3_PACKAGE.match(package_url):
        raise CompileError(f"package_url must be an s3://bucket/key URL, got {package_url!r}")
    return _Compiler(manifest, package_url, settings).compile()


class _Compiler:
    def __init__(self, manifest: Manifest, package_url: str, settings: CompileSettings):
        self.manifest = manifest
        self.graph: GraphSpec = manifest.graph
        self.flow = manifest.flow_name
        self.settings = settings
        self.visited: set[str] = set()
        unknown = set(settings.step_job_definitions) - set(self.graph.steps)
        if unknown:
            raise CompileError(f"step_job_definitions names steps the flow does not have: {sorted(unknown)}")
        self.package_url = package_url

    def compile(self) -> dict[str, Any]:
        if self.flow != self.graph.flow_name:
            raise CompileError(f"manifest flow_name {self.flow!r} differs from the graph's {self.graph.flow_name!r}")
        for name in ("start", "end"):
            if name not in self.graph:
                raise CompileError(f"the flow has no {name!r} step")
        for name in self.graph.steps:
            if len(name) > MAX_STEP_NAME:
                raise CompileError(
                    f"step name {name!r} is too long: Step Functions state names are limited to "
                    f"80 characters, so step names to {MAX_STEP_NAME}"
                )
        body = self._chain("start", stop=None, task_id_path=None)
        unreached = [n for n in self.graph.steps if n not in self.visited]
        if unreached:
            raise CompileError(f"steps not reachable from 'start': {sorted(unreached)}")
        states = {CONTEXT_STATE: self._context_state(next_state=body["StartAt"]), **body["States"]}
        return {"Comment": f"Flowplane flow {self.flow}", "StartAt": CONTEXT_STATE, "States": states}

    def _context_state(self, next_state: str) -> dict[str, Any]:
        """The first state: what every task shares, evaluated once per execution.

        Tasks point at it (`"Environment.$": "$.fp.env"`) instead of repeating the
        same long URLs and intrinsics, which keeps a task state well under 1 KB.
        It also replaces the execution input as state data (tasks read the input
        through job.EXECUTION_INPUT), so any input shape works, `{}` included.
        """
        s = self.settings
        env: list[dict[str, str]] = [
            {"Name": job.RUN_ID, "Value.$": run_id_expr()},
            # With the run id, what the recorder needs to file a Batch job's state changes
            # (step, task id and retry count are in the job's command).
            {"Name": job.FLOW, "Value": self.flow},
            # Parameters are in here ("Parameters": a JSON string); missing ones take the
            # deployed defaults in the task, so a console start with any object works.
            {"Name": job.EXECUTION_INPUT, "Value.$": "States.JsonToString($$.Execution.Input)"},
            {"Name": job.PACKAGE_URL, "Value": self.package_url},
            {"Name": ROOT_ENV, "Value": s.datastore_root},
        ]
        if s.stage:
            # Every stage's recorder hears every Batch job and task event in the account
            # and region; this tells each its own (chalicelib/recording/owners.py).
            env.append({"Name": STAGE_ENV, "Value": s.stage})
        if s.event_bus:
            env.append({"Name": job.EVENT_BUS, "Value": s.event_bus})
        if s.join_inputs_table:
            env.append({"Name": job.JOIN_INPUTS_TABLE, "Value": s.join_inputs_table})
        if s.production_token:
            # Runs of this deployment live in the namespace production:<token>.
            env.append({"Name": job.PRODUCTION_TOKEN, "Value": s.production_token})
        ctx = {"queue": s.job_queue, "jobdef": s.job_definition, "env": env, f"{foreach.RUN_ID_FIELD}.$": run_id_expr()}
        return {"Type": "Pass", "Parameters": {CONTEXT_FIELD: ctx}, "Next": next_state}

    # --- structure ---------------------------------------------------------------

    def _step(self, name: str, came_from: str) -> StepSpec:
        if name not in self.graph:
            raise CompileError(f"step {came_from!r} goes to {name!r}, which is not a step of the flow")
        return self.graph[name]

    def _chain(self, first: str, stop: Optional[str], task_id_path: Optional[str]) -> dict[str, Any]:
        """States from `first` up to (not including) `stop`, or to `end` when stop is None.

        Iterative along a chain so a 1,000-step linear flow does not recurse 1,000 deep;
        recursion is only per nesting level.
        """
        states: dict[str, Any] = {}
        name = first
        while True:
            node = self.graph[name]
            if name in self.visited:
                raise CompileError(
                    f"step {name!r} is reached twice; only the join of a split may have several "
                    "parents, and each branch must lead to that join"
                )
            self.visited.add(name)
            states[name] = {}  # keeps the step before the states it leads to
            if node.type == "end":
                if stop is not None:
                    raise CompileError(f"step 'end' is reached inside the split closed by {stop!r}")
                self._add_task(states, node, None, task_id_path)
                return {"StartAt": first, "States": states}
            if node.type in ("split", "foreach"):
                join = node.matching_join
                if not join or join not in self.graph:
                    raise CompileError(f"split step {name!r} has no join that closes it")
                if node.type == "split":
                    after = self._parallel(states, node, join, task_id_path)
                else:
                    after = self._foreach(states, node, join, task_id_path)
                self._add_task(states, node, after, task_id_path)
                nxt = join
            else:
                if len(node.out_funcs) != 1:
                    raise CompileError(f"step {name!r} ({node.type}) must go to exactly one step")
                nxt = node.out_funcs[0]
                self._step(nxt, name)
                if nxt == stop:
                    self._add_task(states, node, None, task_id_path)
                    return {"StartAt": first, "States": states}
                if self.graph[nxt].type == "join" and nxt in self.visited:
                    raise CompileError(
                        f"step {name!r} goes to join {nxt!r} from outside the split that {nxt!r} closes"
                    )
                self._add_task(states, node, nxt, task_id_path)
            name = nxt

    def _parallel(self, states: dict, node: StepSpec, join: str, task_id_path: Optional[str]) -> str:
        branches = []
        for out in node.out_funcs:
            self._step(out, node.name)
            if out == join:
                raise CompileError(f"split step {node.name!r} goes straight to its join {join!r}")
            branches.append(self._chain(out, stop=join, task_id_path=task_id_path))
        name = f"{node.name}-parallel"
        # Branch outputs are not needed (tasks share data through the datastore).
        states[name] = {"Type": "Parallel", "Branches": branches, "ResultPath": None, "Next": join}
        return name

    def _foreach(self, states: dict, node: StepSpec, join: str, task_id_path: Optional[str]) -> str:
        if len(node.out_funcs) != 1:
            raise CompileError(f"foreach step {node.name!r} must go to exactly one step")
        body_first = node.out_funcs[0]
        self._step(body_first, node.name)
        if body_first == join:
            raise CompileError(f"foreach step {node.name!r} goes straight to its join {join!r}")
        if node.decorator("catch") is not None:
            # As Metaflow: a caught failure would leave no cardinality for the Map.
            raise CompileError(f"@catch is not supported on foreach step {node.name!r}")
        iteration = self._chain(body_first, stop=join, task_id_path=foreach.TASK_ID_PATH)
        # Split as the task's storage splits it (no client is made), so both address one object.
        store = S3Storage(self.settings.datastore_root)
        key = foreach.item_key_expr(self.flow, node.name, store.prefix, CONTEXT_PATH, task_id_path)
        mapped = f"{node.name}-foreach"
        states[mapped] = foreach.map_state(
            iteration, store.bucket, key, task_id_path, CONTEXT_FIELD, self.manifest.options.max_workers, next_state=join
        )
        return mapped

    # --- the task ------------------------------------------------------------------

    def _add_task(self, states: dict, node: StepSpec, nxt: Optional[str], task_id_path: Optional[str]) -> None:
        # No ASL Catch, even for @catch: its fallback attempts (in the Retry) end the
        # step with a task that records the failure. A Catch could only move on past a
        # step whose fallbacks could not run either, i.e. one with no task to read, and
        # the next task would fail instead, refusing its missing input. Without it the
        # execution fails here, with this step's Batch job as the cause.
        task = self._task(node, task_id_path)
        if nxt is None:
            task["End"] = True
        else:
            task["Next"] = nxt
        states[node.name] = task

    def _task(self, node: StepSpec, task_id_path: Optional[str]) -> dict[str, Any]:
        # The per-task values ride in the command: the environment is the shared list.
        task_id = task_id_path or "'1'"
        # @pypi/@conda: the task enters its step's locked environment (flowplane/environments/).
        env_id = self.manifest.environments.steps.get(node.name)
        python_env = f",'--python-env','{env_id}'" if env_id else ""
        command = (
            "States.Array('flowplane','task','--step',"
            f"'{escape_literal(node.name)}','--task-id',{task_id},'--retry-count',{RETRY_COUNT}{python_env})"
        )
        overrides: dict[str, Any] = {"Command.$": command, "Environment.$": f"{CONTEXT_PATH}.env"}
        resources = node.compute_resources()
        if resources is not None:
            overrides["ResourceRequirements"] = _resource_requirements(resources)
        params: dict[str, Any] = {"JobName": job_name(self.flow, node.name)}
        batch = node.decorator("batch")
        if batch is not None and batch.queue:
            params["JobQueue"] = batch.queue  # @batch(queue=...): this step's own queue
        else:
            params["JobQueue.$"] = f"{CONTEXT_PATH}.queue"
        if node.name in self.settings.step_job_definitions:
            params["JobDefinition"] = self.settings.step_job_definitions[node.name]
        else:
            params["JobDefinition.$"] = f"{CONTEXT_PATH}.jobdef"
        params["ContainerOverrides"] = overrides
        task: dict[str, Any] = {
            "Type": "Task",
            "Resource": SUBMIT_JOB_SYNC,
            "Parameters": params,
            # The job description is not needed downstream; keep the input (the task id).
            "ResultPath": None,
        }
        timeout = node.decorator("timeout")
        if timeout is not None:
            # Batch stops the container itself too, as Metaflow's run_time_limit does.
            seconds = timeout.total_seconds + BATCH_TIMEOUT_GRACE_SECONDS
            params["Timeout"] = {"AttemptDurationSeconds": max(seconds, BATCH_MIN_ATTEMPT_SECONDS)}
        task["Retry"] = self._retry(node)
        return task

    def _retry(self, node: StepSpec) -> list[dict[str, Any]]:
        # Copies: a caller may edit the definition; no two states share an object.
        throttle = {**BATCH_THROTTLE_RETRY, "ErrorEquals": list(BATCH_THROTTLE_RETRY["ErrorEquals"])}
        retriers: list[dict[str, Any]] = [throttle]
        retry, catch = node.decorator("retry"), node.decorator("catch")
        # @catch adds Metaflow's fallback attempts, which record the failure instead of
        # running the user's code; the task counts them the same way (flowplane/job.py).
        attempts = job.attempts_before_failing(retry.times if retry is not None else 0, catch is not None)
        if attempts:
            minutes = retry.minutes_between_retries if retry is not None else 0
            retriers.append(
                {
                    "ErrorEquals": list(JOB_FAILED),
                    # ASL: IntervalSeconds MUST be a positive integer (1 to 99999999);
                    # minutes_between_retries=0 means "at once", the closest is 1 s.
                    "IntervalSeconds": max(1, 60 * minutes),
                    "MaxAttempts": attempts,
                    "BackoffRate": 1,
                }
            )
        return retriers


def job_name(flow: str, step: str) -> str:
    """A Batch job name: [A-Za-z0-9][A-Za-z0-9_-]{1,127}, telling flow and step apart."""
    name = _JOB_NAME_BAD.sub("_", f"{flow}-{step}")
    if not name[0].isalnum():
        name = "fp" + name
    return name[:128]


def _resource_requirements(resources: Any) -> list[dict[str, str]]:
    cpu = resources.cpu
    reqs = [
        # Batch wants strings; whole vCPUs as "2", Fargate fractions as "0.25".
        {"Type": "VCPU", "Value": str(int(cpu)) if float(cpu).is_integer() else str(cpu)},
        {"Type": "MEMORY", "Value": str(resources.memory)},
    ]
    if resources.gpu:
        reqs.append({"Type": "GPU", "Value": str(resources.gpu)})
    return reqs


__all__ = ["CompileError", "compile_state_machine", "job_name"]
