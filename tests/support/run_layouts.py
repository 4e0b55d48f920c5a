"""Write realistic run layouts for Client API tests, with the datastore's own writers.

Everything goes through flowplane.datastore (records.py, ArtifactStore, layout.py),
the same calls the task runtime makes, so a test reads exactly what a real run
leaves behind: a run record, per task a task record, per attempt an attempt
record, an artifact index and stdout/stderr logs. Timestamps come from a
deterministic clock so that "newest first" is testable.

    storage = LocalStorage(tmp_path)
    w = RunWriter(storage, "ParameterFlow", "1700000000001", user="alice", parameters={"alpha": 0.01})
    w.task("start", {"x": 1}, stdout="alpha is 0.010000\\n")
    w.task("end")
    w.finish()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Sequence

from flowplane.datastore import layout, records
from flowplane.datastore.artifacts import ArtifactStore, write_index
from flowplane.datastore.records import AttemptRecord, ErrorInfo, RunRecord, TaskRecord
from flowplane.datastore.storage import Storage

BASE_TIME = datetime(2026, 11, 1, 12, 0, 0, tzinfo=timezone.utc)


class Clock:
    """ISO timestamps that advance by `tick` on every read."""

    def __init__(self, start: datetime = BASE_TIME, tick: timedelta = timedelta(seconds=1)):
        self.now = start
        self.tick = tick

    def __call__(self) -> str:
        value = self.now.isoformat(timespec="milliseconds")
        self.now += self.tick
        return value


def error(exc: BaseException) -> ErrorInfo:
    return ErrorInfo(type=type(exc).__name__, message=str(exc),
                     traceback=f"Traceback (most recent call last):\n  ...\n{type(exc).__name__}: {exc}\n")


@dataclass
class Attempt:
    """One attempt of a task: what it stored, printed and raised."""

    status: str = "succeeded"
    artifacts: Optional[dict[str, Any]] = None
    stdout: str = ""
    stderr: str = ""
    error: Optional[ErrorInfo] = None
    exit_code: Optional[int] = None
    extra: dict[str, Any] = field(default_factory=dict)


class RunWriter:
    """Writes one run. Parameters become artifacts of every task, as in Metaflow."""

    def __init__(self, storage: Storage, flow: str, run_id: str, *, user: str = "alice",
                 tags: Sequence[str] = (), production_token: Optional[str] = None,
                 parameters: Optional[dict[str, Any]] = None, clock: Optional[Clock] = None):
        self.storage = storage
        self.flow = flow
        self.run_id = run_id
        self.clock = clock or Clock()
        self.store = ArtifactStore(storage, flow)
        self.parameters = dict(parameters or {})
        if production_token:
            # As in Metaflow, a production run lives in its deployment's namespace, not in the
            # deploying user's: the user is recorded, but not as a `user:` tag.
            system_tags = ["runtime:step-functions", f"production:{production_token}"]
        else:
            system_tags = [f"user:{user}", "runtime:local"]
        self.run = RunRecord(flow=flow, run_id=run_id, user=user, tags=list(tags), system_tags=system_tags,
                             parameters=self.parameters, created_at=self.clock())
        records.write_run(storage, self.run)

    def task(self, step: str, artifacts: Optional[dict[str, Any]] = None, *,
             foreach_indices: Sequence[int] = (), stdout: str = "", stderr: str = "",
             attempts: Optional[list[Attempt]] = None, task_error: Optional[ErrorInfo] = None) -> TaskRecord:
        """One task; by default a single successful attempt storing `artifacts`."""
        task_id = layout.task_id_for(list(foreach_indices))
        attempts = attempts or [Attempt(artifacts=artifacts, stdout=stdout, stderr=stderr)]
        rec = TaskRecord(flow=self.flow, run_id=self.run_id, step=step, task_id=task_id, status="running",
                         foreach_indices=list(foreach_indices), created_at=self.clock())
        records.write_task(self.storage, rec)
        final = None
        for n, att in enumerate(attempts):
            started = self.clock()
            values = {**self.parameters, **(att.artifacts or {})}
            index = {name: self.store.save(value) for name, value in values.items()}
            write_index(self.storage, self.flow, self.run_id, step, task_id, n, index)
            for stream, text in (("stdout", att.stdout), ("stderr", att.stderr)):
                key = layout.attempt_key(self.flow, self.run_id, step, task_id, n, f"{stream}.log")
                self.storage.put_bytes(key, text.encode())
            exit_code = att.exit_code if att.exit_code is not None else (0 if att.status == "succeeded" else 1)
            records.write_attempt(self.storage, self.flow, self.run_id, step, task_id, AttemptRecord(
                attempt=n, status=att.status, started_at=started, finished_at=self.clock(),
                exit_code=exit_code, error=att.error,
                log_location=layout.attempt_prefix(self.flow, self.run_id, step, task_id, n)))
            if att.status == "succeeded" and final is None:
                final = n
        last = attempts[-1]
        rec = rec.model_copy(update={
            "status": "succeeded" if final is not None else last.status,
            "attempts": len(attempts),
            "final_attempt": final if final is not None else len(attempts) - 1,
            "finished_at": self.clock(),
            "error": task_error or (last.error if final is None else None),
        })
        records.write_task(self.storage, rec)
        return rec

    def finish(self, status: str = "succeeded", failed_task: Optional[TaskRecord] = None) -> RunRecord:
        update: dict[str, Any] = {"status": status, "finished_at": self.clock()}
        if failed_task is not None:
            update.update(failed_task=failed_task.pathspec, error=failed_task.error)
        self.run = self.run.model_copy(update=update)
        records.write_run(self.storage, self.run)
        return self.run


# --- the shapes of run every test needs ------------------------------------------

def _clock(minute: int) -> Clock:
    return Clock(BASE_TIME + timedelta(minutes=minute))


def linear_run(storage: Storage, run_id: str = "1001", *, minute: int = 0, user: str = "alice",
               alpha: float = 0.01, production_token: Optional[str] = None,
               tags: Sequence[str] = (), flow: str = "ParameterFlow") -> RunWriter:
    """ParameterFlow: start prints alpha, end prints it again."""
    w = RunWriter(storage, flow, run_id, user=user, tags=tags, production_token=production_token,
                  parameters={"alpha": alpha}, clock=_clock(minute))
    w.task("start", stdout="alpha is %f\n" % alpha)
    w.task("end", stdout="alpha is still %f\n" % alpha)
    w.finish()
    return w


def branch_run(storage: Storage, run_id: str = "2001", *, minute: int = 0, user: str = "alice") -> RunWriter:
    """BranchFlow: start(x=1) splits to a(x+1) and b(x+2); join sums to total=5."""
    w = RunWriter(storage, "BranchFlow", run_id, user=user, clock=_clock(minute))
    w.task("start", {"x": 1})
    w.task("a", {"x": 2})
    w.task("b", {"x": 3})
    w.task("join", {"total": 5})
    w.task("end", {"total": 5}, stdout="total is 5\n")
    w.finish()
    return w


def foreach_run(storage: Storage, run_id: str = "3001", *, n: int = 10, minute: int = 0,
                user: str = "alice") -> RunWriter:
    """ForeachFlow: `n` square tasks 1.0 .. 1.<n-1>, join sums the squares."""
    w = RunWriter(storage, "ForeachFlow", run_id, user=user, clock=_clock(minute))
    numbers = list(range(n))
    w.task("start", {"numbers": numbers})
    for i in numbers:
        w.task("square", {"numbers": numbers, "value": i * i}, foreach_indices=[i])
    total = sum(i * i for i in numbers)
    w.task("join", {"numbers": numbers, "total": total})
    w.task("end", {"numbers": numbers, "total": total}, stdout="sum of squares is %d\n" % total)
    w.finish()
    return w


def failed_run(storage: Storage, run_id: str = "4001", *, minute: int = 0, user: str = "alice") -> RunWriter:
    """TrainFlow: start succeeds, train raises ValueError; the run fails before end."""
    w = RunWriter(storage, "TrainFlow", run_id, user=user, clock=_clock(minute))
    w.task("start", {"rows": 3})
    failed = w.task("train", attempts=[Attempt(
        status="failed", artifacts={"rows": 3}, stdout="training on 3 rows\n",
        stderr="Traceback (most recent call last):\nValueError: learning rate must be positive\n",
        error=error(ValueError("learning rate must be positive")))])
    w.finish("failed", failed_task=failed)
    return w


def catch_run(storage: Storage, run_id: str = "5001", *, minute: int = 0, user: str = "alice") -> RunWriter:
    """CatchFlow: `divide` raises ZeroDivisionError, @catch(var='compute_failed') stores it, the run goes on."""
    w = RunWriter(storage, "CatchFlow", run_id, user=user, clock=_clock(minute))
    w.task("start", {"d": 0})
    caught = ZeroDivisionError("division by zero")
    w.task("divide", attempts=[Attempt(
        status="succeeded", artifacts={"d": 0, "compute_failed": caught},
        stderr="@catch caught ZeroDivisionError: division by zero\n", error=error(caught))])
    w.task("end", {"d": 0, "compute_failed": caught})
    w.finish()
    return w


def retry_run(storage: Storage, run_id: str = "6001", *, minute: int = 0, user: str = "alice") -> RunWriter:
    """RetryFlow: `flaky` fails on attempt 0 and succeeds on attempt 1 (@retry)."""
    w = RunWriter(storage, "RetryFlow", run_id, user=user, clock=_clock(minute))
    w.task("start", {"tries": 0})
    w.task("flaky", attempts=[
        Attempt(status="failed", artifacts={"tries": 1}, stdout="try 1\n",
                error=error(RuntimeError("flaky service unavailable"))),
        Attempt(status="succeeded", artifacts={"tries": 2, "result": "ok"}, stdout="try 2\n"),
    ])
    w.task("end", {"tries": 2, "result": "ok"})
    w.finish()
    return w


def running_run(storage: Storage, run_id: str = "7001", *, minute: int = 0, user: str = "alice") -> RunWriter:
    """A run still in progress: start done, end not reached yet."""
    w = RunWriter(storage, "ParameterFlow", run_id, user=user, parameters={"alpha": 0.01}, clock=_clock(minute))
    w.task("start", stdout="alpha is 0.010000\n")
    return w


def isolate_client(monkeypatch: Any, root: str, user: str = "alice") -> None:
    """Point the Client API at `root` as `user`, with a fresh default namespace and no
    provider override or task context left over from another test."""
    from flowplane.client import namespaces as ns_module
    from flowplane.client import selection
    from flowplane.client import set_provider
    from flowplane.current import current

    monkeypatch.setenv("FLOWPLANE_DATASTORE_ROOT", str(root))
    monkeypatch.setenv("FLOWPLANE_USER", user)
    monkeypatch.setattr(ns_module, "_current", False)
    monkeypatch.setattr(current, "_info", {})
    set_provider(None)
    # A cached provider may hold a boto3 client made under another test's moto mock.
    monkeypatch.setattr(selection, "_cache", {})


def build_world(storage: Storage) -> dict[str, RunWriter]:
    """Every shape of run, for two users and one production deployment (token `tok1`).

    ParameterFlow runs, oldest to newest: alice 1001 (alpha 0.01), alice 1002
    (alpha 0.5, tag exp:2), bob 1003, production sfn-abc (alpha 0.5), alice
    7001 (still running). BobOnlyFlow has only bob's runs.
    """
    return {
        "p1": linear_run(storage, "1001", minute=0),
        "p2": linear_run(storage, "1002", minute=5, alpha=0.5, tags=["exp:2"]),
        "p_bob": linear_run(storage, "1003", minute=10, user="bob", alpha=0.2),
        "p_prod": linear_run(storage, "sfn-abc", minute=20, alpha=0.5, production_token="tok1"),
        "p_running": running_run(storage, "7001", minute=30),
        "bob_only": linear_run(storage, "1", minute=1, user="bob", flow="BobOnlyFlow"),
        "branch": branch_run(storage, minute=2),
        "foreach": foreach_run(storage, minute=3),
        "failed": failed_run(storage, minute=4),
        "catch": catch_run(storage, minute=6),
        "retry": retry_run(storage, minute=7),
    }
