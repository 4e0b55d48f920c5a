"""Finding the flow a task runs: a flow file on this machine, or a package from S3.

The flow module is imported under a stable name derived from its file (never
`__main__`), so its `if __name__ == "__main__"` block does not fire and
classes it defines pickle under the same module name in every task, whether
the task was forked by the local runtime, started as a subprocess, or runs
on Batch. Loaded flows are cached per file: the local runtime loads the flow
once before forking and its children find it here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import keyword
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Optional

from ..context import FlowContext
from ..graph import FlowSourceError, SourceFlow, read_source_flow
from ..manifest import GraphSpec, Manifest, compatible
from .errors import TaskSetupError, user_traceback


@dataclass
class LoadedFlow:
    flow_cls: type
    flow_file: str
    source: SourceFlow
    # Set when the flow came from a deployed package: its graph and parameters win.
    manifest: Optional[Manifest] = None
    # The Config values the graph was read with and the steps see.
    configs: dict[str, Any] = field(default_factory=dict)
    _contexts: dict[str, tuple[FlowContext, GraphSpec]] = field(default_factory=dict)

    def context(self, with_decorators: list[Any]) -> tuple[FlowContext, GraphSpec]:
        """The FlowContext for these `--with` decorators and its decorated graph, built once."""
        key = json.dumps([d.model_dump() for d in with_decorators], sort_keys=True)
        found = self._contexts.get(key)
        if found is None:
            ctx = FlowContext(
                flow_cls=self.flow_cls,
                flow_file=self.flow_file,
                source=self.source,
                with_decorators=list(with_decorators),
                configs=dict(self.configs),
            )
            found = self._contexts[key] = (ctx, ctx.graph)
        return found


_FLOWS: dict[str, LoadedFlow] = {}
_PACKAGES: dict[str, tuple[str, Manifest]] = {}


def module_name_for(path: str) -> str:
    """A stable, importable module name for a flow file: its stem when that is free."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name = stem
    if not stem.isidentifier() or keyword.iskeyword(stem) or stem in sys.stdlib_module_names:
        name = "flowplane_flow_" + re.sub(r"\W", "_", stem)
    existing = sys.modules.get(name)
    if existing is not None and os.path.abspath(getattr(existing, "__file__", None) or "") != path:
        name = f"{name}_{hashlib.sha256(path.encode()).hexdigest()[:8]}"
    return name


def load_flow_file(
    path: str, manifest: Optional[Manifest] = None, configs: Optional[dict[str, Any]] = None
) -> LoadedFlow:
    """Import the flow file (once per process) and read its graph from the source.

    `configs` are the run's Config values (a deployed package's are in its manifest).
    """
    path = os.path.abspath(path)
    if manifest is not None:
        configs = dict(manifest.configs)
    cached = _FLOWS.get(path)
    if cached is not None and cached.configs == (configs or {}):
        return cached
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise TaskSetupError(f"cannot read the flow file {path}: {e.strerror}") from None
    class_name = manifest.flow_name if manifest else None
    try:
        source = read_source_flow(text, path, class_name, configs or {})
    except FlowSourceError as e:
        raise TaskSetupError(f"{path}: {e}") from None
    if manifest is not None:
        # The deployed graph carries the `--with` decorators given at deploy time.
        source = SourceFlow(
            graph=manifest.graph,
            parameters=list(manifest.parameters),
            class_lineno=source.class_lineno,
            problems=source.problems,
            configs=source.configs,
        )
    module = _import(path)
    flow_cls = getattr(module, source.graph.flow_name, None)
    if not isinstance(flow_cls, type):
        raise TaskSetupError(f"{path} defines no class {source.graph.flow_name} when imported")
    loaded = _FLOWS[path] = LoadedFlow(
        flow_cls=flow_cls, flow_file=path, source=source, manifest=manifest, configs=dict(configs or {})
    )
    return loaded


def _import(path: str) -> Any:
    name = module_name_for(path)
    if name in sys.modules:
        return sys.modules[name]
    flow_dir = os.path.dirname(path)
    if flow_dir not in sys.path:
        # As `python flow.py` does: modules beside the flow are importable.
        sys.path.insert(0, flow_dir)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TaskSetupError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    global _importing
    _importing += 1
    try:
        spec.loader.exec_module(module)
    except BaseException as e:
        sys.modules.pop(name, None)
        raise TaskSetupError(f"importing the flow file {path} failed:\n{user_traceback(e)}") from None
    finally:
        _importing -= 1
    return module


