"""The embedded control plane as a background service, on the path a new user takes.

Every command here is a new process with a fresh HOME and nothing configured or
started by hand: the first command that needs a control plane starts the
service, later commands and the Client API find it, `flowplane local
status/logs/stop` operate it, and a `kill -9` loses nothing that was stored.
Each test stops the service it caused (the fixture), so none is left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flowplane.local import service
from flowplane.local.plane import read_url_file
from tests.support.flow_sources import sleepy_flow
from tests.support.shared_flows import SHARED_FLOWS

pytestmark = [pytest.mark.slow, pytest.mark.embedded]

STARTED = "started the embedded one in the background"


class User:
    """A new user's shell: a fresh HOME, an empty work folder, nothing configured."""

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.work = tmp_path / "work"
        self.home.mkdir()
        self.work.mkdir()
        self.state = self.home / ".flowplane" / "local"
        drop = ("FLOWPLANE_", "AWS_", "MOTO_")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        self.env.update(HOME=str(self.home), FLOWPLANE_USER="newcomer", PYTHONUNBUFFERED="1")

    def flow(self, source: Path | str, name: str) -> Path:
        path = self.work / name
        path.write_text(source.read_text() if isinstance(source, Path) else source)
        return path

    def run(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, *args], cwd=self.work, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check:
            assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done

    def local(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("-m", "flowplane", "local", *args, check=check)

    def read(self, code: str) -> Any:
        """Run Client API code in a fresh process; what it prints as JSON."""
        program = "import json\nfrom flowplane import Flow, Run, namespace\nnamespace(None)\n" + textwrap.dedent(code)
        return json.loads(self.run("-c", program).stdout.strip().splitlines()[-1])

    def pid(self) -> int:
        info = read_url_file(self.state)
        assert info is not None, "no plane runs"
        return int(info["pid"])


@pytest.fixture()
def user(tmp_path):
    u = User(tmp_path)
    yield u
    service.stop(u.state, timeout=20)
    assert read_url_file(u.state) is None
    _kill_orphaned_tasks(u.state)


def _kill_orphaned_tasks(state: Path) -> None:
    """Task processes a `kill -9` of their plane left running (their own sessions) end with
    the test, not minutes later when their step gives up."""
    jobs = str(state / "jobs")
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "cwd").startswith(jobs):
                os.killpg(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


WAIT_FOR_RUN = """
import time
deadline = time.monotonic() + 90
while True:
    run = Run("{flow}/{run_id}")
    if run.finished or time.monotonic() > deadline:
        break
    time.sleep(0.3)
"""


def test_a_new_user_deploys_triggers_and_reads_back_with_nothing_started_by_hand(user):
    flow = user.flow(SHARED_FLOWS / "parameter_flow.py", "parameter_flow.py")
    created = user.run(str(flow), "step-functions", "create")
    said = created.stdout + created.stderr
    assert said.count(STARTED) == 1 and "flowplane local stop" in said
    assert "pushed to AWS Step Functions successfully" in created.stdout
    pid = user.pid()

    run_id = user.run(str(flow), "step-functions", "trigger", "--alpha", "0.7").stdout.strip().splitlines()[-1]
    again = user.run(str(flow), "step-functions", "list-runs")
    assert STARTED not in again.stdout + again.stderr and user.pid() == pid  # found, not started again
    got = user.read(WAIT_FOR_RUN.format(flow="ParameterFlow", run_id=run_id) + """
latest = Flow("ParameterFlow").latest_run
print(json.dumps({"id": latest.id, "ok": latest.successful, "alpha": latest.data.alpha,
                  "stdout": latest["start"].task.stdout}))
""")
    assert got == {"id": run_id, "ok": True, "alpha": 0.7, "stdout": got["stdout"]}
    assert "alpha is 0.700000" in got["stdout"]

    status = json.loads(user.local("status", "--json").stdout)
    assert status["running"] is True and status["pid"] == pid and status["state_dir"] == str(user.state)
    assert status["url"].startswith("http://127.0.0.1:") and status["flows"] == 1 and status["runs"] == 1
    shown = user.local("status").stdout
    assert f"pid          {pid}" in shown and "flows        1 deployed" in shown
    assert "control plane runs at" in user.local("logs", "-n", "20").stdout

    assert "Stopped the embedded control plane" in user.local("stop").stdout
    assert read_url_file(user.state) is None and not service._alive(pid)
    stopped = user.local("status", check=False)
    assert stopped.returncode == 3 and "No embedded control plane runs" in stopped.stdout


def test_a_scheduled_flow_fires_on_the_background_service(user):
    every_minute = (SHARED_FLOWS / "hourly_flow.py").read_text().replace("@schedule(hourly=True)",
                                                                        "@schedule(cron='* * * * ? *')")
    assert "cron='* * * * ? *'" in every_minute
    flow = user.flow(every_minute, "minute_flow.py")
    user.run(str(flow), "step-functions", "create")
    # Nobody acts: the service fires the schedule at the next minute (the command has long exited).
    got = user.read("""
import time
deadline = time.monotonic() + 150
while time.monotonic() < deadline:
    runs = list(Flow("HourlyFlow"))
    if runs and runs[0].finished:
        break
    time.sleep(1)
print(json.dumps({"runs": [r.id for r in runs], "ok": runs[0].successful if runs else None}))
""")
    assert len(got["runs"]) >= 1 and got["ok"] is True
    assert all(r.startswith("sfn-") for r in got["runs"])


def test_kill_9_mid_run_loses_nothing_and_the_run_in_flight_fails_with_its_reason(user):
    parameter = user.flow(SHARED_FLOWS / "parameter_flow.py", "parameter_flow.py")
    sleepy = user.flow(sleepy_flow(120), "sleepy_flow.py")
    user.run(str(parameter), "step-functions", "create")
    user.run(str(sleepy), "step-functions", "create")
    done = user.run(str(parameter), "step-functions", "trigger", "--alpha", "0.3").stdout.strip().splitlines()[-1]
    user.read(WAIT_FOR_RUN.format(flow="ParameterFlow", run_id=done) + "print(1)")
    cut = user.run(str(sleepy), "step-functions", "trigger").stdout.strip().splitlines()[-1]
    user.read(f"""
import time
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        if Run("SleepyFlow/{cut}")["start"].task is not None:
            break
    except Exception:
        pass
    time.sleep(0.2)
print(1)
""")
    pid = user.pid()
    os.kill(pid, signal.SIGKILL)
    while service._alive(pid):
        time.sleep(0.05)

    # A fresh process reads: the Client API starts the service again on the state folder.
    got = user.read(f"""
import time
from flowplane.api_client import ApiClient
done = Run("ParameterFlow/{done}")  # reading starts the service again
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    record = ApiClient().request("GET", "/flows/SleepyFlow/runs/{cut}")
    if record.get("status") != "running":
        break
    time.sleep(0.3)
print(json.dumps({{"done": [done.successful, done.data.alpha], "cut": record}}, default=str))
""")
    assert got["done"] == [True, 0.3]
    assert got["cut"]["status"] == "failed"
    assert "stopped while this execution ran" in json.dumps(got["cut"])
    assert user.pid() != pid
    # The deployments are intact: both trigger again on the new service.
    again = user.run(str(parameter), "step-functions", "trigger", "--alpha", "0.4").stdout.strip().splitlines()[-1]
    assert user.read(WAIT_FOR_RUN.format(flow="ParameterFlow", run_id=again)
                     + f'print(json.dumps(Run("ParameterFlow/{again}").data.alpha))') == 0.4


def test_two_first_commands_at_once_leave_one_plane(user):
    results: list[subprocess.CompletedProcess] = []
    threads = [threading.Thread(target=lambda: results.append(user.local("start"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outs = sorted(r.stdout for r in results)
    assert outs[0].startswith("Already running:") and outs[1].startswith("Started")
    pid = user.pid()
    assert all(f"(pid {pid}," in o for o in outs)
    planes = subprocess.run(["pgrep", "-f", f"flowplane local --port 0 --state-dir {user.state}"],
                            capture_output=True, text=True).stdout.split()
    assert planes == [str(pid)]


def test_damaged_state_is_named_and_left_as_it_was(user):
    flow = user.flow(SHARED_FLOWS / "parameter_flow.py", "parameter_flow.py")
    user.run(str(flow), "step-functions", "create")
    user.local("stop")
    journal = next(user.state.glob("journal.*.jsonl"))
    lines = journal.read_bytes().splitlines(keepends=True)
    damaged = b"".join(lines[:3] + [b'{"t": "ddb", "tb": \n'] + lines[3:])
    journal.write_bytes(damaged)

    refused = user.local("start", check=False)
    assert refused.returncode == 1
    assert f"state file {journal} is damaged (line 4 is not JSON" in refused.stderr
    assert "mv " in refused.stderr and "Traceback" not in refused.stderr
    assert journal.read_bytes() == damaged and read_url_file(user.state) is None
    # The SDK says the same, without a traceback, and deploys nothing.
    create = user.run(str(flow), "step-functions", "create", check=False)
    assert create.returncode != 0 and "is damaged (line 4" in create.stderr and "Traceback" not in create.stderr
    assert journal.read_bytes() == damaged


def test_a_long_lived_parent_that_starts_the_service_is_left_no_zombie(user, monkeypatch):
    # A notebook starts the service in its own process (as the Client API does) and lives on
    # after `stop`: the stopped plane must be reaped, not linger as a zombie that `kill(pid, 0)`
    # would still find alive (and that `stop` would wait on until its timeout).
    monkeypatch.setenv("HOME", str(user.home))
    info, started = service.start(user.state)
    assert started and service.running(user.state)["pid"] == info["pid"]
    pid = int(info["pid"])
    assert os.getsid(pid) == pid  # its own session: the terminal closing does not end it
    t0 = time.monotonic()
    service.stop(user.state, timeout=20)
    assert time.monotonic() - t0 < 15
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), Path(f"/proc/{pid}/status").read_text()[:200]
