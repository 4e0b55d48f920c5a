"""A fault-injecting HTTP proxy on 127.0.0.1 for the network tests (no tests here).

It stands between the SDK and a control plane and, for a seeded fraction of the
requests, does what a flaky network and a busy AWS do:

- `drop_before`: cuts the connection before the plane sees the request;
- `drop_after`: lets the plane handle the request, then cuts the connection, so
  the client never learns it acted (the case retries alone make worse);
- `delay`: lets the plane handle it and holds the answer past the client's timeout;
- `throttle`: answers 429 with Retry-After: 0 without forwarding (API Gateway's throttle);
- `gateway`: lets the plane handle it, then answers 503 (a gateway losing the answer).
"""

from __future__ import annotations

import http.client
import http.server
import random
import socket
import threading
import time
import urllib.parse
from collections import Counter
from typing import Optional

FAULTS = ("drop_before", "drop_after", "delay", "throttle", "gateway")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


class FaultProxy:
    def __init__(self, upstream: str, rate: float, seed: int, delay: float) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.rate = rate
        self.delay = delay
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self.enabled = True
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def _choose(self) -> Optional[str]:
        with self.lock:
            self.requests += 1
            if not self.enabled or self.rng.random() >= self.rate:
                return None
            fault = self.rng.choice(FAULTS)
            self.injected[fault] += 1
            return fault

    def _forward(self, h: http.server.BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP_BY_HOP}
            conn.request(h.command, h.path, body=body or None, headers=headers)
            r = conn.getresponse()
            return r.status, [(k, v) for k, v in r.getheaders() if k.lower() not in _HOP_BY_HOP], r.read()
        finally:
            conn.close()

    def _reply(self, h: http.server.BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        try:
            h.send_response(status)
            for k, v in headers:
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            pass  # the client gave up already (a delay past its timeout)
        h.close_connection = True

    @staticmethod
    def _cut(h: http.server.BaseHTTPRequestHandler) -> None:
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        h.close_connection = True

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        fault = self._choose()
        if fault == "drop_before":
            return self._cut(h)
        if fault == "throttle":
            return self._reply(h, 429, [("Retry-After", "0"), ("Content-Type", "application/json")],
                               b'{"message": "Too Many Requests"}')
        answer = self._forward(h, body)
        if fault == "drop_after":
            return self._cut(h)
        if fault == "delay":
            time.sleep(self.delay)
        if fault == "gateway":
            return self._reply(h, 503, [("Content-Type", "application/json")], b'{"message": "Service Unavailable"}')
        self._reply(h, *answer)
