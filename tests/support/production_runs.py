"""Runs written the two ways a run is left, for the Client API's tests against the real
control plane (no tests here).

One description of a run (`RunShape`) is written with the datastore's writers as a local
run leaves it, and as a production run leaves it: artifacts and logs in the S3 datastore,
metadata from events of AWS's shapes delivered to the recording handlers. `InProcess` is
the Client API's transport into the Chalice app; `moto_opener` fetches presigned URLs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Optional

import requests

from flowplane.client.service import ServiceError
from flowplane.datastore import layout
from flowplane.datastore.artifacts import ArtifactStore
from flowplane.datastore.records import ErrorInfo
from flowplane.datastore.storage import LocalStorage, S3Storage
from tests.support.recording_events import T0, Attempt, TaskPlan, deliver, run_events
from tests.support.run_layouts import Attempt as LocalAttempt
from tests.support.run_layouts import RunWriter

BASE = "https://flowplane.test/api"


class InProcess:
    """A Transport into the Chalice app (chalice.test.Client); counts what it is asked."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.calls: list[str] = []

    def __call__(self, method: str, url: str, headers: dict[str, str], body: Optional[bytes]):
        assert url.startswith(BASE), url
        self.calls.append(url[len(BASE):])
        lowered = {k.lower(): v for k, v in headers.items()}
        r = self.cp.client.http.request(method, url[len(BASE):], headers=lowered, body=body or b"")
        return r.status_code, r.headers, r.body


def moto_opener(url: str) -> io.BytesIO:
    """The presigned S3 URL, fetched with `requests` (moto answers it in-process)."""
    r = requests.get(url, timeout=10)
    if r.status_code != 200:
        raise ServiceError(url.split("?")[0], f"the artifact download failed: {r.text[:200]}", r.status_code)
    return io.BytesIO(r.content)


# --- one description of a run, written both ways ---------------------------------------------


@dataclass
class Try:
    ok: bool = True
    artifacts: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""


@dataclass
class TaskShape:
    step: str
    tries: list[Try]
    foreach: tuple[int, ...] = ()

    @property
    def task_id(self) -> str:
        return layout.task_id_for(list(self.foreach))


@dataclass
class RunShape:
    flow: str
    parameters: dict[str, Any]
    tasks: list[TaskShape]


def _error(n: int) -> dict[str, str]:
    # What recording_events.run_events reports for a failed attempt n.
    return {"type": "ValueError", "message": f"boom {n}", "traceback": "Traceback ...\nValueError: boom"}


def write_local(storage: LocalStorage, shape: RunShape, run_id: str) -> None:
    w = RunWriter(storage, shape.flow, run_id, parameters=shape.parameters)
    for t in shape.tasks:
        attempts = [
            LocalAttempt(status="succeeded" if a.ok else "failed", artifacts=a.artifacts, stdout=a.stdout,
                         stderr=a.stderr, error=None if a.ok else ErrorInfo(**_error(n)))
            for n, a in enumerate(t.tries)
        ]
        w.task(t.step, foreach_indices=t.foreach, attempts=attempts)
    w.finish()


def write_production(cp: Any, shape: RunShape, execution: str, start: int = T0) -> str:
    """Artifacts and logs into the S3 datastore as the task writes them; the run's events
    through the recording handlers. Returns the run id."""
    run_id = f"sfn-{execution}"
    storage = S3Storage(cp.settings.datastore_root, client=cp.aws.packages.client)
    store = ArtifactStore(storage, shape.flow)
    plans = []
    for t in shape.tasks:
        attempts = []
        for n, a in enumerate(t.tries):
            values = {**shape.parameters, **a.artifacts}
            refs = {name: store.save(v) for name, v in values.items()}
            for stream, text in (("stdout", a.stdout), ("stderr", a.stderr)):
                storage.put_bytes(layout.attempt_key(shape.flow, run_id, t.step, t.task_id, n, f"{stream}.log"),
                                  text.encode())
            attempts.append(Attempt(a.ok, {k: {"sha": r.sha, "size": r.size, "type": r.type} for k, r in refs.items()}))
        plans.append(TaskPlan(t.step, t.task_id, attempts))
    for event in run_events(shape.flow, shape.flow, execution, plans, parameters=shape.parameters, start=start):
        outcome = deliver(cp.client, event)
        assert outcome.get("recorded"), outcome
    return run_id


NUMBERS = list(range(10))
SHAPES = {
    "ParameterFlow": RunShape("ParameterFlow", {"alpha": 0.5}, [
        TaskShape("start", [Try(stdout="alpha is 0.500000\n")]),
        TaskShape("end", [Try(stdout="alpha is still 0.500000\n")]),
    ]),
    "ParameterFlow-retried": RunShape("ParameterFlow", {"alpha": 0.25}, [
        TaskShape("start", [Try(ok=False, stdout="try 1\n", stderr="ValueError: boom\n"),
                            Try(stdout="alpha is 0.250000\n")]),
        TaskShape("end", [Try(stdout="alpha is still 0.250000\n")]),
    ]),
    "BranchFlow": RunShape("BranchFlow", {}, [
        TaskShape("start", [Try(artifacts={"x": 1})]),
        TaskShape("a", [Try(artifacts={"x": 2})]),
        TaskShape("b", [Try(artifacts={"x": 3})]),
        TaskShape("join", [Try(artifacts={"total": 5})]),
        TaskShape("end", [Try(artifacts={"total": 5}, stdout="total is 5\n")]),
    ]),
    "ForeachFlow": RunShape("ForeachFlow", {}, [
        TaskShape("start", [Try(artifacts={"numbers": NUMBERS})]),
        *[TaskShape("square", [Try(artifacts={"numbers": NUMBERS, "value": i * i})], foreach=(i,)) for i in NUMBERS],
        TaskShape("join", [Try(artifacts={"numbers": NUMBERS, "total": 285})]),
        TaskShape("end", [Try(artifacts={"numbers": NUMBERS, "total": 285}, stdout="sum of squares is 285\n")]),
    ]),
}
FILES = {"ParameterFlow": "parameter_flow.py", "BranchFlow": "branch_flow.py", "ForeachFlow": "foreach_flow.py"}
