"""Structured logs and CloudWatch metrics (Powertools) for the recorder and reconciler.

Powertools' Logger and Metrics cost ~55 ms of imports, so they are imported on
the first event, not when app.py loads (the API Lambda never pays for them).
Tracer is left out: its X-Ray SDK adds ~240 ms to every cold start for spans
that would only show DynamoDB calls the metrics already count.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from typing import Any, Optional

NAMESPACE = "Flowplane"
SERVICE = "flowplane-recorder"
FAILED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")

_logger: Any = None
_metrics: Any = None


class _Stdout(logging.StreamHandler):  # type: ignore[type-arg]
    """Whatever sys.stdout is when a line is written (Lambda's never changes; a test's does)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def logger() -> Any:
    global _logger
    if _logger is None:
        from aws_lambda_powertools import Logger

        _logger = Logger(service=SERVICE, logger_handler=_Stdout())
    return _logger


def _metrics_sink() -> Any:
    global _metrics
    if _metrics is None:
        from aws_lambda_powertools import Metrics

        _metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    return _metrics


class Telemetry:
    """What one invocation counted; `flush` sends it as one EMF document (plus one per flow).

    As a context manager it is one invocation's: on the way out, however it ends, it
    flushes and clears the log's correlation id. (Powertools' `log_metrics` decorator
    does the flush for a handler of (event, context); Chalice's event handlers take
    the event alone, and a Metrics object made at import would cost every cold start
    its import.)
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.per_flow: Counter[tuple[str, str]] = Counter()

    def __enter__(self) -> "Telemetry":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.flush()
        self.correlate(None)

    # --- counting ---------------------------------------------------------------------

    def recorded(self) -> None:
        self.counts["EventsRecorded"] += 1

    def rejected(self, reason: str, event: Optional[dict[str, Any]] = None) -> None:
        self.counts["EventsRejected"] += 1
        event = event if isinstance(event, dict) else {}
        logger().warning(
            "event rejected",
            extra={
                "reason": reason,
                "event_id": event.get("id"),
                "source": event.get("source"),
                "detail_type": event.get("detail-type"),
            },
        )

    def other_stage(self) -> None:
        """An execution of another stage's state machine (also counted as rejected)."""
        self.counts["EventsOfOtherStages"] += 1

    def run_started(self, flow: str) -> None:
        self.per_flow[("RunsStarted", flow)] += 1

    def run_finished(self, flow: str, status: str) -> None:
        if status == "SUCCEEDED":
            self.per_flow[("RunsSucceeded", flow)] += 1
        elif status in FAILED_STATUSES:
            self.per_flow[("RunsFailed", flow)] += 1

    def announced(self) -> None:
        self.counts["RunsAnnounced"] += 1

    def announcement_failed(self, reason: str) -> None:
        """A recorded run's end that is not on the bus: an error, since a downstream flow waits for it."""
        self.counts["AnnouncementsFailed"] += 1
        logger().error("run end not announced", extra={"reason": reason})

    def log(self, message: str, fields: dict[str, Any]) -> None:
        logger().info(message, extra=fields)

    def correlate(self, run_id: Optional[str]) -> None:
        logger().set_correlation_id(run_id)

    # --- sending ----------------------------------------------------------------------

    def flush(self) -> None:
        if not self.counts and not self.per_flow:
            return
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        sink = _metrics_sink()
        for name, value in sorted(self.counts.items()):
            sink.add_metric(name=name, unit=MetricUnit.Count, value=value)
        sink.flush_metrics()
        # Runs per flow carry the flow as a dimension; one document each keeps the
        # event counters above free of it.
        for (name, flow), value in sorted(self.per_flow.items()):
            with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
                metric.add_dimension(name="service", value=SERVICE)
                metric.add_dimension(name="flow", value=flow)
        self.counts.clear()
        self.per_flow.clear()
