"""Alias of flowplane.task.errors: pickled @catch exceptions and attempt records name this module."""

from .task.errors import ExceptionWrapper, FailureHandledByCatch, TaskSetupError, TaskTimeout, TransitionError

__all__ = ["ExceptionWrapper", "FailureHandledByCatch", "TaskSetupError", "TaskTimeout", "TransitionError"]
