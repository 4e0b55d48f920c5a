"""A run listing read on demand: what the Client API's `Flow.runs()` gets back.

Both the control plane's pages (service.py) and the merge of local and production
runs (combined.py) are read only as far as the caller looks, so `Flow.latest_run`
costs one page, not the whole history. Subclasses say how to read one more run
(or page) in `_more`; indexing, `len`, truth and iteration are the same for both.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Iterator, Optional, Union, overload

from ..datastore.records import RunRecord


class LazyRuns(Sequence):
    """Runs newest first; `_more` appends to `_items` or sets `_done`, under `_lock`."""

    # What __repr__ says of the runs in hand, and of the rest.
    _read_as = ("read", "more to read")

    def __init__(self, limit: Optional[int] = None) -> None:
        self._limit = limit
        self._items: list[RunRecord] = []
        self._done = limit == 0
        self._lock = threading.Lock()

    def _more(self) -> None:
        raise NotImplementedError

    def _fill(self, upto: Optional[int]) -> None:
        while not self._done and (upto is None or len(self._items) <= upto):
            self._more()

    def __iter__(self) -> Iterator[RunRecord]:
        i = 0
        while True:
            if i < len(self._items):
                yield self._items[i]
                i += 1
            elif self._done:
                return
            else:
                self._more()

    def __len__(self) -> int:
        self._fill(None)
        return len(self._items)

    def __bool__(self) -> bool:
        self._fill(0)
        return bool(self._items)

    @overload
    def __getitem__(self, i: int) -> RunRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[RunRecord]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[RunRecord, list[RunRecord]]:
        if isinstance(i, slice) or i < 0:
            self._fill(None)
        else:
            self._fill(i)
        return self._items[i]

    def __repr__(self) -> str:
        done, pending = self._read_as
        return f"<runs: {len(self._items)} {done}{'' if self._done else ', ' + pending}>"