_importing = 0


def importing_flow() -> bool:
    """True while a flow module is being imported here: its FlowSpec() must not start a CLI."""
    return _importing > 0


# --- packages (production) ------------------------------------------------------


def check_version(package_version: str, runtime_version: str) -> None:
    """A package runs only on a runtime of the same major.minor version."""
    if not compatible(package_version, runtime_version):
        raise TaskSetupError(
            f"this package was built with flowplane {package_version!r} but the task runtime is "
            f"flowplane {runtime_version}; their major.minor versions must match. Redeploy the flow "
            f"with flowplane {runtime_version}, or use a container image with flowplane {package_version}."
        )


def fetch_package(url: str) -> tuple[str, Manifest]:
    """Download and unpack a package (s3://… or a local .tar.gz); its folder and manifest."""
    cached = _PACKAGES.get(url)
    if cached is not None:
        return cached
    target = tempfile.mkdtemp(prefix="flowplane-package-")
    try:
        if url.startswith("s3://"):
            from ..datastore.storage import NotFound, S3Storage
            from .aws import s3

            bucket, _, key = url[5:].partition("/")
            if not bucket or not key:
                raise TaskSetupError(f"--package {url!r}: expected s3://bucket/key")
            try:
                # The datastore's client too: one S3 client per task.
                stream = S3Storage(f"s3://{bucket}", client=s3()).open_read(key)
            except NotFound:
                raise TaskSetupError(f"--package {url}: no such object") from None
            _extract(stream, target, url)
        else:
            try:
                with open(url, "rb") as f:
                    _extract(f, target, url)
            except FileNotFoundError:
                raise TaskSetupError(f"--package {url}: no such file") from None
        manifest_path = os.path.join(target, "manifest.json")
        try:
            with open(manifest_path, encoding="utf-8") as f:
                raw = f.read()
        except FileNotFoundError:
            raise TaskSetupError(f"--package {url}: no manifest.json at the package root") from None
        manifest = _parse_manifest(raw, url)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    _PACKAGES[url] = (target, manifest)
    return target, manifest


def _parse_manifest(raw: str, url: str) -> Manifest:
    from pydantic import ValidationError

    import flowplane

    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise TaskSetupError(f"--package {url}: manifest.json is not JSON ({e.msg})") from None
    # The version decides whether the rest can be understood: check it first.
    version = data.get("flowplane_version") if isinstance(data, dict) else None
    check_version(str(version), flowplane.__version__)
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        raise TaskSetupError(f"--package {url}: manifest.json is not a valid manifest: {e}") from None


def _extract(stream: Any, target: str, url: str) -> None:
    """Unpack with the reader the control plane checked the package with (flowplane/archive.py):
    the same members under the same names, so the file that runs is the file that was checked."""
    from ..archive import MAX_UNPACKED_CEILING, ArchiveError, ArchiveLimits, Entry, scan

    def path_of(name: str) -> str:
        return os.path.join(target, *name.split("/"))

    def write(entry: Entry, f: Any) -> None:
        path = path_of(entry.name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # "x": no member lands on another (archive.py refuses two that would), nor on a link.
        with open(path, "xb") as out:
            shutil.copyfileobj(f, out, 1024 * 1024)
        os.chmod(path, 0o755 if entry.executable else 0o644)

    try:
        listing = scan(stream, ArchiveLimits(max_unpacked=MAX_UNPACKED_CEILING), write)
        for name in listing.dirs:
            os.makedirs(path_of(name), exist_ok=True)
        # Last: every member is written and every link is known to stay inside.
        for name, link in sorted(listing.links.items()):
            os.makedirs(os.path.dirname(path_of(name)), exist_ok=True)
            os.symlink(link.target or "", path_of(name))
    except ArchiveError as e:
        raise TaskSetupError(f"--package {url}: not a readable tar.gz package that the control plane accepts: {e}") from None
    except OSError as e:
        raise TaskSetupError(f"--package {url}: cannot unpack it ({e})") from None


def flow_file_in(package_dir: str, manifest: Manifest) -> str:
    path = os.path.realpath(os.path.join(package_dir, *manifest.flow_file.split("/")))
    if not path.startswith(os.path.realpath(package_dir) + os.sep) or not os.path.isfile(path):
        raise TaskSetupError(f"the package has no flow file {manifest.flow_file!r} (named by its manifest)")
    return path
