"""Rendering a task's cards once its step succeeded, and storing them with the attempt.

As in Metaflow, a card never fails its task: a card that raises or outlives its
`timeout` is logged to the task's stderr and stored as an error card instead,
and a card that cannot be stored at all is logged and left out of the index.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, ContextManager

from . import store
from .collector import CardComponentCollector
from .render import error_card, render_card

TimeLimit = Callable[[float, str], ContextManager[None]]


def render_and_store(
    specs: list[Any],
    collector: CardComponentCollector,
    task: dict[str, Any],
    artifacts: dict[str, Any],
    load: Callable[[str], Any],
    storage: Any,
    pathspec: tuple[str, str, str, str, int],
    time_limit: TimeLimit,
) -> store.CardIndex:
    """Each @card of the step rendered (under its timeout) and stored; then the index."""
    entries = []
    for position, spec in enumerate(specs):
        what = f"@card(type={spec.type!r}{', id=' + repr(spec.id) if spec.id else ''})"
        try:
            with time_limit(float(spec.timeout), f"{task['step']} {what}"):
                html = render_card(spec.type, task, collector.components(position), artifacts, load)
        except BaseException as e:  # the step's own code already ran: nothing here may fail the task
            if isinstance(e, KeyboardInterrupt):
                raise
            message = f"{what} failed to render: {type(e).__name__}: {e}"
            print(f"Card render failed for {task['pathspec']}: {message}", file=sys.stderr)
            html = error_card(task["pathspec"], message)
        data = html.encode("utf-8")
        entry = store.entry_for(position, spec.type, spec.id, data)
        try:
            store.write_card(storage, pathspec, entry, data)
        except Exception as e:
            print(f"Card not stored for {task['pathspec']}: {what}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        entries.append(entry)
    index = store.CardIndex(cards=entries)
    try:
        store.write_index(storage, pathspec, index)
    except Exception as e:
        print(f"Card index not stored for {task['pathspec']}: {type(e).__name__}: {e}", file=sys.stderr)
    return index
