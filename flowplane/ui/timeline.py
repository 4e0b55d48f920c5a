"""The Gantt chart of a run's tasks (or of a task's attempts): bars placed in percent of the span.

Drawn as positioned HTML, so it needs no script and prints as it shows. A run with many
tasks gets one row per step, its tasks' bars overlaid, rather than thousands of rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

from ..client.times import parse_time

# Up to this many tasks, one row each; past it, one row per step.
ROWS_PER_TASK_MAX = 60


@dataclass
class Bar:
    left: float  # percent of the chart's span
    width: float
    status: str
    title: str
    href: Optional[str] = None


@dataclass
class Row:
    label: str
    href: Optional[str]
    bars: list[Bar] = field(default_factory=list)


@dataclass
class Chart:
    rows: list[Row]
    start: Optional[datetime]
    end: Optional[datetime]

    @property
    def seconds(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return max(0.0, (self.end - self.start).total_seconds())


@dataclass
class Span:
    """One bar's facts: what it is, when it ran (end None while running) and where it links."""

    row: str
    label: str
    status: str
    started_at: Optional[str]
    finished_at: Optional[str]
    href: Optional[str] = None
    row_href: Optional[str] = None


def chart(spans: list[Span], now: Optional[datetime] = None, group_rows: bool = False) -> Chart:
    """Bars from `spans`; a running span ends now. `group_rows`: one row per `row` name."""
    now = now or datetime.now(timezone.utc)
    timed = [(s, parse_time(s.started_at), parse_time(s.finished_at)) for s in spans]
    starts = [b for _, b, _ in timed if b is not None]
    if not starts:
        return Chart([], None, None)
    start = min(starts)
    end = max([e or now for _, b, e in timed if b is not None] + [start])
    total = max((end - start).total_seconds(), 1e-3)
    rows: dict[str, Row] = {}
    for span, began, ended in timed:
        key = span.row if group_rows else f"{span.row}/{span.label}"
        row = rows.get(key)
        if row is None:
            label = span.row if group_rows else span.label
            row = rows[key] = Row(label=label, href=span.row_href if group_rows else span.href)
        if began is None:
            continue
        stop = ended or now
        left = (began - start).total_seconds() / total * 100
        width = max((stop - began).total_seconds() / total * 100, 0.4)
        took = (stop - began).total_seconds()
        row.bars.append(Bar(left=round(left, 3), width=round(min(width, 100 - left + 0.4), 3), status=span.status,
                            title=f"{span.label}: {span.status}, {took:.1f} s", href=span.href))
    return Chart(list(rows.values()), start, end)
