"""The plane's own AWS calls reach moto in-process, without a socket.

Everything in the plane's process (the recorder and the other handlers, the event
router, the local Batch's events, moto's Step Functions interpreter) calls the
embedded AWS through boto3 at the plane's endpoint, as a task process does. Over
HTTP each call also pays for a socket, a request thread, http.server's parsing and
urllib3's: about 60 % of a DynamoDB read's CPU (2.9 ms against 1.1 ms measured),
on the one Python process whose time bounds how many tasks a second the plane can
record. A botocore `before-send` handler instead hands the prepared request to the
same WSGI application the server runs, so moto answers exactly as it does over
HTTP (same dispatch, same patches), in the caller's thread.

Only requests addressed to this plane's endpoint are taken; anything else (a
stopped plane's endpoint, real AWS) is sent as usual. Task processes are separate
processes and keep using HTTP.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Iterator, Optional
from urllib.parse import urlsplit

Undo = Callable[[], None]


class _Body(io.BytesIO):
    """A response body botocore can read whole or stream (S3's GetObject streams)."""

    def stream(self, amt: int = 65536, decode_content: bool = True) -> Iterator[bytes]:
        while True:
            chunk = self.read(amt)
            if not chunk:
                return
            yield chunk


class InProcessTransport:
    """A `before-send` handler answering requests to `port` on this host from `app` (moto's WSGI app)."""

    def __init__(self, app: Any, port: int) -> None:
        self.app = app
        self.netlocs = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.active = True

    def __call__(self, request: Any, **_: Any) -> Optional[Any]:
        if not self.active:
            return None
        parts = urlsplit(request.url)
        if parts.netloc not in self.netlocs:
            return None
        from botocore.awsrequest import AWSResponse
        from werkzeug.test import EnvironBuilder, run_wsgi_app

        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        environ = EnvironBuilder(
            path=parts.path or "/",
            query_string=parts.query,
            method=request.method,
            headers=headers,
            data=body or b"",
            base_url=f"{parts.scheme}://{parts.netloc}",
        ).get_environ()
        chunks, status, response_headers = run_wsgi_app(self.app, environ)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return AWSResponse(request.url, int(status.split(" ", 1)[0]), dict(response_headers), _Body(data))


def install_in_process_transport(app: Any, port: int) -> Undo:
    """Route this process's botocore requests to `port` into `app`, for every session made from now
    on (botocore copies its built-in handlers into each new session). The undo stops the handler
    answering, also in sessions already made, and takes it out of the list."""
    from botocore import handlers

    transport = InProcessTransport(app, port)
    entry = ("before-send", transport)
    handlers.BUILTIN_HANDLERS.append(entry)

    def undo() -> None:
        transport.active = False
        try:
            handlers.BUILTIN_HANDLERS.remove(entry)
        except ValueError:
            pass

    return undo
