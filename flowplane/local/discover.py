"""The SDK's embedded default: the control plane to use when none is configured.

`ApiClient` asks, in order:

1. FLOWPLANE_API_URL, else `api_url` in ~/.flowplane/config.json (a deployed
   control plane, or any plane you point at) — `api_client.configured_url`;
2. a running `flowplane local` on the default state folder
   (FLOWPLANE_LOCAL_STATE_DIR, else ~/.flowplane/local): its URL file, its
   process alive, its /health answering;
3. else an embedded plane started in this process, on that same folder, for
   the command's duration: when the command ends, runs it started are waited
   for (Ctrl-C stops them, recorded as aborted), and the state is saved, so
   the next command, or `flowplane local`, sees them.

The choice is said once, on stderr. FLOWPLANE_EMBEDDED=0 turns 2 and 3 off
(the "no control plane configured" error comes back).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import urllib.request
from typing import Any, Callable, Optional

_lock = threading.Lock()
_plane: Any = None
_announced: set[str] = set()


def enabled() -> bool:
    return os.environ.get("FLOWPLANE_EMBEDDED", "1").strip().lower() not in ("0", "false", "no", "off")


def _say_once(message: str) -> None:
    if message not in _announced:
        _announced.add(message)
        print(message, file=sys.stderr, flush=True)


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as r:
            return r.status == 200 and json.loads(r.read()).get("ok") is True
    except (OSError, ValueError):
        return False


def running_url(state_dir: Optional[str] = None) -> Optional[str]:
    """The URL of a live `flowplane local` on `state_dir` (default folder), or None."""
    from .plane import default_state_dir, read_url_file

    info = read_url_file(default_state_dir() if state_dir is None else state_dir)  # type: ignore[arg-type]
    if info and healthy(info["url"]):
        return str(info["url"])
    return None


def embedded_url(say: Callable[[str], None] = _say_once) -> str:
    """The embedded control plane's URL: a running one, else one started in this process."""
    global _plane
    from ..api_client import ConfigError

    if not enabled():
        raise ConfigError(
            "no control plane configured: set FLOWPLANE_API_URL or put {\"api_url\": ...} in "
            "~/.flowplane/config.json (the embedded one is off: FLOWPLANE_EMBEDDED=0)"
        )
    with _lock:
        if _plane is not None:
            return str(_plane.url)
        from .plane import PlaneError, default_state_dir

        state_dir = default_state_dir()
        url = running_url(str(state_dir))
        if url:
            say(f"Using the embedded control plane of `flowplane local` at {url} (state in {state_dir}).")
            return url
        say(
            "No control plane configured (FLOWPLANE_API_URL, ~/.flowplane/config.json): starting the embedded "
            f"one in this process (state in {state_dir}); it stops when this command ends. "
            "Run `flowplane local` elsewhere to keep one running."
        )
        try:
            from .plane import LocalPlane, PlaneConfig

            plane = LocalPlane(PlaneConfig(state_dir=state_dir)).start()
        except (ImportError, PlaneError) as e:
            raise ConfigError(f"no control plane configured, and the embedded one cannot start: {e}") from None
        _plane = plane
        atexit.register(_stop_at_exit)
        return str(plane.url)


def _stop_at_exit() -> None:
    global _plane
    plane, _plane = _plane, None
    if plane is None:
        return
    try:
        running = plane.running_executions()
        if running:
            print(
                f"Waiting for {len(running)} run(s) on the embedded control plane to finish "
                "(Ctrl-C stops them)...",
                file=sys.stderr,
                flush=True,
            )
            plane.wait_for_runs()
    except KeyboardInterrupt:
        print("Stopping the runs still going.", file=sys.stderr, flush=True)
    finally:
        plane.stop()
