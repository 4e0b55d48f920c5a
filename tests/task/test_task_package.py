"""The task runtime is one package, flowplane/task/; stored data that names its old modules still reads.

An attempt record names an error by its class's module, and a pickled @catch
ExceptionWrapper names flowplane.task_errors: those names stay, written and read
as before the runtime became a package. No other flowplane/task_*.py remains.
"""

from __future__ import annotations

import pickle

import pytest

from flowplane.task.errors import ExceptionWrapper, FailureHandledByCatch, TaskSetupError, TaskTimeout, TransitionError
from flowplane.task.errors import type_name
from flowplane.task.persist import ArtifactPersistError
from tests.support.paths import ROOT

PACKAGE = ROOT / "flowplane"

# Only these may stay beside the package, and only because stored data names them.
DATA_ALIASES = {"task_errors.py", "task_persist.py"}

# Written by flowplane before flowplane/task/ existed (pickle protocol 4, Python's default).
WRAPPER_PICKLE = (
    b"\x80\x04\x95\x7f\x00\x00\x00\x00\x00\x00\x00\x8c\x15flowplane.task_errors\x94\x8c\x10ExceptionWrapper\x94"
    b"\x93\x94\x8c\nValueError\x94\x8c\x04boom\x94\x8c6Traceback (most recent call last):\n  ValueError: boom\n"
    b"\x94\x87\x94R\x94."
)
FALLBACK_PICKLE = (
    b"\x80\x04\x95N\x00\x00\x00\x00\x00\x00\x00\x8c\x15flowplane.task_errors\x94\x8c\x15FailureHandledByCatch\x94"
    b"\x93\x94\x8c\x14attempt 0 was killed\x94\x85\x94R\x94."
)


def test_a_pickled_catch_exception_naming_flowplane_task_errors_still_loads():
    wrapper = pickle.loads(WRAPPER_PICKLE)
    assert isinstance(wrapper, ExceptionWrapper)
    assert (wrapper.type, wrapper.message) == ("ValueError", "boom")
    assert wrapper.stacktrace == "Traceback (most recent call last):\n  ValueError: boom\n"
    fallback = pickle.loads(FALLBACK_PICKLE)
    assert isinstance(fallback, FailureHandledByCatch) and str(fallback) == "attempt 0 was killed"


def test_new_pickles_are_the_bytes_old_ones_were():
    wrapper = ExceptionWrapper("ValueError", "boom", "Traceback (most recent call last):\n  ValueError: boom\n")
    assert pickle.dumps(wrapper, protocol=4) == WRAPPER_PICKLE
    assert pickle.dumps(FailureHandledByCatch("attempt 0 was killed"), protocol=4) == FALLBACK_PICKLE


@pytest.mark.parametrize(
    "error, recorded",
    [
        (TaskSetupError("x"), "flowplane.task_errors.TaskSetupError"),
        (TransitionError("x"), "flowplane.task_errors.TransitionError"),
        (TaskTimeout("x"), "flowplane.task_errors.TaskTimeout"),
        (FailureHandledByCatch("x"), "flowplane.task_errors.FailureHandledByCatch"),
        (ArtifactPersistError("x"), "flowplane.task_persist.ArtifactPersistError"),
    ],
)
def test_attempt_records_name_the_task_errors_as_before(error, recorded):
    assert type_name(error) == recorded
    module, _, name = recorded.rpartition(".")
    # The name resolves: pickle (and anyone reading a record) finds the very class.
    assert getattr(__import__(module, fromlist=[name]), name) is type(error)
    assert type(pickle.loads(pickle.dumps(error))) is type(error)


def test_no_other_task_module_sits_beside_the_package():
    assert (PACKAGE / "task" / "__init__.py").is_file()
    assert not (PACKAGE / "task.py").exists()
    beside = {p.name for p in PACKAGE.glob("task_*.py")}
    assert beside == DATA_ALIASES, f"the task runtime's modules live in flowplane/task/: {sorted(beside - DATA_ALIASES)}"
    for name in DATA_ALIASES:
        # An alias only: a docstring saying why, and the names it re-exports.
        assert (PACKAGE / name).read_text().count("\n") <= 6, name
