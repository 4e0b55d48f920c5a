"""A user with nothing configured: local runs in ./.flowplane, then a real `flowplane local`
(LocalPlane on its default state folder) running a deployed flow. The Client API finds
the running plane by itself and shows both; when the plane stops, local runs remain."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from flowplane.client import Flow, get_provider, namespace, set_provider
from flowplane.client import namespaces as ns_module
from flowplane.client import selection
from flowplane.client.combined import CombinedProvider, PlaneVanishedWarning
from flowplane.client.local import LocalProvider
from flowplane.local import service
from flowplane.local.plane import LocalPlane, PlaneConfig
from tests.support.embedded_plane import USER, create, trigger, wait_for_run
from tests.support.shared_flows import SHARED_FLOWS

pytestmark = pytest.mark.slow

def namespace_of(created: str) -> str:
    """The `production:<token>` line `step-functions create` prints."""
    return next(line.strip() for line in created.splitlines() if line.strip().startswith("production:"))


def test_a_running_flowplane_local_is_read_with_the_local_runs(tmp_path, monkeypatch):
    home, state, work = tmp_path / "home", tmp_path / "state", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("FLOWPLANE_USER", USER)
    monkeypatch.setenv("FLOWPLANE_LOCAL_STATE_DIR", str(state))
    for name in ("FLOWPLANE_API_URL", "FLOWPLANE_DATASTORE_ROOT", "FLOWPLANE_EMBEDDED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(work)
    monkeypatch.setattr(selection, "_cache", {})
    monkeypatch.setattr(selection, "_discovered", None)
    monkeypatch.setattr(ns_module, "_current", False)
    set_provider(None)
    path = work / "parameter_flow.py"
    shutil.copy(SHARED_FLOWS / "parameter_flow.py", path)

    # A local run, as a user types it: into ./.flowplane, no control plane involved.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    proc = subprocess.run([sys.executable, str(path), "run", "--alpha", "0.3"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert isinstance(get_provider(), LocalProvider)
    local_id = Flow("ParameterFlow").latest_run.id
    assert not local_id.startswith("sfn-")

    with LocalPlane(PlaneConfig(state_dir=state, vcpus=2)) as plane:
        production_ns = namespace_of(create(path))
        run_id = trigger(path, "--alpha", "0.5")
        assert wait_for_run(plane, "ParameterFlow", run_id)["status"] == "SUCCEEDED"
        # The last look (above, no plane yet) is kept a few seconds; look again now.
        monkeypatch.setattr(selection, "_discovered", None)
        provider = get_provider()
        assert isinstance(provider, CombinedProvider) and provider.origin == "discovered"
        assert provider.plane.describe() == f"service@{plane.url}"

        namespace(production_ns)
        assert Flow("ParameterFlow").latest_run.id == run_id
        assert Flow("ParameterFlow").latest_run.data.alpha == 0.5
        namespace(f"user:{USER}")
        assert Flow("ParameterFlow").latest_run.id == local_id
        assert Flow("ParameterFlow").latest_run.data.alpha == 0.3
        namespace(None)
        assert [r.id for r in Flow("ParameterFlow")] == [run_id, local_id]
        kept = Flow("ParameterFlow")

    # `flowplane local` stopped: what was read through it says so once, then local runs go on.
    with pytest.warns(PlaneVanishedWarning, match=plane.url):
        assert [r.id for r in kept] == [local_id]
    # Looking again, the Client API finds the state folder with no plane on it, and starts the
    # background service to read its production runs.
    try:
        provider = get_provider()
        assert isinstance(provider, CombinedProvider) and provider.origin == "discovered"
        assert provider.plane.describe() != f"service@{plane.url}"
        namespace(None)
        assert [r.id for r in Flow("ParameterFlow")] == [run_id, local_id]
    finally:
        assert service.stop(state) is not None
