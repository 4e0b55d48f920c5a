"""Fixes to moto 5.2.1 that the embedded control plane and the tests need.

Each patch corrects a place where moto behaves unlike AWS, with the reason
beside it; with them, moto does what the AWS documentation says. They change
moto's classes process-wide, so each comes as an `install_*()` returning its
undo (which puts back exactly what was there), and the Batch and
second-execution ones also as context managers for tests.

1-3  Step Functions' Batch `submitJob.sync` (normalisation, retries, a race)
4    a second StartExecution on the same state machine
5    a Batch job's environment growing at every DescribeJobs
6-7  EventBridge delivery to targets (schedule rules, the account field)
8    TransactWriteItems copying whole tables
9    Query sorting the whole table
10   botocore reading its data files again for every session moto makes
11   JSONPath expressions parsed again at every use
12   moto's EC2 reading 100 data files at import that the plane never uses
13   DynamoDB items walked shape by shape to write each response
14   the server listing moto's package folder at every request
15   a rule's Lambda target getting nothing
16   a Distributed Map ignoring its children's failures
17   a StopExecution right after StartExecution
18   DynamoDB answers converted and sized value by value through generic code
19   every response body searched for an XML RequestId
20   every `.sync` Batch task polling DescribeJobs over HTTP
21   every SendMessage counting the queue's messages
"""

from __future__ import annotations

import contextlib
import copy
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Callable, Iterator, Optional

from ..job import BATCH_JOB_ID

Undo = Callable[[], None]

# --- 1-3: Step Functions' Batch `submitJob.sync` ---------------------------------------------
#
# 1. Request/response normalisation. Moto 5.2's copy of the Step Functions
# interpreter (from LocalStack) leaves `StateTaskService._normalise_parameters` /
# `_normalise_response` empty. On AWS, Step Functions takes the PascalCase fields
# of the ASL (`JobQueue`, `ContainerOverrides.Environment[].Name`) and calls
# Batch's API, whose members are camelCase (`jobQueue`, `environment[].name`);
# moto hands the PascalCase dict to botocore untranslated, so every Batch task
# fails with `States.Runtime ... Unknown parameter ... 'JobQueue'`, and `.sync`
# then reads `JobId` from a response that says `jobId`. The fix fills the two
# hooks for the Batch service only, from botocore's own operation model (input
# shape for the request, output shape for the response), using the
# interpreter's existing `_to_boto_request` / `_from_boto_response` helpers.
#
# 2. Retried `.sync` attempts reported as timed out. The interpreter makes one
# task token (and callback endpoint) when it enters a Task state, and `.sync`
# waits on that endpoint beside polling `DescribeJobs`. At the end of the first
# attempt the endpoint is interrupted for good, but Retry re-runs the attempt
# inside the same state entry, so from the second attempt on the wait returns at
# once, as a timeout: any job not already finished at the first poll ends in
# `TaskTimedOut` / `States.Timeout`, and the attempts that follow are skipped.
# (With `MOTO_SIMPLE_BATCH_FAIL_AFTER=0` jobs fail inside SubmitJob, before the
# first poll, which hides it; a job that runs for a moment shows it.) On AWS each
# retry is a new TaskScheduled/TaskSubmitted/TaskFailed round with its own job,
# and the execution fails with `States.TaskFailed` once MaxAttempts are spent.
# The fix re-arms the endpoint at the start of each attempt.
#
# 3. `DescribeJobs` racing `SubmitJob`. moto's Batch backend iterates its job
# dict in `describe_jobs` while other threads insert into it; with a Map running
# iterations concurrently, the `.sync` poll of one iteration meets the
# submission of another and dies with `RuntimeError: dictionary changed size
# during iteration`, which the interpreter reports as `States.Runtime` (a
# 100-item foreach at MaxConcurrency 40 failed this way about one run in three).
# The fix iterates over a snapshot. And it looks the jobs asked for up by id: each
# `.sync` poll asks for one job, and walking every job the backend ever held made
# each poll cost the run's width (the plane's CPU per task grew by a quarter from a
# 300- to a 1,000-item foreach).

_batch_model: Any = None


def _batch_operation(snake_name: str) -> Any:
    import botocore
    import botocore.session

    global _batch_model
    if _batch_model is None:
        _batch_model = botocore.session.get_session().get_service_model("batch")
    for name in _batch_model.operation_names:
        if botocore.xform_name(name) == snake_name:
            return _batch_model.operation_model(name)
    raise KeyError(f"Batch has no operation {snake_name!r}")


def _normalise_parameters(
    self: Any, parameters: dict, boto_service_name: Optional[str] = None, service_action_name: Optional[str] = None
) -> None:
    op = _batch_operation(self._get_boto_service_action(service_action_name))
    self._to_boto_request(parameters, op.input_shape)


def _normalise_response(
    self: Any, response: Any, boto_service_name: Optional[str] = None, service_action_name: Optional[str] = None
) -> None:
    op = _batch_operation(self._get_boto_service_action(service_action_name))
    self._from_boto_response(response, op.output_shape)


def _eval_execution(self: Any, env: Any) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    task = env.states.context_object.context_object_data.get("Task")
    endpoint = env.callback_pool_manager.get(task["Token"]) if task else None
    if endpoint is not None:
        # Re-arm the endpoint the previous attempt interrupted.
        endpoint._notify_event.clear()
        endpoint._outcome = None
    StateTaskService._eval_execution(self, env)


def _describe_jobs(self: Any, jobs: Optional[list[str]]) -> list[dict[str, Any]]:
    if not jobs:
        return [job.describe() for job in list(self._jobs.values())]
    found, seen = [], set()
    for wanted in jobs:
        # A job is asked for by its id or its ARN (`arn:aws:batch:...:job/<id>`).
        job = self._jobs.get(wanted) or self._jobs.get(wanted.rsplit("/", 1)[-1])
        if job is not None and (job.arn == wanted or job.job_id == wanted) and job.job_id not in seen:
            seen.add(job.job_id)
            found.append(job.describe())
    return found


def install_batch_sync_fix() -> Undo:
    """Patches 1-3; returns the undo."""
    import_moto_batch_lean()
    from moto.batch.models import BatchBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
        StateTaskServiceBatch,
    )

    undo_task = _set_attributes(
        StateTaskServiceBatch,
        {
            "_normalise_parameters": _normalise_parameters,
            "_normalise_response": _normalise_response,
            "_eval_execution": _eval_execution,
        },
    )
    undo_backend = _set_attributes(BatchBackend, {"describe_jobs": _describe_jobs})
    return _both(undo_backend, undo_task)


