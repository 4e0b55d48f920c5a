"""What an idempotency key adds to a mutating request, on the user's background plane.

The path a user takes: a fresh HOME, nothing started by hand; `python parameter_flow.py
step-functions create` (the first command, which starts the background plane, persistence on)
and a run triggered and finished, cloned 1,000 times through the plane's AWS API as
bench_history does (`UserPlane.with_history`), so the plane holds a realistic history. Then, in a new interpreter with
the user's environment, the SDK's own client (flowplane.api_client.ApiClient, which finds the
running plane as every command does) sends the deployment's notifications PUT (what `create`
sends; its action reads the deployment and writes the setting) over HTTP, each of 200 times:

- without a key (the action alone);
- with a new key: the control plane's check (chalicelib/idempotency.py, Powertools over the
  plane's DynamoDB) claims it, the action runs, the answer is recorded;
- with each of those keys again: answered from the record by the check alone, no action;
- and GET /health, a route that does nothing, for the request's own cost (HTTP, the plane's
  routing and Lambda emulation).

The check of a repeated key is its request beyond /health; a new key's check and record are
its request beyond the keyless one. Goal (issue 19): the check is <= 1 DynamoDB request and
<= 5 ms. The request count cannot be seen from outside the plane: it is counted, beside, on the
idealised set-up (the check in this process on an in-process plane, persistence off, as this
bench measured before), whose times are reported as extra rows.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from common import BenchContext, Row, UserPlane

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


def _idealised(ctx: BenchContext) -> dict[str, float]:
    from chalicelib import idempotency
    from chalicelib.http import aws
    from flowplane.local.plane import LocalPlane, PlaneConfig

    out: dict[str, float] = {}
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
            out = {"again": again - plain, "beyond": again - plain - trip, "trip": trip, "first": first - plain,
                   "first_calls": first_calls, "again_calls": again_calls}
        finally:
            plane.stop()
            if saved is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = saved
    return out


# In a new interpreter with the user's environment: the SDK's client finds the running plane.
MEASURE = """
import json, statistics, sys, time, uuid
from flowplane.api_client import ApiClient
from flowplane.idempotency_key import HEADER

flow, samples = sys.argv[1], int(sys.argv[2])
client = ApiClient()
path = f"/flows/{flow}/notifications"
body = json.dumps({"user": "bench", "on_error": False, "on_success": False}).encode()
url = client.base_url + path


def put(key):
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if key:
        headers[HEADER] = key
    status, answered, raw = client.exchange("PUT", url, headers, body, what="PUT " + path)
    assert status == 200, (status, raw[:300])
    return answered


def health():
    status, _, raw = client.exchange("GET", client.base_url + "/health", {"Accept": "application/json"}, None,
                                     what="GET /health")
    assert status == 200, (status, raw[:300])


def median_ms(fn, n):
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


for i in range(20):  # warm: connections, the plane's handlers and clients
    put(None)
    health()
keys = [str(uuid.uuid4()) for _ in range(samples)]
out = {"health": median_ms(lambda i: health(), samples), "plain": median_ms(lambda i: put(None), samples),
       "first": median_ms(lambda i: put(keys[i]), samples)}
replayed = []
out["again"] = median_ms(lambda i: replayed.append(put(keys[i])), samples)
out["replayed"] = sum(1 for h in replayed if {k.lower(): v for k, v in h.items()}.get("idempotent-replayed"))
print(json.dumps(out))
"""


# The history the user's plane holds while it is measured (bench_history's: a real run, cloned).
HISTORY_RUNS = 1000


def run(ctx: BenchContext) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        user = UserPlane(Path(tmp) / "user", ctx.python)
        try:
            # The first command (create) starts the plane; it then holds 1,000 runs.
            history = user.with_history(HISTORY_RUNS)
            got = json.loads(user.run("-c", MEASURE, "ParameterFlow", str(SAMPLES)).strip().splitlines()[-1])
        finally:
            user.stop_and_check()
    if got["replayed"] != SAMPLES:
        raise RuntimeError(f"only {got['replayed']} of {SAMPLES} repeated keys were answered from the record")
    ideal = _idealised(ctx)
    rows.append(Row("idempotency check, a repeated key, through the user's plane", got["again"] - got["health"],
                    "ms", GOAL_MS, note=f"PUT answered from the record {got['again']:.2f} ms, "
                                        f"GET /health {got['health']:.2f} ms, median of {SAMPLES}; "
                                        f"{HISTORY_RUNS:,} runs held ({history['objects']:,} objects)"))
    rows.append(Row("idempotency, a new key: check + record of the answer, through the user's plane",
                    got["first"] - got["plain"], "ms",
                    note=f"PUT with a new key {got['first']:.2f} ms, without a key {got['plain']:.2f} ms"))
    rows.append(Row("DynamoDB requests of the check itself", min(ideal["first_calls"], ideal["again_calls"]), "req",
                    1.0, note="counted on the idealised set-up (same code)"))
    rows.append(Row("idealised (in-process plane, persistence off): a repeated key", ideal["again"], "ms",
                    note=f"of which {ideal['beyond']:.2f} ms beyond its GetItem round trip ({ideal['trip']:.2f} ms)"))
    rows.append(Row("idealised (in-process plane, persistence off): a new key", ideal["first"], "ms",
                    note=f"{ideal['first_calls']:g} DynamoDB requests (the check is the first)"))
    return rows
