"""Alias of flowplane.task.persist's error: attempt records name ArtifactPersistError by this module."""

from .task.persist import ArtifactPersistError

__all__ = ["ArtifactPersistError"]
