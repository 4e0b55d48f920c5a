"""`python flow.py logs` of local runs as a user types it: a running task followed to its end (the
runtime's live log), a failed one's stderr, one attempt of a retried task, and bad input."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.local_runs import run_cli, run_env, write_flow

pytestmark = pytest.mark.slow

CHATTY = '''
import time

from flowplane import FlowSpec, current, retry, step


class ChattyFlow(FlowSpec):
    @step
    def start(self):
        print("going to sleep", flush=True)
        time.sleep(3)
        print("woke up", flush=True)
        self.next(self.flaky)

    @retry(times=1, minutes_between_retries=0)
    @step
    def flaky(self):
        print("flaky attempt %d" % current.retry_count)
        if current.retry_count == 0:
            raise ValueError("first attempt fails")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ChattyFlow()
'''


def test_logs_follow_a_running_local_task_to_its_end_then_read_its_attempts(tmp_path: Path):
    flow = write_flow(tmp_path, "chatty", CHATTY)
    root = tmp_path / "datastore"
    id_file = flow.parent / "id"
    running = subprocess.Popen([sys.executable, str(flow), "run", "--run-id-file", str(id_file)],
                               cwd=flow.parent, env=run_env(root), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        # The start task has said something: the runtime's live log of its attempt holds it.
        while not list(root.glob("ChattyFlow/runs/*/start/1/0/stdout.live")):
            assert time.monotonic() < deadline and running.poll() is None, "the start task never ran"
            time.sleep(0.05)
        run_id = id_file.read_text()
        followed = run_cli(flow, root, flow.parent, "logs", f"{run_id}/start/1", "--stdout", "--follow")
        assert followed.returncode == 0, followed.stderr
        assert followed.stdout.splitlines() == ["going to sleep", "woke up"]
        assert running.wait(timeout=60) == 0
    finally:
        running.kill()
        running.wait()
    assert not list(root.glob("ChattyFlow/runs/*/*/*/*/*.live")), "live logs left behind"

    first = run_cli(flow, root, flow.parent, "logs", f"{run_id}/flaky/1", "--stderr", "--attempt", "0")
    assert first.returncode == 0 and "ValueError: first attempt fails" in first.stdout
    latest = run_cli(flow, root, flow.parent, "logs", f"{run_id}/flaky/1", "--stdout")
    assert latest.stdout == "flaky attempt 1\n"
    missing = run_cli(flow, root, flow.parent, "logs", f"{run_id}/flaky/1", "--attempt", "5")
    assert missing.returncode == 1 and "has no attempt 5 (attempts: 0, 1)" in missing.stderr
    for args, says in (((f"{run_id}/flaky", "--stdout", "--follow"), "--follow takes one task"),
                       ((f"{run_id}/flaky/1", "--follow"), "--follow shows one stream"),
                       ((f"{run_id}/nope/1",), "does not exist")):
        bad = run_cli(flow, root, flow.parent, "logs", *args)
        assert bad.returncode != 0 and says in bad.stderr, bad.stderr
