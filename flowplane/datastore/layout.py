"""Where everything a run leaves behind is stored: one layout for every backend.

Keys are relative to the datastore root (a local folder, default `.flowplane/`,
or an S3 prefix). Local runs and production runs write the same keys, so the
Client API reads either the same way.

    <flow>/data/<sha[:2]>/<sha>                                  artifact blob (pickled, gzip)
    <flow>/runs/<run>/_run.json                                  run record
    <flow>/runs/<run>/<step>/<task>/_task.json                   task record (status, attempts)
    <flow>/runs/<run>/<step>/<task>/<attempt>/_attempt.json      one attempt (times, status, error)
    <flow>/runs/<run>/<step>/<task>/<attempt>/artifacts.json     artifact index {name: {sha, size, type}}
    <flow>/runs/<run>/<step>/<task>/<attempt>/stdout.log, stderr.log
    <flow>/runs/<run>/<step>/<task>/<attempt>/stdout.live, stderr.live   while a local task runs (local folder only)
    <flow>/runs/<run>/<step>/<task>/<attempt>/foreach.json       foreach cardinality written by a split task
    <flow>/runs/<run>/<step>/<task>/<attempt>/cards/cards.json   card index (flowplane/cards/store.py)
    <flow>/runs/<run>/<step>/<task>/<attempt>/cards/<file>.html  one rendered @card, self-contained HTML
    <flow>/datatools/<run>/<key>                                 objects a run put through `S3(run=self)`
"""

from __future__ import annotations

RUN_RECORD = "_run.json"
TASK_RECORD = "_task.json"
ATTEMPT_RECORD = "_attempt.json"
ARTIFACT_INDEX = "artifacts.json"
FOREACH_RECORD = "foreach.json"
LOGS = ("stdout.log", "stderr.log")


def live_log_name(log: str) -> str:
    """Beside `stdout.log`, `stdout.live`: a running local task's lines so far (flowplane/runtime/attempt_output.py)."""
    return log.rsplit(".", 1)[0] + ".live"


def log_times_name(log: str) -> str:
    """Beside `stdout.log`, `stdout.times`: when each of its lines was written."""
    return log.rsplit(".", 1)[0] + ".times"


def blob_key(flow: str, sha: str) -> str:
    return f"{flow}/data/{sha[:2]}/{sha}"


def run_prefix(flow: str, run_id: str) -> str:
    return f"{flow}/runs/{run_id}"


def run_key(flow: str, run_id: str) -> str:
    return f"{run_prefix(flow, run_id)}/{RUN_RECORD}"


def task_prefix(flow: str, run_id: str, step: str, task_id: str) -> str:
    return f"{run_prefix(flow, run_id)}/{step}/{task_id}"


def task_key(flow: str, run_id: str, step: str, task_id: str) -> str:
    return f"{task_prefix(flow, run_id, step, task_id)}/{TASK_RECORD}"


def attempt_prefix(flow: str, run_id: str, step: str, task_id: str, attempt: int) -> str:
    return f"{task_prefix(flow, run_id, step, task_id)}/{int(attempt)}"


def attempt_key(flow: str, run_id: str, step: str, task_id: str, attempt: int, name: str) -> str:
    return f"{attempt_prefix(flow, run_id, step, task_id, attempt)}/{name}"


def task_id_for(foreach_indices: list[int] | tuple[int, ...]) -> str:
    """Deterministic from the position in the graph, so retries keep the id.

    A task outside any foreach is `1`; inside foreach(es) the indices follow:
    `1.3`, nested `1.3.0`. A step's name tells the tasks of different steps apart.
    """
    return ".".join(["1", *(str(int(i)) for i in foreach_indices)])


def indices_of(task_id: str) -> list[int]:
    parts = task_id.split(".")
    if not parts or parts[0] != "1" or not all(p.isdigit() for p in parts[1:]):
        raise ValueError(f"not a flowplane task id: {task_id!r}")
    return [int(p) for p in parts[1:]]


def include_key(flow: str, sha256: str) -> str:
    """A file an `IncludeFile` parameter read on the client, raw bytes, once per content."""
    return f"{flow}/includes/{sha256[:2]}/{sha256}"


def datatools_prefix(flow: str, run_id: str) -> str:
    """Where `S3(run=...)` keeps a run's own objects (Metaflow's DATATOOLS_S3ROOT/<flow>/<run>)."""
    return f"{flow}/datatools/{run_id}"


CARDS = "cards"
CARD_INDEX = "cards.json"


def cards_prefix(flow: str, run_id: str, step: str, task_id: str, attempt: int) -> str:
    """An attempt's cards: rendered by the attempt that succeeded, so read with its artifacts."""
    return f"{attempt_prefix(flow, run_id, step, task_id, attempt)}/{CARDS}"


def card_key(flow: str, run_id: str, step: str, task_id: str, attempt: int, file: str) -> str:
    return f"{cards_prefix(flow, run_id, step, task_id, attempt)}/{file}"
