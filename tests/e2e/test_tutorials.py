"""Metaflow's bundled tutorials 00-03, only their import lines switched, run locally by
flowplane give the artifacts Metaflow gives (random draws compared as sets)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.embedded_plane import USER, local_run
from tests.support.run_layouts import isolate_client
from tests.support.tutorials import as_flowplane, by_step, comparable, metaflow_run

pytestmark = pytest.mark.slow

def test_tutorials_00_to_03_give_metaflows_artifacts(tmp_path, monkeypatch):
    isolate_client(monkeypatch, tmp_path / "unused", user=USER)  # read as the user who ran them
    mine = tmp_path / "flowplane"
    # 03 reads the latest MovieStatsFlow run: 02 and 03 share a datastore; 01 (also a
    # PlayListFlow) and 00 get their own.
    runs = {}
    for tutorial, work in (("00-helloworld", "a"), ("01-playlist", "b"), ("02-statistics", "c"),
                           ("03-playlist-redux", "c")):
        (mine / work).mkdir(parents=True, exist_ok=True)
        flow_file = as_flowplane(tutorial, mine / "src" / work)
        run = local_run(flow_file, mine / work)
        assert run.successful, tutorial
        runs[tutorial] = (by_step(run.artifacts), metaflow_run(tutorial, tmp_path / "metaflow" / work))
    for tutorial, (got, expected) in runs.items():
        assert comparable(got) == comparable(expected), tutorial
    # The included file's content is the parameter's value in every step, as in Metaflow.
    movies = (as_flowplane("01-playlist", tmp_path / "again").parent / "movies.csv").read_text()
    assert all(task["movie_data"] == movies for tasks in runs["01-playlist"][0].values() for task in tasks)


def test_a_missing_include_file_is_refused_before_anything_runs(tmp_path):
    flow_file = as_flowplane("01-playlist", tmp_path / "src")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWPLANE_", "MOTO_"))}
    env["FLOWPLANE_DATASTORE_ROOT"] = str(tmp_path / "ds")
    proc = subprocess.run([sys.executable, str(flow_file), "run", "--movie_data", "missing.csv"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "IncludeFile 'movie_data': no file at 'missing.csv'; nothing ran" in proc.stderr
    assert not (tmp_path / "ds" / "PlayListFlow").exists()
