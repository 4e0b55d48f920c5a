"""Flow.runs_page: a flow's runs a page at a time, filtered, as a dashboard's table reads them.

The merge of the datastore's runs with a control plane's is checked against fake page
readers (every run once, newest first, one plane request a page, whatever the mix); the
datastore's paging and filters through Flow.runs_page over a written datastore; the control
plane's through a fake transport that records each request.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import pytest

from flowplane.client import ClientError, Flow, use_provider
from flowplane.client.local import LocalProvider
from flowplane.client.run_pages import InvalidPageToken, merged_page, offset_page
from flowplane.client.service import ServiceProvider
from flowplane.datastore.records import RunRecord
from flowplane.datastore.storage import LocalStorage
from tests.support.run_layouts import build_world, isolate_client

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def rec(run_id: str, minute: float, status: str = "succeeded") -> RunRecord:
    return RunRecord(flow="F", run_id=run_id, user="u", status=status,
                     created_at=(T0 + timedelta(minutes=minute)).isoformat(timespec="milliseconds"))


class PlanePages:
    """The plane's listing as its route pages it (a DynamoDB Query): `limit` items evaluated
    from an opaque token, those a filter hides left out, so a filtered page may be short or
    empty and still have a next token."""

    def __init__(self, runs: list[RunRecord], hidden: frozenset[str] = frozenset()) -> None:
        self.runs = sorted(runs, key=lambda r: (r.created_at, r.run_id), reverse=True)
        self.hidden = hidden
        self.requests = 0
        self.empty_answers = 0

    def visible(self) -> list[RunRecord]:
        return [r for r in self.runs if r.run_id not in self.hidden]

    def __call__(self, limit: int, token: Optional[str]) -> tuple[list[RunRecord], Optional[str]]:
        assert 1 <= limit <= 1000
        self.requests += 1
        start = int(token) if token else 0
        end = min(start + limit, len(self.runs))
        page = [r for r in self.runs[start:end] if r.run_id not in self.hidden]
        self.empty_answers += not page
        return page, (str(end) if end < len(self.runs) else None)


def local_pages(runs: list[RunRecord]):
    ordered = sorted(runs, key=lambda r: (r.created_at, r.run_id), reverse=True)
    return lambda limit, token: offset_page(ordered, limit, token)


def page_through(local, plane, limit: int) -> tuple[list[str], int]:
    seen, token, pages = [], None, 0
    while True:
        page, token = merged_page(local, plane, limit, token)
        pages += 1
        seen += [r.run_id for r in page]
        if token is None:
            return seen, pages
        assert pages < 1000, "the listing does not end"


@pytest.mark.parametrize("filtered", [False, True])
@pytest.mark.parametrize("limit", [1, 7, 50])
def test_every_run_once_newest_first_and_one_plane_request_a_page(limit, filtered):
    rng = random.Random(limit * 10 + filtered)
    local = [rec(str(1000 + i), rng.uniform(0, 500)) for i in range(37)]
    plane_runs = [rec(f"sfn-{i}", rng.uniform(0, 500)) for i in range(121)]
    hidden = frozenset(r.run_id for r in plane_runs if filtered and rng.random() < 0.6)
    plane = PlanePages(plane_runs, hidden)
    seen, pages = page_through(local_pages(local), plane, limit)
    everything = sorted(local + plane.visible(), key=lambda r: (r.created_at, r.run_id), reverse=True)
    assert seen == [r.run_id for r in everything]
    # One request a page; a page the filter emptied is passed over within the same page.
    assert plane.requests <= pages + plane.empty_answers


def test_a_plane_alone_and_a_datastore_alone_page_too():
    runs = [rec(f"sfn-{i}", i) for i in range(25)]
    seen, pages = page_through(local_pages([]), PlanePages(runs), 10)
    assert seen == [f"sfn-{i}" for i in reversed(range(25))] and pages == 3
    seen, pages = page_through(local_pages([rec(str(i), i) for i in range(25)]), None, 10)
    assert seen == [str(i) for i in reversed(range(25))] and pages == 3


def test_a_token_from_elsewhere_is_refused():
    local = local_pages([rec("1", 1)])
    with pytest.raises(InvalidPageToken):
        merged_page(local, None, 10, "not-a-token")
    _, offset_token = offset_page([rec(str(i), i) for i in range(5)], 2, None)
    with pytest.raises(InvalidPageToken):
        merged_page(local, None, 10, offset_token)  # an offset token is not a merged listing's


@pytest.fixture
def world(tmp_path, monkeypatch):
    root = tmp_path / "datastore"
    build_world(LocalStorage(str(root)))
    isolate_client(monkeypatch, str(root))
    with use_provider(LocalProvider(LocalStorage(str(root)))):
        yield


def test_runs_page_filters_by_status_tag_and_namespace(world):
    flow = Flow("ParameterFlow", _namespace_check=False)
    everyone, token = flow.runs_page(namespace_tag=None)
    assert [r.id for r in everyone] == ["7001", "sfn-abc", "1003", "1002", "1001"] and token is None
    assert [r.id for r in flow.runs_page(status="running", namespace_tag=None)[0]] == ["7001"]
    assert [r.id for r in flow.runs_page(tag="exp:2", namespace_tag=None)[0]] == ["1002"]
    assert [r.id for r in flow.runs_page(namespace_tag="user:bob")[0]] == ["1003"]
    # Default: the current namespace (alice's).
    assert [r.id for r in flow.runs_page()[0]] == ["7001", "1002", "1001"]


def test_runs_page_pages_by_its_token(world):
    flow = Flow("ParameterFlow", _namespace_check=False)
    first, token = flow.runs_page(limit=2, namespace_tag=None)
    second, token2 = flow.runs_page(limit=2, namespace_tag=None, token=token)
    third, token3 = flow.runs_page(limit=2, namespace_tag=None, token=token2)
    assert [r.id for r in first + second + third] == ["7001", "sfn-abc", "1003", "1002", "1001"]
    assert token3 is None


@pytest.mark.parametrize("kwargs, words", [
    ({"status": "done"}, "status must be one of"),
    ({"limit": 0}, "a page holds 1 to 1000 runs"),
    ({"limit": 5000}, "a page holds 1 to 1000 runs"),
    ({"token": "garbage!"}, "is not a page token"),
])
def test_bad_page_requests_are_refused(world, kwargs, words):
    with pytest.raises(ClientError, match=words):
        Flow("ParameterFlow", _namespace_check=False).runs_page(namespace_tag=None, **kwargs)


class RecordingTransport:
    """Answers the runs route and GET /flows/{flow}, recording every request."""

    def __init__(self, flow_doc: dict[str, Any]) -> None:
        self.urls: list[str] = []
        self.flow_doc = flow_doc

    def __call__(self, method: str, url: str, headers: dict, body: Optional[bytes]):
        self.urls.append(url)
        if "/runs" in url:
            doc = {"runs": [rec("sfn-1", 1).model_dump(mode="json")], "next_token": "T2"}
        else:
            doc = self.flow_doc
        return 200, {"Content-Type": "application/json"}, json.dumps(doc).encode()


def test_through_the_plane_a_page_is_one_request_filtered_there():
    transport = RecordingTransport({"name": "F", "created_at": "2026-12-01T00:00:00+00:00", "deployed": False})
    provider = ServiceProvider("http://plane.invalid", transport=transport, retries=1)
    page, token = provider.runs_page("F", namespace_tag="production:tok", tag="team:ml", status="failed", limit=20,
                                     token="T1")
    assert [r.run_id for r in page] == ["sfn-1"] and token == "T2"
    assert len(transport.urls) == 1
    query = transport.urls[0].split("?", 1)[1]
    assert sorted(query.split("&")) == sorted(
        ["namespace=production%3Atok", "tag=team%3Aml", "status=failed", "limit=20", "next_token=T1"])


def test_flow_deployment_comes_from_the_flows_own_read():
    doc = {"name": "F", "created_at": "2026-12-01T00:00:00+00:00", "deployed": True, "deleted": False,
           "production_version": 3, "deployer": "arn:aws:iam::1:user/alice", "deployed_at": "2026-12-02T00:00:00+00:00",
           "production_token": "tok", "namespace": "production:tok", "schedule": "cron(0 * * * ? *)",
           "triggers": {"trigger": {"events": [{"name": "data_updated", "parameters": {}}], "any": False},
                        "trigger_on_finish": None}}
    provider = ServiceProvider("http://plane.invalid", transport=RecordingTransport(doc), retries=1)
    with use_provider(provider):
        deployment = Flow("F", _namespace_check=False).deployment
    assert (deployment.version, deployment.namespace, deployment.schedule) == (3, "production:tok", "cron(0 * * * ? *)")
    assert deployment.triggers["trigger"]["events"][0]["name"] == "data_updated" and not deployment.deleted
    never = ServiceProvider("http://plane.invalid", transport=RecordingTransport(
        {"name": "F", "created_at": "2026-12-01T00:00:00+00:00", "deployed": False}), retries=1)
    with use_provider(never):
        assert Flow("F", _namespace_check=False).deployment is None
