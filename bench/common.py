"""Shared bits of the benchmark sections: rows, timing, the flows to measure."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
SHARED_FLOWS = ROOT.parent / "shared" / "flows"
EXAMPLES = ROOT / "examples"
# The compile section measures the compiler tests' own fixtures (tests/support/compiler_shapes.py:
# the long stage settings, the N-step flow), so the figures and the byte-budget tests agree.
# tests/ is a package: its helpers import as tests.support.*, from the repository root, as under pytest.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))


def flow_path(name: str) -> Path:
    """The shared flow if this machine has ../shared, else the project's own example."""
    shared = SHARED_FLOWS / name
    return shared if shared.exists() else EXAMPLES / name


@dataclass
class BenchContext:
    metaflow_python: Optional[str] = None
    repeat: int = 3
    python: str = sys.executable


@dataclass
class Row:
    what: str
    value: float
    unit: str
    goal: Optional[float] = None  # lower is better
    note: str = ""

    def render(self) -> str:
        text = f"  {self.what:<58} {self.value:>10.3f} {self.unit:<6}"
        if self.goal is not None:
            verdict = "ok" if self.value <= self.goal else "OVER"
            text += f" goal <= {self.goal:g} {self.unit} ({self.value / self.goal:.2f}x of goal, {verdict})"
        if self.note:
            text += f"  {self.note}"
        return text


def user_env(home: Path) -> dict[str, str]:
    """A new user's environment: this one without any flowplane, AWS or moto setting, HOME at `home`."""
    drop = ("FLOWPLANE_", "AWS_", "MOTO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOME=str(home), FLOWPLANE_USER="bench")
    return env


def user_shell(python: str, work: Path, env: dict[str, str]) -> Callable[..., str]:
    """`run(*args)`: `python *args` in `work` with `env`; its stdout (a failure raises with its output)."""

    def run(*args: str) -> str:
        done = subprocess.run([python, *args], cwd=work, env=env, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"{args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return done.stdout

    return run


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_cmd(cmd: list[str], cwd: Path, env: Optional[dict] = None) -> None:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


# --- the user's background plane ------------------------------------------------------------------

# What the local stage names (.chalice/config.json): the embedded plane's bucket and tables.
LOCAL_BUCKET = "flowplane-local"
LOCAL_TABLE = "flowplane-local"
LOCAL_JOIN_INPUTS_TABLE = "flowplane-local-inputs"
LOCAL_DATASTORE_ROOT = f"s3://{LOCAL_BUCKET}/data"


class UserPlane:
    """A new user: a fresh HOME and work folder, the user's environment, and the background plane
    as the user gets it (started by their first command, or `python -m flowplane local start`,
    persistence on, its state in ~/.flowplane/local). `stop()` stops it as the user would."""

    def __init__(self, base: Path, python: str = sys.executable) -> None:
        self.python = python
        self.home = base / "home"
        self.work = base / "work"
        self.home.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.state = self.home / ".flowplane" / "local"
        self.env = user_env(self.home)
        self.run = user_shell(python, self.work, self.env)

    def timed(self, *args: str) -> float:
        t0 = time.perf_counter()
        self.run(*args)
        return time.perf_counter() - t0

    def start(self) -> float:
        """`python -m flowplane local start`, as typed; its wall time."""
        return self.timed("-m", "flowplane", "local", "start")

    def stop(self) -> None:
        subprocess.run([self.python, "-m", "flowplane", "local", "stop"], cwd=self.work, env=self.env,
                       capture_output=True, timeout=120)

    def with_history(self, runs: int = 1000) -> dict[str, int]:
        """A realistic history on the user's plane, as bench_history builds it: one real ParameterFlow
        run (deployed and triggered as typed), cloned `runs` times through the plane's AWS API."""
        flow = self.work / "parameter_flow.py"
        flow.write_text(flow_path("parameter_flow.py").read_text())
        self.run(str(flow), "step-functions", "create")
        self.run(str(flow), "step-functions", "trigger", "--alpha", "0.5")
        self.wait_idle()
        return seed_history(self.info()["endpoint"], runs)

    def stop_and_check(self) -> None:
        """Stop the plane; a process of this user's left running then fails the bench."""
        self.stop()
        left = leftover_planes(self)
        if left:
            raise RuntimeError(f"processes left behind: {left}")

    def info(self) -> dict:
        import json

        return json.loads((self.state / "plane.json").read_text())

    def pid(self) -> int:
        return int(self.info()["pid"])

    def session(self):  # noqa: ANN201
        import boto3

        return boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",
                                     region_name="us-east-1")

    def client(self, service: str):  # noqa: ANN201
        """A boto3 client of the running plane's AWS (its moto endpoint, over HTTP)."""
        return self.session().client(service, endpoint_url=self.info()["endpoint"])

    def resource(self, service: str):  # noqa: ANN201
        return self.session().resource(service, endpoint_url=self.info()["endpoint"])

    def wait_idle(self, timeout: float = 300.0) -> None:
        """Until no execution runs on the plane."""
        if not wait_for_no_execution(self.client("stepfunctions"), timeout):
            raise RuntimeError("the plane's executions did not finish")


class seeding_plane:
    """The user's plane in this process, persistence on, on the user's own state folder: for
    seeds too big to send through the HTTP API. Every write goes through moto's backends, which
    the plane's capture journals exactly as it journals a real request (flowplane/local/capture.py);
    stopped at exit, the folder is what the user's background plane starts from."""

    def __init__(self, user: UserPlane) -> None:
        self.user = user

    def __enter__(self):  # noqa: ANN204
        from flowplane.local.plane import LocalPlane, PlaneConfig

        self._saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.user.env)
        self.plane = LocalPlane(PlaneConfig(state_dir=self.user.state, persist=True, schedule_seconds=None))
        try:
            self.plane.start()
        except BaseException:
            self._restore_env()
            raise
        return self.plane

    def __exit__(self, *exc: object) -> None:
        try:
            self.plane.stop()
        finally:
            self._restore_env()

    def _restore_env(self) -> None:
        os.environ.clear()
        os.environ.update(self._saved)


