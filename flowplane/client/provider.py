"""Where the Client API reads runs from: one small interface, chosen in one place.

`LocalProvider` reads the datastore layout (a local folder or an S3 prefix) that
local runs and production tasks write; `ServiceProvider` (service.py) reads the
control plane's HTTP API. `get_provider()` picks one; the classes in core.py
never know which.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Optional, Protocol, runtime_checkable

from ..datastore.artifacts import ArtifactRef
from ..datastore.records import AttemptRecord, RunRecord, TaskRecord

LogStream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class FlowInfo:
    name: str
    created_at: str  # ISO 8601: the first run's creation


@dataclass(frozen=True)
class StepInfo:
    flow: str
    run_id: str
    step: str
    created_at: str  # ISO 8601: its first task's creation
    task_count: int


@runtime_checkable
class Provider(Protocol):
    """Reads only. Getters return None for what does not exist; lists return []."""

    def describe(self) -> str:
        """Where the data comes from, as `kind@location` (Metaflow's get_metadata())."""
        ...

    def list_flows(self) -> list[FlowInfo]: ...

    def get_flow(self, flow: str) -> Optional[FlowInfo]: ...

    def list_runs(self, flow: str, namespace_tag: Optional[str] = None,
                  limit: Optional[int] = None) -> list[RunRecord]:
        """Runs newest first; only those carrying `namespace_tag` when given."""
        ...

    def get_run(self, flow: str, run: str) -> Optional[RunRecord]: ...

    def list_steps(self, flow: str, run: str) -> list[StepInfo]: ...

    def get_step(self, flow: str, run: str, step: str) -> Optional[StepInfo]: ...

    def list_tasks(self, flow: str, run: str, step: str) -> list[TaskRecord]: ...

    def get_task(self, flow: str, run: str, step: str, task: str) -> Optional[TaskRecord]: ...

    def list_attempts(self, flow: str, run: str, step: str, task: str) -> list[AttemptRecord]:
        """Attempts in order 0, 1, 2..."""
        ...

    def artifact_index(self, flow: str, run: str, step: str, task: str,
                       attempt: int) -> dict[str, ArtifactRef]: ...

    def load_artifact(self, flow: str, sha: str) -> Any:
        """The value, unpickled from a stream (never the whole blob held twice)."""
        ...

    def logs(self, flow: str, run: str, step: str, task: str, attempt: int,
             stream: LogStream) -> str: ...


_lock = threading.Lock()
_override: Optional[Provider] = None
_cache: dict[str, Provider] = {}


def get_provider() -> Provider:
    """The provider every Client API object reads through.

    An explicit override (tests, `use_provider`) wins; then the control plane when
    one is configured (configured_service_url); otherwise the datastore at
    FLOWPLANE_DATASTORE_ROOT (default `./.flowplane`). Cached per URL or root.
    """
    if _override is not None:
        return _override
    from .service import ServiceProvider, configured_service_url

    url = configured_service_url()
    if url:
        with _lock:
            provider = _cache.get(f"service:{url}")
            if provider is None:
                provider = _cache[f"service:{url}"] = ServiceProvider(url)
            return provider
    from ..datastore.storage import default_root

    root = default_root()
    with _lock:
        provider = _cache.get(root)
        if provider is None:
            from ..datastore.storage import storage_for
            from .local import LocalProvider

            provider = _cache[root] = LocalProvider(storage_for(root))
        return provider


def set_provider(provider: Optional[Provider]) -> None:
    """Force a provider (None goes back to the configured one)."""
    global _override
    if provider is not None and not isinstance(provider, Provider):
        raise TypeError(f"{provider!r} does not implement the Client API Provider interface")
    _override = provider


@contextlib.contextmanager
def use_provider(provider: Provider) -> Iterator[Provider]:
    previous = _override
    set_provider(provider)
    try:
        yield provider
    finally:
        set_provider(previous)
