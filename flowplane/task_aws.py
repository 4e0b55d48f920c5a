"""The AWS clients of one task process: one botocore session, each client made on first use.

A task talks to S3 (its package, the datastore), EventBridge (its events, on
Batch), DynamoDB (a foreach's cardinality) and, in @catch's fallback only, Batch.
Every client comes from one botocore session, so credentials, endpoint data and
each service model are loaded once per process, and no client exists before its
first call: a local task never loads botocore at all.

boto3 is not imported. It adds its own import and s3transfer's (a third of a
task's start-up on the embedded plane) for one method a task uses,
`upload_fileobj`; `S3Client` does that with a single PutObject up to boto3's own
multipart threshold and hands larger streams to boto3's transfer manager.
"""

from __future__ import annotations

import os
import threading
from typing import IO, Any, Optional

# boto3's default multipart threshold: below it, boto3 itself uploads with one PutObject.
SINGLE_PUT_BYTES = 8 << 20

_lock = threading.Lock()
_session: Any = None
_clients: dict[tuple[Optional[str], ...], Any] = {}
_pid: Optional[int] = None


def session() -> Any:
    """This process's botocore session (created on first use)."""
    global _session, _pid
    with _lock:
        if _pid != os.getpid():
            # Forked: connection pools and sessions are not to be shared with the parent.
            _session, _pid = None, os.getpid()
            _clients.clear()
        if _session is None:
            import botocore.session

            _session = botocore.session.get_session()
        return _session


def client(service: str, endpoint_url: Optional[str] = None) -> Any:
    """A botocore client for `service`, made once per process (per endpoint and region)."""
    # The region is part of the key: tests (and a long-lived process) may change it.
    key = (service, endpoint_url, os.environ.get("AWS_REGION"), os.environ.get("AWS_DEFAULT_REGION"))
    found = _clients.get(key) if _pid == os.getpid() else None
    if found is not None:
        return found
    sess = session()
    with _lock:
        found = _clients.get(key)
        if found is None:
            made = sess.create_client(service, endpoint_url=endpoint_url)
            found = _clients[key] = S3Client(made) if service == "s3" else made
        return found


def s3() -> "S3Client":
    """The S3 client for packages and the datastore (FLOWPLANE_S3_ENDPOINT_URL, if set, is its endpoint)."""
    return client("s3", os.environ.get("FLOWPLANE_S3_ENDPOINT_URL") or None)


def reset() -> None:
    """Forget the session and clients (tests that change credentials or endpoints)."""
    global _session
    with _lock:
        _session = None
        _clients.clear()


class S3Client:
    """botocore's S3 client, plus the `upload_fileobj` the datastore's put_stream calls."""

    def __init__(self, client: Any):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upload_fileobj(
        self,
        Fileobj: IO[bytes],
        Bucket: str,
        Key: str,
        ExtraArgs: Optional[dict[str, Any]] = None,
        Callback: Any = None,
        Config: Any = None,
    ) -> None:
        size = _remaining(Fileobj)
        if size is not None and size <= SINGLE_PUT_BYTES and Callback is None and Config is None:
            self._client.put_object(Bucket=Bucket, Key=Key, Body=Fileobj.read(), **(ExtraArgs or {}))
            return
        # Large or unsized: multipart, as boto3 does it (its import is paid only here).
        from boto3.s3.inject import upload_fileobj

        upload_fileobj(self._client, Fileobj, Bucket, Key, ExtraArgs=ExtraArgs, Callback=Callback, Config=Config)


def _remaining(stream: IO[bytes]) -> Optional[int]:
    """Bytes left in a seekable stream; None when it cannot tell."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return None
