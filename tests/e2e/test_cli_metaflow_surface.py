"""The command line a Metaflow user types: dump, logs, tag, and the top-level options.

dump and logs are compared with Metaflow's own output for the same flow (import
switched); tag and the options are checked against what Metaflow documents.
"""

from __future__ import annotations

import re

import pytest

from tests.support.metaflow_twins import run_both, run_twin, write_twins

pytestmark = pytest.mark.slow

FLOW = """
from FRAMEWORK import FlowSpec, step

class SurfaceFlow(FlowSpec):
    @step
    def start(self):
        self.number = 42
        self.words = ["a", "b"]
        self.big = "x" * 5000
        print("hello from start")
        print("second line")
        self.next(self.fan, foreach="words")

    @step
    def fan(self):
        self.word = self.input
        print("word", self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    SurfaceFlow()
"""

RUN_ID = re.compile(r"run-id (\w+)")


def _run_id(out: str) -> str:
    found = RUN_ID.search(out)
    assert found, out
    return found.group(1)


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("surface")
    runs = run_both(tmp, "surface_flow", FLOW, "run")
    for r in runs.values():
        assert r.code == 0, r.out + r.err
    files = write_twins(tmp, "surface_flow", FLOW)
    return {fw: (files[fw], tmp / f"{fw}-root", _run_id(r.out + r.err)) for fw, r in runs.items()}


def _cmd(twins, fw, *args, **env):
    path, root, _ = twins[fw]
    return run_twin(fw, path, root, *args, env=env or None)


def _values(text: str) -> list[str]:
    """`name [size: N type: T] = value` lines as `name = value` (sizes and type spellings differ)."""
    return [re.sub(r" \[size: \d+ type: [^\]]*\]", "", line) for line in text.splitlines() if " = " in line]


def test_dump_shows_a_tasks_artifacts_as_metaflow(twins):
    got = {}
    for fw in twins:
        run_id = twins[fw][2]
        r = _cmd(twins, fw, "dump", f"{run_id}/start")
        assert r.code == 0, r.out + r.err
        assert f"Dumping output of run_id={run_id} step=start task_id=" in re.sub(r"\*", "", r.err + r.out)
        got[fw] = _values(r.out)
    # Metaflow also stores the flow's name as an artifact (a difference the README lists).
    assert got["flowplane"] == [v for v in got["metaflow"] if not v.startswith("name = ")]
    assert "big = < artifact too large >" in got["flowplane"] and "number = 42" in got["flowplane"]
    assert "words = ['a', 'b']" in got["flowplane"]
    only = _cmd(twins, "flowplane", "dump", "--include", "number", "--max-value-size", "0", f"{twins['flowplane'][2]}/start")
    assert _values(only.out) == ["number = < artifact too large >"]
    bad = _cmd(twins, "flowplane", "dump", "nope")
    assert bad.code != 0 and "input_path should either be run_id/step_name or run_id/step_name/task_id" in bad.err


def test_dump_to_a_file_pickles_every_tasks_artifacts(twins, tmp_path):
    import pickle

    run_id = twins["flowplane"][2]
    target = tmp_path / "out.pkl"
    r = _cmd(twins, "flowplane", "dump", "--file", str(target), f"{run_id}/fan")
    assert r.code == 0, r.err
    data = pickle.loads(target.read_bytes())
    assert sorted(v["word"] for v in data.values()) == ["a", "b"] and len(data) == 2
    assert all(v["big"] == "x" * 5000 for v in data.values())  # no size cut in a file


def test_logs_show_a_steps_output_as_metaflow(twins):
    got = {}
    for fw in twins:
        r = _cmd(twins, fw, "logs", f"{twins[fw][2]}/fan", "--stdout")
        assert r.code == 0, r.out + r.err
        got[fw] = sorted(line for line in r.out.splitlines() if line.startswith("word"))
    assert got["flowplane"] == got["metaflow"] == ["word a", "word b"]
    run_id = twins["flowplane"][2]
    stamped = _cmd(twins, "flowplane", "logs", "--timestamps", f"{run_id}/start/1")
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} hello from start$", stamped.out, re.M), stamped.out
    scrub = _cmd(twins, "flowplane", "logs", "scrub", f"{run_id}/start")
    assert scrub.code != 0 and "logs scrub is not supported" in scrub.err


