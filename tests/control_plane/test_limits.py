"""Limits that recording and AWS impose, checked when a request arrives (issue 12, point 5).

The budgets in flowplane/limits.py are held here to AWS's numbers: the largest
run they allow is built with the recorder's own item builder (recording/run_records.py)
and must fit every key, item and transaction it writes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib.errors import BadRequest
from chalicelib import keys
from chalicelib.recording import run_records
from chalicelib.recording.events import MAX_MESSAGE
from chalicelib.recording.owners import Owner
from chalicelib.runs.inputs import check_input_size, execution_input
from flowplane import limits
from flowplane.manifest import DeployOptions


def _item_bytes(value: Any) -> int:
    """DynamoDB's item size: names and values in UTF-8, numbers ~21 bytes at most, 3 bytes a
    list or map plus 1 an element (the documented rules, rounded up)."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, (int, float)):
        return 21
    if isinstance(value, (list, tuple, set)):
        return 3 + sum(1 + _item_bytes(v) for v in value)
    if isinstance(value, dict):
        return 3 + sum(1 + len(k.encode()) + _item_bytes(v) for k, v in value.items())
    raise TypeError(type(value))


def _largest_tags() -> list[str]:
    # Non-ASCII: each character is 2 bytes in a key and 6 in the record's JSON (\u00e9).
    per_tag = limits.MAX_TAGS_JSON_BYTES // limits.MAX_TAGS - 4
    return [f"{i:02d}" + "\u00e9" * ((per_tag - 2) // 6) for i in range(limits.MAX_TAGS)]


def _largest_run() -> dict[str, Any]:
    flow = "F" * 128  # recording's FLOW_NAME allows 128
    execution = "e" * 80  # Step Functions' execution names
    arn = f"arn:aws:states:ap-southeast-2:123456789012:execution:{'s' * 80}:{execution}"
    # The largest input accepted: one string parameter filling the budget.
    value = "x" * (limits.MAX_EXECUTION_INPUT_BYTES - 64)
    check_input_size({"p": value})
    owner = Owner(
        deployment="d" * 80,
        flow=flow,
        version=10**9,
        token="t" * 89,
        deployer="u" * limits.MAX_USER_BYTES,
        tags=tuple(DeployOptions(tags=_largest_tags()).tags),
    )
    return {
        **owner.run_fields(),
        "run_id": f"sfn-{execution}",
        "execution_arn": arn,
        "state_machine_arn": arn.replace(":execution:", ":stateMachine:"),
        "status": "SUCCEEDED",
        "started_at": "2026-12-07T00:00:00.000+00:00",
        "stopped_at": "2026-12-07T00:00:00.000+00:00",
        "redrive_count": 1000,
        "error": {"type": "States.TaskFailed" * 10, "message": "m" * MAX_MESSAGE},
        "failed_task": f"{flow}/sfn-{execution}/{'s' * 80}/1" + ".12345678" * 20,
        "parameters": json.loads(execution_input({"p": value})["Parameters"]),
        # Room for fields a later version adds.
        "slack": "z" * 4096,
    }


def test_the_largest_run_the_limits_allow_fits_every_key_item_and_transaction():
    items = run_records.run_items(_largest_run())
    assert len(items) == 1 + limits.MAX_TAGS + 3 <= limits.DYNAMODB_TRANSACTION_ITEMS
    for item in items:
        for pk, sk in (("PK", "SK"), ("GSI1PK", "GSI1SK"), ("GSI2PK", "GSI2SK")):
            if pk in item:
                assert len(item[pk].encode()) <= limits.DYNAMODB_PARTITION_KEY_BYTES, item[pk][:80]
                assert len(item[sk].encode()) <= limits.DYNAMODB_SORT_KEY_BYTES
        assert _item_bytes(item) <= limits.DYNAMODB_ITEM_BYTES
    total = sum(_item_bytes(i) for i in items)
    assert total <= limits.DYNAMODB_TRANSACTION_BYTES, total


def test_the_run_input_fits_a_batch_job_and_step_functions():
    # What reaches the job: the input as a JSON string, escaped once more (States.JsonToString).
    worst = json.dumps(json.dumps(execution_input({"p": '"' * 3000})))
    assert limits.MAX_EXECUTION_INPUT_BYTES + 2048 < limits.BATCH_JOB_PAYLOAD_BYTES
    assert limits.MAX_EXECUTION_INPUT_BYTES < limits.STEP_FUNCTIONS_INPUT_BYTES
    assert len(worst) > 3000  # escaping grows it: the budget is measured on the input itself


# --- tags ------------------------------------------------------------------------------------------


def test_a_3000_character_tag_is_refused_naming_the_limit():
    # It deployed, and every run of it was accepted and never recorded (key over 2,048 bytes).
    with pytest.raises(ValidationError, match="1 to 500 bytes"):
        DeployOptions(tags=["t" * 3000])


def test_more_than_50_tags_are_refused():
    with pytest.raises(ValidationError, match="51 tags; the limit is 50"):
        DeployOptions(tags=[f"t{i}" for i in range(51)])


def test_tags_together_are_capped_as_the_record_stores_them():
    with pytest.raises(ValidationError, match="together as JSON; the limit is 16384"):
        DeployOptions(tags=[f"{i:02d}" + "t" * 400 for i in range(50)])


def test_tags_count_bytes_not_characters_and_must_be_utf8():
    DeployOptions(tags=["\u00e9" * 250])  # 500 bytes
    with pytest.raises(ValidationError, match="1 to 500 bytes"):
        DeployOptions(tags=["\u00e9" * 251])
    with pytest.raises(ValidationError, match="not UTF-8"):
        DeployOptions(tags=["\ud800"])
    with pytest.raises(ValidationError, match="1 to 500 bytes"):
        DeployOptions(tags=[""])
    with pytest.raises(ValidationError, match="control character"):
        DeployOptions(tags=["a\x01"])


# --- run input --------------------------------------------------------------------------------------


def test_a_5_mib_parameter_is_refused_naming_it_and_the_limit():
    with pytest.raises(BadRequest) as e:
        check_input_size({"alpha": "x" * (5 * 1024 * 1024)})
    assert e.value.field == "parameters.alpha" and e.value.extra == {"parameter": "alpha", "limit": 16384}
    assert "16384 bytes" in e.value.message and "AWS Batch" in e.value.message


def test_parameters_each_under_the_limit_but_over_it_together_are_refused():
    with pytest.raises(BadRequest) as e:
        check_input_size({f"p{i}": "x" * 6000 for i in range(3)})
    assert e.value.field == "parameters" and e.value.extra["limit"] == limits.MAX_EXECUTION_INPUT_BYTES
