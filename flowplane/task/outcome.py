"""How an attempt ended: what it records and the exit code that says it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

EXIT_OK = 0
EXIT_FAILED = 1


@dataclass
class Outcome:
    """How the attempt ended."""

    ok: bool = False
    error: Optional[BaseException] = None
    error_text: Optional[str] = None  # the traceback to store with the error
    caught: bool = False
    num_splits: Optional[int] = None
    artifacts: Optional[dict[str, Any]] = None  # the stored index
