"""The provider over the control plane's read routes (notes/HELPERS.md, "Client API over
the control plane"): production runs read as local ones do, through the same classes.

Requests go through flowplane.api_client.ApiClient (one HTTP client for the SDK);
artifact values come from the presigned S3 URL the artifact route hands out,
streamed and decoded by the datastore's own ArtifactStore.load. Nothing here
imports boto3 or requests.

get_provider() reads through this provider, combined with the local datastore
(combined.py), when a control plane is configured (configured_service_url) or a
`flowplane local` is running; objects and values read are the same classes and
answers as over the local datastore.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Optional

from pydantic import ValidationError

from .. import user_config
from ..datastore import layout
from ..datastore.artifacts import ArtifactRef, ArtifactStore
from ..datastore.records import AttemptRecord, RunRecord, TaskRecord
from .exceptions import ClientError, NotFound
from .lazy_runs import LazyRuns
from .local import _ok
from .provider import DeploymentInfo, FlowInfo, LogStream, RunsPage, StepInfo

if TYPE_CHECKING:
    from ..api_client import ApiClient, Transport

UrlOpener = Callable[[str], IO[bytes]]

_SHA = re.compile(r"^[0-9a-f]{64}$")
# Growing pages: `latest_run` costs one small query, a full listing few large ones.
PAGE_SIZES = (20, 100, 500, 1000)
# A step's tasks come this many to a request (the route's largest page, one DynamoDB
# Query): a foreach of 100,000 items is 100 answers, never one too big for API Gateway.
TASK_PAGE = 1000
# Presigned blob URLs asked for in one request (the route's most).
BLOB_URL_PAGE = 500
# What one read brings along for the next (a task answer's attempts for the Task's
# list_attempts) is handed over once, and only this fresh: a running task's records move on.
_HANDOFF_FRESH_S = 5.0
# Blobs whose pickle is this small are kept (compressed) for other tasks with the same
# value, e.g. a parameter every task inherits; larger ones are streamed, never held.
_CACHE_BLOB_MAX = 8 << 20
_CACHE_TOTAL = 64 << 20


class ServiceError(ClientError):
    """The control plane answered with an error (other than "not found"), or not at all."""

    headline = "Control plane error"

    def __init__(self, url: str, message: str, status: Optional[int] = None, body: Optional[dict] = None,
                 *, unreachable: bool = False, method: str = "GET"):
        self.url = url
        self.status = status
        self.body = body or {}
        self.reason = message
        # No answer at all (refused, unresolvable, down): what the combined provider
        # (combined.py) tells apart from a plane that answered with an error.
        self.unreachable = unreachable
        code = f"HTTP {status}: " if status else ""
        super().__init__(f"{method} {url} failed: {code}{message}")


def _redact(url: str) -> str:
    """A presigned URL without its query: the signature is a credential for a while."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def urllib_opener(timeout: float = 60.0) -> UrlOpener:
    """Opens a presigned URL as a stream (stdlib only, like the API client's transport)."""

    def open_url(url: str) -> IO[bytes]:
        import urllib.error
        import urllib.request

        try:
            return urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout)
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode("utf-8", "replace")
            raise ServiceError(_redact(url), f"the artifact download failed: {detail}", e.code) from None
        except urllib.error.URLError as e:
            raise ServiceError(_redact(url), f"cannot reach it: {e.reason}", unreachable=True) from None

    return open_url


class _Blobs:
    """A read-only Storage for ArtifactStore.load: its one blob key maps to an open stream."""

    def __init__(self, key: str, open_stream: Callable[[], IO[bytes]]):
        self.root = "service"
        self._key = key
        self._open = open_stream

    def open_read(self, key: str) -> IO[bytes]:
        if key != self._key:  # ArtifactStore asks for exactly the key it was given
            raise KeyError(key)
        return self._open()