@contextlib.contextmanager
def patched_moto_batch() -> Iterator[None]:
    """Patches 1-3 for the duration of the block."""
    undo = install_batch_sync_fix()
    try:
        yield
    finally:
        undo()


# --- 4: a second StartExecution on the same state machine ---------------------------------------
#
# With execute_state_machine on, StartExecution deep-copies the state machine,
# executions included; a started execution holds a thread lock, so the second
# StartExecution on the same state machine dies with "cannot pickle
# '_thread.RLock' object". AWS runs any number. The copy only needs the
# definition, so it gets an empty execution list.


def _deepcopy_without_executions(self: Any, memo: dict) -> Any:
    clone = type(self).__new__(type(self))
    memo[id(self)] = clone
    for key, value in self.__dict__.items():
        setattr(clone, key, [] if key == "executions" else copy.deepcopy(value, memo))
    return clone


def install_second_execution_fix() -> Undo:
    """Patch 4; returns the undo."""
    from moto.stepfunctions.models import StateMachineInstance

    return _set_attributes(StateMachineInstance, {"__deepcopy__": _deepcopy_without_executions})


@contextlib.contextmanager
def moto_second_execution_fix() -> Iterator[None]:
    """Patch 4 for the duration of the block."""
    undo = install_second_execution_fix()
    try:
        yield
    finally:
        undo()


# --- 5: a Batch job's environment grows at every DescribeJobs ------------------------------------
#
# moto's `Job._get_container_property("environment")` appends the job
# definition's variables and AWS_BATCH_JOB_ID to the list held in the job's
# container overrides, so each DescribeJobs (the `.sync` integration polls it
# twice a second) adds another AWS_BATCH_JOB_ID to the job for good. AWS
# reports the environment once. The fix builds a new list each time.

_original_container_property: Any = None


def _container_property(self: Any, p: str, default: Any) -> Any:
    if p != "environment":
        return _original_container_property(self, p, default)
    overrides = list(self.container_overrides.get(p, default) or [])
    definition = self.job_definition.container_properties.get(p, default) or []
    names = {e["name"] for e in overrides}
    merged = overrides + [e for e in definition if e["name"] not in names]
    merged.append({"name": BATCH_JOB_ID, "value": self.job_id})
    return merged


def install_batch_environment_fix() -> Undo:
    """Patch 5; returns the undo."""
    from moto.batch.models import Job

    global _original_container_property
    current = Job.__dict__["_get_container_property"]
    if current is _container_property:
        return lambda: None
    _original_container_property = current
    return _set_attributes(Job, {"_get_container_property": _container_property})


# --- 6 and 7: EventBridge delivery to targets ---------------------------------------------------
#
# 6. Schedule rules hear events. moto sends every PutEvents event (and every S3
# "Object Created" event) to every rule whose pattern matches, and a rule with
# only a ScheduleExpression has no pattern, which matches everything; its
# target (a Lambda function: a flow's launcher, the reconciler) then fails the
# whole PutEvents with NotImplementedError. On AWS a schedule rule fires on its
# schedule only, and a DISABLED rule delivers nothing. The fix skips both.
#
# 7. Events reach a target without their account. For a target with no
# InputTransformer, AWS delivers the event as it is; moto fills its default
# template, which leaves out "account" (a field every EventBridge event has,
# and Chalice's CloudWatchEvent reads). The fix adds it to the template.

_original_send_to_targets: Any = None
_ACCOUNT_FIELD = '"account": "<account>", '


def _send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
    if self.state != "ENABLED" or (self.scheduled_expression and not self.event_pattern.get_pattern()):
        return
    functions = [t for t in self.targets if t["Arn"].split(":")[2:3] == ["lambda"]]
    if not functions:
        _original_send_to_targets(self, original_event, transform_input)
        return
    # Patch 15: moto cannot call a Lambda target (NotImplementedError for the whole PutEvents).
    if _lambda_delivery is not None and self.event_pattern.matches_event(original_event):
        from moto.events.utils import EventTemplateParser

        for target in functions:
            transformer = target.get("InputTransformer", {}) if transform_input else {}
            payload = (EventTemplateParser.parse(transformer.get("InputTemplate"), transformer.get("InputPathsMap", {}),
                                                 original_event) if transform_input else dict(original_event))
            _lambda_delivery(target["Arn"], payload)
    others = [t for t in self.targets if t not in functions]
    if others:
        # The other targets as moto delivers them, on a copy: this rule may be delivering on
        # another thread too.
        rest = copy.copy(self)
        rest.targets = others
        _original_send_to_targets(rest, original_event, transform_input)


def install_events_fixes() -> Undo:
    """Patches 6 and 7; returns the undo."""
    from moto.events.models import Rule
    from moto.events.utils import EventTemplateParser

    global _original_send_to_targets
    undo_template: Undo = _nothing
    template = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    if '"account"' not in template:
        undo_template = _set_attributes(
            EventTemplateParser, {"DEFAULT_EVENT_INPUT_TEMPLATE": template.replace("{", "{" + _ACCOUNT_FIELD, 1)}
        )
    if Rule.__dict__["send_to_targets"] is _send_to_targets:
        return undo_template
    _original_send_to_targets = Rule.__dict__["send_to_targets"]
    return _both(_set_attributes(Rule, {"send_to_targets": _send_to_targets}), undo_template)


# --- 15: a rule's Lambda target gets nothing -------------------------------------------------------
#
# A triggered flow's rules (chalicelib/triggers/) target the launcher Lambda, as
# schedule rules do; moto raises NotImplementedError for a Lambda target, failing
# the whole PutEvents. The embedded plane hands each matching event, through the
# target's InputTransformer, to `deliver(function_arn, payload)`, which invokes the
# handler asynchronously as EventBridge invokes a Lambda. Installed with patch 6.

_lambda_delivery: Optional[Callable[[str, Any], None]] = None


def install_lambda_targets(deliver: Callable[[str, Any], None]) -> Undo:
    """Patch 15 (needs patch 6 installed); returns the undo."""
    global _lambda_delivery
    _lambda_delivery = deliver

    def undo() -> None:
        global _lambda_delivery
        _lambda_delivery = None

    return undo


