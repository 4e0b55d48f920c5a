"""A task's environment (flowplane/environments/): built from a lock under the environments
folder, holding nothing of the machine's own packages, entered with only the SDK on the path;
the index pip is configured with handed to uv; and what a task says when it cannot enter one.
The lock here names no package, so nothing is fetched from an index."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flowplane.environments import cache
from flowplane.environments.enter import INSIDE_ENV, task_environment
from flowplane.environments.index import pip_index_url, uv_index_environment
from flowplane.manifest import LockedEnvironment
from flowplane.task.command import main as task_main

EMPTY = LockedEnvironment(python="%d.%d" % sys.version_info[:2], lock="# no packages\n")


@pytest.fixture
def envs(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENVS_DIR_ENV, str(tmp_path / "envs"))
    monkeypatch.setenv("UV_OFFLINE", "1")  # nothing here may reach an index
    return tmp_path / "envs"


def test_an_environment_is_built_once_and_holds_nothing_of_this_machine(envs, tmp_path):
    path, built = cache.build(EMPTY.id, EMPTY)
    assert built and path == cache.env_path(EMPTY.id) and path.startswith(str(envs))
    assert cache.build(EMPTY.id, EMPTY) == (path, False)
    assert open(os.path.join(path, cache.LOCK_FILE)).read() == EMPTY.lock
    assert not [n for n in os.listdir(envs) if n.startswith(".build-")]  # no half-built folder left
    probe = (
        "import importlib.util as u, sys, flowplane; "
        "print(sys.prefix); print(flowplane.__file__); "
        "print([m for m in ('pytest', 'pydantic', 'chalicelib', 'tests') if u.find_spec(m)])"
    )
    env = task_environment(dict(os.environ, PYTHONPATH=os.getcwd()), path, EMPTY.id)
    assert env[INSIDE_ENV] == EMPTY.id and env["VIRTUAL_ENV"] == path
    out = subprocess.run([cache.python_of(path), "-c", probe], env=env, capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    prefix, sdk, importable = out.stdout.splitlines()
    assert prefix == path
    assert os.path.realpath(sdk) == os.path.realpath(__import__("flowplane").__file__)
    # The test's own packages, and the checkout's other folders, are not importable there.
    assert importable == "[]"


def test_an_environment_is_archived_and_unpacked_elsewhere(envs, tmp_path, monkeypatch):
    from flowplane.environments.bucket import write_archive

    path, _ = cache.build(EMPTY.id, EMPTY)
    archive = tmp_path / "env.tar.gz"
    with open(archive, "wb") as f:
        write_archive(path, f)
    monkeypatch.setenv(cache.ENVS_DIR_ENV, str(tmp_path / "other"))
    unpacked = cache.unpack(EMPTY.id, EMPTY, str(archive))
    assert unpacked.startswith(str(tmp_path / "other")) and cache.ready_path(EMPTY.id) == unpacked
    out = subprocess.run([cache.python_of(unpacked), "-c", "import sys; print(sys.prefix)"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == unpacked


def test_a_python_this_machine_lacks_is_said(envs):
    other = LockedEnvironment(python="3.2", lock="# no packages\n")
    with pytest.raises(cache.EnvironmentBuildError, match="cannot create a Python 3.2 environment here"):
        cache.build(other.id, other)
    assert cache.ready_path(other.id) is None


@pytest.mark.parametrize("argv, says", [
    (["--python-env", "nope"], "--python-env 'nope' is not an environment's sha256"),
    (["--python-env", "a" * 64], "environment aaaaaaaaaaaa is not in"),
])
def test_a_task_that_cannot_enter_its_environment_fails_saying_why(envs, tmp_path, capsys, argv, says):
    flow = tmp_path / "flow.py"
    flow.write_text("from flowplane import FlowSpec, step\nclass F(FlowSpec):\n    @step\n    def start(self):\n"
                    "        self.next(self.end)\n    @step\n    def end(self):\n        pass\n")
    code = task_main(["--run-id", "1", "--step", "start", "--task-id", "1", "--flow-file", str(flow),
                      "--datastore-root", str(tmp_path / "ds"), *argv])
    assert code == 1
    assert says in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()  # nothing was written


def test_uv_uses_the_index_pip_is_configured_with(tmp_path, monkeypatch):
    for name in ("PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\nextra-index-url = file:///opt/x\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    if os.path.exists("/etc/pip.conf") and "index-url" in open("/etc/pip.conf").read():
        pytest.skip("this machine's /etc/pip.conf names an index")
    assert pip_index_url() == "https://mirror.example/simple"
    assert uv_index_environment() == {"UV_DEFAULT_INDEX": "https://mirror.example/simple"}
    monkeypatch.setenv("PIP_INDEX_URL", "https://other.example/simple")
    assert uv_index_environment() == {"UV_DEFAULT_INDEX": "https://other.example/simple"}
    monkeypatch.setenv("UV_DEFAULT_INDEX", "https://uv.example/simple")
    assert uv_index_environment() == {}  # uv told already: its own setting wins


def test_a_deployed_step_runs_only_in_the_environment_its_manifest_locks(envs, tmp_path, capsys, monkeypatch):
    from flowplane.graph import read_source_flow
    from flowplane.manifest import Environments, Manifest
    from flowplane.package import build_package

    src = tmp_path / "src"
    src.mkdir()
    (src / "flow.py").write_text(
        "from flowplane import FlowSpec, step, pypi\nclass F(FlowSpec):\n    @pypi(packages={'a': '1'})\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n    @step\n    def end(self):\n        pass\n"
    )
    graph = read_source_flow((src / "flow.py").read_text()).graph
    manifest = Manifest(flowplane_version="0.1.0", flow_name="F", flow_file="flow.py", graph=graph,
                        environments=Environments(locks={EMPTY.id: EMPTY}, steps={"start": EMPTY.id}))
    package = tmp_path / "package.tar.gz"
    package.write_bytes(build_package(str(src), manifest).data)
    base = ["--run-id", "sfn-1", "--task-id", "1", "--package", str(package), "--datastore-root", str(tmp_path / "ds")]
    assert task_main([*base, "--step", "start"]) == 1
    assert "step 'start' was started with no --python-env, but the package's manifest locks its environment" in (
        capsys.readouterr().err)
    monkeypatch.setenv(INSIDE_ENV, EMPTY.id)  # as if already entered (no exec in the test's process)
    assert task_main([*base, "--step", "end", "--python-env", EMPTY.id]) == 1
    assert "step 'end' was started with --python-env" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()
