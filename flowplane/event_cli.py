"""`flowplane event publish NAME [--payload JSON] [--id ID]`: start the flows that `@trigger` on NAME."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional


def _payload(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"table\": \"sales\"}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowplane event", description="Events that start @trigger flows.")
    sub = p.add_subparsers(dest="command", required=True)
    pub = sub.add_parser("publish", help="publish an event on the control plane's bus")
    pub.add_argument("name", help="the event's name, as @trigger(event=...) names it")
    pub.add_argument("--payload", type=_payload, default={}, help="a JSON object; its fields map to parameters")
    pub.add_argument("--id", dest="event_id", default=None,
                     help="the event's id: publishing the same id again starts no second run")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from .api_client import ApiClient, ApiError
    from .user_config import ConfigError

    try:
        answer = ApiClient().publish_event(args.name, args.payload, args.event_id)
    except (ApiError, ConfigError) as e:
        print(f"flowplane event publish: {e.describe() if isinstance(e, ApiError) else e}", file=sys.stderr)
        return 1
    print(f"Published event {answer['name']} (id {answer['id']}).")
    return 0
