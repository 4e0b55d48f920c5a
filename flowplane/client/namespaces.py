"""The current namespace: a tag that every object the Client API returns must carry.

As in Metaflow it is process-wide, chosen lazily on first use (environment
variables may change before that), `user:<name>` by default, and the
deployment's `production:<token>` inside a running production task.
`namespace(None)` turns the filter off.
"""

from __future__ import annotations

from typing import Optional

from ..context import username
from ..current import current

# False: not chosen yet (None is a real value: every namespace).
_current: Optional[str] | bool = False


def namespace(ns: Optional[str]) -> Optional[str]:
    """Switch to namespace `ns` (a tag such as 'user:alice' or 'production:<token>'), or
    None for all. Returns the namespace now in force."""
    global _current
    if ns is not None and (not isinstance(ns, str) or not ns.strip()):
        raise ValueError(f"a namespace is a non-empty tag string or None, got {ns!r}")
    _current = ns
    return get_namespace()


def get_namespace() -> Optional[str]:
    """The namespace in force; the default one if none was chosen yet."""
    if _current is False:
        default_namespace()
    return _current  # type: ignore[return-value]


def default_namespace() -> str:
    """Reset to the default namespace and return it.

    Inside a running task it is the task's own namespace (`production:<token>` for
    a production run, so its code reads the deployment's runs); elsewhere `user:<name>`.
    """
    global _current
    _current = _default()
    return _current


def _default() -> str:
    if current.is_running_flow and current.namespace:
        return current.namespace
    return f"user:{username()}"
