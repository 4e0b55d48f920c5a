"""The waiting events of a triggered flow in DynamoDB: concurrent deciders do not lose a write."""

from __future__ import annotations

import pytest

from chalicelib.triggers.conjunction import Condition, State, offer
from chalicelib.triggers.store import TriggerStates
from flowplane.trigger_events import TriggerCause

pytestmark = pytest.mark.aws

CONDITIONS = [Condition("a", frozenset({"a"})), Condition("b", frozenset({"b"}))]


def _cause(name: str, n: int) -> TriggerCause:
    return TriggerCause(type="event", name=name, id=f"{name}-{n}", timestamp=1_800_000_000 + n, payload={"n": n})


def _states(control_plane) -> TriggerStates:
    return TriggerStates(control_plane.aws.table, lambda name: (f"FLOW#{name}", "TRIGGER_STATE"))


def test_a_state_round_trips_through_the_table(control_plane) -> None:
    states = _states(control_plane)
    assert states.read("F") == (State(), 0)
    states.change("F", lambda s: offer(s, _cause("a", 1), CONDITIONS, "F", 1_800_000_000)[0])
    state, revision = states.read("F")
    assert revision == 1 and state.waiting["a"].payload == {"n": 1} and "a-1" in state.seen


def test_a_writer_that_lost_the_race_decides_again_on_the_winners_state(control_plane) -> None:
    states = _states(control_plane)
    calls = []

    def slow_a(state: State) -> State:
        calls.append(dict(state.waiting))
        if len(calls) == 1:  # another Lambda writes b between this one's read and its write
            states.change("F", lambda s: offer(s, _cause("b", 2), CONDITIONS, "F", 1_800_000_000)[0])
        return offer(state, _cause("a", 1), CONDITIONS, "F", 1_800_000_000)[0]

    final = states.change("F", slow_a)
    assert len(calls) == 2 and "b" in calls[1]
    # Both events count: the run is decided with both.
    assert final.starting is not None and sorted(c.id for c in final.starting[1]) == ["a-1", "b-2"]
    assert states.read("F")[0] == final


def test_nothing_to_write_writes_nothing(control_plane) -> None:
    states = _states(control_plane)
    assert states.change("F", lambda s: None) == State()
    assert states.read("F") == (State(), 0)
