"""The Client API over the local datastore and a control plane at once (CombinedProvider).

The datastore holds local runs (`python flow.py run`), a stub plane holds production
runs (`sfn-...`), each written with the datastore's own writers. The stub pages its
runs with the ServiceProvider's own pager, counts what it is asked, and fails on
demand as a ServiceProvider does (unreachable, or an HTTP error).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from typing import Any, Optional

import pytest

from flowplane import Flow, Metaflow, Run, Step, Task, namespace
from flowplane.client import NamespaceMismatch, NotFound, get_metadata, get_provider, use_provider
from flowplane.client import selection
from flowplane.client.combined import CombinedProvider, PlaneVanishedWarning
from flowplane.client.local import LocalProvider
from flowplane.client.service import ServiceError, ServiceProvider, _RunPages
from flowplane.datastore.storage import LocalStorage
from tests.support.fake_control_plane import fake_control_plane
from tests.support.run_layouts import branch_run, isolate_client, linear_run

PLANE_URL = "http://plane.test/api"


def unreachable(path: str = "/flows/ParameterFlow/runs") -> ServiceError:
    return ServiceError(PLANE_URL + path, f"cannot reach {PLANE_URL}{path}: [Errno 111] Connection refused",
                        unreachable=True)


def server_error(path: str = "/flows/ParameterFlow/runs") -> ServiceError:
    return ServiceError(PLANE_URL + path, "DynamoDB said no", 500)


class StubPlane:
    """A control plane's reads over a datastore of production runs."""

    def __init__(self, storage: LocalStorage):
        self.data = LocalProvider(storage)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.pages: list[tuple[Optional[str], int]] = []  # (namespace, size) of each runs page
        self.error: Optional[ServiceError] = None  # raised by every call while set
        self.fail_from_page: Optional[int] = None  # the runs listing fails from this page on

    def describe(self) -> str:
        return f"service@{PLANE_URL}"

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def list_runs(self, flow: str, namespace_tag: Optional[str] = None, limit: Optional[int] = None) -> Any:
        self.calls.append(("list_runs", (flow, namespace_tag, limit)))

        def fetch(size: int, token: Optional[str]) -> tuple[list, Optional[str]]:
            self.pages.append((namespace_tag, size))
            if self.error is not None:
                raise self.error
            if self.fail_from_page is not None and len(self.pages) >= self.fail_from_page:
                raise unreachable()
            start = int(token or 0)
            runs = self.data.list_runs(flow, namespace_tag=namespace_tag)
            more = start + size < len(runs)
            return runs[start:start + size], str(start + size) if more else None

        return _RunPages(fetch, limit)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.data, name)

        def call(*args: Any) -> Any:
            self.calls.append((name, args))
            if self.error is not None:
                raise self.error
            return target(*args)

        return call


class CountingLocal(LocalProvider):
    def __init__(self, storage: LocalStorage):
        super().__init__(storage)
        self.calls: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if name in ("get_run", "list_runs", "get_step", "list_tasks", "artifact_index", "load_artifact"):
            object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)


@pytest.fixture()
def world(tmp_path, monkeypatch):
    """Local: alice 1001 (minute 0), 1002 (5, tag exp:2), bob 1003 (10), alice 7001 (30);
    BranchFlow 2001. Plane: ParameterFlow sfn-a (2, tok1), sfn-b (20, tok1), sfn-c (40,
    tok2); HourlyFlow sfn-h (1, tok3)."""
    local_root, plane_root = tmp_path / "local", tmp_path / "plane"
    local_storage, plane_storage = LocalStorage(str(local_root)), LocalStorage(str(plane_root))
    linear_run(local_storage, "1001", minute=0, alpha=0.01)
    linear_run(local_storage, "1002", minute=5, alpha=0.5, tags=["exp:2"])
    linear_run(local_storage, "1003", minute=10, user="bob", alpha=0.2)
    linear_run(local_storage, "7001", minute=30, alpha=0.7)
    branch_run(local_storage, minute=3)
    linear_run(plane_storage, "sfn-a", minute=2, alpha=0.3, production_token="tok1")
    linear_run(plane_storage, "sfn-b", minute=20, alpha=0.4, production_token="tok1", tags=["exp:2"])
    linear_run(plane_storage, "sfn-c", minute=40, alpha=0.9, production_token="tok2")
    linear_run(plane_storage, "sfn-h", minute=1, production_token="tok3", flow="HourlyFlow")
    isolate_client(monkeypatch, local_root)
    return local_storage, plane_storage


def combined(world, **options: Any) -> CombinedProvider:
    local_storage, plane_storage = world
    return CombinedProvider(CountingLocal(local_storage), StubPlane(plane_storage), **options)


