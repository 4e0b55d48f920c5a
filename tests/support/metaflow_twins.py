"""One flow source, run under Metaflow and under flowplane (no tests here).

A twin source imports `from FRAMEWORK import ...`; `write_twins` writes it once per
framework, in folders of their own. The flows report what they saw by printing
`PARITY <json>` lines, which both runtimes pass through to their console output with
a task prefix; `reported` collects them as a sorted list, so the two runs compare
without either Client API. tests/e2e/test_parity_check.py compares runs through the Client
APIs as well.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.local_runs import run_env
from tests.support.tutorials import metaflow_env

FRAMEWORKS = ("metaflow", "flowplane")
MARKER = "PARITY "


@dataclass
class TwinRun:
    framework: str
    code: int
    out: str
    err: str

    @property
    def reported(self) -> list[Any]:
        """Every `PARITY <json>` value the tasks printed, sorted by their JSON text."""
        found = []
        for line in (self.out + "\n" + self.err).splitlines():
            at = line.find(MARKER)
            if at >= 0:
                found.append(line[at + len(MARKER):].strip())
        return [json.loads(text) for text in sorted(found)]


def need_metaflow() -> None:
    import importlib.util

    if importlib.util.find_spec("metaflow") is None:
        pytest.skip("metaflow (requirements-dev.txt) is not installed: nothing to compare with")


def write_twins(tmp_path: Path, name: str, body: str) -> dict[str, Path]:
    """{framework: flow file} for a source importing `from FRAMEWORK import`."""
    text = textwrap.dedent(body).lstrip()
    assert "FRAMEWORK" in text
    out = {}
    for framework in FRAMEWORKS:
        folder = tmp_path / f"{framework}-flow"  # not a folder named like the package it imports
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.py"
        path.write_text(text.replace("FRAMEWORK", framework))
        out[framework] = path
    return out


def twin_env(framework: str, root: Path, **extra: str) -> dict[str, str]:
    """A private datastore (and HOME) for one framework's runs."""
    root.mkdir(parents=True, exist_ok=True)
    if framework == "metaflow":
        env = metaflow_env(root)
    else:
        env = run_env(root, FLOWPLANE_EMBEDDED="0", HOME=str(root))
        env.pop("FLOWPLANE_API_URL", None)
    env.update(extra)
    return env


def run_twin(framework: str, path: Path, root: Path, *args: str, env: dict[str, str] | None = None,
             timeout: float = 300) -> TwinRun:
    """`python FLOW ARGS...` under one framework, in the flow's folder."""
    proc = subprocess.run([sys.executable, str(path), *args], cwd=path.parent,
                          env={**twin_env(framework, root), **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)
    return TwinRun(framework, proc.returncode, proc.stdout, proc.stderr)


def run_both(tmp_path: Path, name: str, body: str, *args: str, env: dict[str, str] | None = None
             ) -> dict[str, TwinRun]:
    """Run the twin source under each framework; both must have finished (any exit code)."""
    need_metaflow()
    files = write_twins(tmp_path, name, body)
    return {fw: run_twin(fw, files[fw], tmp_path / f"{fw}-root", *args, env=env) for fw in FRAMEWORKS}

