"""From an uploaded package to a production state machine, or to a clear FAILED.

The upload route validates the package, checks the deployer may deploy, stores
a PENDING deployment record and then the package; the package's arrival in S3
("Object Created" through EventBridge) runs `deploy_arrived`, which validates
again (a presigned upload reaches S3 unseen), compiles, publishes a new state
machine version, puts the schedule, writes the records, and only then points
the production alias at the version. Every step after publishing registers
its undo; a failure runs them in reverse, so the previous production version
keeps running and the deployment record says FAILED, where and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any, Callable, Optional

from flowplane import limits
from flowplane.manifest import Manifest
from flowplane.package import PACKAGE_PREFIX, package_key

from . import deployments as dp
from . import names
from .aws import Aws
from .errors import ApiError, BadRequest
from .flowcheck import check_version
from .images import check_images, ensure_job_definitions, job_definition_names
from .packages import ValidatedPackage, check_manifest_size, check_size, parse_manifest, validate_package
from .schedules import input_transformer, schedule_expression
from .secrets import check_secrets
from .settings import Settings
from .sizes import check_limit, json_size

log = logging.getLogger("flowplane.deploy")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def compile_definition(
    manifest: Manifest, package_url: str, settings: Settings, production_token: Optional[str] = None,
    step_job_definitions: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    """The state machine for `manifest`; a CompileError becomes a 400 naming the step.

    Only the fields CompileSettings declares are passed, so the production token
    reaches the state machine as soon as the compiler takes one.
    """
    check_secrets(manifest, settings)
    # Imported here: the API Lambda answers most routes without the compiler.
    from .compiler import CompileError, CompileSettings, compile_state_machine

    candidates = {
        "job_queue": settings.job_queue,
        "job_definition": settings.job_definition,
        "datastore_root": settings.datastore_root,
        "foreach_table": settings.foreach_table,
        "region": settings.region,
        "event_bus": settings.event_bus,
        "production_token": production_token,
        "stage": settings.resource_prefix,
        # @batch(image=...): each such step's job definition (chalicelib/images.py).
        "step_job_definitions": step_job_definitions
        if step_job_definitions is not None
        else job_definition_names(check_images(manifest, settings), settings),
    }
    known = CompileSettings.model_fields
    compile_settings = CompileSettings(**{k: v for k, v in candidates.items() if k in known and v is not None})
    try:
        definition = compile_state_machine(manifest, package_url, compile_settings)
    except CompileError as e:
        raise BadRequest(f"cannot compile {manifest.flow_name}: {e}", step=getattr(e, "step", None)) from None
    except RecursionError:
        raise BadRequest(
            f"cannot compile {manifest.flow_name}: its splits nest too deeply for the compiler", field="graph"
        ) from None
    check_limit(
        json_size(definition),
        limits.STEP_FUNCTIONS_DEFINITION_BYTES,
        f"the state machine of {manifest.flow_name}",
        "Step Functions' limit on a definition",
        field="graph",
    )
    return definition


def _stored_options(manifest: Manifest) -> dict[str, Any]:
    # The token given to --authorize is a credential of sorts: never echoed back.
    return manifest.options.model_dump(mode="json", exclude={"authorize"})


def _pending_record(
    manifest: Manifest, sha256: str, size: int, upload: str, caller: Optional[str] = None
) -> dict[str, Any]:
    name = dp.deployment_name(manifest.flow_name, manifest.options.name)
    now = dp.now_iso()
    return {
        "deployment_id": dp.new_deployment_id(),
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


def accept_upload(aws: Aws, settings: Settings, data: bytes, caller: Optional[str] = None) -> dict[str, Any]:
    """POST /packages with the package as the body: 202 once it is stored."""
    package = validate_package(data, settings.max_package_bytes, settings.max_unpacked_bytes)
    manifest = package.manifest
    check_images(manifest, settings)
    check_secrets(manifest, settings)
    record = _pending_record(manifest, package.sha256, package.size, "inline", caller)
    records = dp.Deployments(aws.table)
    dp.check_authorized(record["name"], records.head(record["name"]), record["deployer"], manifest.options.authorize)
    # The record first: the package's arrival is what starts the deployment.
    saved = records.create_pending(record)
    try:
        aws.packages.put(package.key, data)
    except Exception as e:
        records.fail(record["deployment_id"], {"error": f"storing the package failed: {e}", "stage": "upload"})
        raise
    return _answer(saved)


def accept_presign(aws: Aws, settings: Settings, body: dict[str, Any], caller: Optional[str] = None) -> dict[str, Any]:
    """POST /packages asking for a presigned PUT: what can be checked before the bytes exist."""
    sha = body.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
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
    records = dp.Deployments(aws.table)
    dp.check_authorized(record["name"], records.head(record["name"]), record["deployer"], manifest.options.authorize)
    saved = records.create_pending(record)
    url, headers = aws.packages.presign_put(record["package_key"], sha, settings.presign_expiry_seconds)
    return {**_answer(saved), "upload": {"method": "PUT", "url": url, "headers": headers}}


def dry_run(settings: Settings, data: bytes) -> dict[str, Any]:
    """`--only-json`: the state machine this package would deploy; nothing is stored."""
    package = validate_package(data, settings.max_package_bytes, settings.max_unpacked_bytes)
    name = dp.deployment_name(package.manifest.flow_name, package.manifest.options.name)
    url = f"s3://{settings.bucket}/{package.key}"
    return {
        "name": name,
        "flow_name": package.manifest.flow_name,
        "package": {"sha256": package.sha256, "key": package.key, "size": package.size},
        "schedule": schedule_expression(package.source.graph.schedule),
        "state_machine": compile_definition(package.manifest, url, settings),
    }


# --- the compile Lambda ------------------------------------------------------------


def deploy_arrived(aws: Aws, settings: Settings, detail: dict[str, Any]) -> list[dict[str, Any]]:
    """Handle one S3 "Object Created" event detail: deploy every deployment waiting for it."""
    bucket = (detail.get("bucket") or {}).get("name")
    key = (detail.get("object") or {}).get("key", "")
    if bucket != settings.bucket or not key.startswith(PACKAGE_PREFIX) or not key.endswith(".tar.gz"):
        return []
    sha = key[len(PACKAGE_PREFIX) : -len(".tar.gz")]
    if not _SHA256.match(sha):
        return []
    records = dp.Deployments(aws.table)
    return [deploy_one(aws, settings, deployment_id) for deployment_id in records.waiting_for(sha)]


class _Failed(Exception):
    def __init__(self, stage: str, error: dict[str, Any]) -> None:
        super().__init__(error.get("error"))
        self.stage = stage
        self.error = error


def deploy_one(aws: Aws, settings: Settings, deployment_id: str) -> dict[str, Any]:
    records = dp.Deployments(aws.table)
    if not records.claim(deployment_id):
        # Another delivery of the same event, or a deployment already finished.
        return {"deployment_id": deployment_id, "status": "SKIPPED"}
    deployment = records.get(deployment_id)
    undo: list[tuple[str, Callable[[], None]]] = []
    stage = "validate"
    try:
        stage = "validate"
        package = _fetch_and_validate(aws, settings, deployment)
        manifest = package.manifest
        name = deployment["name"]
        previous = records.head(name)
        dp.check_authorized(name, previous, deployment["deployer"], manifest.options.authorize)
        token, minted = dp.resolve_token(name, previous, manifest.options.new_token)
        expression = schedule_expression(package.source.graph.schedule)

        stage = "compile"
        records.set_stage(deployment_id, stage)
        package_url = aws.packages.url(package.key)
        # Registered before anything is published; an unused one costs nothing and is reused.
        job_definitions = ensure_job_definitions(aws.batch, settings, check_images(manifest, settings))
        definition = compile_definition(manifest, package_url, settings, token, job_definitions)
        definition_key = f"state-machines/{name}/{deployment_id}.json"
        aws.packages.put_json(definition_key, definition)

        stage = "publish"
        records.set_stage(deployment_id, stage)
        sm_arn = aws.state_machine_arn(name)
        # A head from before state machines carried the stage's prefix names another one:
        # this deploy starts the new one and retires the old once it succeeds.
        moved = previous is not None and previous.get("state_machine_arn") not in (None, sm_arn)
        sm_arn, version_arn = aws.state_machines.publish(
            sm_arn,
            names.state_machine_name(str(settings.resource_prefix), name),
            definition,
            aws.sfn_role_arn,
            f"{deployment_id} by {deployment['deployer']}",
        )
        kept = None if moved else previous
        undo.append(("publish", lambda: _undo_publish(aws, settings, kept, sm_arn, version_arn)))

        stage = "schedule"
        records.set_stage(deployment_id, stage)
        rule = names.rule_name(str(settings.resource_prefix), name)
        _apply_schedule(aws, settings, name, rule, expression)
        undo.append(("schedule", lambda: _apply_schedule(aws, settings, name, rule, _previous_schedule(kept))))

        stage = "record"
        records.set_stage(deployment_id, stage)
        # Our own count: N+1 after N, across deletes (a re-created state machine restarts
        # its version numbers; the version ARN says which one runs).
        version = int(previous.get("production_version", 0)) + 1 if previous else 1
        now = dp.now_iso()
        head = {
            "name": name,
            "flow_name": manifest.flow_name,
            "state_machine_arn": sm_arn,
            "production_version": version,
            "production_version_arn": version_arn,
            "production_deployment": deployment_id,
            "production_token": token,
            "deployer": deployment["deployer"],
            "deployed_at": now,
            "schedule": expression,
            "rule_name": rule if expression else None,
            "parameters": [p.model_dump(mode="json") for p in manifest.parameters],
            "definition_key": definition_key,
            "package_sha256": package.sha256,
            "deleted": False,
        }
        version_record = {
            "name": name,
            "flow_name": manifest.flow_name,
            "version": version,
            "version_arn": version_arn,
            "deployment_id": deployment_id,
            "package_sha256": package.sha256,
            "package_key": package.key,
            "deployer": deployment["deployer"],
            "deployed_at": now,
            "options": deployment.get("options") or {},
            "production_token": token,
            "schedule": expression,
            "definition_key": definition_key,
        }
        records.promote({**deployment, "token_minted": minted}, previous, head, version_record)
        new_revision = int(previous.get("revision", 0)) + 1 if previous else 1
        undo.append(("record", lambda: records.unpromote(name, manifest.flow_name, previous, new_revision, version)))

        stage = "alias"
        aws.state_machines.point_alias(sm_arn, version_arn)
        if moved and previous is not None:
            _retire(aws, previous, rule)
        log.info("deployed %s version %s (%s)", name, version, deployment_id)
        return {"deployment_id": deployment_id, "status": dp.DEPLOYED, "version": version}
    except Exception as e:  # every failure, expected or not, must leave production as it was
        error = e.to_dict() if isinstance(e, ApiError) else {"error": f"{type(e).__name__}: {e}"}
        if not isinstance(e, ApiError):
            log.exception("deployment %s failed at %s", deployment_id, stage)
        error["stage"] = stage
        rollback_problems = _rollback(undo)
        if rollback_problems:
            error["rollback_problems"] = rollback_problems
        records.fail(deployment_id, error)
        return {"deployment_id": deployment_id, "status": dp.FAILED, "error": error}


def _previous_schedule(previous: Optional[dict[str, Any]]) -> Optional[str]:
    return previous.get("schedule") if dp.live(previous) and previous else None


def _rollback(undo: list[tuple[str, Callable[[], None]]]) -> list[str]:
    problems = []
    for what, fn in reversed(undo):
        try:
            fn()
        except Exception as e:
            log.exception("undoing %s failed", what)
            problems.append(f"undoing {what}: {type(e).__name__}: {e}")
    return problems


def _fetch_and_validate(aws: Aws, settings: Settings, deployment: dict[str, Any]) -> ValidatedPackage:
    key = deployment["package_key"]
    size = aws.packages.size(key)
    if size is None:
        raise BadRequest(f"the package {key} is not in the bucket", field="package")
    check_size(size, settings.max_package_bytes)
    data = aws.packages.get(key)
    digest = hashlib.sha256(data).hexdigest()
    if digest != deployment["package_sha256"]:
        raise BadRequest(
            f"the uploaded package's sha256 is {digest}, not {deployment['package_sha256']}", field="package"
        )
    package = validate_package(data, settings.max_package_bytes, settings.max_unpacked_bytes)
    name = dp.deployment_name(package.manifest.flow_name, package.manifest.options.name)
    # Records written before `created_by` existed hold the manifest's user as the deployer.
    announced_by = deployment.get("created_by", deployment["deployer"])
    if name != deployment["name"] or package.manifest.created_by != announced_by:
        raise BadRequest("the uploaded package's manifest is not the one announced", field="manifest")
    return package


def _apply_schedule(aws: Aws, settings: Settings, name: str, rule: str, expression: Optional[str]) -> None:
    if expression:
        aws.schedules.put(
            rule, expression, f"flowplane schedule of {name}", aws.launcher_arn, input_transformer(name)
        )
    else:
        # Redeploying without @schedule removes the rule.
        aws.schedules.remove(rule)


def _retire(aws: Aws, previous: dict[str, Any], rule: str) -> None:
    """Remove what a head from before the stage's prefix left running; best effort."""
    try:
        if previous.get("rule_name") and previous["rule_name"] != rule:
            aws.schedules.remove(previous["rule_name"])
        if not previous.get("deleted") and aws.state_machines.find(previous["state_machine_arn"]) is not None:
            aws.state_machines.delete(previous["state_machine_arn"])
    except Exception as e:  # the new version is production already; the old one is only clutter
        log.warning("could not remove %s's old state machine or rule: %s", previous.get("name"), e)


def _undo_publish(
    aws: Aws, settings: Settings, previous: Optional[dict[str, Any]], sm_arn: str, version_arn: str
) -> None:
    if dp.live(previous):
        assert previous is not None
        old = aws.packages.get_json(previous["definition_key"])
        aws.state_machines.restore_definition(sm_arn, old, aws.sfn_role_arn)
        try:
            aws.state_machines.delete_version(version_arn)
        except Exception as e:  # moto does not implement it; a stray version harms nothing
            log.warning("could not delete the unused version %s: %s", version_arn, e)
    else:
        aws.state_machines.delete(sm_arn)
