"""The idempotency key contract, shared by the SDK and the control plane.

Every mutating request carries an `Idempotency-Key` header (the name of the
IETF httpapi draft "The Idempotency-Key HTTP Header Field"): one key per user
action, the same on each retry of it. The control plane answers a repeated key
with its first answer and never acts twice (chalicelib/idempotency.py). The
error codes below are what the client reads to tell a key still being worked on
(ask again) from a key reused for another request (a mistake: never retried).
"""

from __future__ import annotations

import re
import uuid
from typing import Optional

HEADER = "Idempotency-Key"
# What the plane answers a replayed request with, so a user (and a test) can tell.
REPLAYED_HEADER = "Idempotent-Replayed"
# Long enough for a UUID or a caller's own structured key; short enough to sit in a
# DynamoDB key and a log line. Printable ASCII only: it travels in a header.
MAX_LENGTH = 128
_KEY = re.compile(r"^[\x21-\x7e]{1,%d}$" % MAX_LENGTH)

# 409: the first request with this key has not finished; the answer is worth asking again.
IN_PROGRESS_CODE = "IdempotencyKeyInProgress"
# 422: the key was used before for a different request (method, path or body).
REUSED_CODE = "IdempotencyKeyReused"


def new_key() -> str:
    """A fresh key for one user action (random: two actions never share one)."""
    return str(uuid.uuid4())


def key_problem(value: str) -> Optional[str]:
    """Why `value` cannot be a key, or None when it can."""
    if not _KEY.match(value):
        return (
            f"the {HEADER} header must be 1-{MAX_LENGTH} printable ASCII characters without spaces "
            f"(a UUID is a good key), not {value[:40]!r}{'...' if len(value) > 40 else ''}"
        )
    return None
