"""Refusing what is too large for where it goes: one message shape for every size limit.

The limits themselves are in flowplane/limits.py; this says which one a request
broke, by how much, and why it exists, as a 400 naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import BadRequest


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON in UTF-8, as AWS counts a document it is sent."""
    return len(json.dumps(value, separators=(",", ":")).encode())


def check_limit(size: int, limit: int, what: str, why: str, **where: Any) -> None:
    """A 400 when `size` is over `limit`: '<what> is N bytes; the limit is L (<why>)'."""
    if size > limit:
        raise BadRequest(f"{what} is {size} bytes; the limit is {limit} bytes ({why})", limit=limit, **where)