@pytest.fixture()
def both(world):
    provider = combined(world)
    with use_provider(provider):
        yield provider


def ids(runs: Any) -> list[str]:
    return [r.id if hasattr(r, "id") else r.run_id for r in runs]


# --- listings --------------------------------------------------------------------------------


def test_flows_are_the_union_of_both_created_when_first_seen(both):
    namespace(None)
    assert [f.id for f in Metaflow()] == ["BranchFlow", "HourlyFlow", "ParameterFlow"]
    local_first = both.local.get_run("ParameterFlow", "1001").created_at
    assert both.get_flow("ParameterFlow").created_at == local_first
    assert Flow("HourlyFlow").created_at == Run("HourlyFlow/sfn-h").created_at
    assert both.get_flow("NoSuchFlow") is None
    with pytest.raises(NotFound, match=rf"Flow\('NoSuchFlow'\) does not exist \(datastore service@{PLANE_URL}\+local@"):
        Flow("NoSuchFlow")


def test_runs_merge_newest_first_across_both(both):
    namespace(None)
    assert ids(Flow("ParameterFlow")) == ["sfn-c", "7001", "sfn-b", "1003", "1002", "sfn-a", "1001"]
    assert ids(Flow("BranchFlow")) == ["2001"]
    assert ids(Flow("HourlyFlow")) == ["sfn-h"]
    runs = both.list_runs("ParameterFlow")
    assert len(runs) == 7 and runs[1].run_id == "7001" and ids(runs[-2:]) == ["sfn-a", "1001"]
    assert ids(both.list_runs("ParameterFlow", limit=3)) == ["sfn-c", "7001", "sfn-b"]
    assert list(both.list_runs("ParameterFlow", limit=0)) == []
    assert both.list_runs("../ParameterFlow") == []


def test_the_namespace_and_tags_filter_both_sources(both):
    # Default namespace: the user's local runs; production runs belong to their deployment.
    assert ids(Flow("ParameterFlow")) == ["7001", "1002", "1001"]
    assert Flow("ParameterFlow").latest_run.data.alpha == 0.7
    assert [f.id for f in Metaflow()] == ["BranchFlow", "ParameterFlow"]
    with pytest.raises(NamespaceMismatch, match="user:alice"):
        Run("ParameterFlow/sfn-b")
    # The namespace went with the plane's request, as a server-side filter.
    assert {ns for ns, _ in both.plane.pages} == {"user:alice"}

    namespace("production:tok1")
    assert ids(Flow("ParameterFlow")) == ["sfn-b", "sfn-a"]
    assert Flow("ParameterFlow").latest_run.data.alpha == 0.4
    assert [f.id for f in Metaflow()] == ["ParameterFlow"]
    with pytest.raises(NamespaceMismatch):
        Flow("BranchFlow")
    with pytest.raises(NamespaceMismatch, match="production:tok1"):
        Run("ParameterFlow/1002")

    namespace("user:bob")
    assert ids(Flow("ParameterFlow")) == ["1003"]
    namespace(None)
    assert ids(Flow("ParameterFlow").runs("exp:2")) == ["sfn-b", "1002"]


def test_latest_run_reads_one_small_page_of_the_plane(world):
    local_storage, plane_storage = world
    for i in range(30):
        linear_run(plane_storage, f"sfn-p{i:02d}", minute=100 + i, production_token="tok1")
    provider = combined(world)
    with use_provider(provider):
        namespace("production:tok1")
        flow = Flow("ParameterFlow")
        assert flow.latest_run.id == "sfn-p29"
        # The namespace check (a page of 1), then one page of 20 for latest_run.
        assert [size for _, size in provider.plane.pages] == [1, 20]
        runs = iter(flow)
        first = [next(runs) for _ in range(20)]
        assert len(provider.plane.pages) == 3  # the 21st run is not read ahead
        assert ids(first + list(runs)) == [f"sfn-p{i:02d}" for i in reversed(range(30))] + ["sfn-b", "sfn-a"]
        assert [size for _, size in provider.plane.pages] == [1, 20, 20, 100]


def test_a_run_both_hold_is_listed_once_from_the_source_its_id_names(world):
    local_storage, plane_storage = world
    # An S3 datastore shared with production holds production runs too; a plane may echo a local one.
    linear_run(local_storage, "sfn-b", minute=20, alpha=0.4, production_token="tok1", tags=["exp:2"])
    linear_run(plane_storage, "1002", minute=5, alpha=0.5, tags=["exp:2"])
    provider = combined(world)
    with use_provider(provider):
        namespace(None)
        assert ids(Flow("ParameterFlow")) == ["sfn-c", "7001", "sfn-b", "1003", "1002", "sfn-a", "1001"]
        assert provider.describe_run("ParameterFlow", "sfn-b") == f"service@{PLANE_URL}"
        assert provider.describe_run("ParameterFlow", "1002").startswith("local@")


