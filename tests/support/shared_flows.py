"""Where the team's shared flows are: ../shared/flows beside the checkout.

A clone made elsewhere for a clean run (`git clone . /tmp/x`) has no
../shared; FLOWPLANE_SHARED_FLOWS or the team's usual /work/shared/flows is
used then. No flows at all is an error, not a skip: CI always has them.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.paths import ROOT

_CANDIDATES = [
    os.environ.get("FLOWPLANE_SHARED_FLOWS"),
    str(ROOT.parent / "shared" / "flows"),
    "/work/shared/flows",
]


def _find() -> Path:
    for c in _CANDIDATES:
        if c and (Path(c) / "EXPECTED.md").exists():
            return Path(c)
    raise RuntimeError(
        "the shared flows were not found (looked in %s); set FLOWPLANE_SHARED_FLOWS" % ", ".join(filter(None, _CANDIDATES))
    )


SHARED_FLOWS = _find()