# --- 16: a Distributed Map ignores its children's failures -----------------------------------------
#
# moto runs a DISTRIBUTED Map's items and counts the failed ones, but never compares them
# with the tolerated failure threshold ("ToleratedFailurePercentage declarations currently
# have no effect"): one item failing leaves the Map, and the run, SUCCEEDED. On AWS the
# threshold is 0 unless given, so one failed item fails the Map run with
# States.ExceedToleratedFailureThreshold, which Retry/Catch then see (notes/wide-foreach.md,
# section 4). The fix compares the item counts after the items ran. moto keeps 0 for a
# threshold not given, so a Map fails once its failures exceed both the count and the
# percentage (AWS: either, when both are given; the compiler gives neither).

_original_map_run: Any = None


def _distributed_map_run(self: Any, env: Any, eval_input: Any) -> None:
    _original_map_run(self, env, eval_input)
    if not env.is_running():
        # The run was stopped (terminate): its children were aborted with it, and the run
        # ends ABORTED, as on AWS, not failed by their count.
        return
    counts = eval_input.map_run_record.item_counter
    failed = counts.failed.get() + counts.timed_out.get() + counts.aborted.get()
    total = counts.total.get()
    if failed == 0:
        return
    allowed = eval_input.tolerated_failure_count or 0
    allowed_share = float(eval_input.tolerated_failure_percentage or 0.0)
    if failed <= allowed or (total and 100.0 * failed / total <= allowed_share):
        return
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    env.stack.pop()  # the items' outputs: the Map does not produce them
    error = StatesErrorNameType.StatesExceedToleratedFailureThreshold
    raise FailureEventException(failure_event=FailureEvent(
        env=env,
        error_name=StatesErrorName(typ=error),
        event_type=HistoryEventType.ExecutionFailed,
        event_details=EventDetails(executionFailedEventDetails=ExecutionFailedEventDetails(
            error=error.to_name(),
            cause=f"The specified tolerated failure threshold was exceeded: {failed} of {total} items failed",
        )),
    ))


