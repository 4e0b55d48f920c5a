"""The contract between the compiler and the task: what an AWS Batch job of a step is given.

The compiler (chalicelib/compiler/asl.py) writes a state machine whose jobs get
these environment variables and retry a step's job `attempts_before_failing`
times; the task runtime (flowplane/task/) reads the same variables and counts its
attempts the same way, so both agree on which attempt is the last. Two names the
jobs get belong to other contracts and are defined there: the datastore's root
(flowplane.datastore.storage.ROOT_ENV) and the stage marker of the events
(flowplane.events.STAGE_ENV).

A leaf: the control plane's Lambda imports it, so it imports nothing.
"""

from __future__ import annotations

# --- the job's environment, as the compiler sets it for every job ------------------

RUN_ID = "FLOWPLANE_RUN_ID"  # sfn-<execution name>
# With the run id, what the recorder files a job's state changes under.
FLOW = "FLOWPLANE_FLOW"
# The whole execution input as JSON; its "Parameters" are the run's parameter values.
EXECUTION_INPUT = "FLOWPLANE_EXECUTION_INPUT"
# The flow's package (s3://...), when the command names none.
PACKAGE_URL = "FLOWPLANE_PACKAGE_URL"
# The DynamoDB table a foreach task records its cardinality in, for the Map state to read.
FOREACH_TABLE = "FLOWPLANE_FOREACH_TABLE"
# The DynamoDB table a task ending a foreach body records itself in, for its join to read a
# page at a time (flowplane/join_inputs.py); without it joins read every input from S3.
JOIN_INPUTS_TABLE = "FLOWPLANE_JOIN_INPUTS_TABLE"
# The EventBridge bus the task tells the control plane on; without it the task sends nothing.
EVENT_BUS = "FLOWPLANE_EVENT_BUS"
# The deployment's production token: its runs live in the namespace production:<token>.
PRODUCTION_TOKEN = "FLOWPLANE_PRODUCTION_TOKEN"

# --- what the command line gives; a job definition may set these instead -------------

STEP = "FLOWPLANE_STEP"
TASK_ID = "FLOWPLANE_TASK_ID"
RETRY_COUNT = "FLOWPLANE_RETRY_COUNT"

# --- set by AWS Batch itself -----------------------------------------------------------

# Batch keeps a job's exit code and reason: a later attempt can ask what ended this one.
BATCH_JOB_ID = "AWS_BATCH_JOB_ID"

# --- attempts --------------------------------------------------------------------------

# As in Metaflow (its NUM_FALLBACK_RETRIES), a @catch step gets this many attempts beyond
# @retry's. They run no user code: they record how the earlier attempts ended
# (flowplane/task/fallback.py), so the step ends with a proper task.
FALLBACK_ATTEMPTS = 3


def attempts_before_failing(retry_times: int, has_catch: bool) -> int:
    """The highest attempt number a step can reach: @retry's, plus @catch's fallbacks."""
    return retry_times + (FALLBACK_ATTEMPTS if has_catch else 0)


def is_fallback(attempt: int, retry_times: int, has_catch: bool) -> bool:
    """Past @retry's attempts, a @catch step runs its fallback instead of user code."""
    return has_catch and attempt > retry_times
