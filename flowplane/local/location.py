"""Where an embedded control plane lives: its state folder and the URL file a running one writes.

A leaf module (standard library only): every command asks it whether a plane
runs, and must not pay for importing the plane (moto, Chalice) to find out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

URL_FILE = "plane.json"
LOCK_FILE = "plane.lock"
STATE_DIR_ENV = "FLOWPLANE_LOCAL_STATE_DIR"


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or Path.home() / ".flowplane" / "local").expanduser()


def read_url_file(state_dir: Path) -> Optional[dict[str, Any]]:
    """The running plane's URL file, if its process is alive."""
    path = Path(state_dir) / URL_FILE
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info
