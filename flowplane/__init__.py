"""Flowplane: Metaflow-style flows, run locally or in production on AWS Step Functions.

`from flowplane import FlowSpec, step, Parameter` is all a flow needs; the
Client API (`Flow`, `Run`, `namespace`, ...) is imported on first use so that a
task's start-up stays cheap.
"""

from __future__ import annotations

from typing import Any

from .current import current

__version__ = "0.1.0"

# A flow's names, imported on first use: `flowplane local start|stop|status`, and the
# background plane they start, need none of them (pydantic alone costs 0.1 s).
# `current` stays eager: it shares its name with its module, which would shadow a lazy name.
_SDK_NAMES = {
    "FlowSpec": ".flowspec",
    "step": ".decorators",
    "Parameter": ".parameters",
    "JSONType": ".parameters",
    "IncludeFile": ".includefile",
    "Config": ".config",
    "config_expr": ".config",
    "retry": ".decorators",
    "catch": ".decorators",
    "timeout": ".decorators",
    "resources": ".decorators",
    "batch": ".decorators",
    "environment": ".decorators",
    "secrets": ".decorators",
    "card": ".decorators",
    "pypi": ".decorators",
    "conda": ".decorators",
    "pypi_base": ".decorators",
    "conda_base": ".decorators",
    "schedule": ".decorators",
    "trigger": ".decorators",
    "trigger_on_finish": ".decorators",
    "project": ".decorators",
}

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
    "pypi",
    "conda",
    "pypi_base",
    "conda_base",
    "schedule",
    "trigger",
    "trigger_on_finish",
    "project",
    *sorted(_CLIENT_NAMES),
    *sorted(_DATATOOLS_NAMES),
]


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        import importlib

        value = getattr(importlib.import_module(_SDK_NAMES[name], __name__), name)
        globals()[name] = value  # found directly from now on
        return value
    if name in _CLIENT_NAMES:
        from . import client

        return getattr(client, name)
    if name in _DATATOOLS_NAMES:
        from .datatools import s3

        return getattr(s3, name)
    raise AttributeError(f"module 'flowplane' has no attribute {name!r}")
