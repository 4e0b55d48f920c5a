"""The local scheduler behind `python flow.py run`.

Tasks start as soon as their inputs are ready (a foreach fans out from the
cardinality its split task wrote, a join waits for all its parents), at most
`max_workers` at once, each in its own process. One thread does everything:
a selector watches the tasks' output pipes and a wake-up pipe that SIGCHLD
writes to, so a finished task is noticed at once without polling (and no
thread exists when the next task is forked).
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ..context import FlowContext
from ..datastore import layout, records
from ..datastore.storage import Storage
from ..job import attempts_before_failing, is_fallback
from ..manifest import GraphSpec
from ..task.graph import TaskRef, children_of, parents_of
from .attempt_output import AttemptOutput
from .launcher import Launcher, TaskProcess
from .progress import Progress

if TYPE_CHECKING:
    from ..resume.clone import Cloner

# Metaflow's guard against a foreach fanning out by mistake (run --max-num-splits).
MAX_NUM_SPLITS = 100
# A task that blocks @timeout's signal is killed this long after its limit.
TIMEOUT_GRACE_SECONDS = 2.0
_WAKEUP = object()


class RunInterrupted(Exception):
    pass


@dataclass
class Attempt:
    ref: TaskRef
    attempt: int
    proc: TaskProcess
    label: str
    started_at: str
    deadline: Optional[float]
    partial: dict[int, bytes] = field(default_factory=dict)
    open_fds: set[int] = field(default_factory=set)
    timed_out: bool = False
    killed_because: Optional[str] = None
    output: AttemptOutput = field(default_factory=AttemptOutput)


@dataclass
class RunSettings:
    run_id: str
    root: str
    max_workers: int
    tags: list[str]
    params: dict[str, Any]
    max_num_splits: int = MAX_NUM_SPLITS
    branch: Optional[str] = None  # @project's branch, resolved from the command line
    # @pypi/@conda: step -> the environment (its lock's sha256) its tasks run in.
    step_environments: dict[str, str] = field(default_factory=dict)
    origin_run_id: Optional[str] = None  # the run `resume` started from


def with_option_text(spec: Any) -> str:
    """A decorator spec back as the `--with` text the task parses."""
    fields = {k: v for k, v in spec.model_dump(exclude={"kind"}).items() if v is not None}
    return spec.kind + (":" + ",".join(f"{k}={v}" for k, v in fields.items()) if fields else "")


class LocalRun:
    def __init__(
        self,
        ctx: FlowContext,
        graph: GraphSpec,
        settings: RunSettings,
        storage: Storage,
        launcher: Launcher,
        progress: Progress,
        cloner: Optional["Cloner"] = None,
    ):
        self.ctx = ctx
        # `resume`: tasks the origin run finished are cloned from it rather than run.
        self.cloner = cloner
        self.cloned: set[TaskRef] = set()
        self.graph = graph
        self.s = settings
        self.storage = storage
        self.launcher = launcher
        self.progress = progress
        self.flow = graph.flow_name
        self.ready: deque[tuple[TaskRef, int]] = deque()
        self.retries: list[tuple[float, TaskRef, int]] = []
        self.running: dict[int, Attempt] = {}  # pid -> attempt
        self.by_fd: dict[int, Attempt] = {}
        self.cardinality: dict[TaskRef, int] = {}
        self.join_pending: dict[TaskRef, set[TaskRef]] = {}
        # The task that failed the run (None: interrupted) and its error.
        self.failed: Optional[tuple[Optional[TaskRef], records.ErrorInfo]] = None
        self.end_done = False
        self._poll_interval: Optional[float] = None
        self._wakeup_fds: list[int] = []
        base = [
            "--flow-file", ctx.flow_file,
            "--datastore-root", settings.root,
            "--params-json", json.dumps(settings.params, separators=(",", ":")),
        ]
        if ctx.configs:
            # The values read when the run started: every task sees (and decorates with) the same.
            base += ["--configs-json", json.dumps(ctx.configs, separators=(",", ":"))]
        for t in settings.tags:
            base += ["--tag", t]
        if settings.branch:
            base += ["--project-branch", settings.branch]
        if settings.origin_run_id:
            base += ["--origin-run-id", settings.origin_run_id]
        for spec in ctx.with_decorators:
            base += ["--with", with_option_text(spec)]
        self.base_argv = base

    # --- the loop -------------------------------------------------------------------

    def execute(self) -> int:
        self.ready.append((TaskRef("start", layout.task_id_for([])), 0))
        self.selector = selectors.DefaultSelector()
        restore = self._install_signals()
        try:
            self._loop()
        except RunInterrupted as e:
            self._abort("RunInterrupted", f"the run was interrupted ({e})")
        except Exception as e:
            # A bug or a broken datastore: stop the tasks, let the caller record and report it.
            self._abort("RuntimeError", f"the runtime failed: {type(e).__name__}: {e}")
            raise
        finally:
            restore()
            self.selector.close()
        return 0 if self.failed is None and self.end_done else 1

    def _loop(self) -> None:
        while True:
            self._launch_ready()
            if not self.running and not self.ready and not self.retries:
                return
            self._turn(self._select_timeout())
            self._check_deadlines()
            self._release_retries()

    def _turn(self, timeout: float) -> None:
        """Wait for output or a child's exit, then handle both."""
        for key, _ in self.selector.select(timeout):
            if key.data is _WAKEUP:
                _drain(key.fd)
            else:
                self._read(key.data, key.fd)
        self._reap()
        for att in self.running.values():
            att.output.flush()
        self.progress.flush()

    def _launch_ready(self) -> None:
        while self.ready and self.failed is None:
            ref, attempt = self.ready[0]
            if attempt == 0 and self.cloner is not None and self._clone(ref):
                self.ready.popleft()
                continue
            if len(self.running) >= self.s.max_workers:
                return
            self.ready.popleft()
            try:
                self._launch(ref, attempt)
            except OSError as e:  # out of processes, file descriptors, ...
                error = records.ErrorInfo(type="LaunchError", message=f"the task could not be started: {e}")
                self.progress.system(f"{self.s.run_id}/{ref}: {error.message}")
                self._mark_task_failed(ref, attempt, error)
                self._fail_run(ref, error)

    def _launch(self, ref: TaskRef, attempt: int) -> None:
        argv = ["--run-id", self.s.run_id, "--step", ref.step, "--task-id", ref.task_id,
                "--retry-count", str(attempt), *self.base_argv]
        env_id = self.s.step_environments.get(ref.step)
        if env_id:
            argv += ["--python-env", env_id]
        proc = self.launcher.launch(argv, close_in_child=[*self.by_fd, *self._wakeup_fds])
        timeout = self.graph[ref.step].decorator("timeout")
        deadline = time.monotonic() + timeout.total_seconds + TIMEOUT_GRACE_SECONDS if timeout else None
        att = Attempt(ref, attempt, proc, f"{self.s.run_id}/{ref.step}/{ref.task_id}", records.now_iso(), deadline,
                      output=AttemptOutput(self._live_folder(ref, attempt)))
        for fd in (proc.stdout_fd, proc.stderr_fd):
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, att)
            self.by_fd[fd] = att
            att.open_fds.add(fd)
        self.running[proc.pid] = att
        note = f" (retry {attempt})" if attempt else ""
        self.progress.task(att.label, proc.pid, f"Task is starting{note}.")

    def _clone(self, ref: TaskRef) -> bool:
        """Clone `ref` from the origin run when it finished there and every input of it was cloned."""
        assert self.cloner is not None
        if not self.cloner.can_clone(ref):
            return False
        parents = parents_of(self.graph, ref.step, ref.task_id, self._num_splits)
        if not all(p.ref in self.cloned for p in parents):
            return False
        attempt = self.cloner.clone(self.s.run_id, ref)
        self.cloned.add(ref)
        self.progress.system(f"[{self.s.run_id}/{ref}] Cloned from {self.cloner.origin_of(ref)}.")
        self._succeeded(ref, attempt)
        return True

    def _live_folder(self, ref: TaskRef, attempt: int) -> Optional[str]:
        """The attempt's folder when the datastore is on this machine: its live logs go there."""
        local_path = getattr(self.storage, "local_path", None)
        if local_path is None:
            return None
        return local_path(layout.attempt_prefix(self.flow, self.s.run_id, ref.step, ref.task_id, attempt))

    def _select_timeout(self) -> float:
        now = time.monotonic()
        times = [a.deadline for a in self.running.values() if a.deadline is not None]
        times += [t for t, _, _ in self.retries]
        wait = min(times) - now if times else 5.0
        if self._poll_interval is not None:
            wait = min(wait, self._poll_interval)
        if any(not a.open_fds for a in self.running.values()):
            # A task whose output ended but whose exit is not known yet: a zygote's task
            # (EnvironmentLauncher), whose status comes over a socket, not as SIGCHLD.
            wait = min(wait, 0.005)
        return max(0.0, min(wait, 5.0))

    # --- output -----------------------------------------------------------------------

    def _read(self, att: Attempt, fd: int, limit: int = 16) -> None:
        """Read what is there (at most `limit` chunks, so one chatty task cannot starve the rest)."""
        for _ in range(limit):
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                data = b""
            if not data:
                self._close_fd(att, fd)
                return
            self._emit(att, fd, att.partial.pop(fd, b"") + data)

    def _emit(self, att: Attempt, fd: int, data: bytes) -> None:
        *lines, rest = data.split(b"\n")
        if rest:
            att.partial[fd] = rest
        err = fd == att.proc.stderr_fd
        for line in lines:
            att.output.line(line, err)
            self.progress.task(att.label, att.proc.pid, line.decode("utf-8", "replace").rstrip("\r"), err=err)

    def _close_fd(self, att: Attempt, fd: int) -> None:
        rest = att.partial.pop(fd, b"")
        if rest:
            self._emit(att, fd, rest + b"\n")
        if fd in att.open_fds:
            att.open_fds.discard(fd)
            self.selector.unregister(fd)
            del self.by_fd[fd]

    # --- processes ending ---------------------------------------------------------------

    def _reap(self) -> None:
        for pid, att in list(self.running.items()):
            code = att.proc.poll()
            if code is None:
                continue
            # Everything the task wrote before exiting is in the pipes now.
            for fd in list(att.open_fds):
                self._read(att, fd, limit=1 << 30)
                self._close_fd(att, fd)
            att.proc.close()
            del self.running[pid]
            try:
                self._finished(att, code)
            finally:
                att.output.close()

    def _finished(self, att: Attempt, code: int) -> None:
        ref = att.ref
        task = records.read_task(self.storage, self.flow, self.s.run_id, ref.step, ref.task_id)
        ok = code == 0 and task is not None and task.status == "succeeded" and task.final_attempt == att.attempt
        error: Optional[records.ErrorInfo] = None
        if not ok:
            error = self._record_unrecorded_failure(att, code, task)
        pid = att.proc.pid
        if ok:
            self.progress.task(att.label, pid, "Task finished successfully.")
            self._succeeded(ref, att.attempt)
            return
        node = self.graph[ref.step]
        retry = node.decorator("retry")
        retry_times = retry.times if retry else 0
        has_catch = node.decorator("catch") is not None
        # A @catch step that died without an exception (killed, out of memory) gets
        # Metaflow's fallback attempts, as on Step Functions: they run no user code.
        times = attempts_before_failing(retry_times, has_catch)
        if att.attempt < times and self.failed is None and att.killed_because is None:
            nxt = att.attempt + 1
            if is_fallback(nxt, retry_times, has_catch):
                what = f"@catch's fallback attempt {nxt} records how it died"
            else:
                what = f"retrying (attempt {nxt + 1} of {retry_times + 1})"
            self.progress.task(att.label, pid, f"Task failed; {what}.")
            # As Metaflow's local runtime: the next attempt starts at once. minutes_between_retries
            # is honoured only on Step Functions (the state machine's Retry interval), where a
            # retry waits for flaky remote resources; locally a wait only slows development.
            self.retries.append((time.monotonic(), ref, nxt))
            return
        if att.killed_because is None:
            self.progress.task(att.label, pid, "Task failed.", err=True)
        self._mark_task_failed(ref, att.attempt, error)
        if self.failed is None:
            self._fail_run(ref, error)

    def _record_unrecorded_failure(
        self, att: Attempt, code: int, task: Optional[records.TaskRecord]
    ) -> records.ErrorInfo:
        """The task's error as it recorded it; if it could not (killed, crashed), record it here."""
        ref = att.ref
        rec = records.read_attempt(self.storage, self.flow, self.s.run_id, ref.step, ref.task_id, att.attempt)
        if rec is not None and rec.status == "failed" and rec.error is not None:
            return rec.error
        if att.timed_out:
            limit = self.graph[ref.step].decorator("timeout").total_seconds
            error = records.ErrorInfo(type="TaskTimeout", message=f"step {ref.step!r} timed out after {limit} s (killed)")
        elif att.killed_because:
            error = records.ErrorInfo(type="TaskKilled", message=att.killed_because)
        elif code == 0:
            error = records.ErrorInfo(type="TaskFailed", message="the task exited without recording its result")
        elif code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            why = " (segmentation fault)" if -code == signal.SIGSEGV else ""
            error = records.ErrorInfo(type="TaskKilled", message=f"the task process was killed by {name}{why}")
        else:
            error = records.ErrorInfo(type="TaskFailed", message=f"the task process exited with code {code}")
        started = rec.started_at if rec is not None else att.started_at
        log_prefix = layout.attempt_prefix(self.flow, self.s.run_id, ref.step, ref.task_id, att.attempt)
        # What it printed before dying explains it; it could not store that itself.
        att.output.store_if_missing(self.storage, log_prefix, f"{error.type}: {error.message}")
        records.write_attempt(
            self.storage, self.flow, self.s.run_id, ref.step, ref.task_id,
            records.AttemptRecord(
                attempt=att.attempt, status="failed", started_at=started, finished_at=records.now_iso(),
                exit_code=code, error=error, log_location=log_prefix,
            ),
        )
        return error

    def _mark_task_failed(self, ref: TaskRef, attempt: int, error: Optional[records.ErrorInfo]) -> None:
        task = records.read_task(self.storage, self.flow, self.s.run_id, ref.step, ref.task_id)
        if task is None:
            task = records.TaskRecord(
                flow=self.flow, run_id=self.s.run_id, step=ref.step, task_id=ref.task_id,
                foreach_indices=layout.indices_of(ref.task_id),
            )
        if task.status == "failed" and task.final_attempt == attempt:
            return
        task.status, task.final_attempt, task.finished_at = "failed", attempt, records.now_iso()
        task.attempts = max(task.attempts, attempt + 1)
        task.error = error
        records.write_task(self.storage, task)

    def _succeeded(self, ref: TaskRef, attempt: int) -> None:
        node = self.graph[ref.step]
        if node.type == "end":
            self.end_done = True
            return
        if node.type == "foreach":
            key = layout.attempt_key(self.flow, self.s.run_id, ref.step, ref.task_id, attempt, layout.FOREACH_RECORD)
            n = int(json.loads(self.storage.get_bytes(key))["num_splits"])
            if n > self.s.max_num_splits:
                self._too_many_splits(ref, attempt, n)
                return
            self.cardinality[ref] = n
            self.progress.system(f"Foreach yields {n} child step{'s' if n != 1 else ''}.")
        for child in children_of(self.graph, ref.step, ref.task_id, self._num_splits):
            if self.graph[child.step].type != "join":
                self.ready.append((child, 0))
                continue
            pending = self.join_pending.get(child)
            if pending is None:
                parents = parents_of(self.graph, child.step, child.task_id, self._num_splits)
                pending = self.join_pending[child] = {p.ref for p in parents}
            pending.discard(ref)
            if not pending:
                del self.join_pending[child]
                self.ready.append((child, 0))

    def _num_splits(self, ref: TaskRef) -> int:
        return self.cardinality[ref]

    def _too_many_splits(self, ref: TaskRef, attempt: int, n: int) -> None:
        """Metaflow fails the split task (no retry) rather than start that many tasks."""
        error = records.ErrorInfo(
            type="TaskFailed",
            message=f"Foreach in step *{ref.step}* yielded {n} child steps which is more than the current "
            f"maximum of {self.s.max_num_splits} children. You can raise the maximum with the "
            "--max-num-splits option.",
        )
        self.progress.system(error.message)
        self._mark_task_failed(ref, attempt, error)
        self._fail_run(ref, error)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for att in self.running.values():
            if att.deadline is not None and now >= att.deadline and not att.timed_out:
                att.timed_out = True
                limit = self.graph[att.ref.step].decorator("timeout").total_seconds
                self.progress.task(att.label, att.proc.pid, f"Task timed out after {limit} s; killing it.", err=True)
                att.proc.kill()

    def _release_retries(self) -> None:
        if not self.retries:
            return
        now = time.monotonic()
        due = [r for r in self.retries if r[0] <= now]
        self.retries = [r for r in self.retries if r[0] > now]
        for _, ref, attempt in sorted(due, key=lambda r: r[0]):
            if self.failed is None:
                self.ready.append((ref, attempt))

    # --- failure ---------------------------------------------------------------------

    def _fail_run(self, ref: TaskRef, error: Optional[records.ErrorInfo]) -> None:
        self.failed = (ref, error or records.ErrorInfo(type="TaskFailed", message="the task failed"))
        pathspec = f"{self.flow}/{self.s.run_id}/{ref}"
        self._stop_all(f"stopped because {pathspec} failed")

    def _stop_all(self, reason: str) -> None:
        """As Metaflow: once the run has failed, running tasks are stopped, pending ones never start."""
        self.ready.clear()
        for _, ref, attempt in self.retries:
            # The task already failed attempt-1 and would have been retried.
            self._mark_task_failed(ref, attempt - 1, records.ErrorInfo(type="TaskKilled", message=reason))
        self.retries.clear()
        for att in self.running.values():
            if att.killed_because is None:
                att.killed_because = reason
                att.proc.kill()

    def _abort(self, kind: str, reason: str) -> None:
        if self.failed is None:
            self.failed = (None, records.ErrorInfo(type=kind, message=reason))
        self._stop_all(reason)
        deadline = time.monotonic() + 10
        while self.running and time.monotonic() < deadline:
            self._turn(0.05)

    # --- signals ------------------------------------------------------------------------

    def _install_signals(self) -> Any:
        """SIGCHLD wakes the selector; SIGINT/SIGTERM stop the run cleanly."""
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        try:
            old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except ValueError:
            # Not the main thread: no signals here, poll the children instead.
            os.close(r)
            os.close(w)
            self._poll_interval = 0.01
            return lambda: None
        self._wakeup_fds = [r, w]
        self.selector.register(r, selectors.EVENT_READ, _WAKEUP)

        def interrupted(signum: int, frame: Any) -> None:
            raise RunInterrupted(signal.Signals(signum).name)

        old = {
            signal.SIGCHLD: signal.signal(signal.SIGCHLD, lambda *_: None),
            signal.SIGINT: signal.signal(signal.SIGINT, interrupted),
            signal.SIGTERM: signal.signal(signal.SIGTERM, interrupted),
        }

        def restore() -> None:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_fd)
            for fd in (r, w):
                os.close(fd)
            self._wakeup_fds = []

        return restore


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, OSError):
        pass