def test_tag_add_remove_replace_change_user_tags_and_never_system_tags(twins):
    run_id = twins["flowplane"][2]
    added = _cmd(twins, "flowplane", "tag", "add", "--run-id", run_id, "good", "better")
    assert added.code == 0, added.err
    assert "*better*" in added.out and "*good*" in added.out and "runtime:local" in added.out
    replaced = _cmd(twins, "flowplane", "tag", "replace", "--run-id", run_id, "--remove", "good", "--add", "best")
    assert replaced.code == 0, replaced.err
    removed = _cmd(twins, "flowplane", "--quiet", "tag", "remove", "--run-id", run_id, "better")
    assert removed.code == 0, removed.err
    assert removed.out.strip().endswith(" ; best")
    system = _cmd(twins, "flowplane", "tag", "remove", "--run-id", run_id, "runtime:local")
    assert system.code != 0 and "Cannot remove a tag that is an existing system tag (['runtime:local'])" in system.err
    no_id = _cmd(twins, "flowplane", "tag", "add", "x")
    assert no_id.code != 0 and f"latest run in namespace user:tester has id {run_id}" in no_id.err
    half = _cmd(twins, "flowplane", "tag", "replace", "--run-id", run_id, "--add", "y")
    assert half.code != 0 and "Specify at least one tag to remove; else please use tag add." in half.err


@pytest.mark.parametrize("args", [
    ("--quiet",), ("--no-pylint",), ("--metadata", "local"), ("--environment", "local"),
    ("--event-logger", "nullSidecarLogger"), ("--monitor", "nullSidecarMonitor"), ("--datastore", "local"),
])
def test_metaflow_top_level_options_with_our_meaning_are_accepted(twins, args):
    r = _cmd(twins, "flowplane", *args, "run", "--max-num-splits", "5", "--tag", "opt")
    assert r.code == 0, r.out + r.err
    assert ("Workflow starting" in r.out) != (args == ("--quiet",))


@pytest.mark.parametrize("args, says", [
    (("--metadata", "service"), "production runs are recorded by the control plane"),
    (("--environment", "uv"), "pypi and conda run each step in an environment locked from its @pypi/@conda"),
    (("--event-logger", "kafka"), "flowplane has no event-logger sidecars"),
    (("--monitor", "datadog"), "flowplane has no monitor sidecars"),
    (("--datastore", "s3"), "--datastore s3 needs an s3:// root"),
    (("--datastore", "gs"), "the datastore is 'local' (a folder) or 's3'"),
])
def test_other_values_are_refused_saying_what_we_do_instead(twins, args, says):
    r = _cmd(twins, "flowplane", *args, "run")
    assert r.code == 2 and says in r.err, r.err
    assert "Workflow starting" not in r.out


def test_max_num_splits_guards_a_foreach_as_metaflow(twins):
    r = _cmd(twins, "flowplane", "run", "--max-num-splits", "1")
    assert r.code == 1
    assert ("Foreach in step *start* yielded 2 child steps which is more than the current maximum of 1 "
            "children. You can raise the maximum with the --max-num-splits option.") in r.out
    assert "[" not in r.out.split("Foreach in step")[0].splitlines()[-1]  # the runtime says it, not a task
    assert "fan/" not in r.out  # no child started


def test_datastore_root_moves_the_run(twins, tmp_path):
    other = tmp_path / "elsewhere"
    r = _cmd(twins, "flowplane", "--datastore", "local", "--datastore-root", str(other), "run")
    assert r.code == 0, r.out + r.err
    assert (other / "SurfaceFlow").is_dir()
