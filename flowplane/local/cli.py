"""`flowplane local`: run the embedded control plane in the foreground until Ctrl-C.

    flowplane local [--port N] [--vcpus N] [--state-dir DIR] [--verbose]

Prints the URL to give the SDK (FLOWPLANE_API_URL; the SDK also finds it by
itself through the state folder), then one line per run status change. Ctrl-C
(or SIGTERM) stops the runs still going, saves the state and exits.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Optional


def build_parser() -> argparse.ArgumentParser:
    from .plane import STATE_DIR_ENV

    p = argparse.ArgumentParser(
        prog="flowplane local",
        description="Run Flowplane's control plane on this machine, on an embedded AWS (moto): "
        "deploy with `step-functions create`, runs execute as local processes.",
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


def main(argv: Optional[list[str]] = None, stop: Optional[threading.Event] = None) -> int:
    """The command; `stop` lets a caller (a test) end it instead of a signal."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    from .plane import LocalPlane, PlaneConfig, PlaneError, default_state_dir

    stop = stop or threading.Event()

    def show(execution: dict[str, Any]) -> None:
        machine = execution["stateMachineArn"].rsplit(":", 1)[-1]
        print(f"  {machine}  sfn-{execution['name']}  {execution['status']}", flush=True)

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
    print("Ctrl-C stops it.\n", flush=True)

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
