"""Resolving a flow's environments on the client, once, at `run` and `step-functions create`.

Each distinct request (Python version and packages, after Metaflow's merge of a step's
decorator with the flow's base: GraphSpec.dependencies_of) is one `uv pip compile`:
universal (valid on this machine and on the Linux hosts of AWS Batch alike), wheels
only (as Metaflow's @pypi: nothing is built at install time), with the sha256 of every
file. flowplane's own requirements are resolved with the step's packages, so the task
runtime works in the environment and a package that conflicts with it is found here,
not in a task. A lock is kept under the environments folder by what was asked, so a
second `run` of the same flow neither asks the index nor installs anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

from ..manifest import DependencyRequest, Environments, GraphSpec, LockedEnvironment
from .cache import envs_dir
from .index import uv_index_environment
from .uv import UvMissing, run_uv


class ResolutionError(Exception):
    """An environment cannot be resolved; the message names the step, the package and the conflict."""


# Of flowplane's requirements, what a task in an environment never uses: uv builds the
# environment before the task enters it (enter.py), from the image's or machine's flowplane.
_NOT_IN_ENVIRONMENTS = frozenset({"uv"})


def runtime_requirements() -> list[str]:
    """What the task runtime itself imports: flowplane's declared requirements (as `pip install flowplane`)."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        declared = requires("flowplane") or []
    except PackageNotFoundError:
        raise ResolutionError("flowplane is not installed as a package (pip install -e .), so its requirements are unknown") from None
    return sorted(r for r in declared if "extra ==" not in r and _name(r) not in _NOT_IN_ENVIRONMENTS)


def default_python() -> str:
    return "%d.%d" % sys.version_info[:2]


def requests_of(graph: GraphSpec, isolated: bool) -> dict[str, DependencyRequest]:
    """Each step's request (steps running in the task's own environment left out)."""
    out = {}
    for name in graph.steps:
        try:
            request = graph.dependencies_of(name, isolated)
        except ValueError as e:
            raise ResolutionError(str(e)) from None
        if request is not None:
            out[name] = request
    return out


def resolve_flow(
    graph: GraphSpec, isolated: bool, say: Callable[[str], None] = lambda _m: None
) -> Environments:
    """Every environment the flow's steps ask for, locked; a ResolutionError names what cannot be."""
    requests = requests_of(graph, isolated)
    if not requests:
        return Environments()
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for step, request in requests.items():
        python = ".".join((request.python or default_python()).split(".")[:2])
        groups.setdefault((python, tuple(request.requirement_lines())), []).append(step)
    fresh = sum(1 for python, lines in groups if _cached(python, list(lines)) is None)
    if fresh:
        say(f"Resolving {fresh} environment{'s' if fresh != 1 else ''} with uv...")
    with ThreadPoolExecutor(max_workers=min(4, len(groups))) as pool:
        results = list(pool.map(lambda key: _resolve_or_error(*key), groups))
    errors = []
    locks: dict[str, LockedEnvironment] = {}
    steps: dict[str, str] = {}
    for (key, names), (env, error) in zip(groups.items(), results):
        where = "step" + ("s " if len(names) > 1 else " ") + ", ".join(repr(n) for n in sorted(names))
        if error is not None:
            asked = ", ".join(key[1]) or "no packages"
            errors.append(f"{where} (Python {key[0]}; {asked}): {error}")
            continue
        assert env is not None
        locks[env.id] = env
        for n in names:
            steps[n] = env.id
    if errors:
        raise ResolutionError("cannot resolve the environment of " + "; and of ".join(errors))
    return Environments(locks=locks, steps=steps)


def _resolve_or_error(python: str, lines: tuple[str, ...]) -> tuple[Optional[LockedEnvironment], Optional[str]]:
    try:
        return resolve_one(python, list(lines)), None
    except (ResolutionError, UvMissing) as e:
        return None, str(e)


