"""`flowplane local`: the embedded control plane, in the foreground or as a background service.

    flowplane local [--port N] [--vcpus N] [--state-dir DIR] [--verbose]   # foreground, until Ctrl-C
    flowplane local start [--state-dir DIR] [--vcpus N]     # in the background (what the SDK does by itself)
    flowplane local stop [--state-dir DIR]
    flowplane local status [--state-dir DIR] [--json]
    flowplane local logs [--state-dir DIR] [-n N] [--follow]

In the foreground it prints the URL to give the SDK (FLOWPLANE_API_URL; the SDK
also finds it by itself through the state folder), then one line per run status
change. Ctrl-C (or SIGTERM) stops the runs still going and exits; the state is on
disk as it is written.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional


SUBCOMMANDS = ("start", "stop", "status", "logs")


def build_parser() -> argparse.ArgumentParser:
    from .location import STATE_DIR_ENV

    p = argparse.ArgumentParser(
        prog="flowplane local",
        description="Run Flowplane's control plane on this machine, on an embedded AWS (moto): "
        "deploy with `step-functions create`, runs execute as local processes.",
        epilog="In the background: `flowplane local start|stop|status|logs` (--help on each). "
        "The SDK starts it in the background by itself when no control plane is configured.",
    )
    p.add_argument("--port", type=_port, default=8000, help="port of the control plane's API on 127.0.0.1 "
                   "(0: any free one; default 8000)")
    p.add_argument("--vcpus", type=_positive, default=os.cpu_count() or 2,
                   help="how many vCPUs the local Batch has: tasks running at once (default: this machine's CPUs)")
    p.add_argument("--state-dir", type=Path, default=None,
                   help=f"where the state survives restarts (default ${STATE_DIR_ENV} or ~/.flowplane/local)")
    p.add_argument("--verbose", "-v", action="store_true", help="log what the control plane does")
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {value}")
    return value


def build_service_parser(command: str) -> argparse.ArgumentParser:
    from .location import STATE_DIR_ENV

    what = {
        "start": "start the embedded control plane in the background (if none runs on the state folder)",
        "stop": "stop the background control plane; runs still going end aborted",
        "status": "show whether it runs: URL, pid, state folder, uptime, flows and runs held",
        "logs": "show the background control plane's log",
    }[command]
    p = argparse.ArgumentParser(prog=f"flowplane local {command}", description=what)
    p.add_argument("--state-dir", type=Path, default=None,
                   help=f"the plane's state folder (default ${STATE_DIR_ENV} or ~/.flowplane/local)")
    if command == "start":
        p.add_argument("--vcpus", type=_positive, default=None,
                       help="how many vCPUs the local Batch has (default: this machine's CPUs)")
    if command == "status":
        p.add_argument("--json", action="store_true", help="print url, pid, state_dir, ... as JSON")
    if command == "logs":
        p.add_argument("-n", "--lines", type=_positive, default=50, help="how many last lines (default 50)")
        p.add_argument("-f", "--follow", action="store_true", help="keep printing what is added (Ctrl-C ends)")
    return p


def service_main(command: str, argv: list[str]) -> int:
    import json

    from . import service
    from .location import default_state_dir

    args = build_service_parser(command).parse_args(argv)
    state_dir = (args.state_dir or default_state_dir()).expanduser()
    if command == "start":
        try:
            info, started = service.start(state_dir, vcpus=args.vcpus)
        except service.ServiceError as e:
            print(f"flowplane local start: {e}", file=sys.stderr)
            return 1
        verb = "Started" if started else "Already running:"
        print(f"{verb} the embedded control plane at {info['url']} (pid {info['pid']}, state and log in "
              f"{state_dir}). Stop it with `flowplane local stop`.")
        return 0
    if command == "stop":
        info = service.stop(state_dir)
        if info is None:
            print(f"No embedded control plane runs on {state_dir}.")
        else:
            print(f"Stopped the embedded control plane at {info['url']} (pid {info['pid']}).")
        return 0
    if command == "status":
        shown = service.status(state_dir)
        if shown is None:
            if args.json:
                print(json.dumps({"running": False, "state_dir": str(state_dir)}))
            else:
                print(f"No embedded control plane runs on {state_dir}. "
                      "The next `step-functions` command starts one; or `flowplane local start`.")
            return 3  # as `systemctl status` says "not running"
        if args.json:
            print(json.dumps({"running": True, **shown}))
        else:
            print(f"running at {shown['url']}\n  pid          {shown['pid']}\n  state folder {shown['state_dir']}\n"
                  f"  uptime       {_duration(shown['uptime_s'])}\n  flows        {shown['flows']} deployed\n"
                  f"  runs         {shown['runs']}\n  log          {shown['log']}")
        return 0
    path = service.log_path(state_dir)
    if not path.exists():
        print(f"No log in {state_dir}: the background control plane has not run there.", file=sys.stderr)
        return 1
    print(service.tail(path, args.lines))
    if args.follow:
        try:
            service.follow(path, lambda text: print(text, end="", flush=True), stop=lambda: False)
        except KeyboardInterrupt:
            pass
    return 0


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h {m:02d}m {s:02d}s" if hours else f"{m}m {s:02d}s"


def main(argv: Optional[list[str]] = None, stop: Optional[threading.Event] = None) -> int:
    """The command; `stop` lets a caller (a test) end it instead of a signal."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return service_main(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    from .location import default_state_dir
    from .plane import LocalPlane, PlaneConfig, PlaneError

    stop = stop or threading.Event()

    def show(execution: dict[str, Any]) -> None:
        machine = execution["stateMachineArn"].rsplit(":", 1)[-1]
        # Timed: in the background these lines are the service's log (`flowplane local logs`).
        print(f"  {time.strftime('%Y-%m-%d %H:%M:%S')}  {machine}  sfn-{execution['name']}  {execution['status']}",
              flush=True)

    config = PlaneConfig(
        state_dir=(args.state_dir or default_state_dir()).expanduser(),
        port=args.port,
        vcpus=args.vcpus,
        progress=lambda m: print(f"... {m}", flush=True),
        on_execution=show,
    )
    plane = LocalPlane(config)
    try:
        plane.start()
    except PlaneError as e:
        print(f"flowplane local: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"flowplane local needs the control plane's dependencies (moto[server], chalice; "
              f"`make install` or pip install -r requirements-dev.txt): {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            print(f"flowplane local: port {args.port} is taken; choose another with --port (0: any free one)",
                  file=sys.stderr)
        else:
            print(f"flowplane local: {e}", file=sys.stderr)
        return 1
    r = plane.restored
    if r.state_machines or r.executions:
        print(f"Restored {r.state_machines} deployed flow(s) and {r.executions} run(s) from {config.state_dir}.")
    print(f"\nFlowplane's control plane runs at {plane.url} (embedded AWS at {plane.endpoint}).")
    print(f"The SDK finds it by itself; elsewhere: export FLOWPLANE_API_URL={plane.url}")
    print("Ctrl-C (or `flowplane local stop`) stops it.\n", flush=True)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        plane.stop()
    return 0
