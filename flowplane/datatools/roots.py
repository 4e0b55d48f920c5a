"""Where `S3(run=...)` keeps a run's objects: the run's datastore, at layout.datatools_prefix.

Inside a task that is the datastore the task writes its artifacts to (a local
folder for `python flow.py run`, the stack's S3 datastore on Batch); for a
client `Run`, the datastore the Client API read that run from.
"""

from __future__ import annotations

from typing import Any, Optional

from ..datastore import layout
from .backends import file_url, split_s3
from .objects import MetaflowS3URLException


def task_root() -> str:
    """The running task's run-scoped root URL; refused outside a running flow, as Metaflow does."""
    from ..current import current
    from ..datastore.storage import default_root

    if not current.is_running_flow:
        raise MetaflowS3URLException(
            "S3(run=self) works only inside a running step; outside one, pass a client Run "
            "(S3(run=Run('Flow/123'))) or an explicit S3(s3root='s3://bucket/prefix')")
    root = current._get("datastore_root") or default_root()
    return join_root(root, layout.datatools_prefix(current.flow_name or "", current.run_id or ""))


def client_run_root(run: Any) -> tuple[str, Optional[Any]]:
    """The run-scoped root URL of a Client API `Run`, and the backend to read it through
    when that is the control plane (a production run read over its routes), else None."""
    parts = getattr(run, "path_components", None)
    provider = getattr(run, "_provider", None)
    if not isinstance(parts, list) or len(parts) != 2 or provider is None:
        raise MetaflowS3URLException(
            f"S3(run=...) takes `self` inside a step or a client Run('Flow/run_id'), got {type(run).__name__}")
    holder = getattr(provider, "provider_for_run", None)
    source = holder(*parts) if callable(holder) else provider
    kind, _, root = source.describe().partition("@")
    if kind == "service":
        from .service import ServiceBackend

        backend = ServiceBackend(source, *parts)
        return backend.root, backend
    return join_root(root, layout.datatools_prefix(*parts)), None


def join_root(datastore_root: str, prefix: str) -> str:
    """`s3://bucket/root` or a local folder, joined with a datastore prefix, as a URL."""
    if datastore_root.startswith("s3://"):
        return f"{datastore_root.rstrip('/')}/{prefix}"
    import os

    return file_url(os.path.join(os.path.abspath(datastore_root), *prefix.split("/")))


def override_root(run_root: str, bucket: Optional[str], prefix: Optional[str], flow: str, run_id: str) -> str:
    """Metaflow's `S3(run=..., bucket=, prefix=)`: another bucket or path, still per flow and run."""
    if run_root.startswith("s3://"):
        old_bucket, old_key = split_s3(run_root)
        old_prefix = old_key[: -len(layout.datatools_prefix(flow, run_id))].strip("/")
    elif not bucket:
        raise MetaflowS3URLException("S3(prefix=...) with a local datastore needs bucket= too: the run's objects "
                                     "are in a local folder, not a bucket")
    else:
        old_bucket, old_prefix = "", ""
    path = "/".join(p for p in ((prefix if prefix is not None else old_prefix).strip("/"), flow, run_id) if p)
    return f"s3://{bucket or old_bucket}/{path}"
