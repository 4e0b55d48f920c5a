"""`flowplane ui`'s pages and errors without a browser: the Dashboard rendered over a written
datastore (tests/support/run_layouts.py's world), a control plane that does not answer or
refuses the credentials, and the HTTP server's own refusals. The browser tests
(test_ui_browser.py) drive the same pages against the embedded plane."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest

from flowplane.client import DeploymentInfo, namespace, use_provider
from flowplane.client.local import LocalProvider
from flowplane.client.service import ServiceProvider
from flowplane.datastore.storage import LocalStorage
from flowplane.ui import pages
from flowplane.ui.server import Dashboard, start_in_thread, url_of
from tests.support.paths import ROOT
from tests.support.run_layouts import build_world, isolate_client


@pytest.fixture(scope="module")
def world_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datastore")
    build_world(LocalStorage(str(root)))
    return root


@pytest.fixture
def dashboard(world_root, monkeypatch):
    isolate_client(monkeypatch, str(world_root))
    namespace(None)
    with use_provider(LocalProvider(LocalStorage(str(world_root)))):
        yield Dashboard()


def render(d: Dashboard, path: str, query: str = "") -> tuple[int, str]:
    from urllib.parse import parse_qs

    return d.render(path, parse_qs(query))


def test_flows_page_lists_every_flow_with_its_runs_as_dots(dashboard):
    status, html = render(dashboard, "/")
    assert status == 200
    for flow in ("ParameterFlow", "ForeachFlow", "TrainFlow", "BobOnlyFlow"):
        assert f'data-flow="{flow}"' in html
    assert 'class="dot running" href="/flows/ParameterFlow/runs/7001"' in html
    assert 'class="dot failed" href="/flows/TrainFlow/runs/4001"' in html


def test_runs_page_filters_and_goes_live_while_a_run_goes(dashboard):
    status, html = render(dashboard, "/flows/ParameterFlow")
    assert status == 200 and html.count("<tr data-run=") == 5 and "data-live-ms" in html
    status, html = render(dashboard, "/flows/ParameterFlow", "status=succeeded&namespace=user:alice")
    assert [line.split('"')[1] for line in html.split("<tr data-run=")[1:]] == ["1002", "1001"]
    assert 'data-live-ms="10000"' in html  # nothing on the page runs: it only looks for new runs
    status, html = render(dashboard, "/flows/ParameterFlow", "status=succeeded&page=" + _next_token(dashboard))
    assert status == 200 and "data-live-ms" not in html  # a later page stays as it was read


def _next_token(d: Dashboard) -> str:
    from flowplane.client import Flow

    return Flow("ParameterFlow").runs_page(status="succeeded", namespace_tag=None, limit=1)[1]


def test_run_page_of_a_failed_run_names_and_links_its_failed_task(dashboard):
    status, html = render(dashboard, "/flows/TrainFlow/runs/4001")
    assert status == 200 and 'data-status="failed"' in html
    assert 'class="failed-task" href="/flows/TrainFlow/runs/4001/steps/train/tasks/1"' in html
    assert "learning rate must be positive" in html
    dag = json.loads(html.split('<div id="dag-data" data-live hidden>')[1].split("</div>")[0])
    assert {n["name"]: n["status"] for n in dag} == {"start": "succeeded", "train": "failed"}


def test_run_page_timeline_marks_a_retried_task_and_its_task_page_lists_each_attempt(dashboard):
    status, html = render(dashboard, "/flows/RetryFlow/runs/6001")
    assert status == 200 and "flaky/1 (2 attempts)" in html
    status, html = render(dashboard, "/flows/RetryFlow/runs/6001/steps/flaky/tasks/1", "attempt=0")
    assert 'data-attempt="0"' in html and 'data-attempt="1"' in html and "showing attempt 0" in html


def test_task_page_shows_attempts_logs_artifacts_and_exception(dashboard):
    status, html = render(dashboard, "/flows/TrainFlow/runs/4001/steps/train/tasks/1")
    assert status == 200
    assert "ValueError: learning rate must be positive" in html  # stderr
    assert 'data-artifact="rows"' in html and "<code class=\"preview\">3</code>" in html
    assert 'class="exception"' in html and 'data-attempt="0"' in html


@pytest.mark.parametrize("path, query, status, words", [
    ("/flows/NoSuchFlow", "", 404, "NoSuchFlow"),
    ("/flows/ParameterFlow/runs/9999", "", 404, "9999"),
    ("/flows/ParameterFlow/runs/1001/steps/start/tasks/7", "", 404, "does not exist"),
    ("/flows/ParameterFlow/runs/1001/steps/start/tasks/1", "attempt=5", 404, "has no attempt 5"),
    ("/flows/ParameterFlow/runs/1001/steps/start/tasks/1", "attempt=x", 400, "attempt is a number"),
    ("/flows/ParameterFlow", "status=done", 400, "status must be one of running, succeeded, failed"),
    ("/flows/ParameterFlow", "page=forged", 400, "is not a page token"),
    ("/flows/..%2F..%2Fetc", "", 400, "expected 1 part"),
    ("/flows/..", "", 400, "is not a valid name"),
    ("/nowhere", "", 404, "there is no page at /nowhere"),
])
def test_bad_and_unknown_addresses_are_pages_saying_so(dashboard, path, query, status, words):
    got, html = render(dashboard, path, query)
    assert got == status and f'data-error-status="{status}"' in html
    assert words in html.replace("&#39;", "'")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_control_plane_is_a_503_saying_what_to_do():
    with use_provider(ServiceProvider(f"http://127.0.0.1:{_closed_port()}", retries=1)):
        status, html = Dashboard().render("/flows/ParameterFlow", {})
    assert status == 503 and "The control plane does not answer" in html and "flowplane local status" in html


def test_expired_credentials_are_a_401_saying_how_to_sign_in_again():
    def expired(method, url, headers, body):
        return 403, {"Content-Type": "application/json"}, json.dumps(
            {"message": "The security token included in the request is expired"}).encode()

    with use_provider(ServiceProvider("https://plane.invalid", transport=expired, retries=1)):
        status, html = Dashboard().render("/", {})
    assert status == 401 and "refused your credentials" in html and "aws sso login" in html
    assert "security token included in the request is expired" in html


def test_credentials_botocore_cannot_refresh_are_a_401_too():
    class TokenRetrievalError(Exception):
        """Named as botocore's, raised when an SSO session has expired."""

    def stale(method, url, headers, body):
        raise TokenRetrievalError("Token has expired and refresh failed")

    with use_provider(ServiceProvider("https://plane.invalid", transport=stale, retries=1)):
        status, html = Dashboard().render("/", {})
    assert status == 401 and "have expired or are missing" in html and "Token has expired" in html