class _RunPages(LazyRuns):
    """Runs newest first, fetched page by page as they are read (`next_token`)."""

    _read_as = ("fetched", "more to fetch")

    def __init__(self, fetch: Callable[[int, Optional[str]], tuple[list[RunRecord], Optional[str]]],
                 limit: Optional[int] = None):
        super().__init__(limit)
        self._fetch = fetch
        self._token: Optional[str] = None
        self._seen_tokens: set[str] = set()
        self._pages = 0

    def _more(self) -> None:
        with self._lock:
            if self._done:
                return
            size = PAGE_SIZES[min(self._pages, len(PAGE_SIZES) - 1)]
            if self._limit is not None:
                size = min(size, self._limit - len(self._items))
            page, token = self._fetch(size, self._token)
            self._pages += 1
            self._items.extend(page)
            if self._limit is not None and len(self._items) >= self._limit:
                del self._items[self._limit:]
                self._done = True
            elif not token:
                self._done = True
            elif token in self._seen_tokens:
                raise ClientError(f"the control plane returned next_token {token!r} twice while listing runs")
            else:
                self._seen_tokens.add(token)
                self._token = token



class ServiceProvider:
    """Reads flows, runs, steps, tasks, artifacts and logs from the control plane."""

    def __init__(self, base_url: Optional[str] = None, *, client: Optional["ApiClient"] = None,
                 transport: Optional["Transport"] = None, open_url: Optional[UrlOpener] = None,
                 retries: Optional[int] = None, sleep: Optional[Callable[[float], None]] = None):
        """retries, sleep: the attempts and the sleep of the client's retry policy
        (flowplane/api_retry.py), which retries every request; its defaults otherwise."""
        if client is None:
            from ..api_client import ApiClient
            from ..api_retry import RetryPolicy

            changes: dict[str, Any] = {}
            if retries is not None:
                changes["attempts"] = max(1, retries)
            if sleep is not None:
                changes["sleep"] = sleep
            client = ApiClient(base_url, transport, retry=RetryPolicy(**changes))
        self.client = client
        self._open_url = open_url or urllib_opener()
        self._lock = threading.Lock()
        # (flow, sha) -> where it was listed: the artifact route is addressed by task and name.
        self._where: dict[tuple[str, str], tuple[str, str, str, int, str, int]] = {}
        self._blobs: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._blob_bytes = 0
        self._handoff: dict[tuple[str, ...], tuple[float, list[Any]]] = {}

    def describe(self) -> str:
        return f"service@{self.client.base_url}"

    def run_objects(self, flow: str, run: str, prefix: str, recursive: bool,
                    token: Optional[str] = None) -> Optional[dict[str, Any]]:
        """One page of the objects the run put with S3(run=self) (the route's answer), None
        when the run does not exist; read by flowplane/datatools/service.py."""
        query = {"prefix": prefix or None, "recursive": "1" if recursive else None, "next": token}
        return self._get(_path(flow, run, "objects"), query)

    def open_url(self, url: str) -> IO[bytes]:
        """A presigned URL the plane handed out, as a stream."""
        return self._open_url(url)

    # --- HTTP ----------------------------------------------------------------

    def _get(self, path: str, query: Optional[dict[str, Any]] = None) -> Optional[dict[str, Any]]:
        """The JSON answer; None for the contract's 404 (`code: not_found`)."""
        return self._ask("GET", path, query)

    def _ask(self, method: str, path: str, query: Optional[dict[str, Any]] = None,
             body: Optional[dict[str, Any]] = None) -> Optional[dict[str, Any]]:
        from ..api_client import ApiError, Unreachable

        url = self.client.base_url + path
        if query:
            shown = {k: v for k, v in query.items() if v is not None}
            url += ("?" + urllib.parse.urlencode(shown)) if shown else ""
        # Transient failures were retried by the client already (flowplane/api_retry.py).
        try:
            answer = self.client.request(method, path, query=query, body=body)
        except Unreachable as e:
            raise ServiceError(url, str(e), unreachable=True, method=method) from None
        except user_config.ConfigError as e:
            # Settings or credentials: an answer of a kind, not an absent plane.
            raise ServiceError(url, str(e), method=method) from None
        except OSError as e:
            # A transport other than urllib's, cut or timed out mid-answer.
            raise ServiceError(url, f"cannot reach it: {e}", unreachable=True, method=method) from None
        except ApiError as e:
            if e.status == 404 and e.body.get("code") == "not_found":
                return None
            if e.status == 404:
                # Not the contract's 404: a route this control plane does not have.
                raise ServiceError(url, f"no such route on the control plane (is it older than the SDK?): "
                                        f"{e.describe()}", e.status, e.body, method=method) from None
            raise ServiceError(url, e.describe(), e.status, e.body, method=method) from None
        if not isinstance(answer, dict):
            raise ServiceError(url, f"expected a JSON object, got {type(answer).__name__}", method=method)
        return answer

    def _model(self, model: type, doc: Any, path: str) -> Any:
        try:
            return model.model_validate(doc)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ServiceError(self.client.base_url + path,
                               f"unexpected answer: {model.__name__}.{where}: {first['msg']}") from None

    def _list(self, answer: dict[str, Any], key: str, path: str) -> list[Any]:
        items = answer.get(key)
        if not isinstance(items, list):
            raise ServiceError(self.client.base_url + path, f"unexpected answer: no list {key!r}")
        return items

    # --- flows and runs ----------------------------------------------------------

    def list_flows(self) -> list[FlowInfo]:
        answer = self._get("/flows") or {"flows": []}
        out = []
        for doc in self._list(answer, "flows", "/flows"):
            if isinstance(doc, dict) and _ok(doc.get("name", "")):
                out.append(FlowInfo(name=doc["name"], created_at=str(doc.get("created_at") or "")))
        return sorted(out, key=lambda f: f.name)

    def get_flow(self, flow: str) -> Optional[FlowInfo]:
        if not _ok(flow):
            return None
        doc = self._get(f"/flows/{_seg(flow)}")
        if doc is None:
            return None
        return FlowInfo(name=str(doc.get("name") or flow), created_at=str(doc.get("created_at") or ""),
                        deployment=_deployment(doc))

    def list_runs(self, flow: str, namespace_tag: Optional[str] = None,
                  limit: Optional[int] = None) -> Sequence:  # Sequence[RunRecord], read lazily
        if not _ok(flow):
            return []
        path = f"/flows/{_seg(flow)}/runs"

        def fetch(size: int, token: Optional[str]) -> tuple[list[RunRecord], Optional[str]]:
            answer = self._get(path, {"namespace": namespace_tag, "limit": size, "next_token": token})
            if answer is None:
                return [], None
            runs = [self._model(RunRecord, doc, path) for doc in self._list(answer, "runs", path)]
            token = answer.get("next_token")
            return runs, token if isinstance(token, str) and token else None

        return _RunPages(fetch, None if limit is None else max(0, int(limit)))

    def runs_page(self, flow: str, namespace_tag: Optional[str] = None, tag: Optional[str] = None,
                  status: Optional[str] = None, limit: int = 50, token: Optional[str] = None) -> RunsPage:
        """One request: the route filters (a filtered page may be short and still have a next)."""
        if not _ok(flow):
            return [], None
        path = f"/flows/{_seg(flow)}/runs"
        answer = self._get(path, {"namespace": namespace_tag, "tag": tag, "status": status, "limit": limit,
                                  "next_token": token})
        if answer is None:
            return [], None
        runs = [self._model(RunRecord, doc, path) for doc in self._list(answer, "runs", path)]
        following = answer.get("next_token")
        return runs, following if isinstance(following, str) and following else None

    def get_run(self, flow: str, run: str) -> Optional[RunRecord]:
        if not _ok(flow, run):
            return None
        path = _path(flow, run)
        doc = self._get(path)
        return None if doc is None else self._model(RunRecord, doc, path)

    # --- steps and tasks -----------------------------------------------------------

    def _step_info(self, flow: str, run: str, doc: Any, path: str) -> StepInfo:
        if not isinstance(doc, dict) or not _ok(str(doc.get("name", ""))):
            raise ServiceError(self.client.base_url + path, "unexpected answer: a step without a valid name")
        count = doc.get("task_count")
        if not isinstance(count, int) or isinstance(count, bool):
            # The contract's step has no count, and counting would read every task of a
            # wide foreach: a Step costs one request, its tasks are read as they are iterated.
            count = None
        return StepInfo(flow=flow, run_id=run, step=doc["name"], created_at=str(doc.get("created_at") or ""),
                        task_count=count)

    def list_steps(self, flow: str, run: str) -> list[StepInfo]:
        if not _ok(flow, run):
            return []
        path = _path(flow, run, "steps")
        answer = self._get(path)
        if answer is None:
            return []
        return [self._step_info(flow, run, doc, path) for doc in self._list(answer, "steps", path)]

    def get_step(self, flow: str, run: str, step: str) -> Optional[StepInfo]:
        if not _ok(flow, run, step):
            return None
        path = _path(flow, run, "steps", step)
        doc = self._get(path)
        return None if doc is None else self._step_info(flow, run, doc, path)

    def _task(self, doc: Any, path: str) -> TaskRecord:
        """A TaskRecord; a task answer's `attempts` list (TaskRecord.attempts is a count) is kept aside."""
        if isinstance(doc, dict) and isinstance(doc.get("attempts"), list):
            attempts = sorted((self._model(AttemptRecord, a, path) for a in doc["attempts"]),
                              key=lambda a: a.attempt)
            doc = {**doc, "attempts": len(attempts)}
            rec = self._model(TaskRecord, doc, path)
            self._hand_over(("attempts", rec.pathspec), attempts)
            return rec
        return self._model(TaskRecord, doc, path)

    def list_tasks(self, flow: str, run: str, step: str) -> list[TaskRecord]:
        return list(self.iter_tasks(flow, run, step))

    def iter_tasks(self, flow: str, run: str, step: str) -> Iterator[TaskRecord]:
        """In foreach index order (the table's sort key), one request a page, each asked for
        only when the one before has been read."""
        if not _ok(flow, run, step):
            return
        path = _path(flow, run, "steps", step, "tasks")
        for doc in self._step_pages(path, "tasks"):
            yield self._task(doc, path)

    def _step_pages(self, path: str, key: str) -> Iterator[dict]:
        """The documents under `key` of a step listing's pages, TASK_PAGE a request, each page asked
        for only when the one before has been read; nothing for an unknown run or step."""
        token: Optional[str] = None
        while True:
            answer = self._get(path, {"limit": TASK_PAGE, "next_token": token})
            if answer is None:
                return
            yield from self._list(answer, key, path)
            following = answer.get("next_token")
            if not following:
                return
            if following == token:
                raise ClientError(f"the control plane returned next_token {token!r} twice while listing {key}")
            token = following

    def get_task(self, flow: str, run: str, step: str, task: str) -> Optional[TaskRecord]:
        if not _ok(flow, run, step, task):
            return None
        path = _path(flow, run, "steps", step, "tasks", task)
        doc = self._get(path)
        return None if doc is None else self._task(doc, path)

    def list_attempts(self, flow: str, run: str, step: str, task: str) -> list[AttemptRecord]:
        if not _ok(flow, run, step, task):
            return []
        key = ("attempts", f"{flow}/{run}/{step}/{task}")
        held = self._take(key)
        if held is not None:
            return held
        if self.get_task(flow, run, step, task) is None:
            return []
        return self._take(key) or []

    def _hand_over(self, key: tuple[str, ...], items: list[Any]) -> None:
        with self._lock:
            self._handoff[key] = (time.monotonic(), list(items))

    def _take(self, key: tuple[str, ...]) -> Optional[list[Any]]:
        with self._lock:
            held = self._handoff.pop(key, None)
            now = time.monotonic()
            # Whatever was never taken is dropped once stale, so the map stays small.
            for k in [k for k, (t, _) in self._handoff.items() if now - t > _HANDOFF_FRESH_S]:
                del self._handoff[k]
        if held is None or now - held[0] > _HANDOFF_FRESH_S:
            return None
        return list(held[1])

    # --- artifacts and logs ------------------------------------------------------

    def artifact_index(self, flow: str, run: str, step: str, task: str,
                       attempt: int) -> dict[str, ArtifactRef]:
        if not _ok(flow, run, step, task):
            return {}
        path = _path(flow, run, "steps", step, "tasks", task, "artifacts")
        answer = self._get(path, {"attempt": int(attempt)})
        if answer is None:
            return {}
        docs = answer.get("artifacts")
        if not isinstance(docs, dict):
            raise ServiceError(self.client.base_url + path, "unexpected answer: no object 'artifacts'")
        index = {}
        for name, doc in docs.items():
            try:
                ref = ArtifactRef(sha=str(doc["sha"]), size=int(doc["size"]), type=str(doc.get("type", "")))
            except (KeyError, TypeError, ValueError):
                raise ServiceError(self.client.base_url + path,
                                   f"unexpected answer: artifact {name!r} has no sha and size") from None
            index[name] = ref
        with self._lock:
            for name, ref in index.items():
                self._where[(flow, ref.sha)] = (run, step, task, int(attempt), name, ref.size)
        return index

    def load_artifact(self, flow: str, sha: str) -> Any:
        if not _ok(flow) or not isinstance(sha, str) or not _SHA.match(sha):
            raise KeyError(f"not an artifact address: {flow}/{sha}")
        key = (flow, sha)
        with self._lock:
            cached = self._blobs.get(key)
            if cached is not None:
                self._blobs.move_to_end(key)
            where = self._where.get(key)
        if cached is not None:
            return self._decode(flow, sha, lambda: io.BytesIO(cached))
        if where is None:
            # The artifact route is addressed by task and name, not by content.
            raise NotFound(f"artifact {sha} of {flow} was not listed by any task read through "
                           f"{self.describe()}; read it from its task (task['name'].data)")
        run, step, task, attempt, name, size = where
        path = _path(flow, run, "steps", step, "tasks", task, "artifacts", name)
        answer = self._get(path, {"attempt": attempt})
        if answer is None:
            raise NotFound(f"DataArtifact('{flow}/{run}/{step}/{task}/{name}') (attempt {attempt}) does not exist "
                           f"on {self.describe()}")
        url = answer.get("url")
        if not isinstance(url, str) or not url:
            raise ServiceError(self.client.base_url + path, "unexpected answer: no 'url' to download from")
        if size > _CACHE_BLOB_MAX:
            return self._decode(flow, sha, lambda: self._open_url(url))
        stream = self._open_url(url)
        try:
            data = stream.read()
        finally:
            stream.close()
        self._keep(key, data)
        return self._decode(flow, sha, lambda: io.BytesIO(data))

    def _decode(self, flow: str, sha: str, open_stream: Callable[[], IO[bytes]]) -> Any:
        key = layout.blob_key(flow, sha)
        return ArtifactStore(_Blobs(key, open_stream), flow).load(sha)  # type: ignore[arg-type]

    def _keep(self, key: tuple[str, str], data: bytes) -> None:
        with self._lock:
            if key in self._blobs:
                return
            self._blobs[key] = data
            self._blob_bytes += len(data)
            while self._blob_bytes > _CACHE_TOTAL and self._blobs:
                _, dropped = self._blobs.popitem(last=False)
                self._blob_bytes -= len(dropped)

    def step_artifact_indexes(self, flow: str, run: str, step: str) -> Iterator[tuple[str, int, dict[str, ArtifactRef]]]:
        """(task id, attempt, artifact index) of every recorded attempt of the step's tasks, in task
        order, a page of 1,000 a request: how `resume` reads a wide foreach's indices."""
        if not _ok(flow, run, step):
            return
        path = _path(flow, run, "steps", step, "artifacts")
        for doc in self._step_pages(path, "indexes"):
            try:
                task, attempt = str(doc["task_id"]), int(doc["attempt"])
                index = {n: ArtifactRef(sha=str(r["sha"]), size=int(r["size"]), type=str(r.get("type", "")))
                         for n, r in doc["artifacts"].items()}
            except (KeyError, TypeError, ValueError, AttributeError):
                raise ServiceError(self.client.base_url + path, "unexpected answer: an index without "
                                   "task_id, attempt and artifacts of sha and size") from None
            yield task, attempt, index

    def blob_urls(self, flow: str, shas: list[str]) -> dict[str, str]:
        """Presigned GETs of the flow's artifact blobs by sha, 500 a request (`POST /flows/{flow}/blobs`)."""
        path = f"/flows/{_seg(flow)}/blobs"
        out: dict[str, str] = {}
        for start in range(0, len(shas), BLOB_URL_PAGE):
            answer = self._ask("POST", path, body={"shas": shas[start:start + BLOB_URL_PAGE]}) or {}
            urls = answer.get("urls")
            if not isinstance(urls, dict):
                raise ServiceError(self.client.base_url + path, "unexpected answer: no object 'urls'", method="POST")
            out.update(urls)
        return out

    def logs(self, flow: str, run: str, step: str, task: str, attempt: int, stream: LogStream) -> str:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"a log stream is 'stdout' or 'stderr', got {stream!r}")
        if not _ok(flow, run, step, task):
            return ""
        path = _path(flow, run, "steps", step, "tasks", task, "logs", stream)
        answer = self._get(path, {"attempt": int(attempt)})
        if answer is None:
            return ""
        text = answer.get("text")
        if not isinstance(text, str):
            raise ServiceError(self.client.base_url + path, "unexpected answer: no string 'text'")
        return text

    def list_cards(self, flow: str, run: str, step: str, task: str, attempt: int) -> list[Any]:
        """The cards route's listing (chalicelib/query/cards.py); each card's HTML is read
        from its presigned URL when asked for."""
        if not _ok(flow, run, step, task):
            return []
        from ..cards.store import CardEntry, StoredCard

        path = _path(flow, run, "steps", step, "tasks", task, "cards")
        answer = self._get(path, {"attempt": int(attempt)})
        if answer is None:
            return []
        out = []
        try:
            for doc in answer["cards"]:
                url = str(doc.pop("url"))
                out.append(StoredCard(CardEntry(**doc), lambda u=url: self._read_text(u)))
        except (KeyError, TypeError, ValueError, ValidationError) as e:
            raise ServiceError(self.client.base_url + path, f"unexpected answer: {e}") from None
        return out

    def _read_text(self, url: str) -> str:
        with self._open_url(url) as body:
            return body.read().decode("utf-8")


