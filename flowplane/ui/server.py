"""The dashboard's HTTP server: the standard library's threading server, GET only, on 127.0.0.1.

Routes map a path to one page of pages.py and render it with its Jinja2 template;
`/static/` serves the package's own files (the CSS, the script, dagre). Any failure
becomes an error page (errors.py) with the matching status.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from ..client.run_pages import RUN_STATUSES
from . import errors, pages

HERE = Path(__file__).parent
STATIC = HERE / "static"
_SEG = r"([^/]+)"
log = logging.getLogger("flowplane.ui")


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["took"] = _took
    env.filters["bytes"] = _bytes
    env.globals.update(task_href=pages.task_href, run_href=pages.run_href, pathspec_href=pages.pathspec_href,
                       statuses=RUN_STATUSES)
    return env


def _when(value: Any) -> str:
    from ..client.times import parse_time

    dt = value if isinstance(value, datetime) else parse_time(value)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC") if dt else "—"


def _took(record: Any) -> str:
    from ..client.times import parse_time

    began = parse_time(getattr(record, "created_at", None) or getattr(record, "started_at", None))
    ended = parse_time(getattr(record, "finished_at", None))
    if began is None or ended is None:
        return "—"
    seconds = (ended - began).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


class _BadQuery(Exception):
    """A query parameter no page takes."""


def _page_for(error: BaseException) -> errors.ErrorPage:
    if isinstance(error, _BadQuery):
        return errors.ErrorPage(400, "Bad request", str(error))
    return errors.page_for(error)


class Dashboard:
    """Routes and rendering, apart from the socket so tests can call `render` directly."""

    def __init__(self) -> None:
        self.env = _environment()
        self.routes: list[tuple[re.Pattern[str], Callable[..., tuple[str, dict[str, Any]]]]] = [
            (re.compile(r"^/$"), self._flows),
            (re.compile(rf"^/flows/{_SEG}$"), self._runs),
            (re.compile(rf"^/flows/{_SEG}/runs/{_SEG}$"), self._run),
            (re.compile(rf"^/flows/{_SEG}/runs/{_SEG}/steps/{_SEG}/tasks/{_SEG}$"), self._task),
        ]

    def render(self, path: str, query: dict[str, list[str]]) -> tuple[int, str]:
        for pattern, handler in self.routes:
            m = pattern.match(path)
            if m:
                try:
                    template, context = handler(query, *[unquote(g) for g in m.groups()])
                    return 200, self.env.get_template(template).render(**context)
                except Exception as e:  # every failure is a page saying what to do
                    page = _page_for(e)
                    if page.status == 500:
                        log.exception("%s failed", path)  # a bug: its traceback goes to the terminal
                    return self.error(page)
        return self.error(errors.not_found(f"there is no page at {path}"))

    def error(self, page: errors.ErrorPage) -> tuple[int, str]:
        return page.status, self.env.get_template("error.html").render(error=page, live=False)

    @staticmethod
    def _one(query: dict[str, list[str]], name: str) -> Optional[str]:
        values = query.get(name)
        value = values[-1].strip() if values else ""
        return value or None

    def _flows(self, query: dict[str, list[str]]) -> tuple[str, dict[str, Any]]:
        return "flows.html", pages.flows_page()

    def _runs(self, query: dict[str, list[str]], flow: str) -> tuple[str, dict[str, Any]]:
        # A status or page token the Client API does not take is its ClientError: a 400 page.
        return "runs.html", pages.runs_page(flow, self._one(query, "status"), self._one(query, "tag"),
                                            self._one(query, "namespace"), self._one(query, "page"))

    def _run(self, query: dict[str, list[str]], flow: str, run: str) -> tuple[str, dict[str, Any]]:
        return "run.html", pages.run_page(flow, run)

    def _task(self, query: dict[str, list[str]], flow: str, run: str, step: str,
              task: str) -> tuple[str, dict[str, Any]]:
        attempt = self._one(query, "attempt")
        if attempt is not None and not attempt.isdigit():
            raise _BadQuery(f"attempt is a number 0, 1, 2..., not {attempt!r}")
        return "task.html", pages.task_page(flow, run, step, task, None if attempt is None else int(attempt))


class Handler(BaseHTTPRequestHandler):
    dashboard: Dashboard
    server_version = "flowplane-ui"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if not self._host_is_ours():
            return self._send(421, b"this dashboard answers only at 127.0.0.1 or localhost\n",
                              "text/plain; charset=utf-8")
        parts = urlsplit(self.path)
        if parts.path.startswith("/static/"):
            return self._static(parts.path[len("/static/"):])
        if parts.path == "/favicon.ico":
            return self._send(204, b"", "image/x-icon")
        status, body = self.dashboard.render(parts.path, parse_qs(parts.query))
        self._send(status, body.encode("utf-8"), "text/html; charset=utf-8")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def _host_is_ours(self) -> bool:
        """A page elsewhere cannot read the dashboard by pointing its own name at 127.0.0.1 (DNS
        rebinding): the browser would send that name as Host."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        return host in ("127.0.0.1", "localhost", "::1")

    def _refuse(self) -> None:
        self._send(405, b"the dashboard is read-only: GET only\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    def _static(self, name: str) -> None:
        target = (STATIC / name).resolve()
        if STATIC.resolve() not in target.parents or not target.is_file():
            status, body = self.dashboard.error(errors.not_found(f"there is no file /static/{name}"))
            return self._send(status, body.encode(), "text/html; charset=utf-8")
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self._send(200, target.read_bytes(), kind, {"Cache-Control": "max-age=3600"})

    def _send(self, status: int, body: bytes, kind: str, headers: Optional[dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the terminal shows the URL; a line per request would bury it


def serve(host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server bound to host:port (0: a free port), not yet serving: `serve_forever` it."""
    from ..client import namespace

    namespace(None)  # a dashboard shows every namespace; the runs table filters by one
    handler = type("DashboardHandler", (Handler,), {"dashboard": Dashboard()})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"


def start_in_thread(host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Serving in a background thread (tests, benchmarks): `server.shutdown()` stops it."""
    server = serve(host, port)
    thread = threading.Thread(target=server.serve_forever, name="flowplane-ui", daemon=True)
    thread.start()
    return server, thread
