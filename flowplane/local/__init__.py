"""The embedded default: Flowplane's whole production path on one machine.

`flowplane local` (cli.py) runs `LocalPlane` (plane.py): the control plane of
app.py on an embedded AWS from moto, Batch jobs as local processes
(batch.py), the events and schedules AWS would deliver (events.py,
scheduler.py), state kept across restarts (persist.py). moto's departures
from AWS that matter here are fixed in moto_patches.py. The SDK falls back to
it when no control plane is configured (discover.py).

Importing this package imports nothing heavy; moto and Chalice load when a
plane starts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LocalPlane", "PlaneConfig", "PlaneError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import plane

        return getattr(plane, name)
    raise AttributeError(name)
