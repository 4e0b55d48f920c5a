"""The package index pip is configured with, handed to uv.

uv reads its own settings (UV_INDEX_URL, UV_DEFAULT_INDEX, ...) but not pip's. Where pip
was pointed at another index (PIP_INDEX_URL, or `index-url` in a pip.conf, as on
machines behind a mirror), uv is given the same, so `run` resolves where `pip install`
would. Only the main index is carried over: find-links folders and local extra indexes
are files on this machine, which a production task could not reach, so a lock never
depends on them. uv's own variables, when set, win.
"""

from __future__ import annotations

import configparser
import os
from typing import Optional


def _pip_config_files() -> list[str]:
    """pip's configuration files, lowest precedence first (pip's documented order)."""
    home = os.path.expanduser("~")
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    xdg_home = os.environ.get("XDG_CONFIG_HOME", os.path.join(home, ".config"))
    files = [os.path.join(d, "pip", "pip.conf") for d in reversed(xdg_dirs) if d]
    files += ["/etc/pip.conf", os.path.join(home, ".pip", "pip.conf"), os.path.join(xdg_home, "pip", "pip.conf")]
    if os.environ.get("VIRTUAL_ENV"):
        files.append(os.path.join(os.environ["VIRTUAL_ENV"], "pip.conf"))
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(os.environ["PIP_CONFIG_FILE"])
    return files


def pip_index_url() -> Optional[str]:
    """pip's `index-url`: PIP_INDEX_URL, else the last pip.conf that sets it; None for pip's default."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"].strip()
    found = None
    for path in _pip_config_files():
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            if parser.has_option(section, "index-url"):
                found = parser.get(section, "index-url").strip() or found
    return found


def uv_index_environment() -> dict[str, str]:
    """What to add to uv's environment so it uses pip's index (nothing when uv is told already)."""
    if os.environ.get("UV_INDEX_URL") or os.environ.get("UV_DEFAULT_INDEX"):
        return {}
    url = pip_index_url()
    return {"UV_DEFAULT_INDEX": url} if url else {}
