"""`get_metadata()`, `metadata(...)` and `default_metadata()` at the top level, as Metaflow's client has them."""

from __future__ import annotations

import pytest

import flowplane
from flowplane import Flow, default_metadata, get_metadata, metadata
from flowplane.client import MetadataSpecError, set_provider
from flowplane.client.service import ServiceProvider
from flowplane.datastore.storage import LocalStorage
from tests.support.run_layouts import isolate_client, linear_run


@pytest.fixture()
def two_roots(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    linear_run(LocalStorage(str(a)), "1001", alpha=0.1)
    linear_run(LocalStorage(str(b / ".flowplane")), "2001", alpha=0.2)
    isolate_client(monkeypatch, a)
    yield a, b
    set_provider(None)


def test_the_names_are_exported_at_top_level():
    assert {"get_metadata", "metadata", "default_metadata"} <= set(flowplane.__all__)
    assert flowplane.get_metadata is get_metadata


def test_metadata_switches_every_client_read_and_default_goes_back(two_roots):
    a, b = two_roots
    assert get_metadata() == f"local@{a}"
    assert Flow("ParameterFlow").latest_run.id == "1001"
    # A folder holding .flowplane/ means that datastore, as Metaflow's .metaflow.
    assert metadata(f"local@{b}") == f"local@{b / '.flowplane'}"
    assert Flow("ParameterFlow").latest_run.data.alpha == 0.2
    assert metadata(str(a)) == f"local@{a}"  # a bare path is local
    assert Flow("ParameterFlow").latest_run.data.alpha == 0.1
    metadata(f"local@{b}")
    assert default_metadata() == f"local@{a}"
    assert Flow("ParameterFlow").latest_run.id == "1001"


def test_local_alone_is_the_default_root(two_roots):
    a, _ = two_roots
    assert metadata("local") == f"local@{a}"


def test_a_service_url_selects_the_control_plane_without_a_request(two_roots):
    assert metadata("service@http://127.0.0.1:9/api/") == "service@http://127.0.0.1:9/api"
    assert isinstance(flowplane.client.get_provider(), ServiceProvider)
    assert metadata("https://example.com/prod") == "service@https://example.com/prod"


@pytest.mark.parametrize(
    "spec, says",
    [
        ("mongo@db", "unknown provider 'mongo'"),
        ("service@not-a-url", "named by its URL"),
        ("s3@/tmp/x", "s3@s3://bucket/prefix"),
        ("", "takes a string"),
    ],
)
def test_bad_specs_are_refused_and_change_nothing(two_roots, spec, says):
    a, _ = two_roots
    with pytest.raises(MetadataSpecError, match=says):
        metadata(spec)
    assert get_metadata() == f"local@{a}"
