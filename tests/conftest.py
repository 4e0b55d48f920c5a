"""Suite-wide test configuration.

The folders mirror the code: sdk/, task/, control_plane/, recording/, client/, local/ and
e2e/ (the slow end-to-end runs); helpers that hold no tests are in support/, fixtures in
the conftest.py of the folder whose tests use them (here: those of more than one folder).

Imports: every folder is a package, so pytest (its default "prepend" import mode) puts the
repository root on sys.path and a test imports its helpers as `tests.support.<module>`;
test modules never import each other, and two folders may hold the same file name.

Markers are declared in each module (`pytestmark`) or on a test, never inferred:
`aws` where moto's in-process AWS runs (make test-quick leaves those out), `slow` for
end-to-end tests, `embedded` where the embedded plane's background service may start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.support.local_runs import USER

# Generating examples slowly means a busy machine (these are shared 2-core machines),
# not a defect of the strategy: timing is not what property tests check.
settings.register_profile("shared-machine", suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-machine")


@pytest.fixture(autouse=True)
def _no_background_plane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test starts the embedded plane's background service by accident: one would outlive
    the suite. Tests of that path are marked `embedded` (or set FLOWPLANE_EMBEDDED themselves)."""
    if request.node.get_closest_marker("embedded") is None:
        monkeypatch.setenv("FLOWPLANE_EMBEDDED", "0")


@pytest.fixture
def control_plane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The Chalice app on moto with the stage's resources (tests/support/control_plane.py).

    Parametrize indirectly with {"execute": False} for executions that stay RUNNING."""
    # Imported here, not above: the app and moto load only for the tests that use them.
    from tests.support.control_plane import control_plane_on_moto

    with control_plane_on_moto(monkeypatch, execute=getattr(request, "param", {}).get("execute", True)) as cp:
        yield cp


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The datastore root of local runs made in-process (tests/support/local_runs.py `run`),
    as USER, from tmp_path. A module that needs another root defines its own."""
    monkeypatch.setenv("FLOWPLANE_USER", USER)
    monkeypatch.delenv("FLOWPLANE_TASK_LAUNCHER", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "ds"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A safety net: a test that failed before stopping the background plane it started must not
    leave it running past the suite."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    try:
        base = factory.getbasetemp()
    except Exception:
        return
    from flowplane.local import service

    for url_file in base.rglob("plane.json"):
        service.stop(url_file.parent, timeout=10)
