"""Debugging a production run on the embedded plane: a deployed run fails in a later step, `resume
--origin-run-id sfn-...` with the fix succeeds on this machine (what had succeeded is cloned: no
process runs it, its artifacts are the origin's), `resume STEP`, `logs` of a finished, a failed and a
running task, and each bad input refused without a run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from flowplane.client import Run, namespace, use_provider
from flowplane.client.combined import CombinedProvider
from flowplane.client.local import LocalProvider
from flowplane.client.service import ServiceProvider
from flowplane.datastore.storage import LocalStorage
from tests.support.embedded_plane import create, embedded_plane, production_run, trigger, wait_for_run
from tests.support.resume_flows import TOTAL, fixed, marks_of, resume_flow, rewired

pytestmark = pytest.mark.slow

plane = embedded_plane()

FLOW = "ResumeFlow"

CHATTY = '''
import time

from flowplane import FlowSpec, step


class ChattyFlow(FlowSpec):
    @step
    def start(self):
        print("going to sleep", flush=True)
        time.sleep(SECONDS)
        print("woke up", flush=True)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ChattyFlow()
'''


class Production:
    """ResumeFlow deployed broken, two failed production runs of it, and a fixed copy here."""

    def __init__(self, base: Path, plane: Any):
        self.plane = plane
        self.marks = base / "marks.txt"
        deployed = base / "deployed" / "resume_flow.py"
        deployed.parent.mkdir()
        deployed.write_text(resume_flow(self.marks))
        create(deployed)
        self.failed_in_body = trigger(deployed, "--fail_in", "body")
        self.failed_in_end = trigger(deployed, "--fail_in", "end")
        for run_id in (self.failed_in_body, self.failed_in_end):
            assert wait_for_run(plane, FLOW, run_id)["status"] == "FAILED"
        self.work = base / "laptop"
        self.work.mkdir()
        self.flow = self.work / "resume_flow.py"
        self.flow.write_text(fixed(deployed.read_text()))
        self.root = base / "laptop-datastore"
        self.marks.unlink()

    def cli(self, *args: str, flow: Path | None = None) -> subprocess.CompletedProcess:
        """`python resume_flow.py ARGS` on the laptop: its datastore local, production runs read through the plane."""
        env = {**os.environ, "FLOWPLANE_DATASTORE_ROOT": str(self.root)}
        return subprocess.run([sys.executable, str(flow or self.flow), *args], cwd=self.work, env=env,
                              capture_output=True, text=True, timeout=180)

    def resume(self, *args: str) -> str:
        id_file = self.work / "run-id"
        id_file.unlink(missing_ok=True)
        done = self.cli("resume", "--run-id-file", str(id_file), *args)
        assert done.returncode == 0, f"resume {args} failed:\n{done.stdout}\n{done.stderr}"
        return id_file.read_text()

    def refused(self, *args: str, flow: Path | None = None) -> str:
        runs_before = sorted(self.root.glob(f"*/runs/*")) if self.root.exists() else []
        done = self.cli("resume", *args, flow=flow)
        assert done.returncode == 1, f"resume {args} was not refused:\n{done.stdout}\n{done.stderr}"
        assert (sorted(self.root.glob("*/runs/*")) if self.root.exists() else []) == runs_before
        assert self.ran() == []
        return done.stderr

    def ran(self) -> list[str]:
        found = marks_of(self.marks)
        self.marks.unlink(missing_ok=True)
        return found


@pytest.fixture(scope="module")
def prod(plane, tmp_path_factory) -> Iterator[Production]:
    made = Production(tmp_path_factory.mktemp("resume"), plane)
    # This process reads as the laptop does: its datastore and the plane, combined. (Not through
    # FLOWPLANE_DATASTORE_ROOT: the plane running in this process would take it for its own.)
    laptop = CombinedProvider(LocalProvider(LocalStorage(str(made.root))), ServiceProvider(plane.url))
    with use_provider(laptop):
        yield made


def test_resume_of_a_failed_production_run_with_the_fix_succeeds_here(plane, prod):
    jobs_before = len(plane.batch.history)
    resumed = prod.resume("--origin-run-id", prod.failed_in_body)

    # start and items 0 and 2 had succeeded on Batch: cloned, no process; the rest ran here.
    assert prod.ran() == ["body/1.1", "end/1", "join/1"]
    assert len(plane.batch.history) == jobs_before, "the resume started Batch jobs"
    namespace(None)
    run = Run(f"{FLOW}/{resumed}")
    assert run.successful and run.data.total == TOTAL and run.data.done
    assert run.origin_run_id == prod.failed_in_body and run.data.origin == prod.failed_in_body
    assert "runtime:local" in run.tags and run.data.fail_in == "body"
    origin = production_run(FLOW, prod.failed_in_body)
    for step, task_id in (("start", "1"), ("body", "1.0"), ("body", "1.2")):
        clone, source = run[step][task_id], origin[step][task_id]
        assert clone.origin_pathspec == source.pathspec
        assert {a.id: (a.sha, a.data) for a in clone} == {a.id: (a.sha, a.data) for a in source}
        assert clone.stdout == source.stdout  # read from the production task, through the plane
    assert "body of 30" in run["body"]["1.2"].stdout
    # The production task that failed kept what it had stored, and its exception with the traceback.
    failed = origin["body"]["1.1"]
    assert not failed.successful and failed.data.square == 400 and failed.data.items == [10, 20, 30]
    assert failed.exception.type == "ValueError" and failed.exception.message == "item 20 is broken"
    assert 'raise ValueError("item %d is broken" % self.input)' in failed.exception.traceback
    assert run["body"]["1.1"].origin_pathspec is None and run["body"]["1.1"].data.square == 400


def test_resume_step_of_a_production_run_reruns_from_that_step(prod):
    resumed = prod.resume("--origin-run-id", prod.failed_in_end, "join")
    assert prod.ran() == ["end/1", "join/1"]
    run = Run(f"{FLOW}/{resumed}")
    assert run.successful and run.data.total == TOTAL
    assert run["join"].task.origin_pathspec is None
    assert run["body"]["1.1"].origin_pathspec == f"{FLOW}/{prod.failed_in_end}/body/1.1"


def test_bad_inputs_are_refused_without_a_run(prod):
    assert f"{FLOW} has no run 'sfn-nope'" in prod.refused("--origin-run-id", "sfn-nope")
    assert "the flow has no step 'train'" in prod.refused("--origin-run-id", prod.failed_in_body, "train")
    message = prod.refused("--origin-run-id", prod.failed_in_body, "join")
    assert (f"step 'join' comes after the failure in run {prod.failed_in_body}: step 'body' did not succeed "
            "there") in message
    changed = prod.work / "changed" / "resume_flow.py"
    changed.parent.mkdir()
    changed.write_text(rewired(prod.flow.read_text()))
    message = prod.refused("--origin-run-id", prod.failed_in_end, flow=changed)
    assert "the graph changed since run" in message and "join (out_funcs: ['end'] -> ['extra'])" in message


def test_logs_of_finished_failed_and_running_production_tasks(plane, prod, tmp_path):
    run_id = prod.failed_in_body
    done = prod.cli("logs", f"{run_id}/body/1.0", "--stdout")
    assert done.returncode == 0 and done.stdout == "body of 10\n", done.stderr
    done = prod.cli("logs", f"{run_id}/body/1.1", "--stderr")
    assert done.returncode == 0 and "ValueError: item 20 is broken" in done.stdout
    done = prod.cli("logs", f"{run_id}/body/1.1", "--stdout", "--attempt", "3")
    assert done.returncode == 1 and "has no attempt 3 (attempts: 0)" in done.stderr
    done = prod.cli("logs", f"{run_id}/body")
    assert done.returncode == 0 and [line for line in done.stdout.splitlines() if line.startswith("body of")] == [
        "body of 10", "body of 20", "body of 30"]

    chatty = tmp_path / "chatty" / "chatty_flow.py"
    chatty.parent.mkdir()
    chatty.write_text(CHATTY.replace("SECONDS", "4"))
    create(chatty)
    running = trigger(chatty)
    _wait_for_task(f"ChattyFlow/{running}/start/1")
    # A running run is no origin to resume, and a run of another flow neither.
    assert f"run ChattyFlow/{running} is still running" in prod.refused("--origin-run-id", running, flow=chatty)
    assert f"run {running} is a run of ChattyFlow, not of {FLOW}" in prod.refused("--origin-run-id", running)
    followed = prod.cli("logs", f"{running}/start/1", "--stdout", "--follow", flow=chatty)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == ["going to sleep", "woke up"]
    assert wait_for_run(plane, "ChattyFlow", running)["status"] == "SUCCEEDED"


def _wait_for_task(pathspec: str, timeout: float = 60) -> None:
    from flowplane.client import Task
    from flowplane.client.exceptions import NotFound

    namespace(None)
    deadline = time.monotonic() + timeout
    while True:
        try:
            Task(pathspec)
            return
        except NotFound:
            assert time.monotonic() < deadline, f"{pathspec} never started"
            time.sleep(0.2)
