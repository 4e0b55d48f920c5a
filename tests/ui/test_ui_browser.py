"""`flowplane ui` in a real browser (the system's headless Chromium, driven by Playwright)
against the embedded plane with real runs: a foreach that succeeded, a run that failed, and
one held running until the test lets it go. One plane, one set of runs, one browser and one
dashboard for the whole module; each page's screenshot is saved in the module's output
folder (printed at the end of the module, `ui-screenshots` under pytest's temporary folder).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.browser import NO_CHROMIUM, system_chromium
from tests.support.embedded_plane import create, embedded_plane, trigger, wait_for_run
from tests.support.flow_sources import foreach_flow

pytestmark = [pytest.mark.slow, pytest.mark.skipif(system_chromium() is None, reason=NO_CHROMIUM)]

plane = embedded_plane()

FOREACH = foreach_flow("UiForeachFlow", 3, 'print("item %d" % self.input)\nself.doubled = self.input * 2')

FAILING = '''
import sys

from flowplane import FlowSpec, step


class UiFailFlow(FlowSpec):
    @step
    def start(self):
        self.before = "kept"
        self.next(self.boom)

    @step
    def boom(self):
        print("about to fail", file=sys.stderr, flush=True)
        raise ValueError("the boom step always fails")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UiFailFlow()
'''

# start waits until the file named by --gate exists: the run stays running while the test looks.
GATED = '''
import os
import time

from flowplane import FlowSpec, Parameter, step


class UiGatedFlow(FlowSpec):
    gate = Parameter("gate", default="")

    @step
    def start(self):
        print("waiting for the gate", flush=True)
        deadline = time.time() + 180
        while not os.path.exists(self.gate) and time.time() < deadline:
            time.sleep(0.2)
        print("through the gate", flush=True)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UiGatedFlow()
'''


@pytest.fixture(scope="module")
def runs(plane: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("ui-flows")
    ids: dict[str, Any] = {"gate": work / "gate-open"}
    for name, source in (("UiForeachFlow", FOREACH), ("UiFailFlow", FAILING), ("UiGatedFlow", GATED)):
        path = work / f"{name.lower()}.py"
        path.write_text(source)
        create(path)
        args = ("--gate", str(ids["gate"])) if name == "UiGatedFlow" else ()
        ids[name] = trigger(path, *args)
    for name in ("UiForeachFlow", "UiFailFlow"):
        wait_for_run(plane, name, ids[name])
    _wait_until_running(ids["UiGatedFlow"])
    return ids


def _wait_until_running(run_id: str, timeout: float = 120) -> None:
    """Until the gated run's start task is recorded running (what the run page should show)."""
    from flowplane.client import get_provider

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = get_provider().list_tasks("UiGatedFlow", run_id, "start")
        if tasks and tasks[0].status == "running":
            return
        time.sleep(0.2)
    raise AssertionError(f"UiGatedFlow/{run_id}: start not recorded running after {timeout} s")


