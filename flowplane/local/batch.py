"""A local AWS Batch: the jobs Step Functions submits to moto run as processes here.

moto's Batch keeps one `Job` (a thread) per submitted job and drives docker
in `Job.run()`; `LocalBatch.install()` replaces that method. A job then:

- waits RUNNABLE until its vCPUs fit in the compute environment (`vcpus`, the
  whole machine's budget; a job asks for its VCPU resource requirement, 1 by
  default), as Batch places jobs on a fixed-size environment;
- runs its command (the container overrides', else the job definition's) with
  its environment, in a scratch folder of its own; `flowplane` as the first
  word is this interpreter's `python -m flowplane` (the local "image");
- for `flowplane task`, the process is forked by a fork server (the zygote,
  flowplane/task/zygote.py, started with the Batch) that has done the imports
  every task does, once: the child leads its own session, takes on the job's
  arguments, environment, folder and streams and runs the same command; still one
  process per job, as a container is. A job whose interpreter would start
  differently (`_same_start`), or any job while no zygote runs, starts as before:
  in a process started ahead of time (`warm`, flowplane/task/warm.py), else cold;
- ends SUCCEEDED on exit code 0, FAILED otherwise: a process ended by a signal
  reports exit code 128+N and names the signal in its reason; an attempt that
  overstays the job's timeout, or a job terminated through the API, is killed;
- writes what the process printed (stdout and stderr, one stream as on AWS) to
  CloudWatch Logs in moto: group /aws/batch/job, stream <jobdef>/default/<jobId>.

Every status change is handed to `emit` as the job's description (the
"Batch Job State Change" detail). The processes started are kept in
`history`, with start and end times, so tests can check concurrency.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal as signals
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Optional, Union

from ..job import BATCH_JOB_ID, RUN_ID
from .forkserver import ForkedTask, Zygote
from .moto_patches import Undo, install_batch_environment_fix
from .priority import run_below_the_plane

LOG_GROUP = "/aws/batch/job"
# What AWS Batch says when the container's process exits, whatever the code.
EXITED = "Essential container in task exited"
TIMED_OUT = "Job attempt duration exceeded timeout"
PLANE_STOPPED = "the local control plane stopped while the job ran"
# The largest CloudWatch Logs event is 256 KB; longer lines are split.
MAX_LOG_MESSAGE = 256 * 1024 - 26
# Environments whose tasks fork from a zygote of their own; tasks of more start in a new interpreter.
MAX_ENV_ZYGOTES = 8
# A terminated job gets SIGTERM, then SIGKILL after this many seconds (as `docker stop`).
KILL_GRACE_SECONDS = 5.0

Emit = Callable[[dict[str, Any], str], None]
# A job's process: one the zygote forked, or one started with its own interpreter.
Process = Union[ForkedTask, subprocess.Popen]


@dataclass
class ProcessRecord:
    """One job's process: what ran, when, and how it ended (times from time.time())."""

    job_id: str
    job_name: str
    command: list[str]
    environment: dict[str, str]  # the job's own variables
    pid: int
    started: float
    ended: Optional[float] = None
    exit_code: Optional[int] = None
    signal: Optional[str] = None

    @property
    def run_id(self) -> Optional[str]:
        return self.environment.get(RUN_ID)

    @property
    def step(self) -> Optional[str]:
        """The flowplane step, read from `flowplane task ... --step S`."""
        try:
            return self.command[self.command.index("--step") + 1]
        except (ValueError, IndexError):
            return None


