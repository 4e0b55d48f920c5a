"""Publishing the events that start `@trigger` flows, shaped like Metaflow's `ArgoEvent`.

    from flowplane.integrations import Event      # or ArgoEvent, Metaflow's name
    Event("data_updated", payload={"table": "sales"}).publish()

The event goes through the control plane's API (`POST /events`) with the user's own
configuration and credentials, as every command does; with nothing configured, the
embedded plane's. `flowplane event publish NAME --payload '{...}'` does the same from a shell.
"""

from __future__ import annotations

import sys
from typing import Any, Optional


class Event:
    """An event to publish: a name (as `@trigger(event=...)` names it) and a JSON payload.

    Give `id` to make publishing idempotent: every publish of the same id starts at most
    one run of each flow it triggers (retrying a publish is then safe).
    """

    def __init__(self, name: str, payload: Optional[dict[str, Any]] = None, id: Optional[str] = None) -> None:
        self.name = name
        self._payload: dict[str, Any] = dict(payload or {})
        self.id = id

    def add_to_payload(self, key: str, value: Any) -> "Event":
        self._payload[key] = value
        return self

    def publish(self, payload: Optional[dict[str, Any]] = None, force: bool = True,
                ignore_errors: bool = True) -> Optional[str]:
        """Publish; answers the event's id. `payload` adds to the event's own.

        As Metaflow's: with `force=False` nothing is published from a local run (`python
        flow.py run`), only from production runs and outside flows; with `ignore_errors`
        (the default) a failure is printed to stderr and None returned, so a step that
        announces its output does not fail for it.
        """
        if not force:
            from .current import current

            if current.is_running_flow and not current.is_production:
                print(f"Event {self.name!r} not published from a local run (force=False)", file=sys.stderr)
                return None
        from .api_client import ApiClient, ApiError

        try:
            answer = ApiClient().publish_event(self.name, {**self._payload, **(payload or {})}, self.id)
        except Exception as e:  # noqa: BLE001  (the API's errors, the network's, a bad configuration)
            if not ignore_errors:
                raise
            why = e.describe() if isinstance(e, ApiError) else str(e)
            print(f"Event {self.name!r} was not published: {why}", file=sys.stderr)
            return None
        self.id = answer["id"]
        return self.id

    def safe_publish(self, payload: Optional[dict[str, Any]] = None, ignore_errors: bool = True) -> Optional[str]:
        """Publish only from a production run or outside a flow (Metaflow's safe_publish)."""
        return self.publish(payload=payload, force=False, ignore_errors=ignore_errors)

    def __repr__(self) -> str:
        return f"Event(name={self.name!r}, payload={self._payload!r})"


# Metaflow's name: `from metaflow.integrations import ArgoEvent` works with the import switched.
ArgoEvent = Event
