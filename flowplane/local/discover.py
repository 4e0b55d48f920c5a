"""The SDK's embedded default: the control plane to use when none is configured.

`ApiClient` asks, in order:

1. FLOWPLANE_API_URL, else `api_url` in ~/.flowplane/config.json (a deployed
   control plane, or any plane you point at) — `user_config.configured_url`;
2. a running `flowplane local` on the default state folder
   (FLOWPLANE_LOCAL_STATE_DIR, else ~/.flowplane/local): its URL file, its
   process alive, its /health answering;
3. else the embedded plane started as a background service on that folder
   (service.py): it keeps running for every later command, notebook and
   terminal, so schedules fire, until `flowplane local stop`.

The choice is said once, on stderr. FLOWPLANE_EMBEDDED=0 turns 2 and 3 off
(the "no control plane configured" error comes back).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Callable, Optional

from ..user_config import NOT_CONFIGURED, ConfigError
from .health import healthy

_lock = threading.Lock()
_announced: set[str] = set()


def enabled() -> bool:
    return os.environ.get("FLOWPLANE_EMBEDDED", "1").strip().lower() not in ("0", "false", "no", "off")


def _say_once(message: str) -> None:
    if message not in _announced:
        _announced.add(message)
        print(message, file=sys.stderr, flush=True)


def running_url(state_dir: Optional[str] = None) -> Optional[str]:
    """The URL of a live `flowplane local` on `state_dir` (default folder), or None."""
    from .location import default_state_dir, read_url_file

    info = read_url_file(default_state_dir() if state_dir is None else state_dir)  # type: ignore[arg-type]
    if info and healthy(info["url"]):
        return str(info["url"])
    return None


def started_notice(url: str, state_dir: object) -> str:
    return (
        f"No control plane configured (FLOWPLANE_API_URL, ~/.flowplane/config.json): started the embedded one "
        f"in the background at {url} (state and log in {state_dir}). It keeps running so schedules fire; "
        "stop it with `flowplane local stop`."
    )


def embedded_url(say: Callable[[str], None] = _say_once) -> str:
    """The embedded control plane's URL: a running one, else the background service, started now."""
    if not enabled():
        raise ConfigError(f"{NOT_CONFIGURED} (the embedded one is off: FLOWPLANE_EMBEDDED=0)")
    from .location import default_state_dir
    from .service import ServiceError, start

    state_dir = default_state_dir()
    with _lock:
        try:
            info, started = start(state_dir)
        except ServiceError as e:
            raise ConfigError(f"no control plane configured, and the embedded one cannot start: {e}") from None
    url = str(info["url"])
    if started:
        say(started_notice(url, state_dir))
    return url


def url_for_reading() -> Optional[str]:
    """For the Client API: a running plane's URL; if none runs but a state folder holds
    production runs, the service started to serve them; else None (nothing to read)."""
    if not enabled():
        return None
    url = running_url()
    if url:
        return url
    from .persist import StateStore
    from .location import default_state_dir

    if not StateStore(default_state_dir()).exists():
        return None
    try:
        return embedded_url()
    except Exception as e:  # a Client API read must not fail for want of production runs
        _say_once(f"The embedded control plane could not start ({e}); showing local runs only.")
        return None
