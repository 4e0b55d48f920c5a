"""`make demo` as a newcomer runs it: `python -m flowplane.demo` from a clean environment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

def test_the_demo_deploys_runs_reads_back_and_leaves_nothing_running(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWPLANE_", "MOTO_"))}
    env.update(HOME=str(tmp_path / "home"), COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "flowplane.demo"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"
    for flow in ("BranchFlow", "DeploymentInfoFlow", "ForeachFlow", "HourlyFlow", "ParameterFlow"):
        assert re.search(rf"Deployed {flow} from \w+\.py", out), out
    assert "triggers automatically via cron(0 * * * ? *)" in out
    assert re.search(r"Run sfn-[0-9a-f-]+ SUCCEEDED", out)
    assert "alpha=0.5" in out and ".data.alpha == 0.5" in out and "'alpha is 0.500000'" in out
    assert "Client API (service@http://127.0.0.1:" in out
    # AfterParameterFlow started by itself when ParameterFlow's run succeeded, and read it
    # (the console may wrap the line).
    flat = " ".join(out.split())
    assert re.search(r"AfterParameterFlow started on its own when sfn-[0-9a-f-]+ succeeded", flat), out
    assert "Run.trigger.run is ParameterFlow/sfn-" in flat and "upstream_alpha=0.5" in flat, out
    assert "4 task processes ran, 0 left running" in out
    # Nothing it started outlives it: no task process pointed at its embedded AWS.
    endpoint = re.search(r"AWS embedded at (http://127\.0\.0\.1:\d+)", out)[1]
    assert _processes_with(f"AWS_ENDPOINT_URL={endpoint}") == []
    # The throwaway plane kept nothing in the user's home.
    assert not (tmp_path / "home" / ".flowplane").exists()


def _processes_with(variable: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if variable.encode() in environ:
            found.append(int(entry.name))
    return found
