"""A flow's runs a page at a time, filtered: what a dashboard's runs table reads (`Flow.runs_page`).

`Flow.runs()` is an iterator for a program; a table a person pages through is stateless
between pages, so each page hands out an opaque token for the next. Each provider pages
its own way: the datastore lists its runs and counts an offset, the control plane passes
its route's `next_token` along (one request a page, the filters applied there), and the
combined provider merges the two newest first, its token holding both positions.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Callable, Optional, Sequence, get_args

from ..datastore.records import RunRecord, RunStatus, is_production_run_id
from .exceptions import ClientError
from .provider import RunsPage
from .times import sort_key

# A page of the control plane's runs route holds at most this many (chalicelib/query/reads.py).
MAX_PAGE = 1000
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)


class InvalidPageToken(ClientError, ValueError):
    """A page token this listing did not hand out (or from another filter)."""

    headline = "Invalid page token"


def check_filters(status: Optional[str], limit: int) -> None:
    if status is not None and status not in RUN_STATUSES:
        raise ClientError(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ClientError(f"a page holds 1 to {MAX_PAGE} runs, got {limit!r}")


def encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(token: Optional[str], kind: str) -> Optional[dict[str, Any]]:
    """The state a token of `kind` holds; None for the first page."""
    if token is None:
        return None
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, TypeError):
        raise InvalidPageToken(f"{token[:40]!r} is not a page token of this listing") from None
    if not isinstance(state, dict) or state.get("k") != kind:
        raise InvalidPageToken(f"{token[:40]!r} is not a page token of this listing")
    return state


def matches(rec: RunRecord, namespace_tag: Optional[str], tag: Optional[str], status: Optional[str]) -> bool:
    tags = rec.all_tags
    return ((namespace_tag is None or namespace_tag in tags) and (tag is None or tag in tags)
            and (status is None or rec.status == status))


def offset_page(runs: Sequence[RunRecord], limit: int, token: Optional[str]) -> RunsPage:
    """A page of an already filtered, newest-first list, by offset."""
    state = decode(token, "offset") or {"o": 0}
    start = state.get("o")
    if not isinstance(start, int) or start < 0:
        raise InvalidPageToken("the page token's offset is not a position")
    page = list(runs[start:start + limit])
    more = start + limit < len(runs)
    return page, encode({"k": "offset", "o": start + limit}) if more else None


def provider_runs_page(provider: Any, flow: str, namespace_tag: Optional[str], tag: Optional[str],
                       status: Optional[str], limit: int, token: Optional[str]) -> RunsPage:
    """The provider's own page, or (a provider without runs_page) its listing filtered and paged by offset."""
    own = getattr(provider, "runs_page", None)
    if callable(own):
        return own(flow, namespace_tag=namespace_tag, tag=tag, status=status, limit=limit, token=token)
    runs = [r for r in provider.list_runs(flow, namespace_tag=namespace_tag) if matches(r, None, tag, status)]
    return offset_page(runs, limit, token)


def _newer(a: RunRecord, b: RunRecord) -> bool:
    """Whether `a` (local) goes before `b` (the plane's) in a newest-first listing (combined.py's rule)."""
    ka, kb = (sort_key(a.created_at), a.run_id), (sort_key(b.created_at), b.run_id)
    return ka > kb or (ka == kb and not is_production_run_id(a.run_id))


PageReader = Callable[[int, Optional[str]], RunsPage]


def merged_page(local: PageReader, plane: Optional[PageReader], limit: int, token: Optional[str]) -> RunsPage:
    """A page of the datastore's runs and the plane's merged newest first.

    The token keeps the datastore's own token, the plane's token where its current page
    starts and how many of that page were shown already: one plane request a page, asking
    for the shown ones again when a page ended inside the plane's (they are few, since a
    page ends there only when local runs filled it). A plane page that ends with more to
    come bounds the page: no local run older than its last can be shown before the rest.
    """
    state = decode(token, "merged") or {"k": "merged", "l": None, "p": None, "s": 0, "pd": False, "ld": False}
    skip = state.get("s")
    if not isinstance(skip, int) or skip < 0:
        raise InvalidPageToken("the page token's plane position is not a count")
    local_runs, local_next = ([], None) if state.get("ld") else local(limit, state.get("l"))
    plane_runs: list[RunRecord] = []
    plane_next: Optional[str] = None
    plane_token = state.get("p")
    if plane is not None and not state.get("pd"):
        while True:
            fetched, plane_next = plane(min(MAX_PAGE, skip + limit), plane_token)
            if skip < len(fetched) or not plane_next:
                break
            # Shown up to this page's end: go on from the next (past MAX_PAGE only).
            skip, plane_token = skip - len(fetched), plane_next
        plane_runs = fetched[skip:]
    out: list[RunRecord] = []
    i = j = 0
    seen: set[str] = set()
    while len(out) < limit:
        a = local_runs[i] if i < len(local_runs) else None
        b = plane_runs[j] if j < len(plane_runs) else None
        if b is None and plane_next:
            break  # the plane's next page may hold runs newer than `a`
        if a is None and b is None:
            break
        if b is None or (a is not None and _newer(a, b)):
            rec, i = a, i + 1
        else:
            rec, j = b, j + 1
        assert rec is not None
        if rec.run_id not in seen:
            seen.add(rec.run_id)
            out.append(rec)
    # Where the datastore goes on: its next page if this one was used up, else `i` runs into
    # this one (the datastore's pages are offsets: offset_page).
    new_local = local_next
    if i < len(local_runs):
        base = decode(state.get("l"), "offset") or {"o": 0}
        new_local = encode({"k": "offset", "o": base["o"] + i})
    local_done = i >= len(local_runs) and not local_next
    shown = skip + j
    if plane is None or state.get("pd"):
        new_plane, new_skip, plane_done = None, 0, True
    elif j >= len(plane_runs):
        new_plane, new_skip, plane_done = plane_next, 0, not plane_next
    else:
        new_plane, new_skip, plane_done = plane_token, shown, False
    if local_done and plane_done:
        return out, None
    return out, encode({"k": "merged", "l": new_local, "p": new_plane, "s": new_skip, "pd": plane_done,
                        "ld": local_done})
