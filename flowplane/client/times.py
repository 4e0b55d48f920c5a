"""Record timestamps (ISO 8601 strings) as timezone-aware datetimes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_time(value: Optional[str]) -> Optional[datetime]:
    """UTC-aware; a stamp without a zone is read as UTC (records are written in UTC)."""
    if not value:
        return None
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def sort_key(value: Optional[str]) -> datetime:
    """For ordering: a missing stamp sorts as the oldest."""
    return parse_time(value) or _EPOCH
