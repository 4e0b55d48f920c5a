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
from collections.abc import Sequence
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

            made = botocore.session.get_session()
            made.register_component("data_loader", _loader(made.get_config_variable("data_path")))
            _session = made
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
            if service == "s3":
                from botocore.config import Config

                from ..datastore.storage import READERS

                # A join reads its parents on READERS threads through this one client: a connection
                # each, else urllib3 warns for every connection past its pool of 10 and drops it.
                made = sess.create_client(service, endpoint_url=endpoint_url,
                                          config=Config(max_pool_connections=READERS))
                found = _clients[key] = S3Client(made)
            else:
                found = _clients[key] = sess.create_client(service, endpoint_url=endpoint_url)
        return found


def s3() -> "S3Client":
    """The S3 client for packages and the datastore (FLOWPLANE_S3_ENDPOINT_URL, if set, is its endpoint)."""
    return client("s3", os.environ.get("FLOWPLANE_S3_ENDPOINT_URL") or None)


def preload_models(services: tuple[str, ...]) -> None:
    """Read botocore's data for `services` into this process's session: the endpoints, the
    service models and their endpoint rules. No client, no credentials, no region: what
    the clients made later share, whatever their environment (a warm task, warm.py)."""
    sess = session()
    sess.get_component("endpoint_resolver")  # endpoints.json
    loader = sess.get_component("data_loader")
    for name in ("sdk-default-configuration", "partitions", "_retry"):
        loader.load_data(name)
    for service in services:
        loader.load_service_model(service, "service-2", api_version=None)
        loader.load_service_model(service, "endpoint-rule-set-1", api_version=None)


def _loader(data_path: Optional[str]) -> Any:
    """botocore's loader (as `botocore.loaders.create_loader` makes it) that checks a service
    name by looking for that one service's folder.

    botocore checks every model it loads against `list_available_services`, which
    lists and stats the folders of all ~400 services, once per kind of model (the
    service model, then its endpoint rules): 25-40 ms of a task's start for two names.
    """
    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import Loader

    class _Services(Sequence):
        """The available services, as far as `name in ...` goes without listing them all."""

        def __init__(self, loader: Loader, type_name: str):
            self._loader, self._type_name = loader, type_name
            self._all: Optional[list[str]] = None

        def __contains__(self, name: object) -> bool:
            try:
                return isinstance(name, str) and bool(self._loader.list_api_versions(name, self._type_name))
            except DataNotFoundError:
                return False

        def _listed(self) -> list[str]:
            if self._all is None:
                self._all = Loader.list_available_services(self._loader, self._type_name)
            return self._all

        def __getitem__(self, i: Any) -> Any:
            return self._listed()[i]

        def __len__(self) -> int:
            return len(self._listed())

    class _TaskLoader(Loader):
        def list_available_services(self, type_name: str) -> Any:
            return _Services(self, type_name)

    paths = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else None
    return _TaskLoader(extra_search_paths=paths)


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
        # SpooledTemporaryFile has no seekable() before Python 3.11, but seeks.
        seekable = getattr(stream, "seekable", None)
        if seekable is not None and not seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return None