@pytest.fixture(scope="module")
def dashboard(runs: dict[str, Any]) -> Iterator[str]:
    from flowplane.ui.server import start_in_thread, url_of

    server, _ = start_in_thread()
    try:
        yield url_of(server).rstrip("/")
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("ui-screenshots")
    yield folder
    print(f"\nscreenshots of the dashboard: {folder}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=system_chromium(), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"the page's script failed: {errors}"


def test_flows_page_shows_each_flow_deployed_with_its_latest_runs(page: Any, dashboard: str, runs: dict, shots: Path):
    assert page.goto(dashboard + "/").status == 200
    expected = {"UiForeachFlow": "succeeded", "UiFailFlow": "failed", "UiGatedFlow": "running"}
    for flow, status in expected.items():
        row = page.locator(f'tr[data-flow="{flow}"]')
        assert "version 1 by" in row.inner_text()
        dots = row.locator("a.dot")
        assert dots.count() == 1
        assert dots.first.get_attribute("class") == f"dot {status}"
        assert dots.first.get_attribute("title").startswith(runs[flow])
    page.screenshot(path=str(shots / "flows.png"), full_page=True)


def test_runs_page_filters_by_status(page: Any, dashboard: str, runs: dict, shots: Path):
    page.goto(dashboard + "/flows/UiFailFlow")
    assert page.locator("tr[data-run]").evaluate_all("rows => rows.map(r => [r.dataset.run, r.dataset.status])") == [
        [runs["UiFailFlow"], "failed"]]
    page.select_option("select[name=status]", "succeeded")
    page.click("button[type=submit]")
    page.wait_for_url("**status=succeeded**")
    assert page.locator("tr[data-run]").count() == 0
    page.goto(dashboard + "/flows/UiFailFlow?status=failed&namespace=user:SFN")
    assert page.locator("tr[data-run]").count() == 1
    page.screenshot(path=str(shots / "runs.png"), full_page=True)


def _dag(page: Any) -> dict[str, str]:
    page.wait_for_selector("svg#dag g.node")
    return dict(page.locator("svg#dag g.node").evaluate_all(
        "nodes => nodes.map(n => [n.dataset.step, n.dataset.status])"))


def test_run_page_draws_one_node_per_step_coloured_by_status(page: Any, dashboard: str, runs: dict, shots: Path):
    page.goto(f"{dashboard}/flows/UiForeachFlow/runs/{runs['UiForeachFlow']}")
    assert page.locator("h1 .badge").get_attribute("data-status") == "succeeded"
    assert _dag(page) == {"start": "succeeded", "work": "succeeded", "join": "succeeded", "end": "succeeded"}
    assert "3 tasks: 3 done" in page.locator('svg#dag g.node[data-step="work"]').inner_html()
    assert "foreach × 3" in page.locator('svg#dag g.node[data-step="start"]').inner_html()
    assert page.locator("svg#dag path.edge").count() == 3  # start → work → join → end
    # A timeline bar per task: start, three items, join, end.
    assert page.locator("#timeline .gantt-bar.succeeded").count() == 6
    page.screenshot(path=str(shots / "run.png"), full_page=True)

    page.goto(f"{dashboard}/flows/UiFailFlow/runs/{runs['UiFailFlow']}")
    assert _dag(page) == {"start": "succeeded", "boom": "failed", "end": "not started"}
    assert "the boom step always fails" in page.locator(".run-error").inner_text()
    page.screenshot(path=str(shots / "run-failed.png"), full_page=True)


def test_failed_task_page_shows_its_stderr_and_traceback(page: Any, dashboard: str, runs: dict, shots: Path):
    page.goto(f"{dashboard}/flows/UiFailFlow/runs/{runs['UiFailFlow']}")
    page.click("a.failed-task")
    page.wait_for_selector("#stderr")
    assert page.locator("h1 .badge").get_attribute("data-status") == "failed"
    assert "about to fail" in page.locator("#stderr").inner_text()
    exception = page.locator(".exception").inner_text()
    assert "ValueError" in exception and "the boom step always fails" in exception and "Traceback" in exception
    assert page.locator("tr[data-attempt]").count() == 1
    page.screenshot(path=str(shots / "task-failed.png"), full_page=True)


def test_running_run_and_its_task_update_without_reload(page: Any, dashboard: str, runs: dict, shots: Path):
    run_url = f"{dashboard}/flows/UiGatedFlow/runs/{runs['UiGatedFlow']}"
    page.goto(run_url)
    assert page.locator("h1 .badge").get_attribute("data-status") == "running"
    assert _dag(page)["start"] == "running"
    page.screenshot(path=str(shots / "run-running.png"), full_page=True)
    task = page.context.new_page()
    task.goto(run_url + "/steps/start/tasks/1")
    task.wait_for_function("document.getElementById('stdout').textContent.includes('waiting for the gate')",
                           timeout=60_000)
    for p in (page, task):
        p.evaluate("window.__sameDocument = true")
    runs["gate"].write_text("open")
    page.wait_for_selector('h1 .badge[data-status="succeeded"]', timeout=90_000)
    task.wait_for_function("document.getElementById('stdout').textContent.includes('through the gate')",
                           timeout=60_000)
    for p in (page, task):
        assert p.evaluate("window.__sameDocument") is True, "the page was reloaded"
    assert _dag(page) == {"start": "succeeded", "end": "succeeded"}
    assert page.locator("body").get_attribute("data-live-ms") is None, "a finished run is still polled"
    page.screenshot(path=str(shots / "run-finished-live.png"), full_page=True)
    task.screenshot(path=str(shots / "task-followed.png"), full_page=True)


def test_unknown_run_is_a_404_page(page: Any, dashboard: str, runs: dict, shots: Path):
    response = page.goto(f"{dashboard}/flows/UiForeachFlow/runs/sfn-no-such-run")
    assert response.status == 404
    assert page.locator("[data-error-status]").get_attribute("data-error-status") == "404"
    assert "sfn-no-such-run" in page.locator(".error-message").inner_text()
    page.screenshot(path=str(shots / "not-found.png"), full_page=True)
