"""Whether a control plane answers at a URL: its /health says ok.

A leaf: discover.py asks it of the plane a URL file names, service.py before it
starts another or to tell a stale URL file's process from a plane.
"""

from __future__ import annotations

import json
import urllib.request


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as r:
            return r.status == 200 and json.loads(r.read()).get("ok") is True
    except (OSError, ValueError):
        return False
