"""`@project`: the branch a flow runs or deploys as, and the name its deployment takes.

Metaflow's rules (its project decorator, facts only): a project's name and a given
branch are lowercase letters, digits and underscores, at most 128 characters; the
branch is `user.<username>` by default, `test.<name>` with `--branch name`, `prod`
with `--production` and `prod.<name>` with both; a branch given both in the decorator
and on the command line is an error; the deployment is `<project>.<branch>.<FlowName>`.

A leaf (the standard library only): the SDK, the task and the control plane's
Lambda all name deployments and check branches with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

MAX_NAME = 128
NAME_RE = re.compile(r"^[a-z0-9_]{1,128}$")
# The user part of `user.<username>`: it ends up in Step Functions and EventBridge names,
# whose characters are letters, digits, '.', '-' and '_'.
USER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_FLOW_RE = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
BRANCH_RE = re.compile(r"^(?:user\.[A-Za-z0-9_.-]{1,128}|test\.[a-z0-9_]{1,128}|prod(?:\.[a-z0-9_]{1,128})?)$")
DEPLOYMENT_RE = re.compile(
    r"^[a-z0-9_]{1,128}\.(?:user\.[A-Za-z0-9_.-]{1,128}|test\.[a-z0-9_]{1,128}|prod(?:\.[a-z0-9_]{1,128})?)\."
    + _FLOW_RE + "$"
)
# Step Functions keeps the deployment's name as a tag value (at most 256 characters) and
# this machine its production token in a file of that name (255 bytes): the shortening of
# state machine and rule names cannot help there.
MAX_DEPLOYMENT = 255
TAG_PREFIX = "project:"
BRANCH_TAG_PREFIX = "project_branch:"


class ProjectError(ValueError):
    """A project or branch that cannot name a deployment; the message says which and why."""


@dataclass(frozen=True)
class ProjectInfo:
    """A flow's project and branch, as `current` shows them and the deployment is named."""

    name: str
    branch: str
    flow_name: str

    @property
    def is_production(self) -> bool:
        return self.branch == "prod" or self.branch.startswith("prod.")

    @property
    def is_user_branch(self) -> bool:
        return self.branch.startswith("user.")

    @property
    def project_flow_name(self) -> str:
        return qualified_name(self.name, self.branch, self.flow_name)

    def tags(self) -> list[str]:
        """The runs' system tags, as Metaflow's."""
        return [f"{TAG_PREFIX}{self.name}", f"{BRANCH_TAG_PREFIX}{self.branch}"]

    def current(self) -> dict[str, object]:
        """What `current` shows in every task of the flow."""
        return {"project_name": self.name, "branch_name": self.branch, "is_production": self.is_production,
                "is_user_branch": self.is_user_branch, "project_flow_name": self.project_flow_name}


def qualified_name(project: str, branch: str, flow_name: str) -> str:
    return f"{project}.{branch}.{flow_name}"


def check_name(value: object, what: str = "the @project name") -> str:
    """A project's or a given branch's name (Metaflow's rule), else a ProjectError naming `what`."""
    lead = f"{what} " if what else ""
    if not isinstance(value, str) or not value:
        raise ProjectError(f"{what or 'the name'} is empty: give one, e.g. @project(name='some_name')")
    if len(value) > MAX_NAME:
        raise ProjectError(f"{lead}{value[:40]!r}... is {len(value)} characters; at most {MAX_NAME}")
    if not NAME_RE.match(value):
        raise ProjectError(f"{lead}{value!r} must contain only lowercase letters, digits and underscores")
    return value


def branch_name(given: Optional[str], production: bool, user: str) -> str:
    """Metaflow's branch: `prod[.<given>]` in production, else `test.<given>`, else `user.<user>`."""
    if given:
        check_name(given, "the branch name")
        return f"{'prod' if production else 'test'}.{given}"
    if production:
        return "prod"
    if not USER_RE.match(user or ""):
        raise ProjectError(
            f"the user name {user!r} cannot name the branch user.<username> (letters, digits, '.', '-' and '_' "
            "only): give a branch with --branch NAME, or set FLOWPLANE_USER"
        )
    return f"user.{user}"


def resolve(
    project: str,
    flow_name: str,
    user: str,
    *,
    decorator_branch: Optional[str] = None,
    decorator_production: bool = False,
    branch: Optional[str] = None,
    production: bool = False,
) -> ProjectInfo:
    """The branch the command line and the decorator ask for; a ProjectError when they clash."""
    check_name(project)
    if decorator_branch is not None and branch is not None and branch != decorator_branch:
        raise ProjectError(
            f"the branch is given both by @project(branch={decorator_branch!r}) and by --branch {branch}; "
            "give it in one place"
        )
    given = decorator_branch if decorator_branch is not None else branch
    info = ProjectInfo(project, branch_name(given, production or decorator_production, user), flow_name)
    check_length(info.project_flow_name)
    return info


def check_length(deployment: str) -> str:
    if len(deployment) > MAX_DEPLOYMENT:
        raise ProjectError(
            f"the deployment name {deployment[:60]}... is {len(deployment)} characters; at most {MAX_DEPLOYMENT} "
            "(Step Functions keeps it as a tag value): use a shorter project, branch or flow name"
        )
    return deployment


def is_deployment_name(value: str) -> bool:
    return len(value) <= MAX_DEPLOYMENT and bool(DEPLOYMENT_RE.match(value))


def split_qualified(value: str) -> tuple[str, str, str]:
    """`project.branch.Flow` -> its parts (the branch may itself hold dots), as Metaflow splits it."""
    project, tail = value.split(".", 1)
    branch, flow_name = tail.rsplit(".", 1)
    return project, branch, flow_name
