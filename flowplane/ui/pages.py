"""What each page shows, read through the Client API (flowplane/client/) and nothing else.

Objects (`Flow`, `Run`, `Task`) where one is read; the provider's records
(`get_provider().list_tasks`) where a page needs a whole step's tasks at once, since a
`Task` object reads its attempts when made (a request each through a control plane) and
a run page of a 1,000-task foreach must cost a request a step, not a request a task.
The dashboard reads every namespace (`namespace(None)`), filtering where asked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Optional

from ..client import DeploymentInfo, Flow, Metaflow, Task, get_provider
from ..client.lineage import graph_of
from ..client.times import parse_time
from ..datastore.records import TaskRecord
from ..task.graph import GRAPH_INFO
from . import graph as dag
from . import timeline

RUNS_PER_PAGE = 50
LATEST_RUNS = 12
# Artifacts whose pickle is at most this big are loaded for a preview.
PREVIEW_MAX_BYTES = 4096
PREVIEW_MAX_CHARS = 400
LOG_MAX_CHARS = 512 * 1024
_READERS = 8
# How often a page that shows nothing running looks for what started since (ms).
IDLE_REFRESH_MS = 10_000


def record_of(obj: Any) -> Any:
    """The record a Client API object was read from (the run's status, parameters, error): what
    the objects answer piecemeal, read once. The Client API keeps it as `_record`."""
    return obj._record


def _pool(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, min(_READERS, n)), thread_name_prefix="flowplane-ui-read")


def task_href(flow: str, run: str, step: str, task: str, attempt: Optional[int] = None) -> str:
    from urllib.parse import quote

    base = "/flows/" + "/".join(quote(p, safe="") for p in (flow, "runs", run, "steps", step, "tasks", task))
    return base if attempt is None else f"{base}?attempt={attempt}"


def run_href(flow: str, run: str) -> str:
    from urllib.parse import quote

    return f"/flows/{quote(flow, safe='')}/runs/{quote(run, safe='')}"


def pathspec_href(pathspec: Optional[str]) -> Optional[str]:
    parts = (pathspec or "").split("/")
    if len(parts) == 4:
        return task_href(*parts)
    if len(parts) == 2:
        return run_href(*parts)
    return None


# --- flows -------------------------------------------------------------------------------


def next_fire_time(deployment: Optional[DeploymentInfo], now: Optional[datetime] = None) -> Optional[datetime]:
    """When the deployment's schedule fires next (UTC; a cron in its zone, a rate counting from the
    deploy), None without one."""
    if deployment is None or deployment.deleted or not deployment.schedule:
        return None
    from ..local.scheduler import ScheduleError, next_time

    try:
        return next_time(deployment.schedule, now or datetime.now(timezone.utc), parse_time(deployment.deployed_at),
                         zone=deployment.timezone)
    except ScheduleError:
        return None


def trigger_lines(deployment: Optional[DeploymentInfo]) -> list[str]:
    """The deployed @trigger / @trigger_on_finish, one line each."""
    doc = (deployment.triggers if deployment is not None else None) or {}
    lines = []
    trig = doc.get("trigger") or {}
    for event in trig.get("events") or []:
        lines.append(f"event {event.get('name')}")
    finish = doc.get("trigger_on_finish") or {}
    for upstream in finish.get("flows") or []:
        name = upstream.get("name") if isinstance(upstream, dict) else upstream
        where = [upstream.get(k) for k in ("project", "branch")] if isinstance(upstream, dict) else []
        lines.append("after " + ".".join(str(p) for p in [*where, name] if p))
    if (trig.get("any") or finish.get("any")) and lines:
        lines.append("(any one of them)")
    return lines


def flows_page() -> dict[str, Any]:
    flows = list(Metaflow())

    def summary(flow: Flow) -> dict[str, Any]:
        deployment = flow.deployment
        runs, _ = flow.runs_page(limit=LATEST_RUNS, namespace_tag=None)
        return {
            "name": flow.id,
            "deployment": deployment,
            "next_fire": next_fire_time(deployment),
            "triggers": trigger_lines(deployment),
            "runs": [record_of(r) for r in runs],
        }

    with _pool(len(flows)) as pool:
        rows = list(pool.map(summary, flows))
    return {"flows": rows, "source": get_provider().describe(),
            "live": True if any(r.status == "running" for f in rows for r in f["runs"]) else IDLE_REFRESH_MS}


# --- a flow's runs ----------------------------------------------------------------------------


def runs_page(flow_name: str, status: Optional[str], tag: Optional[str], namespace: Optional[str],
              token: Optional[str]) -> dict[str, Any]:
    flow = Flow(flow_name)
    runs, following = flow.runs_page(status=status, tag=tag, namespace_tag=namespace, limit=RUNS_PER_PAGE,
                                     token=token)
    records = [record_of(r) for r in runs]
    return {
        "flow": flow_name,
        "deployment": flow.deployment,
        "runs": records,
        "next_token": following,
        "filters": {"status": status or "", "tag": tag or "", "namespace": namespace or ""},
        "first_page": token is None,
        # The first page shows new runs as they start; while one on it runs, its status too.
        "live": (True if any(r.status == "running" for r in records) else IDLE_REFRESH_MS) if token is None else False,
    }


# --- a run ------------------------------------------------------------------------------------------


class GraphCache:
    """A run's graph never changes once stored: read once per run (four requests through a plane)."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, run: Any, start_tasks: list[TaskRecord]) -> Optional[Any]:
        key = (run.flow, run.run_id)
        with self._lock:
            if key in self._items:
                return self._items[key]
        stored = [t for t in start_tasks if t.status in ("succeeded", "failed")]
        for rec in stored:
            task = Task(_record=rec, _run=run, _namespace_check=False)
            if GRAPH_INFO in task.data:
                found = graph_of(task[GRAPH_INFO].data)
                with self._lock:
                    self._items[key] = found
                    while len(self._items) > self._size:
                        self._items.popitem(last=False)
                return found
        return None


