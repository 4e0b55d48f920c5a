"""Flowplane: Metaflow-style flows, run locally or in production on AWS Step Functions.

`from flowplane import FlowSpec, step, Parameter` is all a flow needs; the
Client API (`Flow`, `Run`, `namespace`, ...) is imported on first use so that a
task's start-up stays cheap.
"""

from __future__ import annotations

from typing import Any

from .config import Config, config_expr
from .current import current
from .decorators import batch, card, catch, environment, resources, retry, schedule, secrets, step, timeout
from .flowspec import FlowSpec
from .includefile import IncludeFile
from .parameters import JSONType, Parameter

__version__ = "0.1.0"

_CLIENT_NAMES = {
    "Metaflow",
    "Flow",
    "Run",
    "Step",
    "Task",
    "DataArtifact",
    "namespace",
    "get_namespace",
    "default_namespace",
    "get_metadata",
    "metadata",
    "default_metadata",
}

# Metaflow's data tools, imported on first use (boto3 stays out of a task that never asks).
_DATATOOLS_NAMES = {"S3"}

__all__ = [
    "FlowSpec",
    "step",
    "Parameter",
    "JSONType",
    "IncludeFile",
    "Config",
    "config_expr",
    "current",
    "retry",
    "catch",
    "timeout",
    "resources",
    "batch",
    "environment",
    "secrets",
    "card",
    "schedule",
    *sorted(_CLIENT_NAMES),
    *sorted(_DATATOOLS_NAMES),
]


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from . import client

        return getattr(client, name)
    if name in _DATATOOLS_NAMES:
        from .datatools import s3

        return getattr(s3, name)
    raise AttributeError(f"module 'flowplane' has no attribute {name!r}")
