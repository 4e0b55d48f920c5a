"""Recorder CPU time per event, without I/O: parse, merge, build the items, log.

The real Recorder runs over an in-memory table (same calls, no network, no
conditions to lose), fed a few thousand events of AWS's shapes: whole runs with
retries, as tests/support/recording_events.py builds them. Goal: <= 1 ms an event.
"""

from __future__ import annotations

import contextlib
import io
import time
from typing import Any

from common import BenchContext, Row

GOAL_MS = 1.0
RUNS = 60


class _MemoryClient:
    def __init__(self, items: dict) -> None:
        self.items = items

    def transact_write_items(self, TransactItems: list[dict]) -> None:
        for op in TransactItems:
            item = op["Put"]["Item"]
            self.items[(item["PK"], item["SK"])] = item


class _Meta:
    def __init__(self, client: _MemoryClient) -> None:
        self.client = client


class MemoryTable:
    """The few DynamoDB Table calls the store makes, on a dict."""

    name = "memory"

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.meta = _Meta(_MemoryClient(self.items))

    def get_item(self, Key: dict, **kwargs: Any) -> dict:
        item = self.items.get((Key["PK"], Key["SK"]))
        return {"Item": item} if item else {}

    def put_item(self, Item: dict, **kwargs: Any) -> None:
        self.items[(Item["PK"], Item["SK"])] = Item

    def update_item(self, Key: dict, ExpressionAttributeValues: dict, **kwargs: Any) -> None:
        item = self.items.setdefault((Key["PK"], Key["SK"]), dict(Key))
        c = ExpressionAttributeValues[":c"]
        if "created_at" not in item or item["created_at"] > c:
            item.update(name=ExpressionAttributeValues[":n"], type=ExpressionAttributeValues[":t"], created_at=c)


def _events(client: Any) -> list[dict]:
    from tests.support.recording_events import Attempt, TaskPlan, artifact, run_events

    plan = [
        TaskPlan("start", "1", [Attempt(False), Attempt(True, {"items": artifact("1" * 64)})]),
        *[TaskPlan("square", f"1.{i}", [Attempt(True, {"x": artifact(f"{i:064d}")})]) for i in range(4)],
        TaskPlan("join", "1", [Attempt(True, {"total": artifact("5" * 64)})]),
        TaskPlan("end", "1", [Attempt(True, {"total": artifact("5" * 64)})]),
    ]
    out = []
    for r in range(RUNS):
        for e in run_events("ForeachFlow", "ForeachFlow", f"bench-{r}", plan, start=1_764_028_800_000 + r * 60_000):
            out.append(e.envelope(client))
    return out


def run(ctx: BenchContext) -> list[Row]:
    from chalice.test import Client

    from app import app
    from chalicelib.recording.owners import Owners
    from chalicelib.recording.recorder import Recorder
    from chalicelib.recording.store import RecordStore

    version = {
        "name": "ForeachFlow", "flow_name": "ForeachFlow", "version": 1, "production_token": "foreachflow-1",
        "deployer": "bench", "deployed_at": "2025-01-01T00:00:00.000000Z", "options": {"tags": ["team:ml"]},
    }
    with Client(app) as client:
        events = _events(client)
    rows = []
    best = None
    for _ in range(max(1, ctx.repeat)):
        table = MemoryTable()
        recorder = Recorder(RecordStore(table, sleep=lambda s: None), Owners(lambda name: [version]))
        with contextlib.redirect_stdout(io.StringIO()):  # the JSON log lines: formatted, not written
            t0 = time.process_time()
            for e in events:
                outcome = recorder.record(e)
                assert outcome.recorded, outcome
            elapsed = time.process_time() - t0
        per_event = elapsed / len(events) * 1000
        best = per_event if best is None else min(best, per_event)
    rows.append(Row(f"recorder CPU per event, no I/O ({len(events)} events, best of {ctx.repeat})", best, "ms", goal=GOAL_MS))
    # The parse alone, for scale.
    from chalicelib.recording.events import parse_event

    t0 = time.process_time()
    for e in events:
        parse_event(e)
    rows.append(Row("  of which parsing (pydantic models)", (time.process_time() - t0) / len(events) * 1000, "ms"))
    return rows
