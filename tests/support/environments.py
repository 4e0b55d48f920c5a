"""Shared pieces of the @pypi/@conda tests (no tests here).

The packages are small pure-Python wheels from the package index, absent from the test
environment itself, so a step can import them only from its own environment: tomli-w at
two versions (its module says its version in `__version__` from 1.0.0 on).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE, MODULE = "tomli-w", "tomli_w"
OLD, NEW = "1.0.0", "1.1.0"


def keep_uv_cache() -> dict[str, str]:
    """uv's download cache stays the machine's when a test moves HOME (the wheels are fetched once)."""
    return {"UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR") or os.path.expanduser("~/.cache/uv")}


def two_versions_flow(folder: Path, name: str = "TwoVersionsFlow", old: str = OLD, new: str = NEW) -> Path:
    """A flow whose steps see the package at two versions, and a last step that has no @pypi."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "two_versions.py"
    path.write_text(f'''
from flowplane import FlowSpec, pypi, step


class {name}(FlowSpec):
    @pypi(packages={{"{PACKAGE}": "{old}"}})
    @step
    def start(self):
        import {MODULE}
        self.first = {MODULE}.__version__
        self.next(self.middle)

    @pypi(packages={{"{PACKAGE}": "{new}"}}, python="%d.%d")
    @step
    def middle(self):
        import {MODULE}
        self.second = {MODULE}.__version__
        self.next(self.end)

    @step
    def end(self):
        import sys
        try:
            import {MODULE}
            self.third = {MODULE}.__version__
        except ImportError as e:
            self.third = repr(e)
        self.prefix = sys.prefix
        self.path = list(sys.path)


if __name__ == "__main__":
    {name}()
''' % __import__("sys").version_info[:2])
    return path
