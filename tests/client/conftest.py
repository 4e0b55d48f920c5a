"""Fixtures of the Client API tests."""

from __future__ import annotations

import pytest

from flowplane.client import use_provider
from flowplane.client.service import ServiceProvider
from tests.support.production_runs import BASE, FILES, InProcess, moto_opener
from tests.support.run_layouts import isolate_client


@pytest.fixture
def plane(control_plane, monkeypatch, tmp_path):
    """ParameterFlow, BranchFlow and ForeachFlow deployed; the Client API reads through the app."""
    cp = control_plane
    isolate_client(monkeypatch, tmp_path / "local")
    # The app reads FLOWPLANE_DATASTORE_ROOT as the stage's own (an s3:// root) when set.
    monkeypatch.delenv("FLOWPLANE_DATASTORE_ROOT")
    cp.tokens = {flow: cp.deploy(file)["production_token"] for flow, file in FILES.items()}
    cp.transport = InProcess(cp)
    cp.provider = ServiceProvider(BASE, transport=cp.transport, open_url=moto_opener)
    with use_provider(cp.provider):
        yield cp
