"""The state machine a manifest compiles to, as the deploy path asks for it.

Both the dry run (`--only-json`) and the compile function call this; the
compiler itself is imported on the first call, since the API Lambda answers
most routes without it.
"""

from __future__ import annotations

from typing import Any, Optional

from flowplane import limits
from flowplane.manifest import Manifest

from ..errors import BadRequest
from ..settings import Settings
from ..sizes import check_limit, json_size
from .job_definitions import check_images, job_definition_names
from .secrets_check import check_secrets


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
    from ..compiler import CompileError, CompileSettings, compile_state_machine

    candidates = {
        "job_queue": settings.job_queue,
        "job_definition": settings.job_definition,
        "datastore_root": settings.datastore_root,
        "region": settings.region,
        "event_bus": settings.event_bus,
        "join_inputs_table": settings.join_inputs_table,
        "production_token": production_token,
        "stage": settings.resource_prefix,
        # @batch(image=...): each such step's job definition (job_definitions.py).
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
