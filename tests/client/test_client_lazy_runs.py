"""LazyRuns: the run listing both the plane's pages and the merged listing build on."""

from __future__ import annotations

from typing import Optional

from flowplane.client.lazy_runs import LazyRuns
from flowplane.datastore.records import RunRecord


class Counted(LazyRuns):
    """Reads run i on the i-th call to _more, counting the calls."""

    def __init__(self, n: int, limit: Optional[int] = None):
        super().__init__(limit)
        self.n, self.reads = n, 0

    def _more(self) -> None:
        with self._lock:
            if len(self._items) >= self.n or (self._limit is not None and len(self._items) >= self._limit):
                self._done = True
                return
            self.reads += 1
            self._items.append(RunRecord(flow="F", run_id=str(len(self._items)), user="u"))


def test_reads_only_as_far_as_asked():
    runs = Counted(5)
    assert bool(runs) and runs.reads == 1
    assert runs[2].run_id == "2" and runs.reads == 3
    assert repr(runs) == "<runs: 3 read, more to read>"
    assert [r.run_id for r in runs] == ["0", "1", "2", "3", "4"]
    assert len(runs) == 5 and repr(runs) == "<runs: 5 read>"


def test_negative_indexes_and_slices_read_everything():
    runs = Counted(4)
    assert runs[-1].run_id == "3" and runs.reads == 4
    assert [r.run_id for r in Counted(4)[1:3]] == ["1", "2"]


def test_a_limit_of_zero_reads_nothing_and_an_empty_listing_is_false():
    none = Counted(5, limit=0)
    assert not none and list(none) == [] and none.reads == 0
    assert not Counted(0) and len(Counted(0)) == 0
    assert [r.run_id for r in Counted(5, limit=2)] == ["0", "1"]
