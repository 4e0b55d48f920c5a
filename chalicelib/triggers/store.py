"""A triggered flow's waiting events in DynamoDB: read, decide, write back if nobody else did.

One item per deployment holds the `conjunction.State` and a revision number. A
writer puts its new state only if the revision is still the one it read
(optimistic concurrency: Lambdas handling two events of the same flow at once
both decide, one wins, the other reads again and decides again).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

from ..aws import Table, client_error, error_code
from .conjunction import State

ATTEMPTS = 8


class Contended(RuntimeError):
    """Too many writers at once; the delivery is retried by EventBridge."""


class TriggerStates:
    def __init__(self, table: Table, key: Callable[[str], tuple[str, str]]) -> None:
        self.table = table
        self._key = key  # deployment name -> (PK, SK)

    def read(self, deployment: str) -> tuple[State, int]:
        pk, sk = self._key(deployment)
        item = self.table.get(pk, sk)
        if not item:
            return State(), 0
        return State.from_item(json.loads(item["state"])), int(item.get("revision", 0))

    def change(self, deployment: str, decide: Callable[[State], Optional[State]]) -> State:
        """Apply `decide` (None: nothing to write) to the current state until it sticks."""
        pk, sk = self._key(deployment)
        for _ in range(ATTEMPTS):
            state, revision = self.read(deployment)
            new = decide(state)
            if new is None:
                return state
            item: dict[str, Any] = {"PK": pk, "SK": sk, "type": "trigger_state", "deployment": deployment,
                                    "state": json.dumps(new.to_item(), sort_keys=True), "revision": revision + 1}
            try:
                if revision == 0:
                    self.table.put(item, "attribute_not_exists(PK)")
                else:
                    self.table.put(item, "revision = :r", {":r": revision})
                return new
            except client_error() as e:
                if error_code(e) != "ConditionalCheckFailedException":
                    raise
        raise Contended(f"the trigger state of {deployment} changed under {ATTEMPTS} writers in a row")
