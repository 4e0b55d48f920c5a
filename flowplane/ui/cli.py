"""`flowplane ui`: serve the dashboard on 127.0.0.1 and open it in the browser.

    flowplane ui [--port N] [--no-browser]

It reads what the Client API reads with your configuration (FLOWPLANE_API_URL or
~/.flowplane/config.json, else a running `flowplane local`, and the local datastore of
the folder it starts in), and changes nothing. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="flowplane ui",
        description="A read-only dashboard of flows and runs in the browser, read through the Client API "
                    "(local runs, the embedded plane, an AWS stack).")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="print the URL without opening a browser")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"flowplane ui: --port is 0 to 65535, got {args.port}", file=sys.stderr)
        return 2
    from .server import serve, url_of

    try:
        server = serve("127.0.0.1", args.port)
    except OSError as e:
        print(f"flowplane ui: cannot listen on 127.0.0.1:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    url = url_of(server)
    print(f"Flowplane dashboard at {url} (read-only; Ctrl-C stops it)", flush=True)
    if not args.no_browser:
        import webbrowser

        if not webbrowser.open(url):
            print("no browser found here: open the URL above", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
