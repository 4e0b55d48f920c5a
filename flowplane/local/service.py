"""The embedded control plane as a background service on this machine.

The first command that needs a control plane, when none is configured or
running, starts `flowplane local` detached from its terminal (its own session,
output in `<state folder>/plane.log`); every later command, notebook and
terminal finds it through `<state folder>/plane.json`, and it keeps running, so
schedules fire, until `flowplane local stop`.

Two commands racing to start it take `<state folder>/start.lock` in turn: the
second finds the first one's plane. The plane's own lock (plane.lock) makes a
second plane on one folder impossible anyway.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

LOG_FILE = "plane.log"
START_LOCK = "start.lock"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
# A log past this is moved to plane.log.1 when the service starts.
LOG_ROTATE_BYTES = 10 << 20


class ServiceError(RuntimeError):
    """The background plane cannot be started or stopped; the message says why."""


def log_path(state_dir: Path) -> Path:
    return Path(state_dir) / LOG_FILE


def running(state_dir: Path) -> Optional[dict[str, Any]]:
    """The running plane's URL file (url, endpoint, pid, started_at, state_dir) when it answers."""
    from .location import read_url_file

    info = read_url_file(state_dir)
    if info is None:
        # No live plane: `start` goes on to spawn one without first paying for the HTTP
        # client's imports (70 ms), which its wait loop then does while the plane boots.
        return None
    from .health import healthy

    return info if healthy(info["url"]) else None


def start(state_dir: Path, vcpus: Optional[int] = None) -> tuple[dict[str, Any], bool]:
    """The running plane's URL file, starting the service if none runs; and whether it was started here."""
    state_dir = Path(state_dir).expanduser()
    state_dir.mkdir(parents=True, exist_ok=True)
    with _start_lock(state_dir):
        info = running(state_dir)
        if info:
            return info, False
        _rotate(log_path(state_dir))
        argv = [sys.executable, "-m", "flowplane", "local", "--port", "0", "--state-dir", str(state_dir)]
        if vcpus:
            argv += ["--vcpus", str(vcpus)]
        env = {k: v for k, v in os.environ.items() if k != "FLOWPLANE_API_URL"}
        env["PYTHONUNBUFFERED"] = "1"
        # Its own session: it does not die with the terminal or the command that started it.
        # This process reaps it from a daemon thread when it exits, so a long-lived parent (a
        # notebook) is left no zombie, which `kill(pid, 0)` would still find alive; a parent
        # that exits first hands it to init.
        try:
            with open(log_path(state_dir), "ab") as log:
                plane = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                         start_new_session=True, close_fds=True)
        except OSError as e:
            raise ServiceError(f"could not start the embedded control plane: {e}") from None
        threading.Thread(target=plane.wait, daemon=True, name="flowplane-local-reaper").start()
        return _wait_until_serving(state_dir, plane.pid), True


def _wait_until_serving(state_dir: Path, pid: int) -> dict[str, Any]:
    from .location import read_url_file

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = read_url_file(state_dir)
        if info and int(info["pid"]) == pid and running(state_dir):
            return info
        if not _alive(pid):
            raise ServiceError(
                f"the embedded control plane stopped while starting; its log {log_path(state_dir)} ends:\n"
                + tail(log_path(state_dir), 15)
            )
        time.sleep(0.02)  # the user waits on this loop: poll often, it costs a stat
    raise ServiceError(f"the embedded control plane (pid {pid}) did not answer within {START_TIMEOUT_S:.0f} s; "
                       f"see {log_path(state_dir)}")


def stop(state_dir: Path, timeout: float = STOP_TIMEOUT_S) -> Optional[dict[str, Any]]:
    """Stop the plane running on `state_dir` (runs still going end aborted); its URL file, or None if none ran."""
    from .location import read_url_file

    info = read_url_file(Path(state_dir).expanduser())
    if info is None:
        return None
    pid = int(info["pid"])
    if not _is_plane(pid, info):
        # A URL file naming some other live process (a reused pid, a hand-written file) must
        # not make `stop` signal it: only a process that is a plane is stopped.
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return info
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            # Its state is journaled as it is written: a hard stop loses nothing stored.
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    return info


def _is_plane(pid: int, info: dict[str, Any]) -> bool:
    """Whether `pid` is the plane the URL file names: never this process; on Linux, its command
    line is `flowplane local`; elsewhere, its URL answers the health check."""
    if pid == os.getpid():
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        from .health import healthy

        return bool(info.get("url")) and healthy(info["url"])
    named = any(a == b"flowplane" or a.endswith(b"/flowplane") for a in argv)
    return named and b"local" in argv


def status(state_dir: Path) -> Optional[dict[str, Any]]:
    """What `flowplane local status` shows, or None when no plane runs on `state_dir`."""
    info = running(Path(state_dir).expanduser())
    if info is None:
        return None
    flows, runs = _held(info["endpoint"])
    return {
        "url": info["url"],
        "pid": int(info["pid"]),
        "state_dir": info["state_dir"],
        "endpoint": info["endpoint"],
        "uptime_s": round(time.time() - float(info["started_at"]), 1),
        "flows": flows,
        "runs": runs,
        "log": str(log_path(Path(info["state_dir"]))),
    }


def _held(endpoint: str) -> tuple[int, int]:
    """Deployed flows (state machines) and runs (executions) the plane holds."""
    import boto3

    sfn = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local",
                                region_name="us-east-1").client("stepfunctions", endpoint_url=endpoint)
    machines = [m["stateMachineArn"] for page in sfn.get_paginator("list_state_machines").paginate()
                for m in page["stateMachines"]]
    runs = sum(len(page["executions"]) for arn in machines
               for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn))
    return len(machines), runs


def tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def follow(path: Path, write: Callable[[str], None], stop: Callable[[], bool]) -> None:
    """Write what is appended to `path` until `stop()` says so."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        while not stop():
            chunk = f.read()
            if chunk:
                write(chunk.decode(errors="replace"))
            else:
                time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rotate(path: Path) -> None:
    try:
        if path.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


class _start_lock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / START_LOCK

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise ServiceError(f"another command has been starting the embedded control plane for "
                                       f"{START_TIMEOUT_S:.0f} s ({self.path}); see {log_path(self.path.parent)}")
                time.sleep(0.05)

    def __exit__(self, *exc: Any) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
