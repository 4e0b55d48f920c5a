"""Bringing the origin's artifact blobs where the resumed run reads them, as cheaply as each datastore allows.

Artifacts are content-addressed (`<flow>/data/<sha>`), so a cloned task's index
names the very blobs its origin stored. In the same datastore there is nothing
to copy; between two S3 prefixes each missing blob is copied server-side; from
elsewhere (a production run read through the control plane, an S3 run resumed
into a local folder) each missing blob is streamed once, however many tasks
share it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

from ..datastore import layout
from ..datastore.storage import S3Storage, Storage

# Blobs are copied this many at once (each waits on the network, not the CPU).
COPIERS = 16


def copy_blobs(dest: Storage, flow: str, shas: Iterable[str], provider: Any) -> int:
    """Make every blob of `shas` readable in `dest`; how many had to be copied."""
    source = getattr(provider, "storage", None)
    if source is not None and source.root == dest.root:
        return 0
    wanted = sorted(set(shas))
    if isinstance(source, S3Storage) and isinstance(dest, S3Storage):
        # Asking S3 whether a blob is there costs what copying it does: copy them all.
        missing = wanted
    else:
        present = _run(lambda sha: dest.exists(layout.blob_key(flow, sha)), wanted)
        missing = [sha for sha, there in zip(wanted, present) if not there]
    if not missing:
        return 0
    _run(_copier(dest, flow, source, provider, missing), missing)
    return len(missing)


def _copier(dest: Storage, flow: str, source: Any, provider: Any, shas: list[str]) -> Callable[[str], None]:
    if isinstance(source, S3Storage) and isinstance(dest, S3Storage):
        return lambda sha: dest.copy_from(source, layout.blob_key(flow, sha))
    if source is None:
        # The control plane: presigned GETs for many blobs a request, then straight from S3.
        urls = provider.blob_urls(flow, shas)

        def open_blob(sha: str) -> Any:
            return provider.open_url(urls[sha])
    else:
        def open_blob(sha: str) -> Any:
            return source.open_read(layout.blob_key(flow, sha))

    def stream(sha: str) -> None:
        key = layout.blob_key(flow, sha)
        body = open_blob(sha)
        try:
            dest.put_stream(key, body)
        finally:
            body.close()

    return stream


def _run(fn: Callable[[str], Any], items: list[str]) -> list[Any]:
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=COPIERS, thread_name_prefix="flowplane-clone") as pool:
        return list(pool.map(fn, items))
