"""The Client API: read flows, runs, steps, tasks and artifacts, as Metaflow's client does.

    from flowplane import Flow, namespace
    Flow('ParameterFlow').latest_run.data.alpha

Reads go through a provider (provider.py, chosen in selection.py): the datastore at
FLOWPLANE_DATASTORE_ROOT (default ./.flowplane), together with the control plane
when one is configured or a `flowplane local` runs (combined.py). Importing this
package loads no AWS SDK.
"""

from __future__ import annotations

from .core import DataArtifact, Flow, Metadata, Metaflow, MetaflowData, MetaflowObject, Run, Step, Task, TaskException
from .exceptions import (
    ChildNotFound,
    ClientError,
    InvalidPathspec,
    MetaflowInvalidPathspec,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
    NamespaceMismatch,
    NotFound,
)
from .metadata import MetadataSpecError, default_metadata, get_metadata, metadata
from .namespaces import default_namespace, get_namespace, namespace
from .provider import DeploymentInfo, FlowInfo, Provider, StepInfo
from .selection import get_provider, set_provider, use_provider
from .tagging import TaggingError

# Metaflow's name for it.
MetaflowTaggingError = TaggingError


__all__ = [
    "Metaflow",
    "Flow",
    "Run",
    "Step",
    "Task",
    "DataArtifact",
    "MetaflowObject",
    "MetaflowData",
    "Metadata",
    "TaskException",
    "TaggingError",
    "MetaflowTaggingError",
    "namespace",
    "get_namespace",
    "default_namespace",
    "get_metadata",
    "metadata",
    "default_metadata",
    "MetadataSpecError",
    "ClientError",
    "NotFound",
    "ChildNotFound",
    "NamespaceMismatch",
    "InvalidPathspec",
    "MetaflowNotFound",
    "MetaflowNamespaceMismatch",
    "MetaflowInvalidPathspec",
    "Provider",
    "FlowInfo",
    "DeploymentInfo",
    "StepInfo",
    "get_provider",
    "set_provider",
    "use_provider",
]
