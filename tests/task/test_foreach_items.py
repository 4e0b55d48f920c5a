"""The item list a splitting task writes for its Distributed Map (flowplane/foreach_items.py)."""

from __future__ import annotations

import json

import pytest

from flowplane.datastore import layout
from flowplane.foreach_items import ITEMS_FILE, items_body, items_key


def test_the_list_sits_beside_the_tasks_records_not_in_an_attempt():
    key = items_key("F", "sfn-r", "start", "1.2")
    assert key == f"{layout.task_prefix('F', 'sfn-r', 'start', '1.2')}/{ITEMS_FILE}"
    # Not per attempt: a retried split overwrites the list its Map then reads.
    assert key.endswith("/1.2/foreach-items.json")


@pytest.mark.parametrize("part", ["flow", "run_id", "step", "task_id"])
@pytest.mark.parametrize("bad", ["", "a/b"])
def test_key_parts_must_be_non_empty_without_slashes(part, bad):
    args = {"flow": "F", "run_id": "sfn-r", "step": "s", "task_id": "1"} | {part: bad}
    with pytest.raises(ValueError, match=part):
        items_key(**args)


@pytest.mark.parametrize("n", [1, 7, 100_000])
def test_the_body_is_the_indices_as_compact_json(n):
    body = items_body(n)
    assert json.loads(body) == list(range(n))
    assert b" " not in body


def test_100000_items_stay_far_below_any_limit_that_bounded_the_width():
    # A state payload is capped at 256 KiB and a DynamoDB item at 400 KB; S3 holds this easily.
    assert 256 * 1024 < len(items_body(100_000)) < 1_000_000


@pytest.mark.parametrize("n", [0, -1, True, 2.0, "3"])
def test_bad_counts_are_refused(n):
    with pytest.raises(ValueError, match="num_splits"):
        items_body(n)
