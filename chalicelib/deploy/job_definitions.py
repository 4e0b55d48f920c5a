"""`@batch(image=..., shared_memory=...)`: one job definition per image, from an allowed list.

Batch cannot change a job's image (or its /dev/shm) at submit time, so a step
with its own image runs on a job definition of its own: the stage's job
definition with that image. Its name is derived from what it holds, so every
flow and every deploy asking for the same image reuses it, and `--only-json`
can name it without registering anything. Only images under one of the stage's
allowed prefixes (`FLOWPLANE_ALLOWED_IMAGES`, comma-separated registries or
repositories) may run: the task role's permissions are the stage's, whatever
the image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Optional

from flowplane.manifest import Manifest

from ..errors import BadRequest
from ..settings import Settings


@dataclass(frozen=True)
class JobDefinitionSpec:
    """What a step needs of its job definition beyond the stage's."""

    image: Optional[str]
    shared_memory: Optional[int]

    def name(self, prefix: str) -> str:
        """Deterministic from the contents: the same image shares one job definition."""
        digest = hashlib.sha256(f"{self.image or ''}|{self.shared_memory or ''}".encode()).hexdigest()[:16]
        return f"{prefix}-image-{digest}"


def step_specs(manifest: Manifest) -> dict[str, JobDefinitionSpec]:
    """Steps whose @batch needs a job definition other than the stage's."""
    out = {}
    for node in manifest.graph.steps.values():
        batch = node.decorator("batch")
        if batch is not None and (batch.image or batch.shared_memory):
            out[node.name] = JobDefinitionSpec(batch.image, batch.shared_memory)
    return out


def check_images(manifest: Manifest, settings: Settings) -> dict[str, JobDefinitionSpec]:
    """The steps' job definition needs; a 400 naming the image when the stage does not allow it."""
    specs = step_specs(manifest)
    allowed = settings.allowed_image_prefixes
    for step, spec in sorted(specs.items()):
        if spec.image is not None and not any(spec.image.startswith(p) for p in allowed):
            where = ("the stage allows images under: " + ", ".join(allowed)) if allowed else (
                "the stage allows no images of its own (set FLOWPLANE_ALLOWED_IMAGES)")
            raise BadRequest(
                f"step {step!r}: @batch(image={spec.image!r}) is not an allowed image; {where}",
                step=step, field="image", image=spec.image,
            )
    return specs


def job_definition_names(specs: dict[str, JobDefinitionSpec], settings: Settings) -> dict[str, str]:
    """step -> the job definition its tasks run on (the compiler's step_job_definitions)."""
    return {step: spec.name(str(settings.resource_prefix)) for step, spec in specs.items()}


def ensure_job_definitions(batch: Any, settings: Settings, specs: dict[str, JobDefinitionSpec]) -> dict[str, str]:
    """Register the job definitions `specs` need that do not exist yet; step -> name."""
    names = job_definition_names(specs, settings)
    base: Optional[dict[str, Any]] = None
    for step, spec in specs.items():
        name = names[step]
        found = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE").get("jobDefinitions")
        if found:
            continue
        if base is None:
            base = _active(batch, settings.job_definition)
        container = dict(base.get("containerProperties") or {})
        if spec.image:
            container["image"] = spec.image
        if spec.shared_memory:
            container["linuxParameters"] = {**(container.get("linuxParameters") or {}),
                                            "sharedMemorySize": spec.shared_memory}
        kwargs: dict[str, Any] = {"jobDefinitionName": name, "type": base.get("type", "container"),
                                  "containerProperties": container}
        for key in ("platformCapabilities", "retryStrategy", "timeout", "propagateTags", "tags"):
            if base.get(key):
                kwargs[key] = base[key]
        batch.register_job_definition(**kwargs)
    return names


def _active(batch: Any, ref: str) -> dict[str, Any]:
    """The stage's own job definition (latest active revision of a name, or the ARN's)."""
    if ref.startswith("arn:"):
        found = batch.describe_job_definitions(jobDefinitions=[ref]).get("jobDefinitions") or []
    else:
        found = batch.describe_job_definitions(jobDefinitionName=ref, status="ACTIVE").get("jobDefinitions") or []
    if not found:
        raise RuntimeError(f"the stage's job definition {ref!r} does not exist")
    return max(found, key=lambda d: int(d.get("revision", 0)))
