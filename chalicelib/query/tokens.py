"""next_token: DynamoDB's LastEvaluatedKey, opaque to clients and checked on return.

A token names the index and the partition it was made for; one that does not
decode, names other key attributes, or points into another partition (another
flow, another status) is refused with a 400 before DynamoDB sees it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Optional

from ..errors import BadRequest
from ..keys import INDEX_KEYS

MAX_TOKEN = 2048


def _bad(why: str) -> BadRequest:
    return BadRequest(f"next_token is not one this API gave out ({why}); start again without it", field="next_token")


def encode(last_key: Optional[dict[str, Any]], index: Optional[str]) -> Optional[str]:
    if not last_key:
        return None
    raw = json.dumps({"i": index or "", "k": last_key}, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(token: Optional[str], index: Optional[str], partition: tuple[str, str],
           prefix: Optional[str] = None) -> Optional[dict[str, Any]]:
    """The ExclusiveStartKey for a Query of `partition` (attribute, value) on `index`, whose
    sort keys begin with `prefix` when given (one step's tasks, not another's)."""
    if token is None:
        return None
    if not token or len(token) > MAX_TOKEN:
        raise _bad("empty or too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad("not base64 JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"i", "k"} or not isinstance(doc["k"], dict):
        raise _bad("wrong shape")
    if doc["i"] != (index or ""):
        raise _bad("made for another listing")
    expected = set(INDEX_KEYS[None]) | set(INDEX_KEYS.get(index, ()))
    key = doc["k"]
    if set(key) != expected or not all(isinstance(v, str) and v for v in key.values()):
        raise _bad("wrong key attributes")
    attribute, value = partition
    if key.get(attribute) != value:
        raise _bad("made for another listing")
    if prefix and not key[INDEX_KEYS[index][1]].startswith(prefix):
        raise _bad("made for another listing")
    return key
