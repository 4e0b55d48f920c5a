"""Fixtures of the task runtime's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.local_runs import USER


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local datastore root for in-process tasks, as USER, with no production run's variables set."""
    monkeypatch.setenv("FLOWPLANE_USER", USER)
    for var in ("FLOWPLANE_EXECUTION_INPUT", "FLOWPLANE_PRODUCTION_TOKEN", "FLOWPLANE_FOREACH_TABLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "ds"
