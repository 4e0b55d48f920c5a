"""Errors a task reports, and the exception object `@catch` stores.

Kept free of heavy imports: a reader of a caught exception (the Client API,
another task) unpickles `ExceptionWrapper` from here without loading the
task runtime or the user's exception classes.

Stored data names these classes by the module they were first defined in,
`flowplane.task_errors`: an attempt record's error type (`type_name`) and a
pickled `ExceptionWrapper`. They keep that name (`__module__`), which
flowplane/task_errors.py still imports, so old and new data read alike.
"""

from __future__ import annotations

import os
import traceback as _traceback
from types import TracebackType
from typing import Any, Optional

# flowplane/, whose frames are ours, not the user's.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORED_MODULE = "flowplane.task_errors"


class TaskSetupError(Exception):
    """The task cannot start: bad arguments, missing inputs, incompatible package."""

    __module__ = STORED_MODULE


class TransitionError(Exception):
    """The step called `self.next()` with something the graph does not say."""

    __module__ = STORED_MODULE


class TaskTimeout(Exception):
    """`@timeout`: the step ran past its limit."""

    __module__ = STORED_MODULE


class FailureHandledByCatch(Exception):
    """What a `@catch` step's fallback attempt records: the earlier attempts ended without an
    exception of their own (killed, out of memory, timed out by Batch). Metaflow's name."""

    __module__ = STORED_MODULE


def type_name(exc: BaseException) -> str:
    """`ValueError` for builtins, `module.Name` for everything else."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def user_traceback(exc: BaseException) -> str:
    """The traceback from the first frame outside flowplane: the user's code, not ours."""
    tb: Optional[TracebackType] = exc.__traceback__
    while tb is not None and tb.tb_next is not None and _is_ours(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is not None and _is_ours(tb.tb_frame.f_code.co_filename):
        # Raised by flowplane itself (a bad transition, a timeout): no user frames to show.
        tb = None
    return "".join(_traceback.format_exception(type(exc), exc, tb))


def _is_ours(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)


class ExceptionWrapper(Exception):
    """What `@catch(var=...)` stores: the exception's type, message and traceback as text.

    Like Metaflow's MetaflowExceptionWrapper it holds text, not the exception
    itself, so it can always be pickled and read back anywhere.
    """

    __module__ = STORED_MODULE

    def __init__(self, type: str, message: str, traceback: Optional[str] = None):
        super().__init__(type, message, traceback)
        self.type = type
        self.message = message
        self.traceback = traceback

    @classmethod
    def from_exception(cls, exc: BaseException) -> "ExceptionWrapper":
        return cls(type_name(exc), str(exc), user_traceback(exc))

    # Metaflow's attribute names, for flows written against it.
    @property
    def exception(self) -> str:
        return self.message

    @property
    def stacktrace(self) -> Optional[str]:
        return self.traceback

    def __reduce__(self) -> tuple[Any, ...]:
        return (ExceptionWrapper, (self.type, self.message, self.traceback))

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type

    def __repr__(self) -> str:
        return f"ExceptionWrapper({self.type!r}, {self.message!r})"
