"""Suite-wide test configuration.

Tests that stand up moto (in-process AWS) are marked `aws` automatically, so
`make test-quick` (not slow, not aws) runs the pure-Python core in seconds.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    uses_aws: dict[str, bool] = {}
    for item in items:
        path = str(item.fspath)
        if path not in uses_aws:
            try:
                text = open(path, encoding="utf-8").read()
            except OSError:
                text = ""
            uses_aws[path] = any(k in text for k in ("moto", "mock_aws", "test_app_support", "chalice.test"))
        if uses_aws[path]:
            item.add_marker(pytest.mark.aws)


@pytest.fixture(autouse=True)
def _no_background_plane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test starts the embedded plane's background service by accident: one would outlive
    the suite. Tests of that path are marked `embedded` (or set FLOWPLANE_EMBEDDED themselves)."""
    if request.node.get_closest_marker("embedded") is None:
        monkeypatch.setenv("FLOWPLANE_EMBEDDED", "0")


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