# --- one run, read where it is -------------------------------------------------------------


def test_a_local_run_id_is_read_from_the_datastore_without_asking_the_plane(both):
    run = Run("ParameterFlow/1002")
    assert run.data.alpha == 0.5 and run.successful
    assert "alpha is 0.500000" in run["start"].task.stdout
    assert Task("ParameterFlow/1002/end/1").metadata_dict["ds-type"] == "local"
    assert both.plane.calls == []


def test_a_production_run_id_is_read_from_the_plane(both):
    namespace("production:tok1")
    run = Run("ParameterFlow/sfn-a")
    assert run.data.alpha == 0.3
    assert run["start"].task.stdout == "alpha is 0.300000\n"
    meta = run["end"].task.metadata_dict
    assert (meta["ds-type"], meta["ds-root"]) == ("service", PLANE_URL)
    assert both.plane.names()[0] == "get_run"
    assert {"artifact_index", "load_artifact", "logs"} <= set(both.plane.names())
    # Nothing of it was looked for in the datastore.
    assert both.local.calls == []


def test_a_run_in_neither_source_is_not_found_after_both_were_asked(both):
    namespace(None)
    with pytest.raises(NotFound, match=r"Run\('ParameterFlow/999'\) does not exist"):
        Run("ParameterFlow/999")
    with pytest.raises(NotFound, match=r"Run\('ParameterFlow/sfn-nope'\) does not exist"):
        Run("ParameterFlow/sfn-nope")
    assert both.plane.names() == ["get_run", "get_run"]
    assert both.local.calls == ["get_run", "get_run"]
    with pytest.raises(NotFound, match=r"Step\('ParameterFlow/sfn-a/nostep'\) does not exist"):
        Step("ParameterFlow/sfn-a/nostep")


def test_a_pathspec_read_straight_from_the_provider_finds_its_source(both):
    # No Run met first: the source the id names is read, then the other one.
    assert both.get_step("ParameterFlow", "sfn-a", "start").task_count == 1
    assert both.plane.names() == ["get_step"] and both.local.calls == []
    assert [t.task_id for t in both.list_tasks("ParameterFlow", "1001", "end")] == ["1"]
    assert both.plane.names() == ["get_step"] and both.local.calls == ["list_tasks"]
    # Found once, the source is remembered: the plane is not asked about 1001 again.
    assert both.get_step("ParameterFlow", "1001", "end").task_count == 1
    assert both.plane.names() == ["get_step"]
    assert both.get_step("ParameterFlow", "sfn-nope", "start") is None
    assert both.plane.names() == ["get_step", "get_step"] and both.local.calls[-2:] == ["get_step", "list_tasks"]


def test_names_that_could_leave_a_source_reach_neither(both):
    assert both.get_run("..", "x") is None
    assert both.get_task("ParameterFlow", "1001", "..", "1") is None
    assert both.list_steps("ParameterFlow", "1001/..") == []
    assert both.artifact_index("ParameterFlow", "sfn-a", "start", "1/../2", 0) == {}
    assert both.logs("ParameterFlow", "sfn-a", "start", "..", 0, "stdout") == ""
    with pytest.raises(ValueError, match="a log stream is 'stdout' or 'stderr', got 'stdin'"):
        both.logs("ParameterFlow", "sfn-a", "start", "1", 0, "stdin")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="not an artifact address"):
        both.load_artifact("ParameterFlow", "../../etc/passwd")
    assert both.plane.calls == [] and both.local.calls == ["load_artifact"]


# --- a plane that fails ----------------------------------------------------------------------


def test_a_configured_plane_that_cannot_be_reached_is_an_error_naming_it(world):
    provider = combined(world, origin="env")
    provider.plane.error = unreachable("/flows/ParameterFlow")
    with use_provider(provider):
        with pytest.raises(ServiceError) as e:
            Flow("ParameterFlow")
    msg = str(e.value)
    assert msg.startswith(f"GET {PLANE_URL}/flows/ParameterFlow failed: cannot reach")
    assert "to read only local runs, unset FLOWPLANE_API_URL" in msg
    assert e.value.unreachable and e.value.url == f"{PLANE_URL}/flows/ParameterFlow"
    assert provider.plane_available  # nothing hidden: the next read asks it again

    provider = combined(world, origin="config")
    provider.plane.error = unreachable()
    with pytest.raises(ServiceError, match=r"set FLOWPLANE_DATASTORE_ROOT=.*local \(which the config file"):
        list(provider.list_runs("ParameterFlow"))


