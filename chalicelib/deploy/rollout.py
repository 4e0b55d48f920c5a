"""The compile function: from an uploaded package to a production state machine, or to a clear FAILED.

The package's arrival in S3 ("Object Created" through EventBridge) runs
`deploy_arrived`, which validates again (a presigned upload reaches S3 unseen),
compiles, publishes a new state machine version, puts the schedule, writes the
records, and only then points the production alias at the version. Every step
after publishing registers its undo; a failure runs them in reverse, so the
previous production version keeps running and the deployment record says
FAILED, where and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Callable, Optional

from flowplane.package_key import package_sha256

from .. import resource_names
from ..aws import Aws
from ..errors import ApiError, BadRequest
from ..settings import Settings
from ..triggers import finish_index
from ..triggers import rules as trigger_rules
from .definition import compile_definition
from .job_definitions import check_images, ensure_job_definitions
from .package_check import SHA256, ValidatedPackage, check_size, validate_package
from .records import DEPLOYED, FAILED, Deployments, live, now_iso
from .pausing import is_paused
from .schedules import apply_schedule, schedule_expression, schedule_timezone
from .tokens import check_authorized, resolve_token

log = logging.getLogger("flowplane.deploy")


def deploy_arrived(aws: Aws, settings: Settings, detail: dict[str, Any]) -> list[dict[str, Any]]:
    """Handle one S3 "Object Created" event detail: deploy every deployment waiting for it."""
    bucket = (detail.get("bucket") or {}).get("name")
    key = (detail.get("object") or {}).get("key", "")
    sha = package_sha256(key) if bucket == settings.bucket else None
    if sha is None or not SHA256.match(sha):
        return []
    records = Deployments(aws.table)
    return [deploy_one(aws, settings, deployment_id) for deployment_id in records.waiting_for(sha)]


def deploy_one(aws: Aws, settings: Settings, deployment_id: str) -> dict[str, Any]:
    records = Deployments(aws.table)
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
        check_authorized(name, previous, deployment["deployer"], manifest.options.authorize)
        token, minted = resolve_token(name, previous, manifest.options.new_token)
        expression = schedule_expression(package.source.graph.schedule)
        timezone = schedule_timezone(package.source.graph.schedule) if expression else None

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
            resource_names.state_machine_name(str(settings.resource_prefix), name),
            definition,
            aws.sfn_role_arn,
            f"{deployment_id} by {deployment['deployer']}",
        )
        kept = None if moved else previous
        undo.append(("publish", lambda: _undo_publish(aws, settings, kept, sm_arn, version_arn)))

        stage = "schedule"
        records.set_stage(deployment_id, stage)
        rule = resource_names.rule_name(str(settings.resource_prefix), name)
        paused = is_paused(aws, name) if expression else False
        had_timezone = bool((previous or {}).get("timezone"))
        apply_schedule(aws, name, rule, expression, timezone, paused, had_timezone)
        undo.append(("schedule", lambda: _restore_schedule(aws, name, rule, kept, bool(timezone) or had_timezone)))

        graph = package.source.graph
        # Inside a @project, an upstream flow named alone is the same project and branch's.
        finish = finish_index.upstream_of(graph.trigger_on_finish, resource_names.project_of(manifest))
        if graph.trigger is not None or finish is not None or (previous or {}).get("triggers"):
            # A flow neither triggered now nor before has no rules to make or remove.
            stage = "triggers"
            records.set_stage(deployment_id, stage)
            trigger_rules.apply(aws, name, graph.trigger, finish)
            finish_index.put(aws.table, name, resource_names.finish_node(name, manifest.flow_name), finish)
            undo.append(("triggers", lambda: _restore_triggers(aws, name, kept)))

        stage = "record"
        records.set_stage(deployment_id, stage)
        # Our own count: N+1 after N, across deletes (a re-created state machine restarts
        # its version numbers; the version ARN says which one runs).
        version = int(previous.get("production_version", 0)) + 1 if previous else 1
        now = now_iso()
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
            "timezone": timezone,
            "rule_name": rule if expression else None,
            "triggers": trigger_document(graph.trigger, finish),
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
            "timezone": timezone,
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
        return {"deployment_id": deployment_id, "status": DEPLOYED, "version": version}
    except Exception as e:  # every failure, expected or not, must leave production as it was
        error = e.to_dict() if isinstance(e, ApiError) else {"error": f"{type(e).__name__}: {e}"}
        if not isinstance(e, ApiError):
            log.exception("deployment %s failed at %s", deployment_id, stage)
        error["stage"] = stage
        rollback_problems = _rollback(undo)
        if rollback_problems:
            error["rollback_problems"] = rollback_problems
        records.fail(deployment_id, error)
        return {"deployment_id": deployment_id, "status": FAILED, "error": error}


def _restore_schedule(aws: Aws, name: str, rule: str, previous: Optional[dict[str, Any]], zoned_now: bool) -> None:
    """The previous production version's schedule (none if there was none), after a failed deploy."""
    expression = previous.get("schedule") if live(previous) and previous else None
    timezone = (previous or {}).get("timezone") if expression else None
    apply_schedule(aws, name, rule, expression, timezone, is_paused(aws, name), zoned_now)


def trigger_document(trigger: Any, finish: Any) -> Optional[str]:
    """The head's `triggers`: the deployed decorators as a JSON string (None: not triggered),
    the upstream flows as the deployment listens to them (finish_index.upstream_of)."""
    if trigger is None and finish is None:
        return None
    return json.dumps({
        "trigger": trigger.model_dump(mode="json") if trigger else None,
        "trigger_on_finish": finish.model_dump(mode="json") if finish else None,
    }, sort_keys=True)


def _restore_triggers(aws: Aws, name: str, previous: Optional[dict[str, Any]]) -> None:
    """The previous production version's rules (none if there was none), after a failed deploy."""
    from ..triggers.launch import trigger_specs

    trigger, finish = trigger_specs(previous) if live(previous) and previous else (None, None)
    trigger_rules.apply(aws, name, trigger, finish)
    flow_name = (previous or {}).get("flow_name") or name
    finish_index.put(aws.table, name, resource_names.finish_node(name, flow_name), finish)


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
    name = resource_names.manifest_deployment(package.manifest)
    # Records written before `created_by` existed hold the manifest's user as the deployer.
    announced_by = deployment.get("created_by", deployment["deployer"])
    if name != deployment["name"] or package.manifest.created_by != announced_by:
        raise BadRequest("the uploaded package's manifest is not the one announced", field="manifest")
    return package


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
    if live(previous):
        assert previous is not None
        old = aws.packages.get_json(previous["definition_key"])
        aws.state_machines.restore_definition(sm_arn, old, aws.sfn_role_arn)
        try:
            aws.state_machines.delete_version(version_arn)
        except Exception as e:  # moto does not implement it; a stray version harms nothing
            log.warning("could not delete the unused version %s: %s", version_arn, e)
    else:
        aws.state_machines.delete(sm_arn)
