"""What recording and AWS can hold, defined once for the SDK and the control plane.

An accepted request must always become a recorded run: every limit downstream
is checked when the request arrives (DESIGN.md). The budgets below are chosen
so that the largest run they allow still fits every item and transaction the
recorder writes; tests/control_plane/test_limits.py builds that run with the recorder's own
item builder and holds it to AWS's numbers.
"""

from __future__ import annotations

# --- AWS's own limits ---------------------------------------------------------------
DYNAMODB_ITEM_BYTES = 400 * 1024
DYNAMODB_PARTITION_KEY_BYTES = 2048
DYNAMODB_SORT_KEY_BYTES = 1024
DYNAMODB_TRANSACTION_BYTES = 4 * 1024 * 1024
DYNAMODB_TRANSACTION_ITEMS = 100
STEP_FUNCTIONS_INPUT_BYTES = 256 * 1024
STEP_FUNCTIONS_DEFINITION_BYTES = 1024 * 1024
BATCH_JOB_PAYLOAD_BYTES = 30 * 1024

# --- ours, each within the above ---------------------------------------------------------

# Metaflow's own tag limits (MAX_USER_TAG_SET_SIZE, MAX_TAG_SIZE); a run item is copied once
# per tag in one transaction, and a tag is part of those copies' keys.
MAX_TAGS = 50
MAX_TAG_BYTES = 500
# All of them as the record stores them (JSON, non-ASCII escaped), since the run and its
# copies (one per tag) are written in one transaction of at most 4 MB.
MAX_TAGS_JSON_BYTES = 16 * 1024

# A run's input ({"Parameters": "<JSON>"}) reaches every task inside its Batch job
# (FLOWPLANE_EXECUTION_INPUT), whose whole payload may be 30 KiB; Step Functions
# itself takes 256 KiB. The run record keeps the parameters, copied once per tag.
MAX_EXECUTION_INPUT_BYTES = 16 * 1024

# The deployed parameters (names, help, defaults) live in the flow's head item.
MAX_PARAMETERS_BYTES = 64 * 1024

# Who deployed (an IAM ARN is at most 2,048 characters), kept in several items.
MAX_USER_BYTES = 2048


def utf8_size(text: str) -> int:
    """Bytes of `text` as AWS counts them; a lone surrogate (not UTF-8) counts as too many."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return 1 << 62


def check_tags(tags: list[str]) -> None:
    """Raise ValueError naming the first tag (or the set) past the limits above."""
    import json

    if len(tags) > MAX_TAGS:
        raise ValueError(f"{len(tags)} tags; the limit is {MAX_TAGS}")
    for tag in tags:
        if not isinstance(tag, str):
            raise ValueError(f"a tag is a string, got {type(tag).__name__}")
        size = utf8_size(tag)
        shown = f"{tag[:40]!r}{'...' if len(tag) > 40 else ''}"
        if not tag or size > MAX_TAG_BYTES:
            raise ValueError(
                f"tag {shown} is {size if size < 1 << 62 else 'not UTF-8, or'} "
                f"bytes; a tag is 1 to {MAX_TAG_BYTES} bytes of UTF-8"
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in tag):
            raise ValueError(f"tag {shown} has a control character")
    total = len(json.dumps(tags))
    if total > MAX_TAGS_JSON_BYTES:
        raise ValueError(f"the tags are {total} bytes together as JSON; the limit is {MAX_TAGS_JSON_BYTES}")
