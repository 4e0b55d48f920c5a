"""Running uv, the resolver and installer of environments (pinned in the SDK's requirements).

uv rather than pip: it resolves a universal lock with hashes for every file in one call
(`uv pip compile --universal --generate-hashes`), installs from its shared cache by
linking rather than copying, and creates relocatable virtual environments, each an
order of magnitude faster than pip. The index is the one pip is configured with here
(index.py), so uv reaches what pip reaches.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Optional

from .index import uv_index_environment


class UvMissing(RuntimeError):
    """uv is not installed where the SDK runs."""


# The uv executable to use instead of the `uv` package's (a uv of your own, or none: `false`).
UV_ENV = "FLOWPLANE_UV"


def uv_binary() -> str:
    """The uv executable: FLOWPLANE_UV, else the `uv` package's (the SDK's requirement), else one on PATH."""
    if os.environ.get(UV_ENV):
        return os.environ[UV_ENV]
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise UvMissing("uv is not installed: `pip install uv` (flowplane resolves and builds @pypi/@conda environments with it)")


def run_uv(args: list[str], stdin: Optional[str] = None, cwd: Optional[str] = None) -> subprocess.CompletedProcess:
    """uv with `args`; its project and user config files left out (what a flow's folder says
    about uv must not change what the lock says), the index pip uses put in."""
    env = dict(os.environ)
    env.update(uv_index_environment())
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")  # an environment's Python is one this machine has
    env.pop("VIRTUAL_ENV", None)
    binary = uv_binary()
    try:
        return subprocess.run(
            [binary, *args, "--no-config"],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )
    except OSError as e:
        raise UvMissing(f"cannot run uv ({binary}): {e}") from None
