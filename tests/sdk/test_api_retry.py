"""The SDK's retry policy (flowplane/api_retry.py) and its idempotency keys (flowplane/api_client.py)."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
from email.utils import formatdate

import pytest

from flowplane.api_client import ApiClient, ApiError, Transient, Unreachable, urllib_transport
from flowplane.api_retry import RetryPolicy, http_retryable, retry_after
from flowplane.idempotency_key import HEADER, IN_PROGRESS_CODE, REUSED_CODE

BASE = "http://plane.test"


class Clock:
    """A fake clock the fake sleep moves, so deadlines are tested without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def _policy(clock: Clock, **kw) -> RetryPolicy:
    return RetryPolicy(sleep=clock.sleep, clock=lambda: clock.now, rng=random.Random(7), **kw)


class Script:
    """A transport answering from a list: (status, headers, body) or an exception to raise."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, str, dict]] = []

    def __call__(self, method, url, headers, body):
        self.sent.append((method, url, dict(headers)))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        status, headers, body = answer
        return status, headers, json.dumps(body).encode()


OK = (200, {}, {"ok": True})


def _client(script: Script, clock: Clock, **kw) -> ApiClient:
    return ApiClient(BASE, script, auth="none", retry=_policy(clock, **kw))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_with_full_jitter_backoff(status):
    clock = Clock()
    script = Script((status, {}, {"message": "busy"}), (status, {}, {"message": "busy"}), OK)
    assert _client(script, clock).health() == {"ok": True}
    assert len(script.sent) == 3
    # Full jitter: each wait is random within a window that doubles from `initial`.
    assert 0 <= clock.waits[0] <= 0.25 and 0 <= clock.waits[1] <= 0.5


@pytest.mark.parametrize("status", [400, 403, 404, 409, 413, 422])
def test_a_refusal_is_never_retried_and_keeps_the_planes_message(status):
    clock = Clock()
    script = Script((status, {}, {"error": "parameter 'alpha' is not a float", "field": "parameters.alpha"}))
    with pytest.raises(ApiError) as e:
        _client(script, clock).trigger("Flow", {"alpha": "x"})
    assert len(script.sent) == 1 and clock.waits == []
    assert e.value.status == status
    assert str(e.value) == "parameter 'alpha' is not a float (field parameters.alpha)"


def test_a_key_still_in_progress_is_asked_again_but_a_reused_key_is_not():
    clock = Clock()
    busy = (409, {"Retry-After": "1"}, {"error": "still being handled", "code": IN_PROGRESS_CODE})
    script = Script(busy, OK)
    assert _client(script, clock).trigger("Flow", {}) == {"ok": True}
    assert clock.waits == [1.0]
    reused = Script((422, {}, {"error": "used before", "code": REUSED_CODE}))
    with pytest.raises(ApiError, match="used before"):
        _client(reused, Clock()).trigger("Flow", {})
    assert len(reused.sent) == 1


def test_retry_after_is_honoured_in_seconds_and_as_a_date():
    clock = Clock()
    script = Script((429, {"Retry-After": "3"}, {"message": "slow down"}), OK)
    _client(script, clock).health()
    assert clock.waits == [3.0]
    assert retry_after({"retry-after": formatdate(1000.0 + 5, usegmt=True)}, now=lambda: 1000.0) == 5.0
    assert retry_after({"Retry-After": "soon"}) is None and retry_after({}) is None


def test_attempts_are_bounded_and_the_last_answer_is_the_error():
    clock = Clock()
    script = Script((503, {}, {"message": "Service Unavailable"}))
    with pytest.raises(ApiError, match="Service Unavailable") as e:
        _client(script, clock, attempts=4).health()
    assert e.value.status == 503 and len(script.sent) == 4 and len(clock.waits) == 3


def test_the_deadline_bounds_the_whole_request_including_a_long_retry_after():
    clock = Clock()
    script = Script((503, {"Retry-After": "20"}, {"message": "Service Unavailable"}))
    with pytest.raises(ApiError, match="Service Unavailable"):
        _client(script, clock, attempts=100, deadline=50).health()
    # Two waits of 20 s fit in 50 s; a third would pass the deadline, so it gives up instead.
    assert clock.waits == [20.0, 20.0] and len(script.sent) == 3


def test_a_broken_connection_is_retried_then_reported_as_unreachable():
    clock = Clock()
    script = Script(Transient("POST http://plane.test/x: the connection broke (ConnectionResetError)"))
    with pytest.raises(Unreachable, match=r"connection broke.*gave up after 3 attempts"):
        _client(script, clock, attempts=3).trigger("Flow", {})
    assert len(script.sent) == 3
    recovered = Script(Transient("reset"), OK)
    assert _client(recovered, Clock()).trigger("Flow", {}) == {"ok": True}


def test_a_refused_connection_is_said_at_once():
    # Nothing listens: a local plane that is not running. API Gateway never refuses.
    script = Script(Unreachable("cannot reach http://plane.test: Connection refused"))
    with pytest.raises(Unreachable, match="refused"):
        _client(script, Clock()).health()
    assert len(script.sent) == 1


def test_a_long_wait_says_what_it_waits_for(caplog):
    clock = Clock()
    script = Script((503, {"Retry-After": "5"}, {"message": "busy"}), OK)
    with caplog.at_level(logging.WARNING, logger="flowplane.api"):
        _client(script, clock).trigger("Flow", {})
    (record,) = caplog.records
    assert record.getMessage().startswith("POST /flows/Flow/runs: it answered HTTP 503; trying again in 5.0 s (attempt 2 of 8")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flowplane.api"):
        _client(Script((503, {"Retry-After": "1"}, {}), OK), Clock()).health()
    assert caplog.records == []  # short waits pass quietly


def test_every_mutating_request_carries_one_key_for_all_its_retries():
    clock = Clock()
    script = Script((503, {}, {}), Transient("cut"), OK)
    client = _client(script, clock)
    client.trigger("Flow", {})
    keys = {headers[HEADER] for _, _, headers in script.sent}
    assert len(script.sent) == 3 and len(keys) == 1
    client.trigger("Flow", {})
    client.terminate("Flow", "sfn-1")
    client.delete_flow("Flow", "alice")
    later = [headers[HEADER] for _, _, headers in script.sent[3:]]
    assert len(set(later)) == 3 and not set(later) & keys  # a new key per user action
    client.list_runs("Flow")
    client.health()
    assert all(HEADER not in headers for _, _, headers in script.sent[6:])  # reads carry none
    client.request("POST", "/flows/Flow/runs", body={}, idempotency_key="mine-1")
    assert script.sent[-1][2][HEADER] == "mine-1"


def test_signed_requests_are_signed_again_on_each_try():
    from botocore.credentials import Credentials

    script = Script((503, {}, {}), OK)
    client = ApiClient("https://abc123.execute-api.us-east-1.amazonaws.com/dev", script,
                       credentials=Credentials("AKIDX", "secret"), retry=_policy(Clock()))
    client.trigger("Flow", {})
    first, second = (headers for _, _, headers in script.sent)
    assert first[HEADER] == second[HEADER]
    # The key is part of what is signed, so nobody on the way can swap it.
    assert "idempotency-key" in first["Authorization"]


def test_http_retryable_reads_the_code_of_a_409():
    assert http_retryable(409, json.dumps({"code": IN_PROGRESS_CODE}).encode())
    assert not http_retryable(409, json.dumps({"code": "Conflict"}).encode())
    assert not http_retryable(409, b"<html>")


# --- the urllib transport's failures ------------------------------------------------------


@pytest.fixture
def server():
    """A socket that accepts and then misbehaves as `mode` says (cut at once, or never answer)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    mode = {"value": "cut"}
    stop = threading.Event()
    held = []

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.recv(65536)
            if mode["value"] == "cut":
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", mode
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_urllib_transport_tells_a_cut_or_a_timeout_from_a_refusal(server):
    url, mode = server
    send = urllib_transport(timeout=0.3)
    with pytest.raises(Transient, match="connection broke"):
        send("POST", url + "/x", {}, b"{}")
    mode["value"] = "hold"
    with pytest.raises(Transient, match="timed out"):
        send("POST", url + "/x", {}, b"{}")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(Unreachable) as e:
        send("GET", f"http://127.0.0.1:{port}/health", {}, None)
    assert not isinstance(e.value, Transient)
