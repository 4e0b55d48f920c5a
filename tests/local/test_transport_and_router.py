"""The plane's in-process transport (flowplane/local/transport.py) and the event router's batched
settling of SQS messages (flowplane/local/events.py), against a moto server of their own."""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any, Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from flowplane.local.events import MAX_RECEIVES, EventRouter
from flowplane.local.transport import install_in_process_transport


@pytest.fixture
def moto_server() -> Iterator[Any]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    yield server
    server.stop()


def _session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")


def _client(session: boto3.session.Session, service: str, port: int, host: str = "127.0.0.1") -> Any:
    return session.client(service, endpoint_url=f"http://{host}:{port}",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))


def test_requests_to_the_plane_are_answered_without_a_socket(moto_server):
    app, port = moto_server._server.app, moto_server.get_host_and_port()[1]
    undo = install_in_process_transport(app, port)
    try:
        session = _session()
        # The listening socket goes; the answers do not, so none of them used it.
        moto_server._server.shutdown()
        moto_server._server.server_close()
        s3 = _client(session, "s3", port)
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        body = bytes(range(256)) * 1024  # 256 KiB, read back streamed
        s3.put_object(Bucket=bucket, Key="k", Body=body)
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body
        with pytest.raises(ClientError) as missing:
            s3.get_object(Bucket=bucket, Key="absent")
        assert missing.value.response["Error"]["Code"] == "NoSuchKey"
        # `localhost` names the same endpoint.
        ddb = _client(session, "dynamodb", port, host="localhost")
        table = f"t-{uuid.uuid4().hex[:12]}"
        ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
        ddb.put_item(TableName=table, Item={"k": {"S": "a"}})
        with pytest.raises(ClientError) as conflict:
            ddb.put_item(TableName=table, Item={"k": {"S": "a"}}, ConditionExpression="attribute_not_exists(k)")
        assert conflict.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
        # Another port is not the plane's: sent as usual (and nothing listens there).
        with pytest.raises(EndpointConnectionError):
            _client(session, "s3", 1).list_buckets()
    finally:
        undo()
    # Undone: a session made before stops answering in-process, and nothing listens any more.
    with pytest.raises(EndpointConnectionError):
        s3.list_buckets()


def test_sessions_made_after_the_undo_do_not_get_the_transport(moto_server):
    app, port = moto_server._server.app, moto_server.get_host_and_port()[1]
    install_in_process_transport(app, port)()
    from botocore import handlers

    assert not any(type(h).__name__ == "InProcessTransport" for _, h, *rest in handlers.BUILTIN_HANDLERS)


class _Counting:
    """The router's SQS client, counting the requests it makes."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            return method(**kwargs)

        return call


def _router(port: int, invoke: Any) -> EventRouter:
    session = _session()
    original = session.client
    session.client = lambda service, **kw: original(service, endpoint_url=f"http://127.0.0.1:{port}", **kw)
    router = EventRouter(session, invoke, f"test-{uuid.uuid4().hex[:8]}-")
    router.sqs = _Counting(router.sqs)
    return router


def _wait(router: EventRouter, until: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the router did not deliver in time"
        time.sleep(0.05)
    deadline = time.monotonic() + timeout
    while not router.idle():
        assert time.monotonic() < deadline, "the router never went idle"
        time.sleep(0.05)


def test_a_backlog_is_deleted_a_batch_at_a_time(moto_server):
    port = moto_server.get_host_and_port()[1]
    seen: list[int] = []
    gate = threading.Event()

    def invoke(handler: str, event: dict) -> None:
        gate.wait(10)
        seen.append(event["detail"]["n"])

    router = _router(port, invoke)
    router.add("record", {"source": ["test.router"]})
    router.start()
    try:
        # Queued while the handler is held: the backlog a busy plane builds.
        router.put({"Source": "test.router", "DetailType": "n", "Detail": f'{{"n": {n}}}'} for n in range(40))
        time.sleep(0.5)
        gate.set()
        _wait(router, lambda: len(seen) == 40)
    finally:
        router.stop(drain_seconds=5)
    assert sorted(seen) == list(range(40))  # each once
    deletes = router.sqs.calls.count("delete_message_batch")
    assert router.sqs.calls.count("delete_message") == 0
    assert deletes < 40 / 2, f"{deletes} delete requests for 40 events"


def test_a_failing_handler_gets_the_event_again_then_it_is_dropped(moto_server):
    port = moto_server.get_host_and_port()[1]
    attempts: dict[str, int] = {}

    def invoke(handler: str, event: dict) -> None:
        name = event["detail"]["name"]
        attempts[name] = attempts.get(name, 0) + 1
        if name == "always" or (name == "once" and attempts[name] == 1):
            raise RuntimeError(f"{name} fails")

    router = _router(port, invoke)
    router.add("record", {"source": ["test.router"]})
    router.start()
    try:
        router.put({"Source": "test.router", "DetailType": "n", "Detail": f'{{"name": "{n}"}}'}
                   for n in ("fine", "once", "always"))
        _wait(router, lambda: attempts.get("always", 0) >= MAX_RECEIVES and attempts.get("once", 0) >= 2)
        time.sleep(1.5)  # a message left in the queue would be visible again by now
        assert router.idle()
    finally:
        router.stop(drain_seconds=5)
    assert attempts == {"fine": 1, "once": 2, "always": MAX_RECEIVES}
    failed = [d for d in router.deliveries if not d.ok]
    assert len(failed) == 1 + MAX_RECEIVES and all("fails" in d.error for d in failed)
    assert "change_message_visibility_batch" in router.sqs.calls


def test_task_processes_run_below_the_plane():
    import subprocess
    import sys

    from flowplane.local.priority import TASK_NICENESS, run_below_the_plane

    child = subprocess.Popen([sys.executable, "-c", "import os, time; time.sleep(0.3); print(os.nice(0))"],
                             stdout=subprocess.PIPE, text=True)
    run_below_the_plane(child.pid)
    out, _ = child.communicate(timeout=10)
    assert int(out) == max(TASK_NICENESS, os.nice(0))
    run_below_the_plane(child.pid)  # gone already: nothing to do, nothing raised
