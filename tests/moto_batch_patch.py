"""Test-only patch: make moto's Step Functions interpreter run Batch `submitJob.sync` as AWS does.

Three defects of moto 5.2.1, both in the interpreter it copied from LocalStack;
production code never imports this.

1. Request/response normalisation. Moto 5.2's copy of the Step Functions interpreter (from LocalStack) leaves
`StateTaskService._normalise_parameters` / `_normalise_response` empty. On AWS,
Step Functions takes the PascalCase fields of the ASL (`JobQueue`,
`ContainerOverrides.Environment[].Name`) and calls Batch's API, whose members are
camelCase (`jobQueue`, `environment[].name`); moto hands the PascalCase dict to
botocore untranslated, so every Batch task fails with
`States.Runtime ... Unknown parameter ... 'JobQueue'`, and `.sync` then reads
`JobId` from a response that says `jobId`.

The fix fills the two hooks for the Batch service only, from botocore's own
operation model (input shape for the request, output shape for the response),
using the interpreter's existing `_to_boto_request` / `_from_boto_response`
helpers.

2. Retried `.sync` attempts reported as timed out. The interpreter makes one task
token (and callback endpoint) when it enters a Task state, and `.sync` waits on
that endpoint beside polling `DescribeJobs`. At the end of the first attempt the
endpoint is interrupted for good, but Retry re-runs the attempt inside the same
state entry, so from the second attempt on the wait returns at once, as a
timeout: any job not already finished at the first poll ends in `TaskTimedOut` /
`States.Timeout`, and the attempts that follow are skipped. (With
`MOTO_SIMPLE_BATCH_FAIL_AFTER=0` jobs fail inside SubmitJob, before the first
poll, which hides it; a job that runs for a moment shows it.) On AWS each retry
is a new TaskScheduled/TaskSubmitted/TaskFailed round with its own job, and the
execution fails with `States.TaskFailed` once MaxAttempts are spent. The fix
re-arms the endpoint at the start of each attempt.

3. `DescribeJobs` racing `SubmitJob`. moto's Batch backend iterates its job dict
in `describe_jobs` while other threads insert into it; with a Map running
iterations concurrently, the `.sync` poll of one iteration meets the submission
of another and dies with `RuntimeError: dictionary changed size during
iteration`, which the interpreter reports as `States.Runtime` (a 100-item
foreach at MaxConcurrency 40 failed this way about one run in three here).
The fix iterates over a snapshot.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

import botocore.session
from botocore.model import OperationModel, ServiceModel
from moto.batch.models import BatchBackend
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
    StateTaskServiceBatch,
)
from moto.stepfunctions.parser.asl.eval.environment import Environment

_model: Optional[ServiceModel] = None


def _operation(snake_name: str) -> OperationModel:
    global _model
    if _model is None:
        _model = botocore.session.get_session().get_service_model("batch")
    for name in _model.operation_names:
        if botocore.xform_name(name) == snake_name:
            return _model.operation_model(name)
    raise KeyError(f"Batch has no operation {snake_name!r}")


def _normalise_parameters(
    self: StateTaskServiceBatch,
    parameters: dict,
    boto_service_name: Optional[str] = None,
    service_action_name: Optional[str] = None,
) -> None:
    op = _operation(self._get_boto_service_action(service_action_name))
    self._to_boto_request(parameters, op.input_shape)


def _normalise_response(
    self: StateTaskServiceBatch,
    response: Any,
    boto_service_name: Optional[str] = None,
    service_action_name: Optional[str] = None,
) -> None:
    op = _operation(self._get_boto_service_action(service_action_name))
    self._from_boto_response(response, op.output_shape)


def _eval_execution(self: StateTaskServiceBatch, env: Environment) -> None:
    task = env.states.context_object.context_object_data.get("Task")
    endpoint = env.callback_pool_manager.get(task["Token"]) if task else None
    if endpoint is not None:
        # Re-arm the endpoint the previous attempt interrupted.
        endpoint._notify_event.clear()
        endpoint._outcome = None
    StateTaskService._eval_execution(self, env)


def _describe_jobs(self: BatchBackend, jobs: Optional[list[str]]) -> list[dict[str, Any]]:
    wanted = set(jobs or ())
    return [
        job.describe()
        for key, job in list(self._jobs.items())
        if not wanted or key in wanted or job.arn in wanted
    ]


_HOOKS = {
    "_normalise_parameters": _normalise_parameters,
    "_normalise_response": _normalise_response,
    "_eval_execution": _eval_execution,
}


_PATCHES = [(StateTaskServiceBatch, name, hook) for name, hook in _HOOKS.items()]
_PATCHES.append((BatchBackend, "describe_jobs", _describe_jobs))


@contextlib.contextmanager
def patched_moto_batch() -> Iterator[None]:
    """Install the three fixes for the duration of the block."""
    saved = [(cls, name, cls.__dict__.get(name)) for cls, name, _ in _PATCHES]
    for cls, name, hook in _PATCHES:
        setattr(cls, name, hook)
    try:
        yield
    finally:
        for cls, name, original in saved:
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
