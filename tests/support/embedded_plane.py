"""Shared pieces of the end-to-end tests through the embedded control plane (no tests here).

`embedded_plane(...)` makes a module-scoped fixture: one `LocalPlane` per test
module (starting one costs seconds), with FLOWPLANE_API_URL pointing at it, so
the SDK's `step-functions` commands and the Client API go over HTTP exactly as
a user's would. Flows are deployed and triggered through the flow's own
command line, in-process (click), as `python flow.py step-functions ...`.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from click.testing import CliRunner

from flowplane.cli import build_flow_cli
from flowplane.local.plane import LocalPlane, PlaneConfig
from tests.support.control_plane import load_flow_class

USER = "alice"


def embedded_plane(**config: Any) -> Any:
    """A module-scoped fixture: a running plane in a fresh state folder, the SDK pointed at it."""

    @pytest.fixture(scope="module")
    def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlane]:
        base = tmp_path_factory.mktemp("embedded")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HOME", str(base / "home"))  # production tokens land in ~/.flowplane/tokens
            mp.setenv("FLOWPLANE_USER", USER)
            mp.delenv("FLOWPLANE_DATASTORE_ROOT", raising=False)
            options = {"state_dir": base / "state", "vcpus": 4, **config}
            with LocalPlane(PlaneConfig(**options)) as p:
                mp.setenv("FLOWPLANE_API_URL", p.url)
                from flowplane.client import namespace

                namespace(None)
                yield p

    return plane


def flow_class_name(path: Path) -> str:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef):
            return node.name
    raise AssertionError(f"no flow class in {path}")


def flow_cli(path: Path, with_: tuple[str, ...] = ()) -> Any:
    return build_flow_cli(load_flow_class(path, flow_class_name(path)))


def sdk(path: Path, *args: str, with_: tuple[str, ...] = ()) -> str:
    """`python FLOW [--with W] ARGS...` in-process; its output (it must succeed)."""
    with_args = [a for w in with_ for a in ("--with", w)]
    result = CliRunner().invoke(flow_cli(path), [*with_args, *args], catch_exceptions=False)
    assert result.exit_code == 0, f"{path.name} {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return result.output


def create(path: Path, *args: str, with_: tuple[str, ...] = ()) -> str:
    return sdk(path, "step-functions", "create", *args, with_=with_)


def trigger(path: Path, *args: str) -> str:
    """Trigger a production run; its run id (the command's last line)."""
    return sdk(path, "step-functions", "trigger", *args).strip().splitlines()[-1]


def execution(plane: LocalPlane, flow: str, run_id: str) -> dict[str, Any]:
    from chalicelib.resource_names import state_machine_name

    machine = state_machine_name(plane.settings.resource_prefix, flow)
    arn = f"arn:aws:states:{plane.region}:{plane.account}:execution:{machine}:{run_id.removeprefix('sfn-')}"
    return _sfn(plane).describe_execution(executionArn=arn)


_SFN_CLIENTS: "weakref.WeakKeyDictionary[LocalPlane, Any]" = weakref.WeakKeyDictionary()


def _sfn(plane: LocalPlane) -> Any:
    """One client per plane: waiting polls five times a second, and a new client each time cost
    the plane's process more CPU than the poll itself."""
    client = _SFN_CLIENTS.get(plane)
    if client is None:
        client = _SFN_CLIENTS[plane] = plane.session.client("stepfunctions")
    return client


def wait_for_run(plane: LocalPlane, flow: str, run_id: str, timeout: float = 120,
                 settle: float = 30) -> dict[str, Any]:
    """Wait until the run's execution ends and everything it emitted is recorded (`settle` s at most
    after the end)."""
    deadline = time.monotonic() + timeout
    while True:
        found = execution(plane, flow, run_id)
        if found["status"] != "RUNNING":
            break
        assert time.monotonic() < deadline, f"{flow} {run_id} still RUNNING after {timeout} s"
        time.sleep(0.2)
    ended = time.monotonic()
    assert plane.settle(timeout=settle), f"events still undelivered {settle:.0f} s after the run ended"
    found["settled_s"] = time.monotonic() - ended
    return found


def production_run(flow: str, run_id: str) -> Any:
    """The run read through the Client API over the control plane (FLOWPLANE_API_URL)."""
    from flowplane.client import Flow, get_metadata

    assert get_metadata().startswith("service@"), get_metadata()
    return Flow(flow)[run_id]


def local_run(path: Path, work: Path, *args: str) -> Any:
    """`python FLOW run ARGS...` as a user types it (no control plane involved); the run, read
    through the Client API over its datastore."""
    from flowplane.client import Flow, use_provider
    from flowplane.client.local import LocalProvider
    from flowplane.datastore.storage import storage_for

    root = work / "datastore"
    # The plane's own settings (stage variables, the embedded AWS) are not a local run's business.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWPLANE_", "MOTO_"))}
    env.update(FLOWPLANE_DATASTORE_ROOT=str(root), FLOWPLANE_USER=USER)
    proc = subprocess.run([sys.executable, str(path), "run", *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, f"local run failed:\n{proc.stdout}\n{proc.stderr}"
    provider = LocalProvider(storage_for(str(root)))
    with use_provider(provider):
        runs = list(Flow(flow_class_name(path)))
        assert len(runs) == 1
        return _Snapshot(runs[0])


class _Snapshot:
    """What a run shows, read while its provider is chosen (the local one is only chosen briefly)."""

    def __init__(self, run: Any) -> None:
        self.run_id = run.id
        self.successful = run.successful
        self.artifacts = artifacts(run)


def artifacts(run: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Every task's artifacts: {(step, task id): {name: value}}."""
    out = {}
    for step in run:
        for task in step:
            out[(step.id, task.id)] = {a.id: a.data for a in task}
    return out


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best


def processes(plane: LocalPlane, run_id: str, step: Optional[str] = None) -> list[Any]:
    """The local Batch's processes of a run (of one step)."""
    return [r for r in plane.batch.history if r.run_id == run_id and (step is None or r.step == step)]
