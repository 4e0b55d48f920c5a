"""Event-triggered flows on the embedded plane: how soon a published event starts work, and what
a triggered run costs the control plane beside a run started by hand.

1. The path a user takes: a fresh HOME, nothing started by hand (the first command starts
   the background plane), `examples/triggered_flow.py` deployed with `step-functions create`,
   then `Event(...).publish()` from a new interpreter, timed until the run's first task is
   started (its `start` task shows in the Client API). Median of several events.
2. In one process, an embedded plane whose Lambda invocations and DynamoDB writes are
   counted: a triggered run against `step-functions trigger` of the same flow, each run
   awaited to the end. The difference is what triggering adds per run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from common import BenchContext, Row, user_env, user_shell

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 5

PUBLISH_AND_WAIT = """
import sys, time
from flowplane import Flow, namespace
from flowplane.integrations import Event
namespace(None)
event_id = "bench-" + sys.argv[1]
t0 = time.perf_counter()
Event("data_updated", payload={"rows": int(sys.argv[1]), "table": "bench"}, id=event_id).publish(ignore_errors=False)
while True:
    for run in Flow("TriggeredFlow").runs():
        trigger = run.trigger
        if trigger is not None and trigger.event.id == event_id and "start" in run and any(True for _ in run["start"]):
            print(time.perf_counter() - t0)
            raise SystemExit(0)
    time.sleep(0.02)
"""


def _latency(ctx: BenchContext, base: Path) -> list[float]:
    home, work = base / "home", base / "work"
    home.mkdir(parents=True)
    work.mkdir(parents=True)
    flow = work / "triggered_flow.py"
    flow.write_text((ROOT / "examples" / "triggered_flow.py").read_text())
    env = user_env(home)

    run = user_shell(ctx.python, work, env)

    try:
        run(str(flow), "step-functions", "create")
        return [float(run("-c", PUBLISH_AND_WAIT, str(n)).strip().splitlines()[-1]) for n in range(1, EVENTS + 1)]
    finally:
        subprocess.run([ctx.python, "-m", "flowplane", "local", "stop"], cwd=work, env=env, capture_output=True)


def _costs(base: Path) -> tuple[Counter, Counter]:
    """Lambda invocations and DynamoDB writes of one run started by hand and one triggered."""
    sys.path.insert(0, str(ROOT))
    from moto.dynamodb.models import DynamoDBBackend

    from flowplane.integrations import Event
    from flowplane.local.plane import LocalPlane, PlaneConfig
    from tests.support.embedded_plane import create, trigger, wait_for_run

    writes: Counter = Counter()
    originals = {}
    for op in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
        originals[op] = getattr(DynamoDBBackend, op)

        def counted(self: Any, *a: Any, _op: str = op, **k: Any) -> Any:
            writes[_op] += 1
            return originals[_op](self, *a, **k)

        setattr(DynamoDBBackend, op, counted)
    os.environ.update(HOME=str(base / "home2"), FLOWPLANE_USER="bench")
    base.mkdir(parents=True, exist_ok=True)
    flow = base / "triggered_flow.py"
    flow.write_text((ROOT / "examples" / "triggered_flow.py").read_text())
    try:
        with LocalPlane(PlaneConfig(state_dir=base / "state", persist=False)) as plane:
            os.environ["FLOWPLANE_API_URL"] = plane.url
            invoked: Counter = Counter()
            original_invoke = plane.invoke

            def invoke(handler: str, payload: Any) -> Any:
                invoked[handler] += 1
                return original_invoke(handler, payload)

            plane.invoke = invoke  # type: ignore[method-assign]
            create(flow)
            plane.settle()

            def measure(start: Any) -> Counter:
                invoked.clear()
                writes.clear()
                run_id = start()
                wait_for_run(plane, "TriggeredFlow", run_id)
                return Counter({f"lambda {k}": v for k, v in invoked.items()}) + Counter(
                    {"dynamodb writes": sum(writes.values())})

            by_hand = measure(lambda: trigger(flow, "--rows", "3"))

            def triggered() -> str:
                from chalicelib.resource_names import state_machine_name

                arn = (f"arn:aws:states:{plane.region}:{plane.account}:stateMachine:"
                       f"{state_machine_name(plane.settings.resource_prefix, 'TriggeredFlow')}")
                sfn = plane.session.client("stepfunctions")
                before = {r["name"] for r in sfn.list_executions(stateMachineArn=arn)["executions"]}
                Event("data_updated", payload={"rows": 3}, id="cost-1").publish(ignore_errors=False)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    plane.settle(timeout=5)
                    runs = sfn.list_executions(stateMachineArn=arn)["executions"]
                    fresh = [r for r in runs if r["name"] not in before]
                    if fresh:
                        return f"sfn-{fresh[0]['name']}"
                    time.sleep(0.05)
                raise RuntimeError("the triggered run did not start")

            by_event = measure(triggered)
            return by_hand, by_event
    finally:
        for op, fn in originals.items():
            setattr(DynamoDBBackend, op, fn)
        os.environ.pop("FLOWPLANE_API_URL", None)


def run(ctx: BenchContext) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        latencies = _latency(ctx, Path(tmp) / "user")
        rows.append(Row(f"publish -> first task started, embedded plane (median of {EVENTS})",
                        statistics.median(latencies), "s",
                        note=f"min {min(latencies):.2f} s, max {max(latencies):.2f} s; a new interpreter per event"))
        by_hand, by_event = _costs(Path(tmp) / "costs")
        added = {k: by_event[k] - by_hand.get(k, 0) for k in sorted(set(by_event) | set(by_hand))}
        for what in sorted(added):
            rows.append(Row(f"  added per triggered run: {what}", added[what], "",
                            note=f"by hand {by_hand.get(what, 0)}, triggered {by_event.get(what, 0)}"))
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    for row in run(BenchContext(repeat=1)):
        print(row.render())
