"""A small fake of the control plane's read routes (the HTTP contract in notes/HELPERS.md),
served on 127.0.0.1 for the Client API's tests (no tests here).

It answers from a datastore written with the datastore's own writers (run_layouts), so a
test can ask the same question through the local datastore and through HTTP and expect
the same answer. It pages runs with an opaque next_token, filters by namespace on the
server, answers 404/400 with the contract's bodies, and serves artifact blobs at
"presigned" URLs.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.parse
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Optional

from flowplane.client.local import LocalProvider
from flowplane.datastore import layout
from flowplane.datastore.storage import LocalStorage

_ROUTES = [
    ("health", re.compile(r"^/health$")),
    ("flows", re.compile(r"^/flows$")),
    ("flow", re.compile(r"^/flows/(?P<flow>[^/]+)$")),
    ("runs", re.compile(r"^/flows/(?P<flow>[^/]+)/runs$")),
    ("run", re.compile(r"^/flows/(?P<flow>[^/]+)/runs/(?P<run>[^/]+)$")),
    ("steps", re.compile(r"^/flows/(?P<flow>[^/]+)/runs/(?P<run>[^/]+)/steps$")),
    ("step", re.compile(r"^/flows/(?P<flow>[^/]+)/runs/(?P<run>[^/]+)/steps/(?P<step>[^/]+)$")),
    ("tasks", re.compile(r"^/flows/(?P<flow>[^/]+)/runs/(?P<run>[^/]+)/steps/(?P<step>[^/]+)/tasks$")),
    ("task", re.compile(r"^/flows/(?P<flow>[^/]+)/runs/(?P<run>[^/]+)/steps/(?P<step>[^/]+)/tasks/(?P<task>[^/]+)$")),
    ("artifacts", re.compile(
        r"^/flows/(?P<flow>[^/]+)/runs/(?P<run>[^/]+)/steps/(?P<step>[^/]+)/tasks/(?P<task>[^/]+)/artifacts$")),
    ("artifact", re.compile(r"^/flows/(?P<flow>[^/]+)/runs/(?P<run>[^/]+)/steps/(?P<step>[^/]+)/tasks/"
                            r"(?P<task>[^/]+)/artifacts/(?P<name>[^/]+)$")),
    ("logs", re.compile(r"^/flows/(?P<flow>[^/]+)/runs/(?P<run>[^/]+)/steps/(?P<step>[^/]+)/tasks/"
                        r"(?P<task>[^/]+)/logs/(?P<stream>stdout|stderr)$")),
    ("blob", re.compile(r"^/_s3/(?P<flow>[^/]+)/(?P<sha>[0-9a-f]{64})$")),
]


class Answer(Exception):
    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body


def _page(query: dict[str, str], items: list[Any]) -> tuple[list[Any], Optional[str]]:
    """A page of `items` as the control plane pages: `limit` (1-1000), an opaque `next_token`."""
    try:
        limit = int(query.get("limit", "100"))
        if not 1 <= limit <= 1000:
            raise ValueError
    except ValueError:
        raise Answer(400, {"error": "limit is a number from 1 to 1000", "field": "limit"}) from None
    try:
        start = int(base64.urlsafe_b64decode(query["next_token"]).decode()) if "next_token" in query else 0
    except ValueError:
        raise Answer(400, {"error": "next_token is not one this server gave", "field": "next_token"}) from None
    more = start + limit < len(items)
    token = base64.urlsafe_b64encode(str(start + limit).encode()).decode() if more else None
    return items[start:start + limit], token


def _missing(what: str) -> Answer:
    return Answer(404, {"error": f"{what} does not exist", "code": "not_found"})


class FakeControlPlane:
    """The read routes of the contract, answered from a datastore."""

    def __init__(self, storage: LocalStorage):
        self.storage = storage
        self.data = LocalProvider(storage)
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, query)
        # [path, status, body, times]: answers that replace the real one at that exact path.
        self.faults: list[list[Any]] = []
        self.blob_status = 200
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}/api"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, prefix: str, status: int, body: Any, times: int = 1_000_000) -> None:
        self.faults.append([prefix, status, body, times])

    def paths(self, kind: Optional[str] = None) -> list[str]:
        return [p for p, _ in self.requests if kind is None or self._kind(p) == kind]

    @staticmethod
    def _kind(path: str) -> Optional[str]:
        for kind, pattern in _ROUTES:
            if pattern.match(path):
                return kind
        return None

    def _handler(self) -> type:
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parts = urllib.parse.urlsplit(self.path)
                path = parts.path[len("/api"):] if parts.path.startswith("/api") else parts.path
                query = dict(urllib.parse.parse_qsl(parts.query))
                plane.requests.append((path, query))
                try:
                    status, body = plane.answer(path, query)
                except Answer as a:
                    status, body = a.status, a.body
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if isinstance(body, bytes)
                                 else "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        for fault in self.faults:
            prefix, status, body, times = fault
            if path == prefix and times > 0:
                fault[3] -= 1
                return status, body
        for kind, pattern in _ROUTES:
            m = pattern.match(path)
            if m:
                args = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
                return 200, getattr(self, f"_{kind}")(query=query, **args)
        return 404, {"Code": "NotFoundError", "Message": f"no route {path}"}  # API Gateway's, not ours

    # --- one method per route ---------------------------------------------------------

    def _health(self, query: dict[str, str]) -> Any:
        # What flowplane.local.discover asks of a plane named in a `flowplane local` URL file.
        return {"ok": True}

    def _flows(self, query: dict[str, str]) -> Any:
        return {"flows": [{"name": f.name, "created_at": f.created_at, "deleted": False}
                          for f in self.data.list_flows()]}

    def _flow(self, query: dict[str, str], flow: str) -> Any:
        info = self.data.get_flow(flow)
        if info is None:
            raise _missing(f"flow {flow}")
        return {"name": info.name, "created_at": info.created_at, "production_token": "tok1"}

    def _runs(self, query: dict[str, str], flow: str) -> Any:
        ns = query.get("namespace")
        if ns is not None and ":" not in ns:
            raise Answer(400, {"error": f"not a namespace: {ns!r}", "field": "namespace"})
        page, token = _page(query, self.data.list_runs(flow, namespace_tag=ns))
        return {"runs": [r.model_dump(mode="json") for r in page], "next_token": token}

    def _run(self, query: dict[str, str], flow: str, run: str) -> Any:
        rec = self.data.get_run(flow, run)
        if rec is None:
            raise _missing(f"run {flow}/{run}")
        return rec.model_dump(mode="json")

    def _steps(self, query: dict[str, str], flow: str, run: str) -> Any:
        self._run(query, flow, run)
        return {"steps": [{"name": s.step, "created_at": s.created_at} for s in self.data.list_steps(flow, run)]}

    def _step(self, query: dict[str, str], flow: str, run: str, step: str) -> Any:
        info = self.data.get_step(flow, run, step)
        if info is None:
            raise _missing(f"step {flow}/{run}/{step}")
        return {"name": info.step, "created_at": info.created_at}

    def _tasks(self, query: dict[str, str], flow: str, run: str, step: str) -> Any:
        self._step(query, flow, run, step)
        tasks = self.data.list_tasks(flow, run, step)
        if "limit" not in query and "next_token" not in query:
            return {"tasks": [t.model_dump(mode="json") for t in tasks], "next_token": None}
        page, token = _page(query, tasks)
        return {"tasks": [t.model_dump(mode="json") for t in page], "next_token": token}

    def _task(self, query: dict[str, str], flow: str, run: str, step: str, task: str) -> Any:
        rec = self.data.get_task(flow, run, step, task)
        if rec is None:
            raise _missing(f"task {flow}/{run}/{step}/{task}")
        attempts = self.data.list_attempts(flow, run, step, task)
        return {**rec.model_dump(mode="json"), "attempts": [a.model_dump(mode="json") for a in attempts]}

    def _attempt(self, query: dict[str, str], flow: str, run: str, step: str, task: str) -> int:
        self._task(query, flow, run, step, task)
        attempt = int(query["attempt"])
        if attempt not in [a.attempt for a in self.data.list_attempts(flow, run, step, task)]:
            raise _missing(f"attempt {attempt} of {flow}/{run}/{step}/{task}")
        return attempt

    def _artifacts(self, query: dict[str, str], flow: str, run: str, step: str, task: str) -> Any:
        attempt = self._attempt(query, flow, run, step, task)
        index = self.data.artifact_index(flow, run, step, task, attempt)
        return {"attempt": attempt,
                "artifacts": {n: {"sha": r.sha, "size": r.size, "type": r.type} for n, r in index.items()}}

    def _artifact(self, query: dict[str, str], flow: str, run: str, step: str, task: str, name: str) -> Any:
        attempt = self._attempt(query, flow, run, step, task)
        ref = self.data.artifact_index(flow, run, step, task, attempt).get(name)
        if ref is None:
            raise _missing(f"artifact {name}")
        host = self.url[: -len("/api")]
        url = f"{host}/_s3/{flow}/{ref.sha}?X-Amz-Signature=secret-signature&X-Amz-Expires=900"
        return {"sha": ref.sha, "size": ref.size, "type": ref.type, "url": url}

    def _logs(self, query: dict[str, str], flow: str, run: str, step: str, task: str, stream: str) -> Any:
        attempt = self._attempt(query, flow, run, step, task)
        return {"attempt": attempt, "text": self.data.logs(flow, run, step, task, attempt, stream)}

    def _blob(self, query: dict[str, str], flow: str, sha: str) -> Any:
        if self.blob_status != 200:
            raise Answer(self.blob_status, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message>")
        return self.storage.get_bytes(layout.blob_key(flow, sha))


@contextmanager
def fake_control_plane(storage: LocalStorage) -> Iterator[FakeControlPlane]:
    plane = FakeControlPlane(storage)
    try:
        yield plane
    finally:
        plane.close()
