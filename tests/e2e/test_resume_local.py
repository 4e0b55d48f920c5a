"""`python flow.py resume` of local runs, as a user types it: what is cloned (no process runs it,
its artifacts are the origin's), what runs anew, how the new run reads through the Client API,
and every refusal (which changes nothing)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from flowplane.client import Run, namespace, use_provider
from flowplane.client.local import LocalProvider
from flowplane.datastore.storage import LocalStorage
from tests.support.local_runs import run_cli, run_env, write_flow
from tests.support.resume_flows import TOTAL, fixed, marks_of, resume_flow, rewired

pytestmark = pytest.mark.slow

FLOW = "ResumeFlow"
CLONED_BEFORE_BODY_FAILURE = ["body/1.0", "body/1.2", "start/1"]


class Workspace:
    def __init__(self, tmp_path: Path):
        self.root = tmp_path / "datastore"
        self.marks = tmp_path / "marks.txt"
        self.flow = write_flow(tmp_path, "resume_flow", resume_flow(self.marks))
        self.cwd = self.flow.parent

    def cli(self, *args: str, ok: bool = True) -> Any:
        done = run_cli(self.flow, self.root, self.cwd, *args)
        if ok is not None:
            assert (done.returncode == 0) == ok, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done

    def run(self, *args: str, ok: bool = True) -> str:
        """A run or resume; the new run's id."""
        id_file = self.cwd / "run-id"
        id_file.unlink(missing_ok=True)
        self.cli(*args, "--run-id-file", str(id_file), ok=ok)
        return id_file.read_text()

    def fix(self) -> None:
        self.flow.write_text(fixed(self.flow.read_text()))

    def ran(self) -> list[str]:
        """The tasks that ran as processes since the last call."""
        found = marks_of(self.marks)
        self.marks.unlink(missing_ok=True)
        return found

    def runs(self) -> list[str]:
        return LocalStorage(str(self.root)).list_dir(f"{FLOW}/runs")


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    w = Workspace(tmp_path)
    with use_provider(LocalProvider(LocalStorage(str(w.root)))):
        namespace(None)
        yield w


def test_resume_after_a_fix_clones_what_succeeded_and_runs_the_rest(ws: Workspace):
    origin = ws.run("run", "--fail_in", "body", ok=False)
    assert ws.ran() == ["body/1.0", "body/1.1", "body/1.2", "start/1"]
    ws.fix()

    resumed = ws.run("resume", "--origin-run-id", origin)

    # start and the items that had succeeded ran no process; the broken item and what follows did.
    # Which other items finished before the failure stopped the origin run is up to the machine's
    # timing (the runtime launches nothing after a failure), so the origin's records say.
    before = Run(f"{FLOW}/{origin}")
    finished = {f"body/{t.id}" for t in before["body"] if t.successful}
    assert "body/1.1" not in finished and before["start"].task.successful
    assert ws.ran() == sorted({"body/1.1", "end/1", "join/1"} | ({"body/1.0", "body/1.2"} - finished))
    run = Run(f"{FLOW}/{resumed}")
    assert run.successful and run.data.total == TOTAL and run.data.done
    assert run.origin_run_id == origin and run.origin_pathspec == f"{FLOW}/{origin}"
    assert run.data.origin == origin  # current.origin_run_id, in a task that ran
    assert run.data.fail_in == "body"  # the origin's parameters
    for step, task_id in [("start", "1")] + [("body", p.split("/")[1]) for p in sorted(finished)]:
        clone, source = run[step][task_id], before[step][task_id]
        assert clone.origin_pathspec == source.pathspec
        assert clone.metadata_dict["origin-task-id"] == task_id
        assert clone.metadata_dict["origin-run-id"] == origin
        public = {a.id: a.sha for a in source}
        assert {a.id: a.sha for a in clone} == public  # the same blobs, referenced
        assert clone.stdout == source.stdout  # a clone's logs are its origin's
    assert "body of 10" in run["body"]["1.0"].stdout
    for tid in ("1.0", "1.1", "1.2"):
        assert (run["body"][tid].origin_pathspec is None) == (f"body/{tid}" not in finished)
    assert run["end"].task.metadata_dict["origin-run-id"] == origin
    assert "origin-task-id" not in run["end"].task.metadata_dict