def resolve_one(python: str, lines: list[str]) -> LockedEnvironment:
    """The lock of `lines` (the step's packages) and flowplane's own requirements, for `python`."""
    found = _cached(python, lines)
    if found is not None:
        return found
    requirements = sorted({*lines, *runtime_requirements()})
    cached = _cache_path(python, requirements)
    done = run_uv(
        ["pip", "compile", "-", "--universal", "--generate-hashes", "--only-binary", ":all:",
         "--python-version", python, "--no-header", "--no-annotate", "--quiet"],
        stdin="\n".join(requirements) + "\n",
    )
    if done.returncode != 0:
        said = _explain(done.stderr)
        runtime = [r for r in runtime_requirements() if _name(r) in said.lower()]
        if runtime:
            said += f" (flowplane's task runtime itself requires {', '.join(runtime)})"
        raise ResolutionError(said)
    env = LockedEnvironment(python=python, lock=done.stdout)
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    tmp = f"{cached}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(done.stdout)
    os.replace(tmp, cached)
    return env


def _cache_path(python: str, requirements: list[str]) -> str:
    return os.path.join(envs_dir(), "resolved", f"{_cache_key(python, requirements)}.lock")


def _cached(python: str, lines: list[str]) -> Optional[LockedEnvironment]:
    """The lock resolved before for this very request (same uv, same index), if any."""
    path = _cache_path(python, sorted({*lines, *runtime_requirements()}))
    try:
        with open(path, encoding="utf-8") as f:
            return LockedEnvironment(python=python, lock=f.read())
    except OSError:
        return None


def _cache_key(python: str, requirements: list[str]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        uv_version = version("uv")
    except PackageNotFoundError:
        uv_version = "path"
    what = {"python": python, "requirements": requirements, "uv": uv_version, "index": uv_index_environment(),
            "uv_index": [os.environ.get(k) for k in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL")]}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


_DECORATION = re.compile(r"^[\s×╰─▶│]+")


def _explain(stderr: str) -> str:
    """uv's explanation, on one line: it names the package and the conflict."""
    lines = [_DECORATION.sub("", line).strip() for line in (stderr or "").splitlines()]
    text = " ".join(line for line in lines if line and not line.startswith("hint:"))
    return text[:3000] or "uv could not resolve it (no reason given)"


def asks_for_environments(graph: GraphSpec) -> Optional[str]:
    """The first decorator asking for an environment (`@pypi on step 'x'`), or None."""
    for kind, base in (("pypi_base", graph.pypi_base), ("conda_base", graph.conda_base)):
        if base is not None:
            return f"@{kind}"
    for node in graph.sorted_steps():
        for kind in ("pypi", "conda"):
            if node.decorator(kind) is not None:
                return f"@{kind} (step {node.name!r})"
    return None


def lock_flow(graph: GraphSpec, environment: str, say: Callable[[str], None] = lambda _m: None) -> Environments:
    """The locked environments of a `run` or `create` with `--environment` as given: none for
    `local`, where a decorator asking for one is refused (Metaflow's rule)."""
    if environment not in ("pypi", "conda"):
        asking = asks_for_environments(graph)
        if asking:
            raise ResolutionError(f"{asking} requires --environment=pypi or --environment=conda")
        return Environments()
    return resolve_flow(graph, isolated=True, say=say)


def build_local(environments: Environments, say: Callable[[str], None] = lambda _m: None) -> None:
    """Every environment of a local run, built here (or found built) before its tasks start."""
    import time

    from .cache import EnvironmentBuildError, build

    for env_id, env in environments.locks.items():
        started = time.monotonic()
        steps = sorted(s for s, e in environments.steps.items() if e == env_id)
        try:
            _, built = build(env_id, env)
        except EnvironmentBuildError as e:
            raise ResolutionError(f"the environment of step(s) {', '.join(map(repr, steps))} cannot be built: {e}") from None
        if built:
            say(f"Created environment {env_id[:12]} (Python {env.python}) for {', '.join(steps)} "
                f"in {time.monotonic() - started:.1f} s.")
