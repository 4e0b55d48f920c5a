"""The Client API's read routes (the contract in notes/HELPERS.md).

Each route parses its parameters and calls one read in chalicelib/query; the
query modules are imported on the first request so app.py's cold import stays
lean. Artifact values are fetched by the caller through a presigned S3 URL;
logs come from the attempt's stored log, else from CloudWatch Logs.
"""

from __future__ import annotations

from typing import Any, Optional

from chalice import Blueprint

from ..http import aws, json_errors

bp = Blueprint(__name__)

TASK = "/flows/{flow}/runs/{run_id}/steps/{step}/tasks/{task_id}"
BATCH_LOG_GROUP = "/aws/batch/job"
LOG_STREAMS = ("stdout", "stderr")
# A log answer is capped, its tail kept: a Lambda answers at most 6 MB, and JSON
# escaping can make text several times longer.
MAX_LOG_BYTES = 1024 * 1024


def _reads() -> Any:
    from ..query.reads import Reads

    return Reads(aws().table.t)


def _param(name: str) -> Optional[str]:
    return (bp.current_request.query_params or {}).get(name)


@bp.route("/flows", methods=["GET"])
@json_errors
def list_flows() -> Any:
    return _reads().flows()


@bp.route("/flows/{flow}", methods=["GET"])
@json_errors
def get_flow(flow: str) -> Any:
    return _reads().flow(flow)


@bp.route("/flows/{flow}/runs", methods=["GET"])
@json_errors
def list_runs(flow: str) -> Any:
    return _reads().runs(
        flow,
        namespace=_param("namespace"),
        tag=_param("tag"),
        status=_param("status"),
        limit=_param("limit"),
        next_token=_param("next_token"),
        deployment=_param("deployment"),
    )


@bp.route("/flows/{flow}/runs/{run_id}", methods=["GET"])
@json_errors
def get_run(flow: str, run_id: str) -> Any:
    return _reads().run(flow, run_id)


@bp.route("/flows/{flow}/runs/{run_id}/steps", methods=["GET"])
@json_errors
def list_steps(flow: str, run_id: str) -> Any:
    return _reads().steps(flow, run_id)


@bp.route("/flows/{flow}/runs/{run_id}/steps/{step}", methods=["GET"])
@json_errors
def get_step(flow: str, run_id: str, step: str) -> Any:
    return _reads().step(flow, run_id, step)


@bp.route("/flows/{flow}/runs/{run_id}/steps/{step}/tasks", methods=["GET"])
@json_errors
def list_tasks(flow: str, run_id: str, step: str) -> Any:
    return _reads().tasks(flow, run_id, step, limit=_param("limit"), next_token=_param("next_token"))


@bp.route("/flows/{flow}/runs/{run_id}/steps/{step}/artifacts", methods=["GET"])
@json_errors
def list_step_artifacts(flow: str, run_id: str, step: str) -> Any:
    """The artifact indexes of a step's tasks, a page at a time (`resume` of a wide foreach)."""
    return _reads().step_artifacts(flow, run_id, step, limit=_param("limit"), next_token=_param("next_token"))


@bp.route("/flows/{flow}/blobs", methods=["POST"])
@json_errors
def blob_urls(flow: str) -> Any:
    """Presigned GETs of artifact blobs named by content, {"shas": [...]} -> {"urls": {sha: url}}:
    what `resume` copies, one request for many instead of one per artifact. Only `<flow>/data/`
    keys, which any reader of the flow's runs may read through the artifact route anyway."""
    from ..http import json_body
    from ..query.blobs import blob_url_page

    a = aws()
    return blob_url_page(a.packages.client, a.settings.datastore_root, flow,
                         json_body(bp.current_request.raw_body), a.settings.presign_expiry_seconds)


@bp.route("/flows/{flow}/runs/{run_id}/objects", methods=["GET"])
@json_errors
def list_run_objects(flow: str, run_id: str) -> Any:
    """The objects a run put with S3(run=self): a page, each with a presigned GET."""
    from ..query.objects import list_run_objects as page

    _reads().run(flow, run_id)  # an unknown run is a 404, not an empty listing
    a = aws()
    return page(a.packages.client, a.settings.datastore_root, flow, run_id, _param("prefix") or "",
                _param("recursive") in ("1", "true"), _param("next"), a.settings.presign_expiry_seconds)


@bp.route(TASK, methods=["GET"])
@json_errors
def get_task(flow: str, run_id: str, step: str, task_id: str) -> Any:
    return _reads().task(flow, run_id, step, task_id)


@bp.route(TASK + "/artifacts", methods=["GET"])
@json_errors
def list_artifacts(flow: str, run_id: str, step: str, task_id: str) -> Any:
    return _reads().artifacts(flow, run_id, step, task_id, _param("attempt"))


@bp.route(TASK + "/artifacts/{name}", methods=["GET"])
@json_errors
def get_artifact(flow: str, run_id: str, step: str, task_id: str, name: str) -> Any:
    from ..query.blobs import presigned_blob_url

    found = _reads().artifact(flow, run_id, step, task_id, name, _param("attempt"))
    a = aws()
    key = found.pop("key")
    found["url"] = presigned_blob_url(a.packages.client, a.settings.datastore_root, key, a.settings.presign_expiry_seconds)
    return found


@bp.route(TASK + "/cards", methods=["GET"])
@json_errors
def list_cards(flow: str, run_id: str, step: str, task_id: str) -> Any:
    """The attempt's @card pages (the final attempt's without ?attempt=), each with a presigned GET."""
    from ..query.cards import list_cards as cards

    # The attempt that stored artifacts is the one that rendered cards; an unknown task is a 404.
    attempt = _reads().artifacts(flow, run_id, step, task_id, _param("attempt"))["attempt"]
    a = aws()
    return cards(a.packages.client, a.settings.datastore_root, (flow, run_id, step, task_id, int(attempt)),
                 a.settings.presign_expiry_seconds)


@bp.route(TASK + "/logs/{stream}", methods=["GET"])
@json_errors
def get_logs(flow: str, run_id: str, step: str, task_id: str, stream: str) -> Any:
    from ..errors import BadRequest
    from ..query.blobs import attempt_log

    if stream not in LOG_STREAMS:
        raise BadRequest(f"logs are stdout or stderr, not {stream!r}", field="stream")
    attempt, log_stream = _reads().attempt_log_stream(flow, run_id, step, task_id, _param("attempt"))
    a = aws()
    text, source = attempt_log(
        s3=a.packages.client,
        logs=a.logs,
        datastore_root=a.settings.datastore_root,
        pathspec=(flow, run_id, step, task_id, attempt),
        stream=stream,
        log_group=BATCH_LOG_GROUP,
        log_stream=log_stream,
        max_bytes=MAX_LOG_BYTES,
    )
    return {"attempt": attempt, "text": text, "source": source}
