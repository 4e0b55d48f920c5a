"""The system's Chromium for the dashboard's browser tests (no tests here).

Playwright drives it by its path and never downloads a browser (its download host is not
reachable everywhere, and `make test` installs the system's package instead: see the
Makefile's `browser` target). Where there is none, the tests skip saying so.
"""

from __future__ import annotations

import os
import shutil
from typing import Optional

CANDIDATES = ("chromium", "chromium-browser")


def system_chromium() -> Optional[str]:
    """FLOWPLANE_TEST_CHROMIUM, else the first Chromium on PATH; None if there is none."""
    named = os.environ.get("FLOWPLANE_TEST_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


NO_CHROMIUM = ("no Chromium on this machine (the system package `chromium`; `make test` installs it "
               "where apt-get may run without a prompt, or set FLOWPLANE_TEST_CHROMIUM to a binary)")
