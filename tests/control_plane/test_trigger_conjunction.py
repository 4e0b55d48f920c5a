"""The "all of these events" rule: order-free under duplicated and reordered deliveries."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.triggers.conjunction import Condition, State, conditions_of, execution_name, offer, started
from flowplane.manifest import TriggerOnFinishSpec, TriggerSpec
from flowplane.trigger_events import TriggerCause

NOW = 1_800_000_000
ALL = [Condition("a", frozenset({"a"})), Condition("b", frozenset({"b"})), Condition("run:Up", frozenset({"run:Up"}))]


def cause(name: str, n: int) -> TriggerCause:
    if name.startswith("run:"):
        return TriggerCause(type="run", name=name[4:], id=f"run:{name[4:]}/sfn-{n}", timestamp=NOW + n,
                            pathspec=f"{name[4:]}/sfn-{n}")
    return TriggerCause(type="event", name=name, id=f"{name}-{n}", timestamp=NOW + n, payload={"n": n})


def deliver(deliveries: list[TriggerCause], conditions: list[Condition], crash_after: set[int] = frozenset()
            ) -> list[tuple[str, list[str]]]:
    """Deliver in order, starting each decided run; after delivery i in `crash_after` the
    starter dies before it clears `starting` (the next delivery finishes the job)."""
    state, runs = State(), []
    for i, c in enumerate(deliveries):
        state = State.from_item(state.to_item())  # every decision goes through the stored form
        state, _ = offer(state, c, conditions, "Flow", NOW)
        if state.starting is not None:
            name, causes = state.starting
            if name not in [r[0] for r in runs]:  # Step Functions: one execution per name
                runs.append((name, sorted(x.id for x in causes)))
            if i not in crash_after:
                state = started(state, conditions, "Flow")
    return runs


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_one_event_per_condition_starts_one_run_whatever_the_order_and_duplicates(data) -> None:
    events = [cause(c.key, i) for i, c in enumerate(ALL)]
    deliveries = data.draw(st.lists(st.sampled_from(events), min_size=len(events), max_size=12)
                           .filter(lambda d: {c.id for c in d} == {e.id for e in events}))
    deliveries = data.draw(st.permutations(deliveries))
    crash = set(data.draw(st.lists(st.integers(0, len(deliveries) - 1), max_size=3)))
    runs = deliver(list(deliveries), ALL, crash)
    assert runs == [(execution_name("Flow", events), sorted(e.id for e in events))]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_duplicates_are_invisible_and_no_event_is_used_twice(data) -> None:
    pool = [cause(n, i) for i in range(4) for n in ("a", "b", "run:Up")]
    distinct = data.draw(st.lists(st.sampled_from(pool), max_size=14, unique_by=lambda c: c.id))
    with_duplicates = list(distinct)
    for _ in range(data.draw(st.integers(0, 6))):
        if distinct:
            # a duplicate arrives at some later point than the original
            original = data.draw(st.integers(0, len(distinct) - 1))
            at = data.draw(st.integers(with_duplicates.index(distinct[original]) + 1, len(with_duplicates)))
            with_duplicates.insert(at, distinct[original])
    runs = deliver(with_duplicates, ALL)
    assert runs == deliver(distinct, ALL)
    used = [i for _, ids in runs for i in ids]
    assert len(used) == len(set(used)), "an event started two runs"
    for _, ids in runs:  # one cause per condition, none missing
        assert sorted(i.split("-")[0].split("/")[0] for i in ids) == ["a", "b", "run:Up"]


def test_the_newest_waiting_event_of_a_condition_is_the_one_used() -> None:
    runs = deliver([cause("a", 1), cause("a", 3), cause("a", 2), cause("b", 0), cause("run:Up", 5)], ALL)
    assert runs == [(runs[0][0], sorted(["a-3", "b-0", "run:Up/sfn-5"]))]


def test_any_starts_on_each_event_and_all_waits_for_every_one() -> None:
    any_of = conditions_of(TriggerSpec(events=["a", "b"], options={"any": True}), None)
    runs = deliver([cause("a", 1), cause("b", 2), cause("a", 1), cause("a", 3)], any_of)
    assert [ids for _, ids in runs] == [["a-1"], ["b-2"], ["a-3"]]
    both = conditions_of(TriggerSpec(events=["a"]), TriggerOnFinishSpec(flows=["Up", "Other"], options={"any": True}))
    assert [c.key for c in both] == ["a", "any:run:Up,run:Other"]
    runs = deliver([cause("run:Up", 1), cause("run:Other", 2), cause("a", 3)], both)
    assert [ids for _, ids in runs] == [sorted(["a-3", "run:Other/sfn-2"])]


def test_an_event_no_condition_names_changes_nothing() -> None:
    state, changed = offer(State(), cause("c", 1), ALL, "Flow", NOW)
    assert not changed and state == State()


def test_seen_ids_are_forgotten_after_two_days() -> None:
    state = State(seen={"old": NOW - 3 * 24 * 3600, "recent": NOW - 3600})
    state, _ = offer(state, cause("a", 1), ALL, "Flow", NOW)
    assert set(state.seen) == {"recent", "a-1"}


def test_execution_names_fit_step_functions() -> None:
    name = execution_name("F" * 200 + "/x y", [cause("a", 1)])
    assert len(name) <= 80 and all(ch.isalnum() or ch in "-_" for ch in name)
    assert name == execution_name("F" * 200 + "/x y", [cause("a", 1)])
    assert name != execution_name("F" * 200 + "/x y", [cause("a", 2)])
