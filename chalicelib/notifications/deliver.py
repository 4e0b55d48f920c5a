"""Sending a run's end to Slack and/or SNS, as its deployment asked.

The recorder announces every production run's end on the bus (recording/announce.py);
the `notify` function hears those announcements, so recording never waits on a
webhook. A run end is claimed once (NOTIFIED#<run id>) before anything is sent: an
announcement repeated, or delivered twice, sends nothing more. Each destination is
tried a few times with a short timeout; one that still fails is logged and counted
(metric NotificationsFailed) and not tried again.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from typing import Any, Callable, Optional

from flowplane.trigger_events import RunFinished

from .. import keys
from ..aws import Aws, client_error, error_code
from . import config

log = logging.getLogger("flowplane.notify")

ERROR_STATUSES = ("FAILED", "TIMED_OUT")
ATTEMPTS = 3
TIMEOUT_SECONDS = 5.0
BACKOFF_SECONDS = 0.5
NOTIFIED_TTL_SECONDS = 30 * 24 * 3600
# A run's end can be announced before its failed task's job event is recorded: the
# message waits this long, at most, for the run's record to name the task.
FAILED_TASK_WAITS = 5
FAILED_TASK_WAIT_SECONDS = 1.0


def wanted(settings: dict[str, Any], status: str) -> bool:
    return (status in ERROR_STATUSES and settings["on_error"]) or (status == "SUCCEEDED" and settings["on_success"])


def message(finished: RunFinished, run: Optional[dict[str, Any]]) -> tuple[str, str]:
    """(subject, text): the flow, the run, the failed step and task, the error, how to read its logs."""
    failed = finished.status in ERROR_STATUSES
    subject = f"{'FAILED' if failed else finished.status}: {finished.flow} run {finished.run_id}"[:100]
    lines = [f"Flowplane: {finished.flow} run {finished.run_id} {finished.status}"
             f" (deployment {finished.deployment or finished.flow}, namespace {finished.namespace})."]
    if finished.started_at or finished.finished_at:
        lines.append(f"Started {finished.started_at}, finished {finished.finished_at}.")
    task = (run or {}).get("failed_task")
    error = (run or {}).get("task_error") or (run or {}).get("error") or {}
    if failed:
        if task:
            _, _, step, task_id = task.split("/", 3)
            lines.append(f"Failed step: {step}, task {task_id}.")
        if error:
            lines.append(f"Error: {error.get('type')}: {error.get('message')}"[:2000])
        where = f"['{task.split('/')[2]}'].task" if task else "[STEP].task"
        lines.append(f"Logs: Flow('{finished.flow}')['{finished.run_id}']{where}.stderr "
                     f"(namespace('{finished.namespace}')), or "
                     f"`python flow.py logs {finished.run_id}/{task.split('/')[2] if task else 'STEP'}`.")
    return subject, "\n".join(lines)


def on_run_finished(aws: Aws, detail: dict[str, Any],
                    post: Optional[Callable[[str, bytes], None]] = None) -> dict[str, Any]:
    finished = RunFinished.model_validate(detail)
    stage = str(aws.settings.resource_prefix)
    if finished.stage is not None and finished.stage != stage:
        return {"sent": [], "reason": "another stage's run"}
    name = finished.deployment or finished.flow
    settings = config.get(aws, name)
    if not wanted(settings, finished.status):
        return {"sent": [], "reason": "not asked for"}
    if not _claim(aws, name, finished):
        return {"sent": [], "reason": "notified already"}
    run = _run(aws, finished)
    subject, text = message(finished, run)
    sent, problems = [], []
    if settings["slack"]:
        url = config.webhook_url(aws, name)
        if url:
            _try("slack", lambda: (post or _post)(url, json.dumps({"text": text}).encode()), sent, problems)
    if settings["sns_topic"]:
        topic = settings["sns_topic"]
        _try("sns", lambda: aws.sns.publish(TopicArn=topic, Subject=subject, Message=text), sent, problems)
    aws.table.update(keys.flow_pk(name), keys.notified_sk(finished.run_id),
                     {"outcome": "failed" if problems else "sent", "problems": problems or None})
    if problems:
        log.error("notification of %s not delivered: %s", finished.pathspec, "; ".join(problems))
        _count_failed(len(problems))
    return {"sent": sent, "problems": problems}


def _try(what: str, send: Callable[[], Any], sent: list[str], problems: list[str]) -> None:
    for attempt in range(ATTEMPTS):
        try:
            send()
            sent.append(what)
            return
        except Exception as e:  # anything a destination does is its own problem, never the recorder's
            reason = f"{what}: {type(e).__name__}: {str(e)[:200]}"
            if attempt + 1 < ATTEMPTS:
                time.sleep(BACKOFF_SECONDS * (2 ** attempt))
    problems.append(reason)


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310 (https, or the local plane's 127.0.0.1)
        if answer.status >= 300:
            raise RuntimeError(f"HTTP {answer.status}")


def _claim(aws: Aws, name: str, finished: RunFinished) -> bool:
    try:
        aws.table.put({"PK": keys.flow_pk(name), "SK": keys.notified_sk(finished.run_id), "type": "notified",
                       "status": finished.status, "ttl": int(time.time()) + NOTIFIED_TTL_SECONDS},
                      condition="attribute_not_exists(SK)")
    except client_error() as e:
        if error_code(e) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _run(aws: Aws, finished: RunFinished) -> Optional[dict[str, Any]]:
    """The run's record, with its failed task's own error (the step's exception) as `task_error`."""
    from ..query.reads import Reads

    reads = Reads(aws.table.t)
    try:
        for attempt in range(FAILED_TASK_WAITS):
            run = reads.run(finished.flow, finished.run_id)
            if finished.status not in ERROR_STATUSES or run.get("failed_task"):
                break
            if attempt + 1 < FAILED_TASK_WAITS:
                time.sleep(FAILED_TASK_WAIT_SECONDS)
        if run.get("failed_task"):
            flow, run_id, step, task_id = run["failed_task"].split("/", 3)
            run["task_error"] = reads.task(flow, run_id, step, task_id).get("error")
        return run
    except Exception as e:  # a message without the failed task is better than none
        log.warning("could not read %s for its notification: %s", finished.pathspec, e)
        return None


def _count_failed(n: int) -> None:
    try:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        with single_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=n, namespace="Flowplane") as m:
            m.add_dimension(name="service", value="flowplane-notify")
    except Exception:  # a metric is never worth failing over
        log.warning("could not count %d failed notification(s)", n)
