"""Publishing events that start triggered flows, and the triggers refused (chalicelib/triggers/)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from ..http import aws, json_body, json_errors
from ..idempotency import idempotent

bp = Blueprint(__name__)


@bp.route("/events", methods=["POST"], content_types=["application/json"])
@json_errors
@idempotent(bp)
def publish_event() -> Any:
    from ..triggers.publish import publish

    a = aws()
    answer = publish(a.events, a.settings.event_bus or "default", json_body(bp.current_request.raw_body))
    return Response(body=answer, status_code=202)


@bp.route("/flows/{flow}/triggers/refused", methods=["GET"])
@json_errors
def refused_triggers(flow: str) -> Any:
    """The deployment's latest refused triggers (an event whose payload a parameter cannot take)."""
    from ..errors import BadRequest
    from ..resource_names import is_deployment_name
    from ..triggers.launch import refused

    if not is_deployment_name(flow):
        raise BadRequest(f"{flow!r} is not a deployment's name", field="flow")
    return {"flow": flow, "refused": refused(aws(), flow)}
