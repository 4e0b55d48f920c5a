"""Run-end notifications: setting them (with a deploy's authorization), reading them (never the
webhook), and the `notify` function that hears the recorder's run-end announcements."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from flowplane.event_types import RUN_FINISHED_DETAIL_TYPE, RUN_FINISHED_SOURCE

from ..http import aws, json_body, json_errors
from ..idempotency import idempotent
from ..identity import acting_user

bp = Blueprint(__name__)

RUN_FINISHED_PATTERN = {"source": [RUN_FINISHED_SOURCE], "detail-type": [RUN_FINISHED_DETAIL_TYPE]}


@bp.route("/flows/{flow}/notifications", methods=["PUT"], content_types=["application/json"])
@json_errors
@idempotent(bp)
def put_notifications(flow: str) -> Any:
    from ..notifications.config import put

    a = aws()
    caller = acting_user(bp.current_request.context, a.settings)
    return put(a, flow, json_body(bp.current_request.raw_body), caller)


@bp.route("/flows/{flow}/notifications", methods=["GET"])
@json_errors
def get_notifications(flow: str) -> Any:
    from ..notifications.config import view

    return view(aws(), flow)


@bp.on_cw_event(RUN_FINISHED_PATTERN, name="notify")
def notify(event: Any) -> dict[str, Any]:
    """A production run ended: send what its deployment asked for (Slack, SNS)."""
    from ..notifications.deliver import on_run_finished

    return on_run_finished(aws(), event.detail)
