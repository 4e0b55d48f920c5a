"""Metaflow's tutorials with IncludeFile on the embedded control plane: `step-functions
create` uploads the default file, `trigger --movie_data PATH` another one, and the
production run gives the artifacts of a local run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.support.embedded_plane import (
    artifacts,
    create,
    embedded_plane,
    flow_cli,
    local_run,
    production_run,
    trigger,
    wait_for_run,
)
from tests.support.tutorials import as_flowplane, by_step, comparable

pytestmark = [pytest.mark.slow, pytest.mark.aws]

plane = embedded_plane()


def test_statistics_tutorial_in_production_gives_the_local_artifacts(plane, tmp_path):
    path = as_flowplane("02-statistics", tmp_path / "src")
    create(path)
    run_id = trigger(path)
    assert wait_for_run(plane, "MovieStatsFlow", run_id)["status"] == "SUCCEEDED"
    run = production_run("MovieStatsFlow", run_id)
    movies = (path.parent / "movies.csv").read_text()
    assert run.data.movie_data == movies
    (tmp_path / "work").mkdir()
    local = local_run(path, tmp_path / "work")
    assert comparable(by_step(artifacts(run))) == comparable(by_step(local.artifacts))


def test_playlist_tutorial_trigger_includes_another_file(plane, tmp_path):
    path = as_flowplane("01-playlist", tmp_path / "src")
    create(path)
    short = tmp_path / "short.csv"
    lines = (path.parent / "movies.csv").read_text().splitlines(keepends=True)
    short.write_text("".join(lines[:40]))
    run_id = trigger(path, "--movie_data", str(short), "--genre", "Drama")
    assert wait_for_run(plane, "PlayListFlow", run_id)["status"] == "SUCCEEDED"
    run = production_run("PlayListFlow", run_id)
    assert run.data.movie_data == short.read_text()
    assert len(run["start"].task.data.dataframe["movie_title"]) == 39  # the header and 39 movies
    assert run.data.genre == "Drama"


def test_a_missing_include_file_triggers_nothing(plane, tmp_path):
    path = as_flowplane("01-playlist", tmp_path / "src")
    create(path)
    result = CliRunner().invoke(flow_cli(path), ["step-functions", "trigger", "--movie_data", "nope.csv"])
    assert result.exit_code != 0
    assert "IncludeFile 'movie_data': no file at 'nope.csv'; nothing was triggered" in result.output


def test_create_refuses_a_missing_default_file(plane, tmp_path):
    path = as_flowplane("02-statistics", tmp_path / "src")
    (path.parent / "movies.csv").unlink()
    result = CliRunner().invoke(flow_cli(path), ["step-functions", "create"])
    assert result.exit_code != 0
    assert "IncludeFile 'movie_data': no file at" in result.output and "nothing was deployed" in result.output


def test_the_api_refuses_an_include_never_uploaded(plane, tmp_path):
    from flowplane.api_client import ApiClient, ApiError

    path = as_flowplane("02-statistics", tmp_path / "src")
    create(path)
    client = ApiClient(plane.url)
    descriptor = {"type": "flowplane-include-v1", "sha256": "0" * 64, "size": 3}
    with pytest.raises(ApiError) as e:
        client.trigger("MovieStatsFlow", {"movie_data": json.dumps(descriptor)})
    assert e.value.status == 400 and "was never uploaded to this stage" in e.value.describe()
    with pytest.raises(ApiError) as e:
        client.trigger("MovieStatsFlow", {"movie_data": "movies.csv"})
    assert e.value.status == 400 and "give a path to the flow's command line" in e.value.describe()
    with pytest.raises(ApiError) as e:
        client.request("POST", "/flows/MovieStatsFlow/includes", body={"sha256": "0" * 64, "size": 1 << 40})
    assert e.value.status == 400 and "at most" in e.value.describe()


def test_environment_and_batch_image_on_the_embedded_plane(plane, tmp_path):
    """@environment reaches the Batch task; a @batch image gets its job definition and runs."""
    from tests.support.feature_flows import BATCH_ENVIRONMENT_FLOW as FLOW

    folder = tmp_path / "batch"
    folder.mkdir()
    path = folder / "batch_flow.py"
    path.write_text(FLOW.replace(', queue="big-queue"', ""))  # the stage's queue: the plane has one
    create(path)
    run_id = trigger(path)
    assert wait_for_run(plane, "BatchFlow", run_id)["status"] == "SUCCEEDED"
    run = production_run("BatchFlow", run_id)
    assert run["start"].task.data.seen == ("hi", "3") and run["end"].task.data.seen is None


def test_playlist_redux_in_production_sees_only_its_own_namespace_as_under_metaflow(plane, tmp_path):
    """Tutorial 03 reads `Flow("MovieStatsFlow").latest_successful_run`. On Step Functions Metaflow
    runs each task in its deployment's namespace (`--namespace=production:<token>`), and each flow
    mints its own token, so MovieStatsFlow's production runs are not in PlayListFlow's namespace:
    `Flow(...)` raises MetaflowNamespaceMismatch and `start` fails. Here too. Switching to the
    stats deployment's namespace (or `namespace(None)`) in the step, as Metaflow's docs advise,
    reads the production MovieStatsFlow run."""
    stats = as_flowplane("02-statistics", tmp_path / "src")
    created = create(stats)
    stats_ns = next(line.strip() for line in created.splitlines() if line.strip().startswith("production:"))
    stats_run = trigger(stats)
    assert wait_for_run(plane, "MovieStatsFlow", stats_run)["status"] == "SUCCEEDED"

    redux = as_flowplane("03-playlist-redux", tmp_path / "src")
    create(redux)
    run_id = trigger(redux)
    assert wait_for_run(plane, "PlayListFlow", run_id)["status"] == "FAILED"
    start = production_run("PlayListFlow", run_id)["start"].task
    assert not start.successful and "NamespaceMismatch" in repr(start.exception)
    assert "is not in namespace 'production:playlistflow-" in str(start.exception) and "Using metadata provider: s3@s3://" in start.stdout

    text = redux.read_text()
    line = '        run = Flow("MovieStatsFlow").latest_successful_run\n'
    assert line in text
    redux.write_text(text.replace(line, f'        from flowplane import namespace\n        namespace("{stats_ns}")\n{line}'))
    create(redux)
    run_id = trigger(redux)
    assert wait_for_run(plane, "PlayListFlow", run_id)["status"] == "SUCCEEDED"
    run = production_run("PlayListFlow", run_id)
    assert f"Using analysis from 'Run('MovieStatsFlow/{stats_run}')'" in run["start"].task.stdout
    assert run["start"].task.data.genre_stats == production_run("MovieStatsFlow", stats_run).data.genre_stats
    assert run.data.playlist and len(run.data.bonus) == 2


def test_secrets_and_configs_on_the_embedded_plane(plane, tmp_path):
    """@secrets reads the plane's (moto) Secrets Manager in the Batch task; a Config frozen at
    create is what the production task sees and what its decorators were computed from."""
    from tests.support.feature_flows import CONFIG_FLOW, SECRETS_FLOW as SECRET_FLOW
    from tests.support.feature_flows import CONFIG_VALUES as VALUES, SECRET_PASSWORD as PASSWORD

    sm = plane.session.client("secretsmanager")
    sm.create_secret(Name="flowplane-local/db", SecretString=json.dumps({"DB_USER": "app", "DB_PASSWORD": PASSWORD}))
    sm.create_secret(Name="flowplane-local/api", SecretString=json.dumps({"API_PORT": "8443"}))
    folder = tmp_path / "secrets"
    folder.mkdir()
    path = folder / "secret_flow.py"
    path.write_text(SECRET_FLOW)
    create(path)
    run_id = trigger(path)
    assert wait_for_run(plane, "SecretFlow", run_id)["status"] == "SUCCEEDED"
    run = production_run("SecretFlow", run_id)
    assert run["start"].task.data.seen == ("app", len(PASSWORD), "8443")
    assert PASSWORD not in run["start"].task.stdout + run["start"].task.stderr

    folder = tmp_path / "config"
    folder.mkdir()
    path = folder / "cfg_flow.py"
    path.write_text(CONFIG_FLOW.replace('default="config.json"', 'default=os.path.join(os.path.dirname(__file__), "config.json")'))
    (folder / "config.json").write_text(json.dumps(VALUES))
    create(path)
    (folder / "config.json").write_text(json.dumps({**VALUES, "mode": "changed-after-create"}))
    run_id = trigger(path)
    assert wait_for_run(plane, "CfgFlow", run_id)["status"] == "SUCCEEDED"
    run = production_run("CfgFlow", run_id)
    assert run["start"].task.data.seen == (2, "fast", "hi", "FAST")


def test_s3_on_the_embedded_plane_writes_the_stacks_datastore_and_reads_back_through_the_api(plane, tmp_path,
                                                                                            monkeypatch):
    """S3(run=self) on Batch writes the S3 datastore; S3(run=Run(...)) reads it back through the
    plane's objects route (presigned GETs, no AWS credentials on the client)."""
    from flowplane import Run
    from flowplane.api_client import ApiClient, ApiError
    from flowplane.datatools.objects import MetaflowS3Exception, MetaflowS3NotFound
    from flowplane.datatools.s3 import S3
    from tests.support.feature_flows import S3_FLOW as FLOW

    folder = tmp_path / "s3flow"
    folder.mkdir()
    path = folder / "s3_flow.py"
    path.write_text(FLOW)
    create(path)
    run_id = trigger(path)
    assert wait_for_run(plane, "S3Flow", run_id)["status"] == "SUCCEEDED"
    run = production_run("S3Flow", run_id)
    end = run["end"].task.data
    assert (end.text, end.many[:3], end.info) == ("alpha", ["0", "1", "2"], (2, "application/octet-stream", {"v": 2}))
    assert run["start"].task.data.url.startswith(f"s3://{plane.settings.bucket}/data/S3Flow/datatools/{run_id}/")
    from chalicelib.query import objects

    monkeypatch.setattr(objects, "MAX_KEYS", 5)  # the listing follows the route's pages
    with S3(run=Run(f"S3Flow/{run_id}"), tmproot=str(tmp_path)) as s3:
        assert s3.get("models/a.txt").text == "alpha"
        assert sorted(o.key for o in s3.get_all()) == sorted([f"many/{i}" for i in range(20)] +
                                                             ["models/a.txt", "models/b.bin"])
        assert [(o.key, o.exists) for o in s3.list_paths()] == [("many", False), ("models", False)]
        assert [o.text for o in s3.get_many(["many/3", "many/4"])] == ["3", "4"]
        assert s3.info("models/b.bin").size == 2
        with pytest.raises(MetaflowS3NotFound):
            s3.get("models/none")
        with pytest.raises(MetaflowS3Exception, match="read-only"):
            s3.put("x", "y")
    client = ApiClient(plane.url)
    with pytest.raises(ApiError) as e:
        client.request("GET", f"/flows/S3Flow/runs/{run_id}/objects", query={"prefix": "../../other"})
    assert e.value.status == 400 and "prefix" in e.value.describe()
    with pytest.raises(ApiError) as e:
        client.request("GET", "/flows/S3Flow/runs/sfn-nope/objects")
    assert e.value.status == 404


