"""The recorder's merge is a semilattice: any order, any duplicates, same record."""

from __future__ import annotations

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.recording.merge import ATTEMPT_RANK, RUN_RANK, merge_attempt, merge_run, task_status

times = st.sampled_from(["2026-11-25T00:00:00.000+00:00", "2026-11-25T00:00:01.000+00:00", "2026-11-25T00:00:02.000+00:00"])


def _record(ranks):
    return st.fixed_dictionaries(
        {"run_id": st.just("sfn-x"), "status": st.sampled_from(sorted(ranks))},
        optional={
            "started_at": times,
            "stopped_at": times,
            "exit_code": st.integers(0, 2),
            "error": st.fixed_dictionaries({"type": st.sampled_from(["E1", "E2"]), "message": st.text(max_size=3)}),
            "log_stream": st.sampled_from(["a", "b"]),
            "tags": st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=3),
            "redrive_count": st.integers(0, 2),
        },
    )


runs = _record(RUN_RANK)
attempts = _record(ATTEMPT_RANK)


@given(runs, runs)
def test_run_merge_commutes(a, b):
    assert merge_run(a, b) == merge_run(b, a)


@given(runs, runs, runs)
def test_run_merge_associates(a, b, c):
    assert merge_run(a, merge_run(b, c)) == merge_run(merge_run(a, b), c)


@given(runs)
def test_run_merge_idempotent(a):
    once = merge_run({}, a)
    assert merge_run(once, a) == once


@settings(max_examples=200)
@given(st.lists(runs, min_size=1, max_size=6), st.randoms(use_true_random=False), st.integers(0, 3))
def test_any_order_and_duplicates_give_one_record(events, rnd, dups):
    stream = events + [rnd.choice(events) for _ in range(dups)]
    shuffled = list(stream)
    rnd.shuffle(shuffled)
    assert functools.reduce(merge_run, stream, {}) == functools.reduce(merge_run, shuffled, {})


@given(st.lists(runs, min_size=1, max_size=6))
def test_a_final_status_never_goes_back_to_running(events):
    # ... unless a redrive runs the execution again: then only a later redrive's RUNNING does.
    final = {"run_id": "sfn-x", "status": "SUCCEEDED", "stopped_at": "2026-11-25T00:00:02.000+00:00", "redrive_count": 2}
    merged = functools.reduce(merge_run, [final, *events], {})
    assert merged["status"] != "RUNNING"
    assert RUN_RANK[merged["status"]] == 2


@settings(max_examples=200)
@given(st.permutations([
    {"run_id": "sfn-x", "status": "RUNNING", "started_at": "2026-11-25T00:00:00.000+00:00"},
    {"run_id": "sfn-x", "status": "FAILED", "stopped_at": "2026-11-25T00:00:01.000+00:00",
     "error": {"type": "States.TaskFailed", "message": "boom"}, "failed_task": "F/sfn-x/start/1"},
    {"run_id": "sfn-x", "status": "RUNNING", "redrive_count": 1, "started_at": "2026-11-25T00:00:00.000+00:00"},
]))
def test_a_redrive_runs_the_failed_execution_again_in_any_order(events):
    merged = functools.reduce(merge_run, events, {})
    # Running again: the failure it restarts (its stop time, error and failed task) is gone.
    assert merged == {"run_id": "sfn-x", "status": "RUNNING", "redrive_count": 1,
                      "started_at": "2026-11-25T00:00:00.000+00:00"}
    done = {"run_id": "sfn-x", "status": "SUCCEEDED", "redrive_count": 1, "stopped_at": "2026-11-25T00:00:09.000+00:00"}
    assert functools.reduce(merge_run, [done, *events], {})["status"] == "SUCCEEDED"


@given(attempts, attempts, attempts)
def test_attempt_merge_is_a_semilattice(a, b, c):
    assert merge_attempt(a, b) == merge_attempt(b, a)
    assert merge_attempt(a, merge_attempt(b, c)) == merge_attempt(merge_attempt(a, b), c)
    assert merge_attempt(merge_attempt({}, a), a) == merge_attempt({}, a)


def test_status_fields_travel_with_their_status():
    running = {"status": "RUNNING", "started_at": "2026-11-25T00:00:00.000+00:00"}
    failed = {"status": "FAILED", "stopped_at": "2026-11-25T00:00:05.000+00:00", "error": {"type": "States.TaskFailed", "message": "boom"}}
    merged = merge_run(failed, running)
    assert merged == {**running, **failed}


def test_equal_statuses_keep_facts_from_both_sources():
    from_batch = {"status": "SUCCEEDED", "exit_code": 0}
    from_task = {"status": "SUCCEEDED", "stopped_at": "2026-11-25T00:00:05.000+00:00"}
    assert merge_attempt(from_batch, from_task) == {"status": "SUCCEEDED", "exit_code": 0, "stopped_at": "2026-11-25T00:00:05.000+00:00"}


def test_task_status_from_attempts():
    assert task_status([]) is None
    assert task_status([{"attempt": 0, "status": "FAILED"}, {"attempt": 1, "status": "RUNNING"}]) == "RUNNING"
    assert task_status([{"attempt": 1, "status": "FAILED"}, {"attempt": 0, "status": "SUCCEEDED"}]) == "SUCCEEDED"
    assert task_status([{"attempt": 0, "status": "FAILED"}]) == "FAILED"