def test_resume_step_reruns_from_that_step_and_clones_everything_before(ws: Workspace):
    origin = ws.run("run", "--fail_in", "end", ok=False)
    ws.ran()
    ws.fix()
    resumed = ws.run("resume", "--origin-run-id", origin, "join")
    assert ws.ran() == ["end/1", "join/1"]
    run = Run(f"{FLOW}/{resumed}")
    assert run.successful
    assert sorted(t.pathspec.split("/", 2)[2] for s in run for t in s if t.origin_pathspec) == [
        "body/1.0", "body/1.1", "body/1.2", "start/1"]


def test_resume_of_a_successful_run_with_a_step_reruns_only_that_far(ws: Workspace):
    origin = ws.run("run")
    ws.ran()
    ws.run("resume", "--origin-run-id", origin, "end")
    assert ws.ran() == ["end/1"]


def test_without_an_origin_the_latest_run_in_the_namespace_is_resumed(ws: Workspace):
    ws.run("run")
    latest = ws.run("run", "--fail_in", "end", ok=False)
    ws.ran()
    ws.fix()
    resumed = ws.run("resume")
    assert Run(f"{FLOW}/{resumed}").origin_run_id == latest
    assert ws.ran() == ["end/1"]


def test_a_failed_tasks_artifacts_and_exception_are_readable(ws: Workspace):
    origin = ws.run("run", "--fail_in", "end", ok=False)
    task = Run(f"{FLOW}/{origin}")["end"].task
    assert not task.successful
    assert task.data.partial == "kept" and task.data.total == TOTAL
    assert "done" not in task.data
    assert task.exception.type == "RuntimeError" and task.exception.message == "end is broken"
    assert 'raise RuntimeError("end is broken")' in task.exception.traceback


def refused(ws: Workspace, *args: str) -> str:
    """A resume that must be refused and leave no run behind; its message."""
    before = ws.runs()
    done = ws.cli("resume", *args, ok=False)
    assert done.returncode == 1
    assert ws.runs() == before, "a refused resume wrote a run"
    assert ws.ran() == []
    return done.stderr


def test_bad_origins_and_steps_are_refused_saying_why(ws: Workspace):
    assert "ResumeFlow has no run '42'" in refused(ws, "--origin-run-id", "42")
    assert "no run of ResumeFlow to resume in namespace" in refused(ws)
    origin = ws.run("run", "--fail_in", "body", ok=False)
    ws.ran()
    assert "the flow has no step 'nope' (steps: start, body, join, end); nothing ran" in refused(
        ws, "--origin-run-id", origin, "nope")
    message = refused(ws, "--origin-run-id", origin, "end")
    assert f"step 'end' comes after the failure in run {origin}: step 'body' did not succeed there" in message

    other = write_flow(ws.cwd.parent, "other_flow", resume_flow(ws.marks).replace("ResumeFlow", "OtherFlow"))
    done = run_cli(other, ws.root, other.parent, "run", "--run-id-file", "other-id")
    assert done.returncode == 0, done.stderr
    ws.ran()
    other_id = (other.parent / "other-id").read_text()
    assert f"run {other_id} is a run of OtherFlow, not of ResumeFlow" in refused(ws, "--origin-run-id", other_id)


def test_a_changed_graph_is_refused_naming_the_steps_unless_they_run_anew(ws: Workspace):
    origin = ws.run("run", "--fail_in", "end", ok=False)
    ws.ran()
    ws.flow.write_text(fixed(rewired(ws.flow.read_text())))
    message = refused(ws, "--origin-run-id", origin)
    assert "the graph changed since run" in message
    assert "join (out_funcs: ['end'] -> ['extra'])" in message
    ws.run("resume", "--origin-run-id", origin, "join")
    assert ws.ran() == ["end/1", "join/1"]


def test_a_run_still_running_is_refused(ws: Workspace):
    sleepy = write_flow(ws.cwd.parent, "sleepy", resume_flow(ws.marks).replace(
        "        mark()\n        self.items", "        mark()\n        time.sleep(60)\n        self.items").replace(
        "from flowplane import", "import time\nfrom flowplane import"))
    id_file = sleepy.parent / "id"
    proc = subprocess.Popen([sys.executable, str(sleepy), "run", "--run-id-file", str(id_file)],
                            cwd=sleepy.parent, env=run_env(ws.root), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "start/1" not in marks_of(ws.marks):  # its start task runs (and sleeps)
            assert time.monotonic() < deadline and proc.poll() is None, "the run never started"
            time.sleep(0.05)
        ws.ran()
        running = id_file.read_text()
        message = refused(ws, "--origin-run-id", running)
        assert f"run ResumeFlow/{running} is still running" in message
    finally:
        proc.terminate()
        proc.wait(timeout=30)