def test_cards_on_the_embedded_plane_are_rendered_on_batch_and_read_through_the_api(plane, tmp_path):
    """@card on Batch: the cards are stored in the stack's S3 datastore with the attempt and read
    back with get_cards through the plane's cards route (presigned GETs, no AWS credentials)."""
    from flowplane.api_client import ApiClient, ApiError
    from flowplane.cards import get_cards
    from tests.support.feature_flows import CARD_FLOW as FLOW

    folder = tmp_path / "cards"
    folder.mkdir()
    path = folder / "card_flow.py"
    path.write_text(FLOW)
    create(path, with_=("card",))
    run_id = trigger(path)
    assert wait_for_run(plane, "CardFlow", run_id)["status"] == "SUCCEEDED"
    run = production_run("CardFlow", run_id)
    [start] = get_cards(run["start"].task)
    html = start.get()
    assert start.type == "default" and "<h1>Report</h1>" in html and "0.93" in html and "<script>" not in html
    assert [(c.type, c.id) for c in get_cards(run["middle"].task)] == [("blank", "summary"), ("default", None)]
    # --with card gave the step without one the default card.
    [end] = get_cards(f"CardFlow/{run_id}/end/1")
    assert "Artifacts" in end.get()
    client = ApiClient(plane.url)
    listed = client.request("GET", f"/flows/CardFlow/runs/{run_id}/steps/start/tasks/1/cards")
    assert listed["attempt"] == 0 and [c["file"] for c in listed["cards"]] == ["0-default.html"]
    with pytest.raises(ApiError) as e:
        client.request("GET", f"/flows/CardFlow/runs/{run_id}/steps/start/tasks/9/cards")
    assert e.value.status == 404
