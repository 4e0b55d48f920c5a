"""What every flow command knows: the flow class, its file, its graph."""

from __future__ import annotations

import getpass
import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from .graph import SourceFlow, read_source_flow
from .manifest import GraphSpec
from .parameters import Parameter
from .projects import ProjectError, ProjectInfo, resolve


def username() -> str:
    """The user, as Metaflow finds it: FLOWPLANE_USER, then USER/USERNAME, then the login."""
    for var in ("FLOWPLANE_USER", "METAFLOW_USER", "USER", "USERNAME", "LOGNAME"):
        value = os.environ.get(var)
        if value:
            return value
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@dataclass
class FlowContext:
    flow_cls: type
    flow_file: str  # absolute path of the flow's source file
    source: SourceFlow  # the graph and parameters as read from the source with `ast`
    with_decorators: list[Any] = field(default_factory=list)  # `--with` specs
    user: str = field(default_factory=username)
    # The Config values (name -> JSON) the source was read with; None: not resolved yet.
    configs: Optional[dict[str, Any]] = None
    # The top-level --branch and --production (@project); read by `project()`.
    branch_option: Optional[str] = None
    production_option: bool = False

    @property
    def flow_name(self) -> str:
        return self.flow_cls.__name__

    @property
    def graph(self) -> GraphSpec:
        """The graph with `--with` decorators attached: what runs and what deploys."""
        return self.source.graph.with_decorators(self.with_decorators)

    def project(self) -> Optional[ProjectInfo]:
        """The flow's project and branch (None without @project); a ProjectError for a branch
        the options and the decorator cannot agree on, or options without @project."""
        spec = self.source.graph.project
        if spec is None:
            if self.branch_option is not None or self.production_option:
                broken = [f"line {n}: {m}" for n, m in self.source.problems if m.startswith("@project")]
                raise ProjectError(
                    f"the flow's @project is not valid ({'; '.join(broken)})" if broken else
                    "--branch and --production choose a branch of a @project; this flow has no @project"
                )
            return None
        return resolve(spec.name, self.flow_name, self.user, decorator_branch=spec.branch,
                       decorator_production=spec.production, branch=self.branch_option,
                       production=self.production_option)

    def deployment_name(self, name: Optional[str] = None) -> str:
        """What `step-functions` deploys and drives: `--name`, `<project>.<branch>.<Flow>`, or the flow's."""
        info = self.project()
        if info is None:
            return name or self.flow_name
        if name:
            raise ProjectError("--name is not supported for a flow with @project: use --branch instead")
        return info.project_flow_name

    def parameters(self) -> list[Parameter]:
        """The flow's Parameter objects, in definition order."""
        out = []
        for klass in reversed(self.flow_cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, Parameter):
                    out = [p for p in out if p.attribute != attr] + [value]
        return out

    def config_objects(self) -> list[Any]:
        """The flow's Config objects, in definition order."""
        from .config import flow_configs

        return flow_configs(self.flow_cls)

    @classmethod
    def for_class(
        cls, flow_cls: type, with_decorators: list[Any] | None = None, configs: Optional[dict[str, Any]] = None
    ) -> "FlowContext":
        path = os.path.abspath(inspect.getsourcefile(flow_cls) or "")
        with open(path, encoding="utf-8") as f:
            source = read_source_flow(f.read(), path, flow_cls.__name__, configs)
        return cls(
            flow_cls=flow_cls, flow_file=path, source=source, with_decorators=list(with_decorators or []), configs=configs
        )
