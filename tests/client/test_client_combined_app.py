"""Local runs and production runs through one Client API, against the real control plane.

The control plane is the Chalice app in-process (moto DynamoDB and S3, runs recorded
by the recording handlers from events of AWS's shapes, as in test_client_service_app.py);
local runs are in ./.flowplane, written with the datastore's writers as
`python flow.py run` leaves them, and the control plane never hears of them. The
Client API is chosen by get_provider() from FLOWPLANE_API_URL, as a user's is.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from flowplane import Flow, Metaflow, Run, namespace
from flowplane.client import NamespaceMismatch, get_metadata, get_provider
from flowplane.client import selection
from flowplane.client.combined import CombinedProvider
from flowplane.client.service import ServiceProvider
from flowplane.datastore.storage import LocalStorage
from tests.support.production_runs import BASE, FILES, SHAPES, InProcess, moto_opener, write_production
from tests.support.recording_events import T0
from tests.support.run_layouts import Clock, RunWriter, isolate_client

pytestmark = pytest.mark.aws

DAY_MS = 24 * 3600 * 1000


def local_run(storage: LocalStorage, run_id: str, at_ms: int, alpha: float, tags: tuple[str, ...] = ()) -> None:
    start = datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc)
    w = RunWriter(storage, "ParameterFlow", run_id, user="alice", tags=tags, parameters={"alpha": alpha},
                  clock=Clock(start))
    w.task("start", stdout="alpha is %f\n" % alpha)
    w.task("end", stdout="alpha is still %f\n" % alpha)
    w.finish()


@pytest.fixture
def user(control_plane, monkeypatch, tmp_path):
    """ParameterFlow deployed; two production runs and, in ./.flowplane, two local runs around them."""
    cp = control_plane
    isolate_client(monkeypatch, tmp_path / "unused")
    # The app reads FLOWPLANE_DATASTORE_ROOT as its own (s3://) root; the user sets none either.
    monkeypatch.delenv("FLOWPLANE_DATASTORE_ROOT")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    cp.cwd = tmp_path
    cp.tokens = {flow: cp.deploy(file)["production_token"] for flow, file in FILES.items()}
    cp.transport = InProcess(cp)
    # get_provider() builds the combined provider around the ServiceProvider it keeps per
    # URL: this one reaches the app in-process instead of over a socket.
    monkeypatch.setitem(selection._cache, f"service:{BASE}",
                        ServiceProvider(BASE, transport=cp.transport, open_url=moto_opener))
    monkeypatch.setenv("FLOWPLANE_API_URL", BASE)
    local = LocalStorage(str(tmp_path / ".flowplane"))
    local_run(local, "1764000000000", T0 - DAY_MS, 0.1)
    cp.old_prod = write_production(cp, SHAPES["ParameterFlow"], "e-old", start=T0)
    local_run(local, "1764200000000", T0 + DAY_MS, 0.2, tags=("exp:1",))
    cp.new_prod = write_production(cp, SHAPES["ParameterFlow-retried"], "e-new", start=T0 + 2 * DAY_MS)
    yield cp


def test_flow_runs_see_local_and_production_runs_newest_first(user):
    provider = get_provider()
    assert isinstance(provider, CombinedProvider)
    assert get_metadata() == f"service@{BASE}"  # Metaflow's answer with a metadata service
    assert provider.describe() == f"service@{BASE}+local@{user.cwd}/.flowplane"
    namespace(None)
    runs = list(Flow("ParameterFlow").runs())
    assert [r.id for r in runs] == [user.new_prod, "1764200000000", user.old_prod, "1764000000000"]
    assert [r.data.alpha for r in runs] == [0.25, 0.2, 0.5, 0.1]
    assert [r["end"].task.metadata_dict["ds-type"] for r in runs] == ["service", "local", "service", "local"]
    assert all(r.successful for r in runs)
    assert [r.id for r in Flow("ParameterFlow").runs("exp:1")] == ["1764200000000"]
    assert "ParameterFlow" in [f.id for f in Metaflow()]


def test_the_production_namespace_shows_only_production_runs(user):
    token = user.tokens["ParameterFlow"]
    namespace(f"production:{token}")
    assert [r.id for r in Flow("ParameterFlow").runs()] == [user.new_prod, user.old_prod]
    latest = Flow("ParameterFlow").latest_run
    assert latest.id == user.new_prod and latest.data.alpha == 0.25
    assert latest["start"].task.stdout == "alpha is 0.250000\n"
    with pytest.raises(NamespaceMismatch, match=f"production:{token}"):
        Run("ParameterFlow/1764200000000")
    # The filter ran on the server.
    assert any(f"namespace=production%3A{token}" in c for c in user.transport.calls if "/runs?" in c)


def test_the_default_namespace_shows_the_users_local_runs(user):
    assert [r.id for r in Flow("ParameterFlow").runs()] == ["1764200000000", "1764000000000"]
    assert Flow("ParameterFlow").latest_run.data.alpha == 0.2
    with pytest.raises(NamespaceMismatch, match="user:alice"):
        Run(f"ParameterFlow/{user.old_prod}")
    # A local run is read from ./.flowplane: the plane is not asked about it.
    asked = len(user.transport.calls)
    assert Run("ParameterFlow/1764000000000").data.alpha == 0.1
    assert len(user.transport.calls) == asked
