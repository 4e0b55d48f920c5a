"""POST /events: an event put on the stack's bus, where deployed flows' trigger rules hear it.

Publishing goes through the control plane rather than straight to EventBridge so
that a user needs no permission beyond the API's (the one every command signs
for), a bad event is refused with a message before anything is put on the bus,
the event gets its id and time in one place, and the embedded plane needs nothing
configured.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from pydantic import ValidationError

from flowplane.manifest import describe_errors
from flowplane.trigger_events import EVENT_SOURCE, MAX_PAYLOAD_BYTES, PublishedEvent

from ..errors import ApiError, BadRequest, PayloadTooLarge


class BusUnavailable(ApiError, status=503):
    """EventBridge did not take the event; nothing was published."""


def published_event(body: Any, now: float) -> PublishedEvent:
    """The event a request asks to publish, validated; raises BadRequest/PayloadTooLarge."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object: {\"name\": ..., \"payload\": {...}}", field="body")
    unknown = sorted(set(body) - {"name", "payload", "id"})
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)} (an event has name, payload and id)",
                         field=unknown[0])
    payload = body.get("payload") or {}
    if not isinstance(payload, dict):
        raise BadRequest("payload must be a JSON object (its fields map to the flows' parameters)",
                         field="payload")
    size = len(json.dumps(payload, separators=(",", ":")).encode())
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"the payload is {size} bytes; an event carries at most {MAX_PAYLOAD_BYTES}",
                              field="payload", size=size, limit=MAX_PAYLOAD_BYTES)
    try:
        return PublishedEvent(name=body.get("name"), id=body.get("id") or uuid.uuid4().hex,
                              timestamp=int(now), payload=payload)
    except ValidationError as e:
        raise BadRequest(f"not an event: {describe_errors(e)}", field=str(e.errors()[0]["loc"][0])) from None


def publish(events_client: Any, bus: str, body: Any) -> dict[str, Any]:
    event = published_event(body, time.time())
    answer = events_client.put_events(Entries=[{
        "Source": EVENT_SOURCE,
        "DetailType": event.name,
        "Detail": event.model_dump_json(),
        "EventBusName": bus,
    }])
    if answer.get("FailedEntryCount"):
        failed = answer["Entries"][0]
        raise BusUnavailable(f"EventBridge refused the event: {failed.get('ErrorCode')}: {failed.get('ErrorMessage')}")
    return {"name": event.name, "id": event.id, "timestamp": event.timestamp}
