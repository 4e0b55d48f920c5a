"""Warm task processes: the embedded plane's local Batch starts the next `flowplane task`
interpreter ahead of its job (flowplane/task/warm.py). A job it takes must run as in a
process started for it: the job's arguments, environment, folder, empty stdin, exit code.
The end-to-end tests (tests/e2e/test_e2e_*.py) run every task of the plane this way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowplane.datastore.storage import LocalStorage
from flowplane.local.batch import LocalBatch, _same_start
from tests.support.local_runs import RunView, write_flow
from tests.support.task_processes import env_for, task_argv

FLOW = """
import atexit
import os
import sys
import tempfile

from flowplane import FlowSpec, step


class WarmFlow(FlowSpec):
    @step
    def start(self):
        self.cwd = os.getcwd()
        self.mark = os.environ.get("WARM_MARK")
        self.tmp = tempfile.gettempdir()
        self.stdin = sys.stdin.read() if sys.stdin else None
        self.argv0 = sys.argv[0]
        atexit.register(lambda: open(os.path.join(self.cwd, "ATEXIT"), "w").write("ran"))
        print("hello from the step")
        self.next(self.end)

    @step
    def end(self):
        raise SystemExit(3)
"""


def warm_process(env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flowplane.task.warm"], env=env, cwd=cwd,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_warm_process_runs_its_job_as_a_process_started_for_it(tmp_path):
    flow = write_flow(tmp_path, "warm_flow", FLOW)
    root, scratch, tmp = tmp_path / "ds", tmp_path / "scratch", tmp_path / "tmp"
    scratch.mkdir()
    tmp.mkdir()
    proc = warm_process(env_for(tmp_path), tmp_path)
    time.sleep(0.2)  # it may still be importing: the job waits in the pipe either way
    job = {"argv": task_argv(flow, root, "start"), "cwd": str(scratch),
           "env": env_for(tmp_path, WARM_MARK="the job's", TMPDIR=str(tmp))}
    out, err = proc.communicate(json.dumps(job).encode() + b"\n", timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"hello from the step" in out
    data = RunView(LocalStorage(str(root)), "WarmFlow", "1").data("start")
    assert data["cwd"] == str(scratch) and data["mark"] == "the job's" and data["tmp"] == str(tmp)
    assert data["stdin"] == "" and data["argv0"].endswith(os.path.join("flowplane", "__main__.py"))
    # The step's own atexit handlers still run at the end.
    assert (scratch / "ATEXIT").read_text() == "ran"
    # Its exit code is the task's.
    proc = warm_process(env_for(tmp_path), tmp_path)
    job["argv"] = task_argv(flow, root, "end")
    proc.communicate(json.dumps(job).encode() + b"\n", timeout=60)
    assert proc.returncode == 1


def test_a_warm_process_without_a_job_exits_quietly(tmp_path):
    proc = warm_process(env_for(tmp_path), tmp_path)
    out, err = proc.communicate(b"", timeout=60)
    assert (proc.returncode, out, err) == (0, b"", b"")


@pytest.fixture()
def batch(tmp_path):
    b = LocalBatch(vcpus=1, endpoint="http://127.0.0.1:1", region="us-east-1", work_dir=str(tmp_path), warm=1)
    yield b
    b.close()


def test_the_local_batch_hands_a_flowplane_task_to_its_warm_process(batch, tmp_path):
    flow = write_flow(tmp_path, "warm_flow", FLOW)
    batch._fill_warm()
    (waiting, warm_env), = batch._idle
    scratch = tmp_path / "job"
    scratch.mkdir()
    env = {**warm_env, "WARM_MARK": "job", "TMPDIR": str(scratch), "AWS_BATCH_JOB_ID": "j-1"}
    command = [sys.executable, "-m", "flowplane", *task_argv(flow, tmp_path / "ds", "start")]
    proc = batch._start(command, env, str(scratch))
    assert proc is waiting
    # Another interpreter waits for the next job already.
    assert len(batch._idle) == 1 and batch._idle[0][0] is not waiting
    out, err = proc.stdout.read(), proc.stderr.read()  # its stdin is closed: no communicate()
    assert proc.wait(60) == 0, err.decode()
    assert b"hello from the step" in out
    # Another command, or a job whose interpreter would start differently, starts cold.
    other = batch._start([sys.executable, "-c", "print('cold')"], env, str(scratch))
    assert other.communicate(timeout=60)[0] == b"cold\n" and batch._idle[0][0].poll() is None
    next_one = batch._idle[0][0]
    different = {**env, "PYTHONHASHSEED": "7"}
    cold = batch._start(command, different, str(scratch))
    assert cold is not next_one and cold.communicate(timeout=60)[0].count(b"hello from the step") == 1
    # The waiting one stays for the next job that fits it.
    assert [p for p, _ in batch._idle] == [next_one] and next_one.poll() is None


def test_closing_the_local_batch_ends_its_waiting_processes(tmp_path):
    b = LocalBatch(vcpus=1, endpoint="http://127.0.0.1:1", region="us-east-1", work_dir=str(tmp_path), warm=2)
    b._fill_warm()
    waiting = [p for p, _ in b._idle]
    assert len(waiting) == 2
    b.close()
    assert all(p.poll() is not None for p in waiting) and b._idle == []
    b._fill_warm()  # a closed Batch starts no more
    assert b._idle == []


def test_what_a_warm_process_must_share_with_its_job():
    base = {"PATH": "/bin", "PYTHONPATH": "/p", "AWS_REGION": "r", "HOME": "/h", "LANG": "C.UTF-8"}
    assert _same_start(base, {**base, "FLOWPLANE_RUN_ID": "x", "AWS_BATCH_JOB_ID": "j", "TMPDIR": "/t", "PATH": "/x"})
    for key, value in (("PYTHONPATH", "/q"), ("PYTHONWARNINGS", "error"), ("AWS_REGION", "s"),
                       ("AWS_PROFILE", "p"), ("HOME", "/g"), ("LC_ALL", "C"), ("TZ", "UTC")):
        assert not _same_start(base, {**base, key: value}), key
