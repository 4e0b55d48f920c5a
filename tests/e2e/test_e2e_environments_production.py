"""@pypi in production on the embedded plane: `--environment=pypi step-functions create` locks
the environments into the manifest; the first task needing one builds it and stores its archive
in the stack's bucket, later ones reuse it; an unresolvable requirement deploys nothing, and a
task whose environment cannot be fetched fails saying why."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Iterator

import pytest
from click.testing import CliRunner

from flowplane.environments.bucket import PREFIX, archive_key
from tests.support.embedded_plane import embedded_plane, sdk, flow_cli, production_run, trigger, wait_for_run
from tests.support.environments import NEW, OLD, PACKAGE, keep_uv_cache, two_versions_flow

pytestmark = [pytest.mark.slow, pytest.mark.aws, pytest.mark.network]


@pytest.fixture(scope="module")
def uv_cache() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in keep_uv_cache().items():
            mp.setenv(name, value)  # read before the plane's fixture moves HOME
        yield


plane = embedded_plane()


def _s3(plane):
    return plane.session.client("s3")


def _manifest(plane, flow: str) -> dict:
    """The manifest inside the flow's deployed package, read back from the bucket."""
    s3 = _s3(plane)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=plane.settings.bucket, Prefix="packages/")["Contents"]]
    for key in keys:
        data = s3.get_object(Bucket=plane.settings.bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            manifest = json.loads(tar.extractfile("manifest.json").read())
        if manifest["flow_name"] == flow:
            return manifest
    raise AssertionError(f"no package of {flow}")


def _batch_log(plane, run_id: str) -> str:
    """What a run's Batch jobs printed, the runtime's own lines before the step's included."""
    logs = plane.session.client("logs")
    streams = {r.job_id for r in plane.batch.history if r.run_id == run_id}
    lines = []
    for stream in logs.describe_log_streams(logGroupName="/aws/batch/job")["logStreams"]:
        if stream["logStreamName"].rsplit("/", 1)[-1] in streams:
            events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream["logStreamName"])
            lines += [e["message"] for e in events["events"]]
    return "\n".join(lines)


def test_production_steps_see_their_own_versions_built_once(uv_cache, plane, tmp_path):
    path = two_versions_flow(tmp_path / "src")
    sdk(path, "--environment=pypi", "step-functions", "create")
    manifest = _manifest(plane, "TwoVersionsFlow")
    locks, steps = manifest["environments"]["locks"], manifest["environments"]["steps"]
    assert set(steps) == {"start", "middle", "end"} and len(locks) == 3
    assert f"{PACKAGE}=={OLD}" in locks[steps["start"]]["lock"] and "--hash=sha256:" in locks[steps["start"]]["lock"]
    assert PACKAGE not in locks[steps["end"]]["lock"]

    first = trigger(path)
    assert wait_for_run(plane, "TwoVersionsFlow", first)["status"] == "SUCCEEDED"
    run = production_run("TwoVersionsFlow", first)
    data = run["end"].task.data
    assert (data.first, data.second) == (OLD, NEW)
    assert "No module named" in data.third
    assert _batch_log(plane, first).count("Building environment") == 3
    archives = {o["Key"] for o in _s3(plane).list_objects_v2(Bucket=plane.settings.bucket, Prefix=PREFIX)["Contents"]}
    assert {archive_key(env_id) for env_id in locks} == archives  # no claim left behind

    again = trigger(path)
    assert wait_for_run(plane, "TwoVersionsFlow", again)["status"] == "SUCCEEDED"
    rerun = production_run("TwoVersionsFlow", again)
    assert (rerun["end"].task.data.first, rerun["end"].task.data.second) == (OLD, NEW)
    assert "Building environment" not in _batch_log(plane, again)
    # Tasks of a built environment fork from a zygote started in it (flowplane/local/batch.py).
    assert set(locks) <= set(plane.batch._env_zygotes)


def test_a_task_whose_environment_cannot_be_fetched_fails_saying_why(uv_cache, plane, tmp_path):
    path = two_versions_flow(tmp_path / "src", name="UnfetchableFlow", old="1.2.0")
    sdk(path, "--environment=pypi", "step-functions", "create")
    env_id = _manifest(plane, "UnfetchableFlow")["environments"]["steps"]["start"]
    # A damaged archive where the environment's should be: the task must not build over it silently.
    _s3(plane).put_object(Bucket=plane.settings.bucket, Key=archive_key(env_id), Body=b"not a tar.gz")
    run_id = trigger(path)
    assert wait_for_run(plane, "UnfetchableFlow", run_id)["status"] == "FAILED"
    said = _batch_log(plane, run_id)
    assert "the step's environment cannot be fetched: cannot unpack" in said and archive_key(env_id) in said
    task = production_run("UnfetchableFlow", run_id)["start"].task
    assert "cannot unpack" in task.stderr + task.stdout


def test_an_unresolvable_requirement_deploys_nothing(uv_cache, plane, tmp_path):
    path = two_versions_flow(tmp_path / "src", name="UnresolvableFlow", new="999.0.0")
    result = CliRunner().invoke(flow_cli(path), ["--environment=pypi", "step-functions", "create"])
    assert result.exit_code != 0
    assert f"step 'middle'" in result.output and f"{PACKAGE}==999.0.0" in result.output
    assert "nothing was deployed" in result.output
    with pytest.raises(AssertionError, match="no package of UnresolvableFlow"):
        _manifest(plane, "UnresolvableFlow")


def test_create_without_environment_option_is_refused(uv_cache, plane, tmp_path):
    path = two_versions_flow(tmp_path / "src", name="RefusedFlow")
    result = CliRunner().invoke(flow_cli(path), ["step-functions", "create"])
    assert result.exit_code != 0
    assert "@pypi (step 'start') requires --environment=pypi or --environment=conda" in result.output
    assert "nothing was deployed" in result.output
