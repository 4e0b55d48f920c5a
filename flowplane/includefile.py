"""`IncludeFile`: a parameter whose value is the content of a file on the client's machine.

As in Metaflow, the file is read where the command runs (`run`, `step-functions
create` for the default, `step-functions trigger --name path`), stored once by
content in the datastore (datastore/includes.py), and every task sees its
content as the parameter's value. The control plane never reads the file: it
sees the descriptor only.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from .datastore.includes import IncludeDescriptor, read_include
from .parameters import DeployTimeContext, Parameter, ParameterError

# Where the bytes of an included file go: the local datastore, or the control plane.
IncludeSink = Callable[[IncludeDescriptor, bytes], None]


class IncludeFile(Parameter):
    """`data = IncludeFile("data", default="data.csv", is_text=True, encoding="utf-8")`.

    `default` is a path (or a function of a deploy-time context returning one);
    `--data other.csv` on `run` or `step-functions trigger` includes another file.
    """

    def __init__(
        self,
        name: str,
        required: Optional[bool] = None,
        is_text: Optional[bool] = None,
        encoding: Optional[str] = None,
        help: Optional[str] = None,
        parser: Any = None,
        default: Any = None,
        **kwargs: Any,
    ) -> None:
        if parser is not None:
            raise ParameterError(
                f"IncludeFile {name!r}: parser= is not supported; parse self.{name} in the step that uses it"
            )
        self.is_text = True if is_text is None else bool(is_text)
        self.encoding = encoding or "utf-8"
        super().__init__(name, default=default, help=help, required=bool(required), **kwargs)

    def _type_name(self, type_: Any, default: Any) -> str:
        return "include"

    @property
    def is_deploy_time(self) -> bool:
        # A default path is read when the run starts or the flow is deployed, like a function default.
        return self.default is not None

    def resolve_default(self, context: DeployTimeContext) -> Optional[str]:
        """The default path (a function default is called once here); not yet read."""
        value = self.default
        if callable(value):
            try:
                value = value(context)
            except Exception as e:  # user code: report, don't crash with a traceback
                raise ParameterError(
                    f"IncludeFile {self.name!r}: its deploy-time default raised {type(e).__name__}: {e}"
                ) from e
        return None if value is None else str(value)

    def include(self, path: str, sink: IncludeSink) -> dict[str, Any]:
        """Read the file at `path`, hand its bytes to `sink`, return the value tasks are given."""
        descriptor, data = read_include(self.name, path, self.is_text, self.encoding)
        sink(descriptor, data)
        return descriptor.to_json()

    def __repr__(self) -> str:
        return f"IncludeFile({self.name!r}, is_text={self.is_text}, encoding={self.encoding!r})"


def include_values(
    params: list[Parameter], values: dict[str, Any], sink: IncludeSink
) -> dict[str, Any]:
    """`values` (by parameter name) with each IncludeFile's path replaced by its descriptor."""
    out = dict(values)
    for p in params:
        if isinstance(p, IncludeFile) and out.get(p.name) is not None:
            out[p.name] = p.include(out[p.name], sink)
    return out
