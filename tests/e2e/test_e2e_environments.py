"""@pypi on a local run (`python flow.py --environment=pypi run`), resolved and installed from
the package index: each step sees its own version of a package, a step without @pypi sees
none, a rerun uses the cached lock and environment, and a requirement that cannot be
resolved stops the run before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.environments import NEW, OLD, PACKAGE, keep_uv_cache, two_versions_flow

pytestmark = [pytest.mark.slow, pytest.mark.network]


def _run(path: Path, home: Path, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWPLANE_", "MOTO_"))}
    env.update(HOME=str(home), FLOWPLANE_USER="alice", FLOWPLANE_DATASTORE_ROOT=str(home / "datastore"),
               **keep_uv_cache(), **(extra or {}))
    return subprocess.run([sys.executable, str(path), *args], cwd=path.parent, env=env, capture_output=True,
                          text=True, timeout=300)


def _latest(home: Path, flow: str) -> object:
    from flowplane.client import Flow, namespace, use_provider
    from flowplane.client.local import LocalProvider
    from flowplane.datastore.storage import storage_for

    namespace(None)
    with use_provider(LocalProvider(storage_for(str(home / "datastore")))):
        run = list(Flow(flow))[0]
        data = run["end"].task.data
        return {"successful": run.successful, **{name: getattr(data, name) for name in ("first", "second", "third", "prefix", "path")}}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pypi-home")


def test_each_step_sees_its_own_version_and_a_step_without_pypi_sees_none(home, tmp_path):
    path = two_versions_flow(tmp_path / "flow")
    done = _run(path, home, "--environment=pypi", "run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Resolving" in done.stderr and "Created environment" in done.stderr
    run = _latest(home, "TwoVersionsFlow")
    assert run["successful"]
    assert (run["first"], run["second"]) == (OLD, NEW)
    assert "No module named" in run["third"]
    envs = str(home / ".flowplane" / "envs")
    # Nothing of the test's own environment (this interpreter's site-packages) is importable there.
    assert run["prefix"].startswith(envs)
    assert not any(p.startswith(sys.prefix) for p in run["path"] if p)


def test_a_rerun_uses_the_cached_lock_and_environments(home, tmp_path):
    path = two_versions_flow(tmp_path / "flow")
    first = _run(path, home, "--environment=pypi", "run")
    assert first.returncode == 0, first.stdout + first.stderr
    # No uv at all the second time: neither resolving (no index) nor installing.
    again = _run(path, home, "--environment=pypi", "run", extra={"FLOWPLANE_UV": "/bin/false"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Resolving" not in again.stderr and "Created environment" not in again.stderr


def test_an_unresolvable_requirement_stops_the_run_before_anything_runs(home, tmp_path):
    path = two_versions_flow(tmp_path / "flow", name="BrokenVersionsFlow", new="999.0.0")
    done = _run(path, home, "--environment=pypi", "run")
    assert done.returncode != 0
    said = done.stderr
    assert "cannot resolve the environment of step 'middle'" in said
    assert f"{PACKAGE}==999.0.0" in said and "nothing ran" in said
    assert not (home / "datastore" / "BrokenVersionsFlow").exists()


def test_a_package_conflicting_with_the_task_runtime_is_named(home, tmp_path):
    path = two_versions_flow(tmp_path / "flow", name="ConflictFlow")
    path.write_text(path.read_text().replace(f'"{PACKAGE}": "{OLD}"', '"pydantic": "1.10.13"'))
    done = _run(path, home, "--environment=pypi", "run")
    assert done.returncode != 0
    assert "step 'start'" in done.stderr and "pydantic==1.10.13" in done.stderr
    assert "flowplane's task runtime itself requires pydantic" in done.stderr
    assert not (home / "datastore" / "ConflictFlow").exists()


def test_conda_decorators_resolve_as_wheels_with_metaflows_merge(home, tmp_path):
    path = tmp_path / "flow" / "conda_flow.py"
    path.parent.mkdir(parents=True)
    path.write_text(f'''
from flowplane import FlowSpec, conda, conda_base, step


@conda_base(libraries={{"{PACKAGE}": "{OLD}"}})
class CondaFlow(FlowSpec):
    @step
    def start(self):
        import tomli_w
        self.first = tomli_w.__version__
        self.next(self.end)

    @conda(packages={{"{PACKAGE}": "{NEW}"}})
    @step
    def end(self):
        import tomli_w
        self.second = tomli_w.__version__


if __name__ == "__main__":
    CondaFlow()
''')
    done = _run(path, home, "--environment=conda", "run")
    assert done.returncode == 0, done.stdout + done.stderr
    from flowplane.client import Flow, namespace, use_provider
    from flowplane.client.local import LocalProvider
    from flowplane.datastore.storage import storage_for

    namespace(None)
    with use_provider(LocalProvider(storage_for(str(home / "datastore")))):
        run = list(Flow("CondaFlow"))[0]
        assert (run["start"].task.data.first, run["end"].task.data.second) == (OLD, NEW)
