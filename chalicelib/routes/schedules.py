"""Operating a deployment's schedule: see it, pause and unpause it, backfill it.

Pausing and backfilling take the same authorization as a deploy (the last
deployer, or the production token). Every refusal changes nothing.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from ..http import aws, json_body, json_errors
from ..idempotency import idempotent
from ..identity import acting_user

bp = Blueprint(__name__)


@bp.route("/flows/{flow}/schedule", methods=["GET"])
@json_errors
def get_schedule(flow: str) -> Any:
    """?next=N: the next N fire times (default 5, at most 100); ?after=T: after T, not now."""
    from ..runs.schedule_view import parse_next, view

    params = bp.current_request.query_params or {}
    return view(aws(), flow, parse_next(params.get("next")), params.get("after"))


def _pause(flow: str, paused: bool) -> Any:
    from ..deploy.pausing import set_paused

    a = aws()
    caller = acting_user(bp.current_request.context, a.settings)
    return set_paused(a, flow, paused, json_body(bp.current_request.raw_body, required=False), caller)


@bp.route("/flows/{flow}/schedule/pause", methods=["POST"], content_types=["application/json"])
@json_errors
@idempotent(bp)
def pause(flow: str) -> Any:
    return _pause(flow, True)


@bp.route("/flows/{flow}/schedule/unpause", methods=["POST"], content_types=["application/json"])
@json_errors
@idempotent(bp)
def unpause(flow: str) -> Any:
    return _pause(flow, False)


@bp.route("/flows/{flow}/backfill", methods=["POST"], content_types=["application/json"])
@json_errors
def backfill(flow: str) -> Any:
    """Start (or go on with) a backfill; the SDK calls again until its status is DONE."""
    from ..runs.backfill import backfill as run_backfill

    a = aws()
    caller = acting_user(bp.current_request.context, a.settings)
    return run_backfill(a, a.settings, flow, json_body(bp.current_request.raw_body), caller)