def _deployment(doc: dict[str, Any]) -> Optional[DeploymentInfo]:
    """The deployment fields of GET /flows/{flow} (chalicelib/query/reads.py), None if never deployed."""
    if not doc.get("deployed"):
        return None
    version = doc.get("production_version")
    triggers = doc.get("triggers")
    return DeploymentInfo(
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        deployer=doc.get("deployer") if isinstance(doc.get("deployer"), str) else None,
        deployed_at=doc.get("deployed_at") if isinstance(doc.get("deployed_at"), str) else None,
        namespace=doc.get("namespace") if isinstance(doc.get("namespace"), str) else None,
        schedule=doc.get("schedule") if isinstance(doc.get("schedule"), str) else None,
        timezone=doc.get("timezone") if isinstance(doc.get("timezone"), str) else None,
        triggers=triggers if isinstance(triggers, dict) else None,
        deleted=bool(doc.get("deleted")),
    )


def configured_service_url() -> Optional[str]:
    """The control plane the Client API reads from, or None for the local datastore.

    Environment before file: FLOWPLANE_API_URL names it; an explicit
    FLOWPLANE_DATASTORE_ROOT means the datastore (a task, a test, a notebook that
    chose one); otherwise `api_url` in ~/.flowplane/config.json, if any.
    """
    url = user_config.env_api_url()
    if url is not None:
        return url
    if os.environ.get("FLOWPLANE_DATASTORE_ROOT"):
        return None
    try:
        return user_config.file_api_url()
    except user_config.ConfigError as e:
        raise ClientError(f"{e}; fix it, or remove it to read the local datastore") from None


def _seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _path(flow: str, run: str, *rest: str) -> str:
    return "/flows/" + "/".join(_seg(p) for p in (flow, "runs", run, *rest))
