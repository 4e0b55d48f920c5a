"""The source and detail-type of every EventBridge event Flowplane sends or hears.

The task runtime and the embedded plane send them; the control plane's rules
subscribe to them and its recorder parses them. A leaf, so that every Lambda
can import it when app.py loads (flowplane/events.py, the task's event models,
costs pydantic models the API Lambda never needs).
"""

from __future__ import annotations

# A task's own events (flowplane/events.py has their models).
TASK_EVENT_SOURCE = "flowplane.task"
TASK_EVENT_DETAIL_TYPES = {
    "started": "Flowplane Task Started",
    "finished": "Flowplane Task Finished",
    "failed": "Flowplane Task Failed",
}

# Triggering flows (flowplane/trigger_events.py has their models): a published event, whose
# detail-type is its name, and a production run's end.
PUBLISHED_EVENT_SOURCE = "flowplane.event"
# An event's name as EventBridge can match it in a rule and a person can type it.
EVENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"
RUN_FINISHED_SOURCE = "flowplane.run"
RUN_FINISHED_DETAIL_TYPE = "Flowplane Run Finished"

# AWS's, in the shapes its documentation gives.
SFN_SOURCE = "aws.states"
SFN_DETAIL_TYPE = "Step Functions Execution Status Change"
BATCH_SOURCE = "aws.batch"
BATCH_DETAIL_TYPE = "Batch Job State Change"
S3_SOURCE = "aws.s3"
OBJECT_CREATED = "Object Created"
SCHEDULE_SOURCE = "aws.events"
SCHEDULED_EVENT = "Scheduled Event"
