"""`@secrets(sources=[...])`: only secrets under the stage's prefix, refused at deploy otherwise.

The task role may read secrets named `<prefix>...` only (infra/resources.json,
JobRole "StageSecrets"); a step naming any other secret would fail on Batch with
AccessDenied, so it is a 400 naming the step and the secret before anything deploys.
"""

from __future__ import annotations

from flowplane.manifest import Manifest, secret_name

from ..errors import BadRequest
from ..settings import Settings


def check_secrets(manifest: Manifest, settings: Settings) -> None:
    prefix = settings.secrets_prefix
    for node in manifest.graph.sorted_steps():
        spec = node.decorator("secrets")
        for source in spec.sources if spec is not None else ():
            if not secret_name(source).startswith(prefix):
                raise BadRequest(
                    f"step {node.name!r}: @secrets names {source!r}, but this stage's tasks may read only "
                    f"secrets whose names start with {prefix!r}",
                    step=node.name, field="sources", secret=source,
                )