def test_a_configured_plane_failing_mid_listing_is_an_error_not_a_short_list(world):
    local_storage, plane_storage = world
    for i in range(30):
        linear_run(plane_storage, f"sfn-p{i:02d}", minute=100 + i, production_token="tok1")
    provider = combined(world)
    provider.plane.fail_from_page = 2
    listing = provider.list_runs("ParameterFlow")
    runs = iter(listing)
    assert len([next(runs) for _ in range(20)]) == 20
    with pytest.raises(ServiceError, match="cannot reach"):
        list(runs)
    # Read again, the listing fails again rather than passing for complete.
    with pytest.raises(ServiceError, match="cannot reach"):
        len(listing)


def test_a_plane_that_answers_with_an_error_raises_it_whatever_its_origin(world):
    gone: list[bool] = []
    provider = combined(world, origin="discovered", still_running=lambda: False, on_vanished=lambda: gone.append(True))
    provider.plane.error = server_error("/flows/ParameterFlow")
    with use_provider(provider), warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning either
        with pytest.raises(ServiceError, match=rf"GET {PLANE_URL}/flows/ParameterFlow failed: HTTP 500: DynamoDB"):
            Flow("ParameterFlow")
    assert gone == [] and provider.plane_available


def test_a_discovered_plane_that_vanished_falls_back_to_local_with_one_warning(world):
    gone: list[bool] = []
    provider = combined(world, origin="discovered", still_running=lambda: False, on_vanished=lambda: gone.append(True))
    assert Flow("ParameterFlow", _provider=provider).latest_run.id == "7001"
    provider.plane.error = unreachable()
    namespace(None)
    with pytest.warns(PlaneVanishedWarning, match=rf"`flowplane local` control plane at {PLANE_URL} no longer answers"):
        assert ids(Flow("ParameterFlow", _provider=provider)) == ["7001", "1003", "1002", "1001"]
    assert gone == [True] and not provider.plane_available
    asked = len(provider.plane.calls)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [f.name for f in provider.list_flows()] == ["BranchFlow", "ParameterFlow"]
        assert provider.get_run("ParameterFlow", "sfn-a") is None
        assert Run("ParameterFlow/1002", _provider=provider).data.alpha == 0.5
    assert len(provider.plane.calls) == asked  # not asked again
    assert provider.describe().startswith("local@") and gone == [True]
    assert provider.get_metadata() == provider.local.describe()


def test_a_discovered_plane_vanishing_mid_listing_leaves_the_local_runs(world):
    local_storage, plane_storage = world
    for i in range(30):
        linear_run(plane_storage, f"sfn-p{i:02d}", minute=100 + i, production_token="tok1")
    provider = combined(world, origin="discovered", still_running=lambda: False)
    provider.plane.fail_from_page = 2
    with pytest.warns(PlaneVanishedWarning):
        listed = ids(provider.list_runs("ParameterFlow"))
    assert listed == [f"sfn-p{i:02d}" for i in reversed(range(10, 30))] + ["7001", "1003", "1002", "1001"]


def test_a_discovered_plane_still_running_is_not_hidden_for_one_failed_request(world):
    provider = combined(world, origin="discovered", still_running=lambda: True)
    provider.plane.error = unreachable("/flows/ParameterFlow/runs/sfn-a")
    with pytest.raises(ServiceError, match="cannot reach"):
        provider.get_run("ParameterFlow", "sfn-a")
    assert provider.plane_available


def test_an_artifact_only_the_vanished_plane_holds_is_an_error_naming_it(world):
    provider = combined(world, origin="discovered", still_running=lambda: False)
    index = provider.artifact_index("ParameterFlow", "sfn-a", "end", "1", 0)
    provider.plane.error = unreachable("/flows/ParameterFlow/runs/sfn-a/steps/end/tasks/1/artifacts/alpha")
    with pytest.warns(PlaneVanishedWarning), pytest.raises(ServiceError, match="cannot reach"):
        provider.load_artifact("ParameterFlow", index["alpha"].sha)


# --- choosing the provider -------------------------------------------------------------------