def test_the_server_is_read_only_and_serves_only_its_own_static_files(dashboard):
    server, _ = start_in_thread()
    base = url_of(server).rstrip("/")
    try:
        with urllib.request.urlopen(base + "/static/dagre.min.js") as answer:
            assert answer.status == 200 and b"dagre" in answer.read(2000)
        for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/nothing.js"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(base + path)
            assert e.value.code == 404, path
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(base + "/", data=b"{}", method="POST"))
        assert e.value.code == 405
        with pytest.raises(urllib.error.HTTPError) as e:  # another site's name pointed at 127.0.0.1
            urllib.request.urlopen(urllib.request.Request(base + "/", headers={"Host": "evil.example:80"}))
        assert e.value.code == 421
    finally:
        server.shutdown()
        server.server_close()


def test_next_fire_time_of_a_cron_and_of_a_rate_from_the_deploy():
    now = datetime(2026, 12, 7, 10, 20, tzinfo=timezone.utc)
    hourly = DeploymentInfo(version=1, deployer="a", deployed_at="2026-12-01T00:00:00+00:00", namespace=None,
                            schedule="cron(0 * * * ? *)")
    assert pages.next_fire_time(hourly, now) == datetime(2026, 12, 7, 11, 0, tzinfo=timezone.utc)
    rate = DeploymentInfo(version=1, deployer="a", deployed_at="2026-12-07T10:05:00+00:00", namespace=None,
                          schedule="rate(30 minutes)")
    assert pages.next_fire_time(rate, now) == datetime(2026, 12, 7, 10, 35, tzinfo=timezone.utc)
    assert pages.next_fire_time(None, now) is None
    # A daily 09:00 in Amsterdam (UTC+1 in December) fires at 08:00 UTC.
    zoned = DeploymentInfo(version=1, deployer="a", deployed_at="2026-12-01T00:00:00+00:00", namespace=None,
                           schedule="cron(0 9 * * ? *)", timezone="Europe/Amsterdam")
    assert pages.next_fire_time(zoned, now) == datetime(2026, 12, 8, 8, 0, tzinfo=timezone.utc)


def test_the_lambda_bundle_never_imports_the_dashboard():
    code = ("import sys; sys.path.insert(0, '.'); import app; "
            "print(sorted(m for m in sys.modules if m.startswith(('flowplane.ui', 'jinja2'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_triggers_read_as_one_line_each():
    from chalicelib.deploy.rollout import trigger_document
    from flowplane.manifest import TriggerOnFinishSpec, TriggerSpec

    stored = json.loads(trigger_document(
        TriggerSpec.model_validate({"event": "data_updated"}),
        TriggerOnFinishSpec.model_validate({"flow": "fraud.prod.FirstFlow", "options": {"any": True}})))
    deployment = DeploymentInfo(version=2, deployer="a", deployed_at=None, namespace="production:t", schedule=None,
                                triggers=stored)
    assert pages.trigger_lines(deployment) == ["event data_updated", "after fraud.prod.FirstFlow",
                                               "(any one of them)"]
    assert pages.trigger_lines(None) == []