GRAPHS = GraphCache()


def run_page(flow_name: str, run_id: str) -> dict[str, Any]:
    run = Flow(flow_name, _namespace_check=False)[run_id]
    rec = record_of(run)
    provider = get_provider()
    steps = [s.step for s in provider.list_steps(flow_name, run_id) if not s.step.startswith("_")]
    with _pool(len(steps)) as pool:
        listed = dict(zip(steps, pool.map(lambda s: provider.list_tasks(flow_name, run_id, s), steps)))
    graph = GRAPHS.get(rec, listed.get("start", []))
    nodes = dag.step_nodes(graph, listed)
    all_tasks = [t for s in nodes for t in listed.get(s.name, [])]
    group = len(all_tasks) > timeline.ROWS_PER_TASK_MAX
    spans = []
    for t in all_tasks:
        href = task_href(flow_name, run_id, t.step, t.task_id)
        retried = f" ({t.attempts} attempts)" if t.attempts > 1 else ""
        spans.append(timeline.Span(row=t.step, label=f"{t.step}/{t.task_id}{retried}", status=t.status,
                                   started_at=t.created_at, finished_at=t.finished_at, href=href,
                                   row_href=None if group else href))
    chart = timeline.chart(spans, now=parse_time(rec.finished_at) if rec.status != "running" else None,
                           group_rows=group)
    return {
        "run": rec,
        "flow": flow_name,
        "dag": [n.as_json() for n in nodes],
        "graph_known": graph is not None,
        "chart": chart,
        "grouped": group,
        "task_count": len(all_tasks),
        "trigger": [c.model_dump(mode="json") for c in rec.trigger],
        "failed_href": pathspec_href(rec.failed_task),
        "failed_task_error": _failed_task_error(rec.failed_task),
        "live": rec.status == "running",
    }


def _failed_task_error(pathspec: Optional[str]) -> Optional[Any]:
    """The failed task's own error: the run's names what ended it (on AWS, the state machine's)."""
    parts = (pathspec or "").split("/")
    if len(parts) != 4:
        return None
    found = get_provider().get_task(*parts)
    return found.error if found is not None else None


# --- a task ---------------------------------------------------------------------------------------------


def _preview(artifact: Any) -> Optional[str]:
    if artifact.size > PREVIEW_MAX_BYTES:
        return None
    try:
        text = repr(artifact.data)
    except Exception as e:  # a value this Python cannot unpickle (a class it lacks)
        return f"(cannot show: {type(e).__name__}: {e})"
    return text if len(text) <= PREVIEW_MAX_CHARS else text[:PREVIEW_MAX_CHARS] + "…"


def _tail(text: str) -> tuple[str, bool]:
    return (text, False) if len(text) <= LOG_MAX_CHARS else (text[-LOG_MAX_CHARS:], True)


def task_page(flow_name: str, run_id: str, step: str, task_id: str, attempt: Optional[int]) -> dict[str, Any]:
    pathspec = f"{flow_name}/{run_id}/{step}/{task_id}"
    run = record_of(Flow(flow_name, _namespace_check=False)[run_id])
    task = Task(pathspec, attempt=attempt, _run=run, _namespace_check=False)
    record = record_of(task)
    attempts = get_provider().list_attempts(flow_name, run_id, step, task_id)
    shown = task.current_attempt
    with _pool(2) as pool:
        stdout, stderr = pool.map(lambda s: _tail(getattr(task, s)), ("stdout", "stderr"))
    artifacts = [{"name": a.id, "type": a.type, "size": a.size, "preview": _preview(a)} for a in task]
    spans = [timeline.Span(row=f"attempt {a.attempt}", label=f"attempt {a.attempt}", status=a.status,
                           started_at=a.started_at, finished_at=a.finished_at,
                           href=task_href(flow_name, run_id, step, task_id, a.attempt)) for a in attempts]
    shown_record = next((a for a in attempts if a.attempt == shown), None)
    running = shown_record is not None and shown_record.status in ("running", "pending")
    return {
        "flow": flow_name,
        "run": run,
        "task": record,
        "pathspec": pathspec,
        "attempts": attempts,
        "shown_attempt": shown,
        "chart": timeline.chart(spans),
        "stdout": stdout,
        "stderr": stderr,
        "artifacts": artifacts,
        "exception": task.exception,
        "run_href": run_href(flow_name, run_id),
        "live": running or record.status in ("running", "pending"),
    }