@pytest.fixture()
def nothing_configured(tmp_path, monkeypatch):
    """A user's shell: no FLOWPLANE_API_URL, no config file, no FLOWPLANE_DATASTORE_ROOT (runs
    in ./.flowplane), `flowplane local`'s state folder in tmp."""
    isolate_client(monkeypatch, tmp_path / "unused")
    for name in ("FLOWPLANE_DATASTORE_ROOT", "FLOWPLANE_API_URL", "FLOWPLANE_EMBEDDED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLOWPLANE_LOCAL_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(selection, "_discovered", None)
    linear_run(LocalStorage(str(work / ".flowplane")), "1001", minute=0, alpha=0.01)
    return tmp_path


def no_network(monkeypatch) -> list[str]:
    asked: list[str] = []

    def refuse(url: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(str(getattr(url, "full_url", url)))
        raise AssertionError(f"a network request was made: {url}")

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    return asked


def write_url_file(state, url: str, pid: int) -> None:
    import json

    (state / "plane.json").write_text(json.dumps({"url": url, "pid": pid}))


def test_no_plane_running_means_the_datastore_alone_and_no_request(nothing_configured, monkeypatch):
    asked = no_network(monkeypatch)
    provider = get_provider()
    assert isinstance(provider, LocalProvider)
    assert get_metadata() == f"local@{nothing_configured / 'work' / '.flowplane'}"
    assert Flow("ParameterFlow").latest_run.id == "1001"
    # A URL file left by a plane that died (its process is gone): still no request.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_url_file(nothing_configured / "state", "http://127.0.0.1:9/api", dead.pid)
    monkeypatch.setattr(selection, "_discovered", None)
    assert isinstance(get_provider(), LocalProvider)
    assert asked == []


def test_a_running_flowplane_local_is_found_when_nothing_is_configured(nothing_configured, monkeypatch, world):
    _, plane_storage = world
    monkeypatch.delenv("FLOWPLANE_DATASTORE_ROOT")  # `world` set it; this user has none
    with fake_control_plane(plane_storage) as plane:
        write_url_file(nothing_configured / "state", plane.url, os.getpid())
        provider = get_provider()
        assert isinstance(provider, CombinedProvider) and provider.origin == "discovered"
        assert isinstance(provider.plane, ServiceProvider) and provider.plane.describe() == f"service@{plane.url}"
        assert get_provider() is provider  # looked for once, then cached for a while
        assert get_metadata() == f"service@{plane.url}"
        assert plane.paths("health") == ["/health"]
        # Gap (a): production runs, with nothing configured.
        namespace("production:tok1")
        assert Flow("ParameterFlow").latest_run.id == "sfn-b"
        assert Flow("ParameterFlow").latest_run.data.alpha == 0.4
        # Gap (b): the user's local runs, alongside.
        namespace("user:alice")
        assert ids(Flow("ParameterFlow")) == ["1001"]
        namespace(None)
        assert ids(Flow("ParameterFlow")) == ["sfn-c", "sfn-b", "sfn-a", "1001"]
        kept = Flow("ParameterFlow")
    # The plane stops (its URL file stays behind, naming a live process that no longer answers).
    with pytest.warns(PlaneVanishedWarning, match="no longer answers"):
        assert ids(kept) == ["1001"]
    assert get_provider() is not provider
    assert isinstance(get_provider(), LocalProvider)


def test_discovery_is_off_when_a_datastore_is_chosen_or_the_embedded_plane_is_off(nothing_configured, monkeypatch):
    from flowplane.local import discover

    looked: list[str] = []
    monkeypatch.setattr(discover, "running_url", lambda *a: looked.append("looked") or "http://127.0.0.1:9/api")
    monkeypatch.setenv("FLOWPLANE_DATASTORE_ROOT", str(nothing_configured / "work" / ".flowplane"))
    assert isinstance(get_provider(), LocalProvider)
    monkeypatch.delenv("FLOWPLANE_DATASTORE_ROOT")
    monkeypatch.setenv("FLOWPLANE_EMBEDDED", "0")
    assert isinstance(get_provider(), LocalProvider)
    assert looked == []
    monkeypatch.delenv("FLOWPLANE_EMBEDDED")
    assert get_provider().origin == "discovered"  # type: ignore[attr-defined]
    assert get_provider().origin == "discovered"  # type: ignore[attr-defined]
    assert looked == ["looked"]
    monkeypatch.setattr(selection, "DISCOVERY_TTL_S", 0.0)
    get_provider()
    assert looked == ["looked", "looked"]


def test_a_configured_plane_wins_over_a_running_one(nothing_configured, monkeypatch):
    from flowplane.local import discover

    monkeypatch.setattr(discover, "running_url", lambda *a: pytest.fail("looked for a running plane"))
    monkeypatch.setenv("FLOWPLANE_API_URL", "https://cp.example/dev")
    provider = get_provider()
    assert provider.origin == "env" and provider.plane.describe() == "service@https://cp.example/dev"  # type: ignore
