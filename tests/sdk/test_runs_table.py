"""`step-functions list-runs`' table: a cell per column, printed as rich prints a row per run."""

from __future__ import annotations

import io
import random

import pytest
from rich.console import Console
from rich.table import Table

from flowplane.sfn_cli import _runs_table

STAMP = "2026-12-07T16:16:19.733+00:00"


def _printed(renderable, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, highlight=False, soft_wrap=True)
    console.print(renderable)
    return console.file.getvalue()


def _row_per_run(title: str, runs: list[dict]) -> Table:
    table = Table(title=title)
    for column in ("Run ID", "Status", "Started", "Finished"):
        table.add_column(column, no_wrap=column == "Run ID")
    for r in runs:
        table.add_row(r["run_id"], r["status"], r.get("started_at") or "", r.get("stopped_at") or "")
    return table


def _runs(rng: random.Random, n: int) -> list[dict]:
    runs = []
    for i in range(n):
        status = rng.choice(["running", "succeeded", "failed"])
        runs.append({
            "run_id": f"sfn-{i:04d}" + "x" * rng.choice([0, 32]),
            "status": status,
            "started_at": rng.choice([STAMP, None]),
            "stopped_at": None if status == "running" or rng.random() < 0.2 else STAMP,
        })
    return runs


@pytest.mark.parametrize("seed", range(40))
def test_the_table_is_the_one_rich_prints_a_row_per_run(seed):
    rng = random.Random(seed)
    runs = _runs(rng, rng.choice([1, 2, 5, 30]))
    for width in (30, 50, 80, 120, 200):  # cropped cells too: a narrow terminal
        assert _printed(_runs_table("Runs of F", runs), width) == _printed(_row_per_run("Runs of F", runs), width)


def test_each_run_keeps_its_line():
    runs = [{"run_id": "sfn-a", "status": "running", "started_at": STAMP, "stopped_at": None},
            {"run_id": "sfn-b", "status": "failed", "started_at": None, "stopped_at": None},
            {"run_id": "sfn-c", "status": "succeeded", "started_at": STAMP, "stopped_at": STAMP}]
    lines = [line for line in _printed(_runs_table("Runs of F", runs), 120).splitlines() if "sfn-" in line]
    assert [(line.split()[1], line.split()[3]) for line in lines] == [
        ("sfn-a", "running"), ("sfn-b", "failed"), ("sfn-c", "succeeded")]
    assert lines[0].count(STAMP) == 1 and STAMP not in lines[1] and lines[2].count(STAMP) == 2
