"""What an idempotency key adds to a mutating request on the embedded plane.

The control plane's own check (chalicelib/idempotency.py, Powertools over the
plane's DynamoDB) around a view that does nothing, against the same view
without a key, in the plane's process: the DynamoDB requests it makes and the
time they take. A first key claims it and stores the answer (two writes: the
check, then the record of the answer after the action); a repeated key is
answered by the check alone. Goal (issue 19): the check is <= 1 DynamoDB
request and <= 5 ms.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from common import BenchContext, Row

GOAL_MS = 5.0
SAMPLES = 200


def _request(key: str) -> Any:
    from chalice.app import Request

    from flowplane.idempotency_key import HEADER

    return Request({
        "multiValueQueryStringParameters": None,
        "headers": {"content-type": "application/json", HEADER: key},
        "pathParameters": {"flow": "BenchFlow"},
        "requestContext": {"httpMethod": "POST", "resourcePath": "/flows/{flow}/runs"},
        "body": '{"parameters": {}}',
        "stageVariables": None,
    })


def _median_ms(fn: Callable[[], Any], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def run(ctx: BenchContext) -> list[Row]:
    from chalicelib import idempotency
    from chalicelib.http import aws
    from flowplane.local.plane import LocalPlane, PlaneConfig

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.environ.get("HOME")
        os.environ["HOME"] = str(Path(tmp) / "home")
        plane = LocalPlane(PlaneConfig(state_dir=Path(tmp) / "state", persist=False)).start()
        try:
            act = lambda: {"ok": True}  # noqa: E731
            calls: list[str] = []
            idempotency.once(_request("warm-up"), "warm-up", act)  # imports, clients, connections
            client = idempotency._store(aws()).client
            client.meta.events.register("before-call.dynamodb", lambda model, **kw: calls.append(model.name))

            plain = _median_ms(act, SAMPLES)
            keys = [str(uuid.uuid4()) for _ in range(SAMPLES)]
            it = iter(keys)
            calls.clear()
            first = _median_ms(lambda: (k := next(it), idempotency.once(_request(k), k, act)), SAMPLES)
            first_calls = len(calls) / SAMPLES
            it = iter(keys)
            calls.clear()
            again = _median_ms(lambda: (k := next(it), idempotency.once(_request(k), k, act)), SAMPLES)
            again_calls = len(calls) / SAMPLES
            table = aws().settings.table
            trip = _median_ms(lambda: client.get_item(TableName=table, Key={"PK": {"S": "x"}, "SK": {"S": "x"}}),
                              SAMPLES)
            rows.append(Row("idempotency check, a repeated key (answered from the record)", again - plain, "ms",
                            GOAL_MS, note=f"{again_calls:g} DynamoDB request(s)"))
            rows.append(Row("  of which beyond its one DynamoDB round trip", again - plain - trip, "ms",
                            note=f"a GetItem round trip to this plane's DynamoDB: {trip:.2f} ms"))
            rows.append(Row("idempotency, a new key: check + record of the answer", first - plain, "ms",
                            note=f"{first_calls:g} DynamoDB requests (the check is the first)"))
            rows.append(Row("DynamoDB requests of the check itself", min(first_calls, again_calls), "req", 1.0))
        finally:
            plane.stop()
            if saved is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = saved
    return rows
