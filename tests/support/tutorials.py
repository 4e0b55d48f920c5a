"""Metaflow's bundled tutorials, read from the installed `metaflow` package (no tests here).

They are located without importing metaflow (importlib's find_spec reads no module
code), copied into a test's temporary folder with `from metaflow import` switched to
`from flowplane import` and nothing else, and run both ways: under Metaflow for
the reference artifacts, under flowplane for the ones compared with them.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

# The tutorials each test uses: folder -> (flow file, flow class).
TUTORIALS = {
    "00-helloworld": ("helloworld.py", "HelloFlow"),
    "01-playlist": ("playlist.py", "PlayListFlow"),
    "02-statistics": ("stats.py", "MovieStatsFlow"),
    "03-playlist-redux": ("playlist.py", "PlayListFlow"),
}
# What Metaflow stores that is not the flow's data: the flow's name (FlowSpec.name).
METAFLOW_ONLY = {"name"}


def tutorials_dir() -> Path:
    spec = importlib.util.find_spec("metaflow")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("metaflow (requirements-dev.txt) is not installed: no tutorials to run")
    return Path(list(spec.submodule_search_locations)[0]) / "tutorials"


def as_flowplane(tutorial: str, dest: Path) -> Path:
    """The tutorial's folder under `dest`, its imports switched to flowplane; its flow file."""
    source = tutorials_dir() / tutorial
    folder = dest / tutorial
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("__pycache__", "*.ipynb"))
    flow_file = folder / TUTORIALS[tutorial][0]
    text = flow_file.read_text()
    assert "from metaflow import" in text
    flow_file.write_text(text.replace("from metaflow import", "from flowplane import"))
    return flow_file


_READ_METAFLOW = """
import pickle, sys
from metaflow import Flow, namespace
namespace(None)
run = Flow(sys.argv[1]).latest_run
out = {}
for step in run:
    out[step.id] = [{a.id: a.data for a in task} for task in step]
sys.stdout.buffer.write(pickle.dumps(out))
"""


def metaflow_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWPLANE_", "MOTO_", "METAFLOW_"))}
    env.update(METAFLOW_DATASTORE_SYSROOT_LOCAL=str(root), USERNAME="tester", METAFLOW_USER="tester",
               HOME=str(root))
    return env


def metaflow_run(tutorial: str, root: Path) -> dict[str, list[dict[str, Any]]]:
    """Run the tutorial as it ships, under Metaflow; {step: [each task's artifacts]}."""
    file, flow = TUTORIALS[tutorial]
    env = metaflow_env(root)
    root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, str(tutorials_dir() / tutorial / file), "run"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"Metaflow's {tutorial} failed:\n{proc.stdout}\n{proc.stderr}"
    read = subprocess.run([sys.executable, "-c", _READ_METAFLOW, flow], cwd=root, env=env, capture_output=True,
                          timeout=120)
    assert read.returncode == 0, read.stderr.decode()
    return pickle.loads(read.stdout)


def by_step(artifacts: dict[tuple[str, str], dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """flowplane's {(step, task id): artifacts} in the shape metaflow_run gives."""
    out: dict[str, list[dict[str, Any]]] = {}
    for (step, _), values in artifacts.items():
        out.setdefault(step, []).append(values)
    return out


# Artifacts the tutorials draw at random (shuffle, choice): compared as sets, or by kind.
def _sorted_list(value: Any) -> Any:
    return sorted(value)


def _kind(value: Any) -> Any:
    return (type(value).__name__, len(value))


RANDOM: dict[str, Callable[[Any], Any]] = {"movies": _sorted_list, "playlist": _sorted_list,
                                           "genres": _sorted_list, "bonus": _kind}


def comparable(steps: dict[str, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    """Each step's tasks' artifacts, random draws normalised, tasks in a stable order."""
    out = {}
    for step, tasks in steps.items():
        rows = []
        for values in tasks:
            row = {k: RANDOM.get(k, lambda v: v)(v) for k, v in values.items() if k not in METAFLOW_ONLY}
            rows.append(row)
        out[step] = sorted(rows, key=lambda row: repr(sorted(row.items())))
    return out