class _Slots:
    """A weighted semaphore: the compute environment's vCPUs."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._cond = threading.Condition()

    def acquire(self, n: int, abandon: Callable[[], bool]) -> bool:
        with self._cond:
            while self.free < n:
                if abandon():
                    return False
                self._cond.wait(0.2)
            if abandon():
                return False
            self.free -= n
            return True

    def release(self, n: int) -> None:
        with self._cond:
            self.free += n
            self._cond.notify_all()


@dataclass
class _Output:
    """Lines the process printed, waiting to be written to CloudWatch Logs."""

    pending: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        now = int(time.time() * 1000)
        with self.lock:
            for i in range(0, max(len(text), 1), MAX_LOG_MESSAGE):
                self.pending.append({"timestamp": now, "message": text[i : i + MAX_LOG_MESSAGE]})

    def take(self) -> list[dict[str, Any]]:
        with self.lock:
            events, self.pending = self.pending, []
        # Two pipes read by two threads: order by time, as CloudWatch requires.
        return sorted(events, key=lambda e: e["timestamp"])


class LocalBatch:
    """Runs moto's Batch jobs as local processes; one per process at a time (it patches moto)."""

    _installed: Optional["LocalBatch"] = None

    def __init__(
        self,
        *,
        vcpus: int,
        endpoint: str,
        region: str,
        work_dir: str,
        emit: Optional[Emit] = None,
        python: str = sys.executable,
        log_flush_seconds: float = 1.0,
        warm: int = 1,
        zygote: bool = True,
    ) -> None:
        if vcpus < 1:
            raise ValueError(f"vcpus must be at least 1, got {vcpus}")
        self.vcpus = vcpus
        self.endpoint = endpoint
        self.region = region
        self.work_dir = work_dir
        self.emit = emit
        self.python = python
        self.log_flush_seconds = log_flush_seconds
        self.history: list[ProcessRecord] = []
        self._slots = _Slots(vcpus)
        self._running: dict[str, tuple[Any, Process]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        # Interpreters waiting for a `flowplane task` job: (process, the environment it started with).
        self.warm = max(0, warm)
        self._idle: list[tuple[subprocess.Popen, dict[str, str]]] = []
        # The fork server of `flowplane task` jobs, started with the Batch (install()).
        self.zygote = zygote
        self._zygote: Optional[Zygote] = None
        # @pypi/@conda: one zygote per environment built on this machine (environment id -> zygote).
        self._env_zygotes: dict[str, Zygote] = {}

    # --- installing into moto --------------------------------------------------------

    def install(self) -> Undo:
        """Make moto's Batch run jobs here; returns the undo."""
        from moto.batch.models import Job

        if LocalBatch._installed is not None:
            raise RuntimeError("a local Batch is already installed in this process")
        LocalBatch._installed = self
        batch = self
        original_run, original_describe = Job.__dict__["run"], Job.__dict__["describe"]

        def run(job: Any) -> None:
            batch._threads.append(threading.current_thread())
            batch._run(job)

        def describe(job: Any) -> dict[str, Any]:
            result = original_describe(job)
            extra = job.__dict__.get("_flowplane_container")
            if extra:
                # moto's describe() drops the container's exit code; AWS reports it.
                result.setdefault("container", {}).update(extra)
            return result

        Job.run = run
        Job.describe = describe
        undo_env = install_batch_environment_fix()
        if not self._start_zygote():
            self._fill_warm()

        def undo() -> None:
            Job.run = original_run
            Job.describe = original_describe
            undo_env()
            self._drop_warm()
            self._stop_zygote()
            self._stop_env_zygotes()
            LocalBatch._installed = None

        return undo

    # --- what tests and the plane ask -------------------------------------------------

    def running(self) -> list[ProcessRecord]:
        with self._lock:
            return [r for r in self.history if r.ended is None]

    def kill(self, job_id: str, sig: int = signals.SIGKILL) -> None:
        """End a job's process from outside, as an out-of-memory kill or a crash would."""
        with self._lock:
            entry = self._running.get(job_id)
        if entry is None:
            raise KeyError(f"job {job_id} has no running process")
        os.kill(entry[1].pid, sig)

    def terminate_run(self, run_id: str, reason: str) -> int:
        """Terminate every job of a run (Step Functions stops a stopped execution's `.sync` jobs)."""
        count = 0
        with self._lock:
            jobs = [job for job, _ in self._running.values()]
        for job in jobs:
            if _environment(job).get(RUN_ID) == run_id:
                job.terminate(reason)
                count += 1
        return count

    def close(self, timeout: float = 10.0) -> None:
        """Stop every job: waiting ones never start, running ones are terminated."""
        self._closing.set()
        with self._lock:
            entries = list(self._running.values())
        for job, proc in entries:
            job.terminate(PLANE_STOPPED)
            _signal_group(proc, signals.SIGTERM)
        self._drop_warm()
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        # Last: the zygote's end kills the tasks still running (SIGTERM had its chance).
        self._stop_zygote()
        self._stop_env_zygotes()

    # --- one job ------------------------------------------------------------------------

    def _run(self, job: Any) -> None:
        from moto.batch.utils import JobStatus

        need = min(self.vcpus, _vcpus(job))
        self._set_status(job, JobStatus.RUNNABLE)
        if not self._slots.acquire(need, lambda: job.stop or self._closing.is_set()):
            self._finish(job, None, job.job_stopped_reason or PLANE_STOPPED, success=False)
            return
        scratch = None
        try:
            self._set_status(job, JobStatus.STARTING)
            scratch = tempfile.mkdtemp(prefix=f"job-{job.job_id.replace(':', '-')}-", dir=self.work_dir)
            command = self._command(job)
            environment = self._environment(job, scratch)
            job.job_started_at = datetime.now()
            job.log_stream_name = job._stream_name
            job._log_backend.ensure_log_group(LOG_GROUP)
            job._log_backend.ensure_log_stream(LOG_GROUP, job.log_stream_name)
            job._start_attempt()
            try:
                proc = self._start(command, environment, scratch)
            except OSError as e:
                self._finish(job, None, f"CannotStartContainerError: {e}", success=False)
                return
            record = ProcessRecord(job.job_id, job.job_name, command, _environment(job), proc.pid, time.time())
            with self._lock:
                self.history.append(record)
                self._running[job.job_id] = (job, proc)
            self._set_status(job, JobStatus.RUNNING)
            code, reason = self._supervise(job, proc)
            record.ended, record.exit_code = time.time(), code
            if code is not None and code > 128 and proc.returncode < 0:
                record.signal = signals.Signals(-proc.returncode).name
            with self._lock:
                self._running.pop(job.job_id, None)
            self._finish(job, code, reason, success=code == 0 and not job.stop)
        except Exception as e:  # never leave a job RUNNING: the execution would wait forever
            self._finish(job, None, f"the local Batch failed to run the job: {type(e).__name__}: {e}", success=False)
        finally:
            self._slots.release(need)
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)

    def _start(self, command: list[str], environment: dict[str, str], scratch: str) -> Process:
        """The job's process: for `flowplane task`, forked by the zygote or a warm one when
        one fits, else a new one."""
        if command[1:4] == ["-m", "flowplane", "task"] and command[0] == self.python:
            forked = self._fork(command[3:], environment, scratch)
            if forked is not None:
                return forked
            proc = self._take_warm(environment)
            if proc is not None:
                job = {"argv": command[3:], "env": environment, "cwd": scratch}
                try:
                    assert proc.stdin is not None
                    proc.stdin.write(json.dumps(job).encode() + b"\n")
                    proc.stdin.close()
                    return proc
                except OSError:  # it died waiting: start the job the usual way
                    _discard(proc)
        proc = subprocess.Popen(
            command,
            env=environment,
            cwd=scratch,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own group: a kill reaches its children too
        )
        run_below_the_plane(proc.pid)
        return proc

    # --- the zygote -------------------------------------------------------------------------

    def _start_zygote(self) -> bool:
        """Start the fork server (it imports alone; jobs sent meanwhile wait for it)."""
        if not self.zygote:
            return False
        with self._lock:
            if self._closing.is_set() or self._zygote is not None:
                return self._zygote is not None
            try:
                self._zygote = Zygote(self.python, self._warm_environment(), self.work_dir)
            except OSError:
                return False  # out of processes: jobs start as before
            return True

    def _fork(self, argv: list[str], environment: dict[str, str], scratch: str) -> Optional[ForkedTask]:
        zygote = self._zygote
        env_id = _python_env(argv)
        if env_id is not None:
            # @pypi/@conda: once the step's environment is on this machine, its tasks fork from a
            # zygote started in it; until then (the first task fetches or builds it) from the usual one.
            found = self._env_zygote(env_id, environment)
            if found is not None:
                zygote, environment = found
        if zygote is None or not _same_start(zygote.env, environment):
            return None
        forked = zygote.spawn(argv, environment, scratch)
        if forked is None and not zygote.alive() and self._stop_zygote(zygote):
            import logging

            logging.getLogger("flowplane.local.batch").warning(
                "the task zygote ended (exit code %s): tasks start in processes of their own now",
                zygote.process.returncode,
            )
        return forked

    def _env_zygote(self, env_id: str, environment: dict[str, str]) -> Optional[tuple[Zygote, dict[str, str]]]:
        """The zygote of an environment built here and the job's environment inside it, or None."""
        from ..environments import cache
        from ..environments.enter import task_environment

        path = cache.ready_path(env_id)
        if path is None or not self.zygote:
            return None
        with self._lock:
            zygote = self._env_zygotes.get(env_id)
            if zygote is not None and not zygote.alive():
                self._env_zygotes.pop(env_id)
                zygote = None
            if zygote is None:
                if self._closing.is_set() or len(self._env_zygotes) >= MAX_ENV_ZYGOTES:
                    return None
                try:
                    zygote = Zygote(
                        cache.python_of(path), task_environment(self._warm_environment(), path, env_id), self.work_dir
                    )
                except OSError:
                    return None
                self._env_zygotes[env_id] = zygote
        return zygote, task_environment(environment, path, env_id)

    def _stop_env_zygotes(self) -> None:
        with self._lock:
            zygotes, self._env_zygotes = list(self._env_zygotes.values()), {}
        for zygote in zygotes:
            zygote.stop()

    def _stop_zygote(self, which: Optional[Zygote] = None) -> bool:
        """Stop the zygote (only if it is still `which`); whether this call stopped it."""
        with self._lock:
            zygote = self._zygote
            if zygote is None or (which is not None and zygote is not which):
                return False
            self._zygote = None
        zygote.stop()
        return True

    # --- warm task processes ------------------------------------------------------------

    def _warm_environment(self) -> dict[str, str]:
        """What every job's environment has, before the job's own part."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWPLANE_", "MOTO_"))}
        env.update(self._plane_environment())
        env["TMPDIR"] = self.work_dir
        return env

    def _fill_warm(self) -> None:
        """Start interpreters until `warm` wait for a job (in the background: they import alone)."""
        while True:
            with self._lock:
                if self._closing.is_set() or len(self._idle) >= self.warm:
                    return
                env = self._warm_environment()
                try:
                    proc = subprocess.Popen(
                        [self.python, "-m", "flowplane.task.warm"],
                        env=env,
                        cwd=self.work_dir,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        start_new_session=True,
                    )
                except OSError:
                    return  # out of processes: jobs start cold
                run_below_the_plane(proc.pid)
                self._idle.append((proc, env))

    def _take_warm(self, environment: dict[str, str]) -> Optional[subprocess.Popen]:
        """A waiting interpreter whose start matches the job's: same interpreter settings
        (PYTHON*) and AWS settings (AWS_*, but the job's own AWS_BATCH_*), which a process
        reads as it starts."""
        found = None
        with self._lock:
            for entry in list(self._idle):
                proc, env = entry
                if proc.poll() is not None:
                    self._idle.remove(entry)
                    _discard(proc)
                elif found is None and _same_start(env, environment):
                    # The others stay for jobs that fit them (they start as the plane's jobs do).
                    self._idle.remove(entry)
                    found = proc
        self._fill_warm()
        return found

    def _drop_warm(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for proc, _ in idle:
            _discard(proc)

    def _supervise(self, job: Any, proc: Process) -> tuple[int, str]:
        """Wait for the process, streaming its output to the logs; (exit code, reason)."""
        output = _Output()
        readers = [
            threading.Thread(target=_pump, args=(stream, output), daemon=True, name=f"batch-log-{job.job_id}")
            for stream in (proc.stdout, proc.stderr)
        ]
        for r in readers:
            r.start()
        limit = _attempt_seconds(job)
        deadline = time.monotonic() + limit if limit else None
        next_flush = time.monotonic() + self.log_flush_seconds
        reason: Optional[str] = None
        killed_at: Optional[float] = None
        while proc.poll() is None:
            now = time.monotonic()
            if reason is None:
                if job.stop:
                    reason = job.job_stopped_reason or "Terminated"
                elif deadline is not None and now > deadline:
                    reason = TIMED_OUT
                if reason is not None:
                    _signal_group(proc, signals.SIGTERM)
                    killed_at = now
            elif killed_at is not None and now - killed_at > KILL_GRACE_SECONDS:
                _signal_group(proc, signals.SIGKILL)
                killed_at = None
            if now >= next_flush:
                self._flush(job, output)
                next_flush = now + self.log_flush_seconds
            try:
                proc.wait(0.05)
            except subprocess.TimeoutExpired:
                pass
        # The process is gone; whatever it left running in its group goes too (as a
        # container's end does), which also closes the pipes the readers wait on.
        _signal_group(proc, signals.SIGKILL)
        for r in readers:
            r.join(5)
        self._flush(job, output)
        rc = proc.returncode
        if rc < 0:
            name = signals.Signals(-rc).name
            code = 128 - rc
            return code, reason or f"{EXITED}: the process was killed by signal {name} (exit code {code})"
        return rc, reason or EXITED

    def _flush(self, job: Any, output: _Output) -> None:
        events = output.take()
        if events:
            job._log_backend.put_log_events(LOG_GROUP, job.log_stream_name, events)

    def _finish(self, job: Any, code: Optional[int], reason: str, success: bool) -> None:
        container: dict[str, Any] = {"reason": reason}
        if code is not None:
            container["exitCode"] = code
        if job.log_stream_name:
            container["logStreamName"] = job.log_stream_name
        job.__dict__["_flowplane_container"] = container
        job.exit_code = code
        job.job_stopped_reason = reason
        if job.latest_attempt is not None:
            job.latest_attempt["container"].update(container)
            job.latest_attempt["statusReason"] = reason
        job._mark_stopped(success=success)
        self._emit(job)

    def _set_status(self, job: Any, status: str) -> None:
        job.status = status
        self._emit(job)

    def _emit(self, job: Any) -> None:
        if self.emit is None:
            return
        try:
            self.emit(job.describe(), job.arn)
        except Exception:  # an event lost is a record late (the recorder reconciles), never a job lost
            import logging

            logging.getLogger("flowplane.local.batch").exception("could not emit the state of job %s", job.job_id)

    # --- the command and its environment ---------------------------------------------------

    def _command(self, job: Any) -> list[str]:
        command = job._add_parameters_to_command(job._get_container_property("command", []))
        if isinstance(command, str):
            command = [command]
        command = [str(c) for c in command]
        if not command:
            raise ValueError("the job has no command (neither in its overrides nor in its job definition)")
        if command[0] == "flowplane":
            # The image's `flowplane` is this interpreter's.
            command = [self.python, "-m", "flowplane", *command[1:]]
        return command

    def _environment(self, job: Any, scratch: str) -> dict[str, str]:
        # This machine's environment is the "image"; the plane's own AWS and flowplane
        # settings are not the job's business.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWPLANE_", "MOTO_"))}
        env.update(_environment(job))
        env.update(self._plane_environment(env.get("PYTHONPATH")))
        env.update(
            {
                BATCH_JOB_ID: job.job_id,
                "AWS_BATCH_JOB_ATTEMPT": str(len(job.attempts)),
                "AWS_BATCH_JQ_NAME": job.job_queue.name,
                "TMPDIR": scratch,
            }
        )
        return env

    def _plane_environment(self, pythonpath: Optional[str] = None) -> dict[str, str]:
        """The plane's part of every job's environment: its AWS, this package on the path."""
        if pythonpath is None:
            pythonpath = os.environ.get("PYTHONPATH")
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "FLOWPLANE_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (package_root, pythonpath) if p),
        }


def end_orphaned_tasks(work_dir: str) -> int:
    """Kill what a previous plane on this state folder left running: its task, warm and
    zygote processes (each in its own session, so a `kill -9` of the plane does not reach
    them; a zygote ends its tasks when the plane goes, this is for one that could not).
    Called with the state folder's lock held, so no live plane owns them. Linux only (it reads
    /proc); elsewhere nothing is found. Returns how many process groups were killed."""
    import signal

    root = os.path.realpath(work_dir)
    killed = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue  # gone, or not ours to read
        # A task (`-m flowplane task ...`), a warm one (`-m flowplane.task.warm`), the zygote
        # or a task it forked (`-m flowplane.task.zygote`), never, say, the shell of someone
        # looking around a job's folder.
        is_task = any(a in (b"flowplane", b"flowplane.task.warm", b"flowplane.task.zygote") for a in argv)
        if is_task and (cwd == root or cwd.startswith(root + os.sep)):
            try:
                os.killpg(int(entry), signal.SIGKILL)  # a session leader: its group, children too
                killed += 1
            except OSError:
                pass
    return killed


def _environment(job: Any) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in job._get_container_property("environment", [])}


def _vcpus(job: Any) -> int:
    requirements = (job.container_overrides or {}).get("resourceRequirements") or []
    if not requirements and job.job_definition.container_properties:
        requirements = job.job_definition.container_properties.get("resourceRequirements") or []
    for r in requirements:
        if str(r.get("type", "")).upper() == "VCPU":
            try:
                return max(1, math.ceil(float(r["value"])))
            except (KeyError, ValueError):
                break
    return 1


def _attempt_seconds(job: Any) -> Optional[int]:
    for source in (job.timeout, job.job_definition.timeout):
        if source and source.get("attemptDurationSeconds"):
            return int(source["attemptDurationSeconds"])
    return None


def _pump(stream: Any, output: _Output) -> None:
    for line in iter(stream.readline, b""):
        output.add(line)
    stream.close()


# What an interpreter reads as it starts (its flags, path, site folder, locale, time
# zone) or a task's AWS session as it is made: a warm process must have the job's.
_READ_AT_START = ("PYTHON", "AWS_", "HOME", "LANG", "LC_", "TZ")


def _same_start(warm: dict[str, str], job: dict[str, str]) -> bool:
    """Whether a process started with `warm` is as one started with `job` would be, up to
    what it reads only later (the job's own variables, its AWS_BATCH_*, its folder)."""
    keys = {k for k in (*warm, *job) if k.startswith(_READ_AT_START) and not k.startswith("AWS_BATCH_")}
    return all(warm.get(k) == job.get(k) for k in keys)


def _python_env(argv: list[str]) -> Optional[str]:
    """`flowplane task ... --python-env ID`: the step's environment, if it has one."""
    try:
        return argv[argv.index("--python-env") + 1]
    except (ValueError, IndexError):
        return None


def _discard(proc: subprocess.Popen) -> None:
    _signal_group(proc, signals.SIGKILL)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _signal_group(proc: Process, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