def install_distributed_map_failures() -> Undo:
    """Patch 16; returns the undo."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
        DistributedIterationComponent,
    )

    global _original_map_run
    current = DistributedIterationComponent.__dict__["_map_run"]
    if current is _distributed_map_run:
        return _nothing
    _original_map_run = current
    return _set_attributes(DistributedIterationComponent, {"_map_run": _distributed_map_run})


# --- 17: a StopExecution right after StartExecution fails ---------------------------------------
#
# moto's execution worker builds its evaluation environment on its own thread, after
# parsing the definition (100 ms and more for the first execution of a machine); a
# StopExecution arriving before that finds no environment and answers 500
# (AttributeError: 'NoneType' object has no attribute 'set_stop'). On AWS a run can be
# stopped the moment it is started (`trigger` then `terminate`). The fix waits for the
# environment, as long as the worker may take to make it.

_original_worker_stop: Any = None
STOP_WAIT_SECONDS = 30.0


def _worker_stop(self: Any, stop_date: Any, error: Any, cause: Any) -> None:
    import time

    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while getattr(self, "env", None) is None and time.monotonic() < deadline:
        time.sleep(0.005)
    _original_worker_stop(self, stop_date, error, cause)


def install_early_stop_fix() -> Undo:
    """Patch 17; returns the undo."""
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    global _original_worker_stop
    current = ExecutionWorker.__dict__["stop"]
    if current is _worker_stop:
        return _nothing
    _original_worker_stop = current
    return _set_attributes(ExecutionWorker, {"stop": _worker_stop})


@contextlib.contextmanager
def moto_early_stop_fix() -> Iterator[None]:
    """Patch 17 for the duration of the block (tests on moto's in-process AWS)."""
    undo = install_early_stop_fix()
    try:
        yield
    finally:
        undo()


# --- 20: every `.sync` Batch task polls DescribeJobs over HTTP ----------------------------------
#
# moto's `.sync` integration waits for a job by calling DescribeJobs through a boto3 client
# every 0.5 s, i.e. an HTTP request back into the same server, with botocore serialising
# and parsing it on both sides. A wide foreach holds as many waiting tasks as its
# MaxConcurrency (100 waiting children: 200 requests a second, 70 per task, most of the
# plane's CPU; /tmp measurements in notes/wide-foreach.md). Inside the plane the Batch
# backend is in the same process, so the poll reads it directly: the same job description
# (through JSON, as the wire would carry it), none of the HTTP. The Batch task's other
# calls (SubmitJob) still go over the wire. AWS polls as it likes; nothing observable changes.

_sync_local = threading.local()
_original_boto_client_for: Any = None
_original_build_sync_resolver: Any = None


class _InProcessBatch:
    """What the `.sync` resolver uses of a Batch client: DescribeJobs, read from the backend."""

    def __init__(self, account: str, region: str) -> None:
        from moto.core.models import default_user_config

        # The backend moto's own Batch API answers from (moto.batch.responses.BatchResponse).
        if default_user_config.get("batch", {}).get("use_docker", True) is False:
            from moto.batch_simple.models import batch_simple_backends as backends
        else:
            from moto.batch.models import batch_backends as backends
        self.backend = backends[account][region]

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        import json

        return {"jobs": json.loads(json.dumps(self.backend.describe_jobs(jobs)))}


def _boto_client_for(*args: Any, **kwargs: Any) -> Any:
    target = getattr(_sync_local, "target", None)
    service = kwargs.get("service", args[0] if args else None)
    if target is not None and service == "batch":
        return _InProcessBatch(*target)
    return _original_boto_client_for(*args, **kwargs)


def _build_sync_resolver(self: Any, env: Any, resource_runtime_part: Any, *args: Any, **kwargs: Any) -> Any:
    _sync_local.target = (resource_runtime_part.account, resource_runtime_part.region)
    try:
        return _original_build_sync_resolver(self, env, resource_runtime_part, *args, **kwargs)
    finally:
        _sync_local.target = None


def install_in_process_sync_poll() -> Undo:
    """Patch 20; returns the undo."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_batch as mod

    global _original_boto_client_for, _original_build_sync_resolver
    current = mod.StateTaskServiceBatch.__dict__["_build_sync_resolver"]
    if current is _build_sync_resolver:
        return _nothing
    _original_build_sync_resolver, _original_boto_client_for = current, mod.boto_client_for
    undo_method = _set_attributes(mod.StateTaskServiceBatch, {"_build_sync_resolver": _build_sync_resolver})
    mod.boto_client_for = _boto_client_for

    def undo() -> None:
        mod.boto_client_for = _original_boto_client_for
        undo_method()

    return undo


@contextlib.contextmanager
def moto_events_fix() -> Iterator[None]:
    """Patches 6 and 7 for the duration of the block (tests on moto's in-process AWS)."""
    undo = install_events_fixes()
    try:
        yield
    finally:
        undo()


# --- 8: TransactWriteItems copies whole tables -----------------------------------------------------
#
# To roll a failed transaction back, moto deep-copies every table the transaction
# names before running it: a cost that grows with the table. The recorder writes
# every event through a transaction, so on the embedded plane each recorded
# event got slower with every run held (about 0.1 s per event at 1,000 runs). On
# AWS a transaction's cost does not depend on the table's size. The fix keeps a
# copy of only the items the transaction touches and puts them back on failure;
# during the call, moto's own table copy is the table itself, so its rollback
# (an assignment of the "copy") changes nothing.

_original_transact: Any = None
_transacting = threading.local()


def _table_deepcopy(self: Any, memo: dict) -> Any:
    if getattr(_transacting, "active", False):
        return self
    clone = type(self).__new__(type(self))
    memo[id(self)] = clone
    for key, value in self.__dict__.items():
        setattr(clone, key, copy.deepcopy(value, memo))
    return clone


def _touched_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    touched = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName"))
            key = op.get("Item") if op_type == "Put" else op.get("Key")
            if table is None or not isinstance(key, dict) or table.hash_key_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_attr = table.range_key_attr
            range_value = DynamoType(key[range_attr]) if range_attr and range_attr in key else None
            before = table.get_item(hash_value, range_value)
        except Exception:
            continue  # malformed: moto refuses it before it changes anything
        touched.append((table, hash_value, range_value, copy.deepcopy(before)))
    return touched


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    touched = _touched_items(self, transact_items)
    _transacting.active = True
    try:
        return _original_transact(self, transact_items)
    except BaseException:
        for table, hash_value, range_value, before in reversed(touched):
            _put_back(table, hash_value, range_value, before)
        raise
    finally:
        _transacting.active = False


def _put_back(table: Any, hash_value: Any, range_value: Any, before: Any) -> None:
    if before is None:
        table.delete_item(hash_value, range_value)
    elif range_value is not None:
        table.items[hash_value][range_value] = before
    else:
        table.items[hash_value] = before
    _reindex(table, hash_value, range_value)


def install_transact_fix() -> Undo:
    """Patch 8; returns the undo."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    global _original_transact
    current = DynamoDBBackend.__dict__["transact_write_items"]
    if current is _transact_write_items:
        return _nothing
    _original_transact = current
    return _both(_set_attributes(DynamoDBBackend, {"transact_write_items": _transact_write_items}),
                 _set_attributes(Table, {"__deepcopy__": _table_deepcopy}))


# --- 9: Query sorts the whole table ----------------------------------------------------------------
#
# moto answers every Query, on the table or on an index, by sorting all the
# table's items (`Table.all_items`) and then keeping those of the partition
# asked for: O(N log N) in the table's size, for a read DynamoDB answers from
# one partition. Every Client API read and `list-runs` queries; on the embedded
# plane with 1,000 runs held, that was most of each command's time, and it grew
# with history. The fix gives the query only the partition's items, in the order
# moto expects: the table's own partition from its item dict, an index's from a
# map of index hash value -> items, kept up to date by every write path (item
# put and delete, UpdateItem, a transaction's rollback) and built once per table
# on its first index query. An index partition's order is kept too, from the
# first query that needs it until the next write to that partition (DynamoDB
# keeps its indexes sorted; sorting 1,000 runs again was 7 ms of every
# `list-runs`). A later page of a table's partition (an ExclusiveStartKey) is
# given only the items past that key: moto otherwise compares every item before
# it with the key, value by value, so reading a partition of 10,000 items page
# by page cost O(pages x items) (2.3 s of a 10,000-input join's 6 s).

_index_lock = threading.RLock()
# table -> {index name: {hash value: {(hash key, range key): item}}}; None for an index of
# a shape the fix does not serve (several hash attributes): moto answers those itself.
_partitions: "weakref.WeakKeyDictionary[Any, dict[str, Optional[dict[Any, dict[Any, Any]]]]]" = (
    weakref.WeakKeyDictionary())
_where: "weakref.WeakKeyDictionary[Any, dict[Any, list[tuple[str, Any]]]]" = weakref.WeakKeyDictionary()
# table -> {(index name, hash value): the partition's items holding the index's range key, in moto's order}
_orders: "weakref.WeakKeyDictionary[Any, dict[tuple[str, Any], list[Any]]]" = weakref.WeakKeyDictionary()
_candidates = threading.local()
_original_query: Any = None
_original_all_items: Any = None
_original_put_item: Any = None
_original_delete_item: Any = None
_original_update_item: Any = None


def _index_hash_attr(index: Any) -> Optional[str]:
    hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    return hashes[0] if len(hashes) == 1 else None


def _index_named(table: Any, name: str) -> Optional[Any]:
    return next((i for i in table.all_indexes() if i.name == name), None)


def _build_partitions(table: Any) -> dict[str, Optional[dict[Any, dict[Any, Any]]]]:
    built: dict[str, Optional[dict[Any, dict[Any, Any]]]] = {}
    where: dict[Any, list[tuple[str, Any]]] = {}
    for index in table.all_indexes():
        built[index.name] = {} if _index_hash_attr(index) else None
    _partitions[table] = built
    _where[table] = where
    _orders[table] = {}
    # Unsorted, unlike moto's all_items (a DynamoType sort: 0.4 s with 11,000 items, paid by the
    # first list-runs after a start): a partition's order is set where it is read.
    for held in table.items.values():
        for item in (held.values() if table.range_key_attr else (held,)):
            _file(table, (item.hash_key, item.range_key), item)
    return built


def _file(table: Any, key: tuple[Any, Any], item: Any) -> None:
    built, where, orders = _partitions[table], _where[table], _orders[table]
    for index_name, value in where.pop(key, []):
        orders.pop((index_name, value), None)
        bucket = built[index_name]
        if bucket is not None and value in bucket:
            bucket[value].pop(key, None)
            if not bucket[value]:
                del bucket[value]
    if item is None:
        return
    entries = []
    for index in table.all_indexes():
        bucket = built.get(index.name)
        attr = _index_hash_attr(index)
        if bucket is None or attr is None:
            continue
        value = item.attrs.get(attr)
        if value is None:
            continue  # sparse: not in this index
        bucket.setdefault(value, {})[key] = item
        orders.pop((index.name, value), None)
        entries.append((index.name, value))
    if entries:
        where[key] = entries


def _reindex(table: Any, hash_value: Any, range_value: Any) -> None:
    with _index_lock:
        if table not in _partitions:
            return  # not built yet: built whole on the first index query
        if range_value is not None:
            item = table.items.get(hash_value, {}).get(range_value)
        else:
            item = table.items.get(hash_value)
            if isinstance(item, dict):  # a range table's partition dict, asked without a range key
                return
        _file(table, (hash_value, range_value), item)


def _table_put_item(self: Any, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    item = _original_put_item(self, item_attrs, *args, **kwargs)
    _reindex(self, item.hash_key, item.range_key)
    return item


def _table_delete_item(self: Any, hash_key: Any, range_key: Any) -> Any:
    try:
        return _original_delete_item(self, hash_key, range_key)
    finally:
        _reindex(self, hash_key, range_key)


def _backend_update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType

    try:
        return _original_update_item(self, table_name, key, *args, **kwargs)
    finally:
        table = self.tables.get(table_name)
        if table is not None and table.hash_key_attr in key:
            range_attr = table.range_key_attr
            _reindex(table, DynamoType(key[table.hash_key_attr]),
                     DynamoType(key[range_attr]) if range_attr and range_attr in key else None)


def _key_value(value: Any) -> Any:
    # DynamoType.cast_value asks five type questions before it answers a string with itself;
    # keys are nearly always strings or numbers, and a sort asks for every item's.
    kind = value.type
    if kind == "S":
        return value.value
    if kind == "N":
        try:
            return int(value.value)
        except ValueError:
            return float(value.value)
    return value.cast_value


def _all_items(self: Any) -> list[Any]:
    chosen = getattr(_candidates, "items", None)
    if chosen is not None and chosen[0] is self:
        # moto's order (hash key, range key), by each key's Python form computed once per item
        return sorted(chosen[1], key=lambda x: (_key_value(x.hash_key), _key_value(x.range_key))
                      if x.range_key else (_key_value(x.hash_key),))
    return _original_all_items(self)


def _sorted_items(self: Any, hash_key_attrs: list[str], range_key_attrs: list[Optional[str]],
                  items: list[Any]) -> list[Any]:
    # moto's own order (GSI keys, then the table's), by each value's Python form computed once
    # per item rather than DynamoType comparisons (a Decimal made per comparison).
    attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
    items.sort(key=lambda x: tuple(_key_value(x.attrs[key]) for key in attrs))
    return items


def _partition_of(table: Any, hash_key: Any, index_name: Optional[str],
                  hash_key_conditions: Optional[list[tuple[str, Any]]]) -> Optional[tuple[list[Any], Any]]:
    """The items the query can match and, for an index, which partition they are (index name, hash
    value); None when the fix does not serve the query."""
    if not index_name:
        if hash_key is None:
            return None
        held = table.items.get(hash_key)
        if held is None:
            return [], None
        return (list(held.values()) if table.range_key_attr else [held]), None
    with _index_lock:
        built = _partitions.get(table)
        if built is None:
            built = _build_partitions(table)
        bucket = built.get(index_name)
        index = _index_named(table, index_name)
        if bucket is None or index is None:
            return None
        attr = _index_hash_attr(index)
        conditions = dict(hash_key_conditions or [])
        value = conditions.get(attr, hash_key if not conditions else None)
        if value is None or set(conditions) - {attr}:
            return None
        return list(bucket.get(value, {}).values()), (index_name, value)


def _in_index_order(table: Any, index: Any, range_attr: str, items: list[Any], partition: Any) -> list[Any]:
    """The items of an index partition that hold its range key (only those are in the index), in
    moto's query order; a partition's order is kept until a write to it (`_file`). Shared: not to
    be changed by the caller."""
    def order(found: Any) -> list[Any]:
        return _sorted_items(table, [_index_hash_attr(index), table.hash_key_attr], [range_attr, table.range_key_attr],
                             [i for i in found if i.attrs.get(range_attr)])

    with _index_lock:
        orders = _orders.get(table)
        if partition is None or orders is None:
            return order(items)
        ordered = orders.get(partition)
        if ordered is None:
            # From the partition as it is now, under the lock: `items` may predate a write.
            index_name, value = partition
            ordered = orders[partition] = order(_partitions[table][index_name].get(value, {}).values())
        return ordered


def _first_page(table: Any, items: list[Any], asked: dict[str, Any], partition: Any = None) -> list[Any]:
    """The items moto's query would reach for a first page: `Limit` items in the order asked,
    and one more so it knows there are more (its LastEvaluatedKey). Limit counts items before a
    FilterExpression is applied, as on AWS, so a filter does not change which items these are.
    A later page of a table's partition starts past its ExclusiveStartKey. A range-key condition,
    an index's ExclusiveStartKey or the legacy filters keep the whole partition."""
    limit = asked.get("limit")
    if asked.get("exclusive_start_key") is not None:
        return _past_start_key(table, items, asked)
    if (not isinstance(limit, int) or limit < 1 or len(items) <= limit + 1 or asked.get("range_comparison")
            or asked.get("filter_kwargs")):
        return items
    index_name = asked.get("index_name")
    if index_name:
        index = _index_named(table, index_name)
        ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"] if index else []
        if index is None or _index_hash_attr(index) is None or len(ranges) != 1:
            return items
        items = _in_index_order(table, index, ranges[0], items, partition)
    elif table.range_key_attr:
        items = sorted(items, key=lambda x: _key_value(x.range_key))
    else:
        return items
    if asked.get("scan_index_forward") is False:
        return items[: -(limit + 2): -1]
    return items[: limit + 1]


def _past_start_key(table: Any, items: list[Any], asked: dict[str, Any]) -> list[Any]:
    """A table partition's items after the ExclusiveStartKey in the order asked (and `Limit` + 1 of
    them), which moto then walks from the first; anything else keeps the whole partition."""
    import bisect

    from moto.dynamodb.models.dynamo_type import DynamoType

    start, range_attr = asked["exclusive_start_key"], table.range_key_attr
    if (asked.get("index_name") or not range_attr or range_attr not in start or asked.get("range_comparison")
            or asked.get("filter_kwargs")):
        return items
    ordered = sorted(items, key=lambda x: _key_value(x.range_key))
    keys = [_key_value(x.range_key) for x in ordered]
    at = _key_value(DynamoType(start[range_attr]))
    if asked.get("scan_index_forward") is False:
        rest = ordered[: bisect.bisect_left(keys, at)][::-1]
    else:
        rest = ordered[bisect.bisect_right(keys, at):]
    return _one_page(rest, asked.get("limit"))


def _one_page(ordered: list[Any], limit: Any) -> list[Any]:
    """The first items of `ordered` a page can hold (`Limit`, and moto's 1 MB), and one more."""
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT

    size = 0
    for n, item in enumerate(ordered):
        size += item.size()
        if size > RESULT_SIZE_LIMIT or (isinstance(limit, int) and limit >= 1 and n >= limit):
            return ordered[: n + 1]
    return ordered


def _query(self: Any, *args: Any, **kwargs: Any) -> Any:
    import inspect

    asked = inspect.signature(_original_query).bind(self, *args, **kwargs).arguments
    found = _partition_of(self, asked.get("hash_key"), asked.get("index_name"), asked.get("hash_key_conditions"))
    if found is not None:
        _candidates.items = (self, _first_page(self, found[0], asked, found[1]))
    try:
        return _original_query(self, *args, **kwargs)
    finally:
        _candidates.items = None


def install_query_fix() -> Undo:
    """Patch 9; returns the undo."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    global _original_query, _original_all_items, _original_put_item, _original_delete_item, _original_update_item
    if Table.__dict__["query"] is _query:
        return _nothing
    _original_query, _original_all_items = Table.__dict__["query"], Table.__dict__["all_items"]
    _original_put_item, _original_delete_item = Table.__dict__["put_item"], Table.__dict__["delete_item"]
    _original_update_item = DynamoDBBackend.__dict__["update_item"]
    _partitions.clear()
    _where.clear()
    _orders.clear()
    undo_table = _set_attributes(Table, {"query": _query, "all_items": _all_items, "put_item": _table_put_item,
                                         "delete_item": _table_delete_item, "sorted_items": _sorted_items})
    undo_backend = _set_attributes(DynamoDBBackend, {"update_item": _backend_update_item})

    def undo() -> None:
        undo_backend()
        undo_table()
        _partitions.clear()
        _where.clear()
        _orders.clear()

    return undo


# --- 10: botocore reads its data files again for every session ----------------------------------
#
# Each botocore session makes its own Loader, which parses the JSON it needs
# (endpoints, partitions, service models) again. moto makes a session for every
# service's backend dictionary (`Session().get_available_regions(...)`, at
# import), and the plane one per client: about a hundred parses of the same
# files, over a second of the plane's start. The files do not change while the
# process runs, so sessions share one Loader per data path.

_original_create_loader: Any = None
_loaders: dict[Any, Any] = {}


def _shared_loader(search_path_string: Any = None) -> Any:
    loader = _loaders.get(search_path_string)
    if loader is None:
        loader = _loaders[search_path_string] = _original_create_loader(search_path_string)
    return loader


def install_shared_botocore_loader() -> Undo:
    """Patch 10; returns the undo."""
    import botocore.session

    global _original_create_loader
    if botocore.session.create_loader is _shared_loader:
        return _nothing
    _original_create_loader = botocore.session.create_loader
    botocore.session.create_loader = _shared_loader

    def undo() -> None:
        botocore.session.create_loader = _original_create_loader
        _loaders.clear()

    return undo


# --- 11: JSONPath expressions parsed again at every use ----------------------------------------------
#
# jsonpath_ng's `parse` builds a new LALR parser (its tables included) for each
# expression, some milliseconds each; moto's Step Functions interpreter parses the
# paths of every state it enters, and its EventBridge the input template of every
# event it delivers. A task's run and each recorded event paid that again and
# again for the same few strings. Parsed expressions are immutable trees, so one
# per string is kept.

_JSONPATH_USERS = (
    ("jsonpath_ng.ext", "parse"),  # moto.events.utils imports it at each call
    ("moto.stepfunctions.parser.asl.utils.json_path", "parse"),
    ("moto.stepfunctions.parser.asl.component.common.path.result_path", "parse"),
)


def _memoized(parse: Callable[..., Any]) -> Callable[..., Any]:
    cache: dict[str, Any] = {}

    def parse_once(path: str, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or not isinstance(path, str):
            return parse(path, *args, **kwargs)
        found = cache.get(path)
        if found is None:
            found = cache[path] = parse(path)
        return found

    parse_once.__wrapped__ = parse  # type: ignore[attr-defined]
    return parse_once


def install_jsonpath_cache() -> Undo:
    """Patch 11; returns the undo."""
    import importlib

    undo: list[Undo] = []
    for module_name, name in _JSONPATH_USERS:
        module = importlib.import_module(module_name)
        current = getattr(module, name)
        if hasattr(current, "__wrapped__"):
            continue
        setattr(module, name, _memoized(current))
        undo.append(lambda m=module, n=name, c=current: setattr(m, n, c))

    def undo_all() -> None:
        for u in reversed(undo):
            u()

    return undo_all


# --- plumbing -------------------------------------------------------------------------------------

_MISSING = object()


def _nothing() -> None:
    pass


def _both(first: Undo, second: Undo) -> Undo:
    def undo() -> None:
        first()
        second()

    return undo


def _set_attributes(cls: type, attributes: dict[str, Any]) -> Undo:
    """Set class attributes; the undo puts back exactly what was there (or nothing)."""
    saved = {name: cls.__dict__.get(name, _MISSING) for name in attributes}
    for name, value in attributes.items():
        setattr(cls, name, value)

    def undo() -> None:
        for name, original in saved.items():
            if original is _MISSING:
                if name in cls.__dict__:
                    delattr(cls, name)
            else:
                setattr(cls, name, original)

    return undo


# --- 12: moto's EC2 reads 100 data files at import -----------------------------------------------
#
# moto.batch imports moto.ec2, whose import decodes every region's instance-type
# offerings (95 JSON files) and the default AMI list: 0.4 s, most of a plane
# start's import time, for data only EC2's RunInstances and Describe* read. The
# plane never calls EC2: its compute environment is UNMANAGED (LocalBatch runs
# jobs as processes), and Batch validates a managed environment's instance types
# against INSTANCE_TYPES, which is still read. So the first import in a process
# that goes through here skips the offerings and AMIs; a process that imported
# moto.ec2 before keeps them, and nothing changes after the import.

_SKIPPED_EC2_RESOURCES = ("instance_type_offerings/", "amis.json")


def import_moto_batch_lean() -> None:
    """Import moto.batch (and moto.ec2 under it) without EC2's offerings and default AMIs."""
    import sys

    if "moto.ec2" in sys.modules:
        import moto.batch.models  # noqa: F401

        return
    import moto.utilities.utils as utils

    original = utils.load_resource

    def load_resource(package: str, resource: str) -> Any:
        if any(part in resource for part in _SKIPPED_EC2_RESOURCES) and package.startswith("moto.ec2"):
            return []
        return original(package, resource)

    utils.load_resource = load_resource
    try:
        import moto.batch.models  # noqa: F401
    finally:
        utils.load_resource = original


# --- 13: DynamoDB items serialized shape by shape ----------------------------------------------------
#
# moto 5.2 writes every response through a serializer driven by botocore's output
# shapes, which looks up each member of each structure through alias providers:
# for an item that is every attribute's AttributeValue structure, member by
# member. A Query page of 100 run records (1.3 KB each) spent 100 ms there, 80 %
# of the request, and `list-runs` pays it on every call. moto's DynamoDB already
# holds each item as the wire's JSON (`{"S": ...}`, `{"M": {...}}`), which is
# exactly what the serializer would write for it, so a map of AttributeValues
# whose values are all plain wire values (one known type key; strings, numbers
# as strings, booleans, and lists and maps of the same) is written as it is.
# Binary values (B, BS: base64 on the wire) and anything else take moto's path.

_WIRE_SCALARS = {"S": str, "N": str, "BOOL": bool, "NULL": bool}
_original_json_map: Any = None


def _plain_wire(value: Any) -> bool:
    if type(value) is not dict or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    scalar = _WIRE_SCALARS.get(kind)
    if scalar is not None:
        return type(inner) is scalar
    if kind in ("SS", "NS"):
        return type(inner) is list and all(type(v) is str for v in inner)
    if kind == "L":
        return type(inner) is list and all(_plain_wire(v) for v in inner)
    if kind == "M":
        return type(inner) is dict and all(type(k) is str and _plain_wire(v) for k, v in inner.items())
    return False


def _json_serialize_type_map(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
    if (getattr(shape.value, "name", None) == "AttributeValue"
            and self.operation_model.service_model.service_name == "dynamodb"
            and type(value) is dict
            and all(type(k) is str and _plain_wire(v) for k, v in value.items())):
        self._default_serialize(serialized, value, shape, key)
        return
    _original_json_map(self, serialized, value, shape, key)


def install_dynamodb_serializer_fix() -> Undo:
    """Patch 13; returns the undo."""
    from moto.core.serialize import BaseJSONSerializer

    global _original_json_map
    if BaseJSONSerializer.__dict__["_serialize_type_map"] is _json_serialize_type_map:
        return _nothing
    _original_json_map = BaseJSONSerializer.__dict__["_serialize_type_map"]
    return _set_attributes(BaseJSONSerializer, {"_serialize_type_map": _json_serialize_type_map})


# --- 14: the server lists moto's package folder at every request ----------------------------------
#
# moto's server asks `backends.list_of_moto_modules()` for every request to tell a
# service name from a host name: a listdir of moto's package and an isdir for each
# of its ~170 entries, about 1 ms of a 3.5 ms DynamoDB GetItem on the embedded
# plane (the idempotency check makes one per mutating request). The installed
# package does not change while the plane runs, so it is listed once.

_original_list_of_moto_modules: Any = None
_moto_modules: Optional[tuple[str, ...]] = None


def _listed_once() -> tuple[str, ...]:
    global _moto_modules
    if _moto_modules is None:
        _moto_modules = tuple(_original_list_of_moto_modules())
    return _moto_modules


def install_module_list_cache() -> Undo:
    """Patch 14; returns the undo."""
    import moto.backends as backends

    global _original_list_of_moto_modules, _moto_modules
    if backends.list_of_moto_modules is _listed_once:
        return _nothing
    _original_list_of_moto_modules = backends.list_of_moto_modules
    _moto_modules = None
    backends.list_of_moto_modules = _listed_once

    def undo() -> None:
        backends.list_of_moto_modules = _original_list_of_moto_modules

    return undo


# --- 18: DynamoDB answers built and sized by generic code ------------------------------------------
#
# A Query page of 100 run records spent ~15 ms in two of moto's helpers, value by
# value: `dynamo_to_dict`, which turns the held items back into wire JSON asking
# each value whether it is a datetime, a DynamoType, has `to_json`, is a dict or a
# list; and `Item.size` (twice per item: the 1 MB page limit), where each string
# is asked whether it is a number, a set, a list or a map before its length is
# taken. The fix answers strings, numbers, booleans and nulls, and the lists and
# maps of them, directly, the same values moto's code gives; anything else
# (binary, which moto decodes from base64, other objects) takes moto's path.
#
# Two more costs of every item a Query answers: moto deep-copies each whole item
# (5 ms for 100 runs) so that nothing downstream holds a stored one, though all
# that follows only reads it (filters; the answer is built as new wire values;
# projections build new items); and a ProjectionExpression converts each whole
# item to Python values and back to keep a few attributes. The fix skips the
# copy inside a Query, and projects top-level string, boolean and integer
# attributes (which that round trip gives back unchanged: an integer written as
# Python writes it) by taking them; any other projection takes moto's path.

_PLAIN_KINDS = frozenset(("S", "N", "BOOL", "NULL"))
_PLAIN_PYTHON = (str, int, float, bool, type(None))
_original_dynamo_to_dict: Any = None
_dynamo_type: Any = None
_limited_dict: Any = None


def _dynamo_to_dict(obj: Any) -> Any:
    kind = type(obj)
    if kind is _dynamo_type:
        t = obj.type
        if t in _PLAIN_KINDS:
            return {t: obj.value}
        value = obj.value
        if t == "L" and type(value) is list:
            return {t: [_dynamo_to_dict(v) for v in value]}
        if t == "M" and type(value) is dict:
            return {t: {k: _dynamo_to_dict(v) for k, v in value.items()}}
        if t in ("SS", "NS") and type(value) is list:
            return {t: [_dynamo_to_dict(v) for v in value]}
    elif kind is dict or kind is _limited_dict:
        return {k: _dynamo_to_dict(v) for k, v in obj.items()}
    elif kind is list:
        return [_dynamo_to_dict(v) for v in obj]
    elif kind in _PLAIN_PYTHON:
        return obj
    return _original_dynamo_to_dict(obj)


def _item_size(self: Any) -> int:
    total = 0
    for key, value in self.attrs.items():
        total += len(key.encode("utf-8"))
        held = value.value
        # moto's size of a string is its UTF-8 length (DynamoType.size, bytesize); of a number,
        # the length of the string it is held as
        kind = value.type
        if kind == "S" and type(held) is str:
            total += len(held.encode("utf-8"))
        elif kind == "N" and type(held) is str:
            total += len(held)
        else:
            total += value.size()
    return total


_answering = threading.local()
_original_item_deepcopy: Any = None
_original_item_project: Any = None
_original_backend_query: Any = None
_TAKEN_AS_THEY_ARE = frozenset(("S", "BOOL"))


def _item_deepcopy(self: Any, memo: dict) -> Any:
    if getattr(_answering, "query", False):
        return self
    return _original_item_deepcopy(self, memo)


def _backend_query(self: Any, *args: Any, **kwargs: Any) -> Any:
    _answering.query = True
    try:
        return _original_backend_query(self, *args, **kwargs)
    finally:
        _answering.query = False


def _item_project(self: Any, projection_expressions: list[list[str]]) -> Any:
    kept = {}
    for path in projection_expressions:
        name = path[0] if len(path) == 1 else None
        if not isinstance(name, str) or "[" in name:
            return _original_item_project(self, projection_expressions)  # nested or indexed
        held = self.attrs.get(name)
        if held is None:
            continue
        if held.type not in _TAKEN_AS_THEY_ARE and not _canonical_integer(held):
            return _original_item_project(self, projection_expressions)
        kept[name] = held
    return type(self)(hash_key=self.hash_key, range_key=self.range_key, attrs=kept)


def _canonical_integer(held: Any) -> bool:
    """A number moto's projection would give back as the same string (it goes through Python's int)."""
    if held.type != "N" or type(held.value) is not str:
        return False
    try:
        return str(int(held.value)) == held.value
    except ValueError:
        return False


def install_dynamodb_answer_fix() -> Undo:
    """Patch 18; returns the undo."""
    import moto.dynamodb.responses as responses
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    global _original_dynamo_to_dict, _dynamo_type, _limited_dict
    global _original_item_deepcopy, _original_item_project, _original_backend_query
    if responses.dynamo_to_dict is _dynamo_to_dict:
        return _nothing
    _original_dynamo_to_dict = responses.dynamo_to_dict
    _original_item_deepcopy, _original_item_project = Item.__dict__["__deepcopy__"], Item.__dict__["project"]
    _original_backend_query = DynamoDBBackend.__dict__["query"]
    _dynamo_type, _limited_dict = DynamoType, LimitedSizeDict
    responses.dynamo_to_dict = _dynamo_to_dict
    undo_item = _set_attributes(Item, {"size": _item_size, "__deepcopy__": _item_deepcopy, "project": _item_project})
    undo_backend = _set_attributes(DynamoDBBackend, {"query": _backend_query})

    def undo() -> None:
        undo_backend()
        undo_item()
        responses.dynamo_to_dict = _original_dynamo_to_dict

    return undo


# --- 19: every response body searched for an XML RequestId -----------------------------------------
#
# moto's `BaseResponse._enrich_response` puts the request id into every answer
# with a regular expression run over the whole body, lookbehind first, whatever
# the protocol: for a JSON page of 100 DynamoDB items (130 KB) that is 1.4 ms to
# find nothing. A body without `<RequestId>` cannot match, so it is left as is;
# one with it takes moto's path.

_original_enrich: Any = None
_request_id: Any = None


def _enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
    if isinstance(body, str) and "<RequestId>" not in body:
        # moto's, less the search that cannot match
        if "status" in headers:
            headers["status"] = str(headers["status"])
        _request_id(headers)
        return headers, body
    return _original_enrich(headers, body)


def install_request_id_fix() -> Undo:
    """Patch 19; returns the undo."""
    from moto.core.responses import BaseResponse
    from moto.utilities.aws_headers import gen_amzn_requestid_long

    global _original_enrich, _request_id
    if BaseResponse._enrich_response is _enrich_response:
        return _nothing
    _original_enrich, _request_id = BaseResponse._enrich_response, gen_amzn_requestid_long
    return _set_attributes(BaseResponse, {"_enrich_response": staticmethod(_enrich_response)})


# --- 21: every SendMessage counting the queue's messages ------------------------------------------
#
# moto's `Queue.attributes` builds every attribute of the queue, among them
# ApproximateNumberOfMessages(NotVisible/Delayed), each a walk over all its
# messages; and `SendMessage` asks it for ContentBasedDeduplication alone. Every
# event the embedded EventBridge routes to a handler's queue is such a send, so
# with a backlog of n events each new one cost n: 2,000 events put at once took
# about 80 ms each to deliver. The attributes become a read-only mapping that
# computes an attribute when it is read, with moto's names, order and values.

class _QueueAttributes(Mapping):
    def __init__(self, queue: Any) -> None:
        from moto.core.utils import camelcase_to_underscores

        self._queue = queue
        self._to_field = camelcase_to_underscores
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        if queue.policy:
            names.append("Policy")
        if queue.redrive_policy:
            names.append("RedrivePolicy")
        self._names = list(dict.fromkeys(names))  # moto's dict keeps each name once, first place

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        if name == "Policy" and self._queue.policy:
            value = self._queue.policy
        elif name == "RedrivePolicy" and self._queue.redrive_policy:
            import json

            value = json.dumps(self._queue.redrive_policy)
        else:
            value = getattr(self._queue, self._to_field(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names


def install_sqs_attributes_fix() -> Undo:
    """Patch 21; returns the undo."""
    from moto.sqs.models import Queue

    if isinstance(Queue.__dict__.get("attributes"), property) and Queue.__dict__["attributes"].fget is _lazy_attributes:
        return _nothing
    return _set_attributes(Queue, {"attributes": property(_lazy_attributes)})


def _lazy_attributes(queue: Any) -> Mapping:
    return _QueueAttributes(queue)