def wait_for_no_execution(sfn: Any, timeout: float) -> bool:
    """Until no execution runs on the plane `sfn` (a Step Functions client) reaches; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        machines = sfn.list_state_machines()["stateMachines"]
        if not any(sfn.list_executions(stateMachineArn=m["stateMachineArn"], statusFilter="RUNNING")["executions"]
                   for m in machines):
            return True
        time.sleep(0.2)
    return False


def leftover_planes(user: UserPlane, wait: float = 10.0) -> list[str]:
    """flowplane processes of this user (their HOME is the user's) still running once the plane is
    stopped: none, unless something was left behind. Waits up to `wait` seconds for them to end."""
    deadline = time.monotonic() + wait
    while True:
        done = subprocess.run(["pgrep", "-af", "flowplane"], capture_output=True, text=True)
        left = []
        for line in done.stdout.splitlines():
            pid = line.split(" ", 1)[0]
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"HOME={user.home}".encode() in environ or str(user.state) in line:
                left.append(line)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


# --- a realistic history ---------------------------------------------------------------------------


def seed_history(endpoint: str, runs: int) -> dict[str, int]:
    """Clone one real, finished ParameterFlow run `runs` times through the embedded AWS API at
    `endpoint`, the one the plane's tasks and recorder write through, so its journal records the
    history as it records real runs."""
    import json
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")
    s3, ddb, logs = (session.client(name, endpoint_url=endpoint) for name in ("s3", "dynamodb", "logs"))
    bucket = "flowplane-local"
    listed = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="data/ParameterFlow/runs/")
              for o in page.get("Contents", [])]
    real_runs = sorted({k.split("/")[3] for k in listed})
    model = real_runs[0]
    objects = {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in listed if f"/{model}/" in k}
    items = [i for page in ddb.get_paginator("scan").paginate(TableName=bucket) for i in page["Items"]
             if model in json.dumps(i)]
    job_streams = {}
    for page in logs.get_paginator("describe_log_streams").paginate(logGroupName="/aws/batch/job"):
        for s in page["logStreams"]:
            if any(s["logStreamName"].rsplit("/", 1)[-1] in json.dumps(i) for i in items):
                events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=s["logStreamName"],
                                             startFromHead=True)["events"]
                job_streams[s["logStreamName"]] = [e["message"] for e in events]
    recorder_lines = []
    for group in ("record_execution", "record_job", "record_task"):
        name = f"/aws/lambda/flowplane-local-{group}"
        for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=name):
            for s in page["logStreams"][:4]:
                events = logs.get_log_events(logGroupName=name, logStreamName=s["logStreamName"], startFromHead=True)
                recorder_lines.extend(e["message"] for e in events["events"])
    recorder_lines = recorder_lines[: max(0, 31 - sum(len(v) for v in job_streams.values()))]
    logs.create_log_group(logGroupName="/aws/lambda/flowplane-local-seeded-history")

    def clone(_: int) -> tuple[int, int, int]:
        run_id = f"sfn-{uuid.uuid4()}"
        jobs = {old.rsplit("/", 1)[-1]: str(uuid.uuid4()) for old in job_streams}

        def rewrite(text: str) -> str:
            text = text.replace(model, run_id)
            for old, new in jobs.items():
                text = text.replace(old, new)
            return text

        for key, body in objects.items():
            s3.put_object(Bucket=bucket, Key=rewrite(key), Body=rewrite(body.decode()).encode())
        cloned = [json.loads(rewrite(json.dumps(i))) for i in items]
        for start in range(0, len(cloned), 25):
            request = {bucket: [{"PutRequest": {"Item": i}} for i in cloned[start:start + 25]]}
            while request:
                request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or None
        now = int(time.time() * 1000)
        lines = 0
        for stream, messages in job_streams.items():
            name = rewrite(stream)
            logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=name)
            logs.put_log_events(logGroupName="/aws/batch/job", logStreamName=name,
                                logEvents=[{"timestamp": now + n, "message": rewrite(m)} for n, m in enumerate(messages)])
            lines += len(messages)
        if recorder_lines:
            logs.create_log_stream(logGroupName="/aws/lambda/flowplane-local-seeded-history", logStreamName=run_id)
            logs.put_log_events(logGroupName="/aws/lambda/flowplane-local-seeded-history", logStreamName=run_id,
                                logEvents=[{"timestamp": now + n, "message": m} for n, m in enumerate(recorder_lines)])
            lines += len(recorder_lines)
        return len(objects), len(cloned), lines

    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(clone, range(runs)))
    return {"objects": sum(d[0] for d in done), "items": sum(d[1] for d in done),
            "log_lines": sum(d[2] for d in done), "real_runs": len(real_runs)}
