"""Publishing events that start triggered flows (chalicelib/triggers/)."""

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
