"""POST /packages and POST /compile: a package checked and stored, or only compiled.

The upload validates the package, checks the deployer may deploy, and stores a
PENDING deployment record and then the package (or hands out a presigned PUT
for it, after checking what can be checked before the bytes exist). The
package's arrival in S3 is what starts the deployment (rollout.py).
"""

from __future__ import annotations

import json
from typing import Any, Optional

from flowplane.manifest import Manifest
from flowplane.package_key import package_key

from ..aws import Aws
from ..errors import BadRequest
from ..resource_names import manifest_deployment
from ..settings import Settings
from .definition import compile_definition
from .job_definitions import check_images
from .package_check import SHA256, check_manifest_size, check_size, parse_manifest, validate_package
from .records import Deployments, new_deployment_id, now_iso
from .schedules import schedule_expression
from .secrets_check import check_secrets
from .source_check import check_version
from .tokens import check_authorized


def _stored_options(manifest: Manifest) -> dict[str, Any]:
    # The token given to --authorize is a credential of sorts: never echoed back.
    return manifest.options.model_dump(mode="json", exclude={"authorize"})


def _pending_record(
    manifest: Manifest, sha256: str, size: int, upload: str, caller: Optional[str] = None
) -> dict[str, Any]:
    name = manifest_deployment(manifest)
    now = now_iso()
    return {
        "deployment_id": new_deployment_id(),
        "name": name,
        "flow_name": manifest.flow_name,
        "package_sha256": sha256,
        "package_key": package_key(sha256),
        "package_size": size,
        # The signed caller when there is one (see chalicelib/identity.py); the manifest's
        # user is only a claim, kept to check the uploaded package is the one announced.
        "deployer": caller or manifest.created_by,
        "created_by": manifest.created_by,
        "created_at": now,
        "updated_at": now,
        "options": _stored_options(manifest),
        "upload": upload,
    }


def _answer(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "deployment_id": record["deployment_id"],
        "status": record["status"],
        "name": record["name"],
        "flow_name": record["flow_name"],
        "package": {"sha256": record["package_sha256"], "key": record["package_key"], "size": record["package_size"]},
    }


def _trigger_loop(aws: Aws, name: str, manifest: Manifest) -> list[str]:
    """Refuse a deploy that closes a loop of @trigger_on_finish flows; with the option, warn."""
    from ..triggers import finish_index

    from ..resource_names import finish_node, project_of

    finish = finish_index.upstream_of(manifest.graph.trigger_on_finish, project_of(manifest))
    loop = finish_index.loop_through(aws.table, name, finish_node(name, manifest.flow_name), finish)
    if loop is None:
        return []
    said = (f"@trigger_on_finish closes a loop: {finish_index.describe(loop)}; each run would start the "
            "next, forever")
    if not manifest.options.allow_trigger_loop:
        raise BadRequest(f"{said}. Break the loop, or deploy with --allow-trigger-loop",
                         field="trigger_on_finish", line=finish.lineno if finish else None, loop=loop)
    return [said]


def accept_upload(aws: Aws, settings: Settings, data: bytes, caller: Optional[str] = None) -> dict[str, Any]:
    """POST /packages with the package as the body: 202 once it is stored."""
    package = validate_package(data, settings.max_package_bytes, settings.max_unpacked_bytes)
    manifest = package.manifest
    check_images(manifest, settings)
    check_secrets(manifest, settings)
    record = _pending_record(manifest, package.sha256, package.size, "inline", caller)
    records = Deployments(aws.table)
    check_authorized(record["name"], records.head(record["name"]), record["deployer"], manifest.options.authorize)
    warnings = _trigger_loop(aws, record["name"], manifest)
    # The record first: the package's arrival is what starts the deployment.
    saved = records.create_pending(record)
    try:
        aws.packages.put(package.key, data)
    except Exception as e:
        records.fail(record["deployment_id"], {"error": f"storing the package failed: {e}", "stage": "upload"})
        raise
    return {**_answer(saved), **({"warnings": warnings} if warnings else {})}


def accept_presign(aws: Aws, settings: Settings, body: dict[str, Any], caller: Optional[str] = None) -> dict[str, Any]:
    """POST /packages asking for a presigned PUT: what can be checked before the bytes exist."""
    sha = body.get("sha256")
    if not isinstance(sha, str) or not SHA256.match(sha):
        raise BadRequest("sha256 must be the package's sha256 as 64 lowercase hex digits", field="sha256")
    size = body.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise BadRequest("size must be the package's size in bytes", field="size")
    check_size(size, settings.max_package_bytes)
    if not isinstance(body.get("manifest"), dict):
        raise BadRequest("manifest must be the package's manifest.json as an object", field="manifest")
    raw = json.dumps(body["manifest"]).encode()
    check_manifest_size(len(raw))
    manifest = parse_manifest(raw)
    check_version(manifest)
    schedule_expression(manifest.graph.schedule)
    check_images(manifest, settings)
    check_secrets(manifest, settings)
    record = _pending_record(manifest, sha, size, "presigned", caller)
    records = Deployments(aws.table)
    check_authorized(record["name"], records.head(record["name"]), record["deployer"], manifest.options.authorize)
    warnings = _trigger_loop(aws, record["name"], manifest)
    saved = records.create_pending(record)
    url, headers = aws.packages.presign_put(record["package_key"], sha, settings.presign_expiry_seconds)
    return {**_answer(saved), "upload": {"method": "PUT", "url": url, "headers": headers},
            **({"warnings": warnings} if warnings else {})}


def dry_run(settings: Settings, data: bytes) -> dict[str, Any]:
    """`--only-json`: the state machine this package would deploy; nothing is stored."""
    package = validate_package(data, settings.max_package_bytes, settings.max_unpacked_bytes)
    name = manifest_deployment(package.manifest)
    url = f"s3://{settings.bucket}/{package.key}"
    return {
        "name": name,
        "flow_name": package.manifest.flow_name,
        "package": {"sha256": package.sha256, "key": package.key, "size": package.size},
        "schedule": schedule_expression(package.source.graph.schedule),
        "state_machine": compile_definition(package.manifest, url, settings),
    }
