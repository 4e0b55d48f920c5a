"""The Client API's errors, named and shaped like Metaflow's (metaflow.exception)."""

from __future__ import annotations


class ClientError(Exception):
    """Base of every Client API error (Metaflow: MetaflowException)."""

    headline = "Client API error"

    def __init__(self, msg: str = ""):
        super().__init__(msg)
        self.message = msg

    def __str__(self) -> str:
        return self.message


class NotFound(ClientError):
    """The flow, run, step, task or artifact does not exist (Metaflow: MetaflowNotFound)."""

    headline = "Object not found"


class ChildNotFound(NotFound, KeyError):
    """`parent['child']` for a missing child: a KeyError, as Metaflow's `__getitem__` raises,
    and a NotFound so one `except` catches every missing object."""

    def __str__(self) -> str:
        # KeyError would show the repr of the message; keep the sentence readable.
        return self.message


class NamespaceMismatch(ClientError):
    """The object exists but not in the current namespace (Metaflow: MetaflowNamespaceMismatch)."""

    headline = "Object not in the current namespace"

    def __init__(self, namespace: str | None, pathspec: str | None = None):
        self.namespace = namespace
        self.pathspec = pathspec
        what = f"{pathspec} is" if pathspec else "Object is"
        super().__init__(
            f"{what} not in namespace '{namespace}'. Switch with namespace('<tag>'), "
            "or namespace(None) to see every namespace."
        )


class InvalidPathspec(ClientError, ValueError):
    """A pathspec of the wrong shape for the class (Metaflow: MetaflowInvalidPathspec)."""

    headline = "Invalid pathspec"


# Metaflow's names, so code written against `metaflow.exception` reads the same.
MetaflowNotFound = NotFound
MetaflowNamespaceMismatch = NamespaceMismatch
MetaflowInvalidPathspec = InvalidPathspec
