"""Uploading packages, following deployments, deleting them, and the compile function.

The deploy logic (chalicelib/deploy/: manifest models, package checks, the
compiler, even the records) is imported by the handlers that use it: every
Lambda of the stack imports this module, and most never deploy.
"""

from __future__ import annotations

import logging
from typing import Any

from chalice import Blueprint, Response

from ..errors import BadRequest, NotFound, UnsupportedMediaType
from ..http import aws, content_type, json_body, json_errors
from ..idempotency import idempotent
from ..identity import acting_user
from ..aws_events import PACKAGE_CREATED_PATTERN

log = logging.getLogger("flowplane.routes.deploy")

bp = Blueprint(__name__)

PACKAGE_TYPES = ["application/gzip", "application/x-gzip", "application/octet-stream"]
BINARY_TYPES = ["application/gzip", "application/x-gzip"]


def _records() -> Any:
    from ..deploy.records import Deployments

    return Deployments(aws().table)


def _package_bytes() -> bytes:
    raw = bp.current_request.raw_body
    return raw if isinstance(raw, bytes) else (raw or "").encode("latin-1")


@bp.route("/packages", methods=["POST"], content_types=[*PACKAGE_TYPES, "application/json"])
@json_errors
@idempotent(bp)
def post_package() -> Any:
    """A package as the body (up to API Gateway's 10 MB), or JSON asking for a presigned PUT."""
    from ..deploy.uploads import accept_presign, accept_upload

    a = aws()
    caller = acting_user(bp.current_request.context, a.settings)
    if content_type(bp.current_request.headers) == "application/json":
        answer = accept_presign(a, a.settings, json_body(bp.current_request.raw_body), caller)
    else:
        answer = accept_upload(a, a.settings, _package_bytes(), caller)
    return Response(body=answer, status_code=202)


@bp.route("/compile", methods=["POST"], content_types=PACKAGE_TYPES)
@json_errors
def post_compile() -> Any:
    """`--only-json`: compile a package without storing or deploying anything."""
    if content_type(bp.current_request.headers) not in PACKAGE_TYPES:
        raise UnsupportedMediaType("send the package as application/gzip", field="body")
    from ..deploy.uploads import dry_run

    return dry_run(aws().settings, _package_bytes())


@bp.route("/deployments/{deployment_id}", methods=["GET"])
@json_errors
def get_deployment(deployment_id: str) -> Any:
    return _records().get(deployment_id)


@bp.route("/deployments", methods=["GET"])
@json_errors
def list_deployments() -> Any:
    """?flow=NAME: the flow's production pointer and every published version."""
    params = bp.current_request.query_params or {}
    name = params.get("flow")
    if not name:
        raise BadRequest("give the flow: /deployments?flow=NAME", field="flow")
    records = _records()
    head = records.head(name)
    if head is None:
        raise NotFound(f"no flow named {name!r} was ever deployed", field="flow")
    return {"flow": head, "versions": records.versions(name)}


@bp.route("/flows/{flow}", methods=["DELETE"], content_types=["application/json"])
@json_errors
@idempotent(bp)
def delete(flow: str) -> Any:
    from ..deploy.removal import delete_flow

    a = aws()
    caller = acting_user(bp.current_request.context, a.settings)
    return delete_flow(a, flow, json_body(bp.current_request.raw_body), caller)


@bp.on_cw_event(PACKAGE_CREATED_PATTERN, name="compile")
def compile_package(event: Any) -> list[dict[str, Any]]:
    """A package landed in S3: compile and deploy whatever deployments wait for it."""
    from ..deploy.rollout import deploy_arrived

    a = aws()
    results = deploy_arrived(a, a.settings, event.detail)
    for r in results:
        log.info("deployment %s: %s", r["deployment_id"], r["status"])
    return results
