"""The task zygote: the embedded plane's local Batch forks each `flowplane task` from one
process that did the imports once (flowplane/task/zygote.py, flowplane/local/forkserver.py).
A forked task must run as a process started for it: its own pid and session, exactly the
job's environment, folder, streams and exit status, its own random state; and no task may
outlive the zygote, nor the zygote the plane."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowplane.datastore.storage import LocalStorage
from flowplane.local.batch import LocalBatch
from flowplane.local.forkserver import ForkedTask, Zygote
from tests.support.local_runs import RunView, write_flow
from tests.support.task_processes import ZYGOTE_FLOW as FLOW
from tests.support.task_processes import alive, env_for, folder, job_env, sleeping_task, task_argv, wait_gone

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")



@pytest.fixture()
def zygote(tmp_path):
    z = Zygote(sys.executable, env_for(tmp_path), str(tmp_path))
    yield z
    z.stop()


@pytest.fixture()
def flow(tmp_path):
    return write_flow(tmp_path, "zygote_flow", FLOW)


def test_a_forked_task_runs_its_job_as_a_process_started_for_it(zygote, flow, tmp_path):
    folder(tmp_path, "tmp")
    env = job_env(tmp_path, MARK="the job's")
    task = zygote.spawn(task_argv(flow, tmp_path / "ds", "start"), env, str(folder(tmp_path, "scratch")))
    assert task is not None and task.pid != zygote.process.pid
    out, err = task.stdout.read(), task.stderr.read()
    assert task.wait(60) == 0, err.decode()
    assert b"hello from the step" in out and b"and to stderr" in err
    forked = RunView(LocalStorage(str(tmp_path / "ds")), "ZygoteFlow", "1").data("start")
    assert forked["pid"] == task.pid == forked["sid"]  # its own session, as a container's process
    assert forked["env"] == env  # the job's environment, nothing of the zygote's
    assert forked["cwd"] == str(tmp_path / "scratch") and forked["tmp"] == str(tmp_path / "tmp")
    assert forked["stdin"] == ""
    assert (tmp_path / "scratch" / "ATEXIT").read_text() == "ran"  # the interpreter's exit, as usual
    # The same job started cold: the same open descriptors (none of the zygote's leak in).
    cold = subprocess.run([sys.executable, "-m", "flowplane", *task_argv(flow, tmp_path / "cold", "start")],
                          env=env, cwd=tmp_path / "scratch", stdin=subprocess.DEVNULL, capture_output=True)
    assert cold.returncode == 0, cold.stderr.decode()
    assert forked["fds"] == RunView(LocalStorage(str(tmp_path / "cold")), "ZygoteFlow", "1").data("start")["fds"]
    # Its exit code is the task's: `end` exits 3 from the step, the task reports failure.
    task = zygote.spawn(task_argv(flow, tmp_path / "ds", "end"), env, str(tmp_path / "scratch"))
    assert task is not None and task.wait(60) == 1


def test_two_forked_tasks_do_not_share_random_state(zygote, flow, tmp_path):
    draws = []
    for run in ("1", "2"):
        argv = task_argv(flow, tmp_path / run, "start")
        task = zygote.spawn(argv, job_env(tmp_path), str(folder(tmp_path, run)))
        assert task is not None and task.wait(60) == 0, task.stderr.read()
        draws.append(RunView(LocalStorage(str(tmp_path / run)), "ZygoteFlow", "1").data("start")["random"])
    assert draws[0] != draws[1]


def test_a_task_killed_by_a_signal_reports_it(zygote, flow, tmp_path):
    task, child = sleeping_task(zygote, flow, tmp_path)
    with pytest.raises(subprocess.TimeoutExpired):
        task.wait(0.1)
    os.kill(task.pid, signal.SIGKILL)  # as an out-of-memory kill
    assert task.wait(30) == -signal.SIGKILL
    os.killpg(task.pid, signal.SIGKILL)
    wait_gone(child)


def test_a_task_no_one_waits_for_is_killed_with_its_group(zygote, flow, tmp_path):
    task, child = sleeping_task(zygote, flow, tmp_path)
    task._conn.close()  # the plane dropped the job
    wait_gone(task.pid, child)
    assert zygote.alive()  # and it serves the next job
    again = zygote.spawn(task_argv(flow, tmp_path / "ds", "start"), job_env(tmp_path), str(tmp_path / "sleeper"))
    assert again is not None and again.wait(60) == 0


def test_the_zygote_stopping_ends_its_tasks(zygote, flow, tmp_path):
    task, child = sleeping_task(zygote, flow, tmp_path)
    zygote.stop()
    assert zygote.process.returncode == 0
    wait_gone(task.pid, child)
    assert zygote.spawn(["--version"], job_env(tmp_path), str(tmp_path)) is None


def test_the_task_of_a_zygote_killed_is_killed_with_its_group_and_reported_killed(zygote, flow, tmp_path):
    task, child = sleeping_task(zygote, flow, tmp_path)
    os.kill(zygote.process.pid, signal.SIGKILL)
    assert task.wait(30) == -signal.SIGKILL
    wait_gone(task.pid, child)
    assert zygote.spawn(["--version"], job_env(tmp_path), str(tmp_path)) is None


PLANE = """
import os, sys, time
from flowplane.local.forkserver import Zygote
from tests.support.task_processes import sleeping_task, env_for
from pathlib import Path
tmp = Path(sys.argv[1])
zygote = Zygote(sys.executable, env_for(tmp), str(tmp))
task, child = sleeping_task(zygote, Path(sys.argv[2]), tmp)
print(zygote.process.pid, task.pid, child, flush=True)
time.sleep(600)
"""


def test_nothing_outlives_a_plane_killed_with_sigkill(flow, tmp_path):
    plane = subprocess.Popen([sys.executable, "-c", PLANE, str(tmp_path), str(flow)], stdout=subprocess.PIPE,
                             cwd=Path(__file__).resolve().parents[2])
    try:
        pids = [int(p) for p in plane.stdout.readline().split()]
        assert len(pids) == 3 and all(alive(p) for p in pids)
        plane.kill()
        wait_gone(*pids)
    finally:
        plane.kill()
        plane.wait()


def test_a_job_the_zygote_cannot_take_is_refused_and_it_serves_on(zygote, tmp_path):
    # Not a job: no descriptors, or not JSON; neither is answered nor ends the zygote.
    zygote._sock.send(b"{}")
    ours, theirs = socket.socketpair()
    r, w = os.pipe()
    socket.send_fds(zygote._sock, [b"not json"], [theirs.fileno(), w, w])
    theirs.close()
    os.close(w)
    ours.settimeout(30)
    assert ours.recv(100) == b""  # closed unanswered: the plane starts that job another way
    os.close(r)
    # A message longer than the socket carries: the plane gets None and starts it another way.
    assert zygote.spawn(["--version"], job_env(tmp_path, HUGE="x" * (4 << 20)), str(tmp_path)) is None
    task = zygote.spawn(["--version"], job_env(tmp_path), str(tmp_path))
    assert task is not None and task.wait(30) == 0 and task.stdout.read().startswith(b"flowplane ")


def test_preload_makes_no_client_thread_or_descriptor(tmp_path):
    probe = textwrap.dedent("""
        import json, os, threading
        from flowplane.task import aws, warm
        before = sorted(os.listdir("/proc/self/fd"))
        warm.preload()
        print(json.dumps([threading.active_count(), len(aws._clients), sorted(os.listdir("/proc/self/fd")) == before]))
    """)
    out = subprocess.run([sys.executable, "-c", probe], env=env_for(tmp_path), capture_output=True, check=True)
    assert json.loads(out.stdout) == [1, 0, True]


def test_the_local_batch_forks_flowplane_tasks_and_falls_back_without_its_zygote(flow, tmp_path):
    batch = LocalBatch(vcpus=1, endpoint="http://127.0.0.1:1", region="us-east-1", work_dir=str(tmp_path))
    try:
        assert batch._start_zygote()
        zygote = batch._zygote
        env = {**zygote.env, "AWS_BATCH_JOB_ID": "j-1"}
        command = [sys.executable, "-m", "flowplane", *task_argv(flow, tmp_path / "ds", "start")]
        forked = batch._start(command, env, str(folder(tmp_path, "job")))
        assert isinstance(forked, ForkedTask) and forked.wait(60) == 0, forked.stderr.read()
        # A job whose interpreter would start differently starts as its own interpreter.
        cold = batch._start(command, {**env, "PYTHONHASHSEED": "7"}, str(tmp_path / "job"))
        assert isinstance(cold, subprocess.Popen) and cold.wait(60) == 0
        # The zygote gone, jobs still run, started the way they were before it.
        os.kill(zygote.process.pid, signal.SIGKILL)
        zygote.process.wait()
        again = batch._start(command, env, str(tmp_path / "job"))
        assert isinstance(again, subprocess.Popen) and again.wait(60) == 0
        assert batch._zygote is None
    finally:
        batch.close()
