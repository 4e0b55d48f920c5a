"""Production runs of deployed flows, and the schedule's launcher.

Listing runs is the Client API's GET /flows/{flow}/runs (routes/client_api.py),
read from the recorded runs.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from ..http import aws, json_body, json_errors
from ..idempotency import idempotent, run_name

bp = Blueprint(__name__)


def _runs() -> Any:
    """chalicelib.runs.production, loaded by the handlers that act on runs, not by every Lambda's import."""
    from ..runs import production

    return production


@bp.route("/flows/{flow}/runs", methods=["POST"], content_types=["application/json"])
@json_errors
@idempotent(bp)
def trigger(flow: str) -> Any:
    a, request = aws(), bp.current_request
    answer = _runs().trigger(a, a.settings, flow, json_body(request.raw_body, required=False), run_name(request))
    return Response(body=answer, status_code=201)


@bp.route("/flows/{flow}/includes", methods=["POST"], content_types=["application/json"])
@json_errors
def post_include(flow: str) -> Any:
    """Where the SDK uploads an IncludeFile's file (`flow` is the flow's class name)."""
    from ..runs.includes import presign_include

    a = aws()
    return presign_include(a, a.settings, flow, json_body(bp.current_request.raw_body))


@bp.route("/flows/{flow}/runs/{run_id}/terminate", methods=["POST"], content_types=["application/json"])
@json_errors
@idempotent(bp)
def terminate(flow: str, run_id: str) -> Any:
    return _runs().terminate(aws(), flow, run_id)


@bp.lambda_function(name="launch")
def launch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The target of every schedule rule (chalicelib/deploy/schedules.py gives its input) and of
    every triggered flow's rule (chalicelib/triggers/rules.py: its input carries the event)."""
    a = aws()
    if isinstance(event, dict) and "event" in event:
        from ..triggers.launch import on_event

        return on_event(a, a.settings, event)
    return _runs().launch(a, a.settings, event)
