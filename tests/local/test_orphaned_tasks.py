"""A plane starting on a state folder ends the task processes a killed plane left running."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from flowplane.local.batch import end_orphaned_tasks


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_task_processes_working_under_the_jobs_folder_are_killed_and_no_other(tmp_path) -> None:
    jobs, elsewhere = tmp_path / "jobs" / "job-1", tmp_path / "other"
    jobs.mkdir(parents=True)
    elsewhere.mkdir()
    sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
    # As LocalBatch starts tasks: each in its own session, under the jobs folder, its command
    # line `... flowplane task ...` (here the sleeper's own arguments).
    orphan = subprocess.Popen([*sleep, "flowplane", "task"], cwd=jobs, start_new_session=True)
    elsewhere_task = subprocess.Popen([*sleep, "flowplane", "task"], cwd=elsewhere, start_new_session=True)
    looking_around = subprocess.Popen(sleep, cwd=jobs, start_new_session=True)  # a shell, say
    try:
        time.sleep(0.2)
        assert end_orphaned_tasks(str(tmp_path / "jobs")) == 1
        assert orphan.wait(timeout=10) == -9
        assert elsewhere_task.poll() is None and looking_around.poll() is None
        assert end_orphaned_tasks(str(tmp_path / "jobs")) == 0
    finally:
        for p in (orphan, elsewhere_task, looking_around):
            p.kill()
            p.wait()



@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_the_task_zygote_and_the_tasks_it_forked_are_killed_with_their_groups(tmp_path) -> None:
    from flowplane.local.forkserver import Zygote
    from tests.support.local_runs import write_flow
    from tests.support.task_processes import ZYGOTE_FLOW as FLOW
    from tests.support.task_processes import env_for, sleeping_task, wait_gone

    jobs = tmp_path / "jobs"
    jobs.mkdir()
    flow = write_flow(tmp_path, "zygote_flow", FLOW)
    zygote = Zygote(sys.executable, env_for(tmp_path), str(jobs))  # as LocalBatch starts it
    try:
        # A forked task has the zygote's command line (`-m flowplane.task.zygote`) and works in
        # its job's folder; the child it started has neither.
        task, child = sleeping_task(zygote, flow, jobs)
        assert end_orphaned_tasks(str(jobs)) == 2
        wait_gone(zygote.process.pid, task.pid, child)
        assert end_orphaned_tasks(str(jobs)) == 0
    finally:
        zygote.stop()
