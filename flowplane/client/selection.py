"""Which provider the Client API reads through (provider.py has the interface).

An explicit one set by `set_provider` / `use_provider` (tests, `metadata(...)`),
else the local datastore, combined with a control plane when one is configured or
a `flowplane local` runs. The implementations (local.py, service.py, combined.py)
are imported when first chosen, and each imports only the interface.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Iterator, Optional

from .provider import Provider

_lock = threading.Lock()
_override: Optional[Provider] = None
_cache: dict[str, Provider] = {}

# A running `flowplane local` is looked for at most this often (a file read, then a
# /health request when its URL file names a live process); a plane started or gone
# in the meantime is seen on the next look.
DISCOVERY_TTL_S = 5.0
_discovered: Optional[tuple[float, tuple[Optional[str], ...], Optional[str]]] = None


def get_provider() -> Provider:
    """The provider every Client API object reads through.

    An explicit override (tests, `use_provider`) wins. Otherwise local runs are read
    from the datastore at FLOWPLANE_DATASTORE_ROOT (default `./.flowplane`), and,
    as Metaflow shows local and production runs together, combined (combined.py)
    with a control plane: the configured one (configured_service_url), else a running
    `flowplane local` (unless FLOWPLANE_DATASTORE_ROOT or FLOWPLANE_EMBEDDED=0 says
    the datastore alone). No plane: the datastore alone. Cached per URL and root.
    """
    if _override is not None:
        return _override
    from ..datastore.storage import default_root
    from .service import configured_service_url

    root = default_root()
    url = configured_service_url()
    origin = ("env" if os.environ.get("FLOWPLANE_API_URL") else "config") if url else None
    if url is None and not os.environ.get("FLOWPLANE_DATASTORE_ROOT"):
        url = discovered_plane_url()
        origin = "discovered" if url else None
    local = _local_provider(root)
    if url is None or origin is None:
        return local
    return _combined_provider(local, root, url, origin)


def _local_provider(root: str) -> Provider:
    with _lock:
        provider = _cache.get(root)
        if provider is None:
            from ..datastore.storage import storage_for
            from .local import LocalProvider

            provider = _cache[root] = LocalProvider(storage_for(root))
        return provider


def _combined_provider(local: Provider, root: str, url: str, origin: str) -> Provider:
    from .combined import CombinedProvider
    from .service import ServiceProvider

    key = f"combined:{origin}:{url}|{root}"
    with _lock:
        provider = _cache.get(key)
        if provider is None:
            plane = _cache.get(f"service:{url}")
            if plane is None:
                plane = _cache[f"service:{url}"] = ServiceProvider(url)
            still_running = (lambda: _discover_now() == url) if origin == "discovered" else None
            provider = _cache[key] = CombinedProvider(
                local, plane, origin=origin,  # type: ignore[arg-type]
                still_running=still_running, on_vanished=lambda: _forget_plane(url))
        return provider


def _forget_plane(url: str) -> None:
    """A discovered plane is gone: the next get_provider() looks again."""
    global _discovered
    with _lock:
        for key in [k for k in _cache if k.startswith("combined:discovered:") and f":{url}|" in k]:
            del _cache[key]
        _discovered = None


def _discovery_key() -> tuple[Optional[str], ...]:
    # What decides which state folder a `flowplane local` would be in (plane.default_state_dir).
    return (os.environ.get("FLOWPLANE_LOCAL_STATE_DIR"), os.environ.get("HOME"),
            os.environ.get("FLOWPLANE_EMBEDDED"))


def discovered_plane_url() -> Optional[str]:
    """The URL of a `flowplane local` running on the default state folder, or None
    (looked for at most every DISCOVERY_TTL_S seconds)."""
    global _discovered
    key = _discovery_key()
    now = time.monotonic()
    with _lock:
        held = _discovered
    if held is not None and held[1] == key and now - held[0] < DISCOVERY_TTL_S:
        return held[2]
    from ..local import discover

    # A state folder with no plane running: its production runs are read by starting the service.
    url = discover.url_for_reading()
    with _lock:
        _discovered = (now, key, url)
    return url


def _discover_now() -> Optional[str]:
    from ..local import discover

    if not discover.enabled():
        return None
    return discover.running_url()


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
