"""A production run's `S3(run=Run(...))` objects, read through the control plane.

The Client API reads a production run through the plane's routes with no AWS
credentials of its own; its objects are read the same way: a listing route
hands out presigned GETs (chalicelib/query/objects.py). Read-only: a run's
objects are written by its tasks, which reach the datastore directly.
"""

from __future__ import annotations

import shutil
import threading
from typing import Any, Optional

from .backends import Info
from .objects import MetaflowS3Exception, MetaflowS3NotFound


class ServiceBackend:
    def __init__(self, provider: Any, flow: str, run_id: str):
        self._provider = provider
        self._flow = flow
        self._run = run_id
        self._urls: dict[str, str] = {}  # object URL -> its presigned GET, from the latest listing
        self._lock = threading.Lock()
        self.root = self._page("", recursive=False)["root"]

    def _page(self, prefix: str, recursive: bool, token: Optional[str] = None) -> dict[str, Any]:
        page = self._provider.run_objects(self._flow, self._run, prefix, recursive, token)
        if page is None:
            raise MetaflowS3NotFound(f"Run('{self._flow}/{self._run}') does not exist on the control plane")
        return page

    def _rel(self, url: str) -> str:
        return url[len(self.root):].lstrip("/")

    def _listing(self, prefix: str, recursive: bool) -> list[tuple[str, Optional[int]]]:
        out: list[tuple[str, Optional[int]]] = []
        token: Optional[str] = None
        while True:
            page = self._page(prefix, recursive, token)
            for o in page["objects"]:
                url = f"{self.root}/{o['key']}"
                with self._lock:
                    self._urls[url] = o["url"]
                out.append((url, int(o["size"])))
            out.extend((f"{self.root}/{p}", None) for p in page["prefixes"])
            token = page.get("next")
            if not token:
                return sorted(out)

    def put(self, url: str, data: bytes, content_type: Optional[str], metadata: Optional[dict]) -> None:
        raise MetaflowS3Exception(
            f"{url}: a production run's objects are read-only from the Client API; its tasks write them "
            "with S3(run=self)")

    def head(self, url: str) -> Optional[Info]:
        # A listing by the key itself: S3 has no cheaper exact lookup the plane could presign for.
        for found, size in self._listing(self._rel(url), recursive=True):
            if found == url and size is not None:
                return Info(size)
        return None

    def download(self, url: str, dest: str) -> Optional[Info]:
        with self._lock:
            presigned = self._urls.get(url)
        if presigned is None:
            if self.head(url) is None:
                return None
            with self._lock:
                presigned = self._urls[url]
        with self._provider.open_url(presigned) as body, open(dest, "wb") as f:
            shutil.copyfileobj(body, f, 1 << 20)
        return Info(_size(dest))

    def list(self, prefix_url: str, recursive: bool) -> list[tuple[str, Optional[int]]]:
        return self._listing(self._rel(prefix_url), recursive)


def _size(path: str) -> int:
    import os

    return os.path.getsize(path)
