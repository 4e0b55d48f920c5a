"""Build the code package `step-functions create` uploads.

A package is a gzip-compressed tar of the flow's folder plus the manifest the
SDK built (`manifest.json` at the root). It is deterministic: the same folder
and manifest give the same bytes on any machine (sorted entries, fixed times,
owners and modes, no gzip timestamp), so its sha256 is a content address and
the control plane can store it as `packages/<sha256>.tar.gz`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from .manifest import DeployOptions, Environments, Manifest, ParameterSpec
from .package_key import package_key
from .parameters import DeployTimeContext, ParameterError

if TYPE_CHECKING:
    from .context import FlowContext
    from .includefile import IncludeSink

MANIFEST_NAME = "manifest.json"
# 1980-01-01: some tools refuse entries dated 1970, and any fixed value keeps the hash stable.
FIXED_MTIME = 315532800

# Folders that are never code the flow needs: VCS metadata, virtual environments,
# caches, flowplane's own local datastore and JavaScript dependencies.
EXCLUDED_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "__pycache__", ".flowplane", "node_modules"}
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo")


class PackageError(Exception):
    """The flow's folder cannot be packaged; the message says which file and why."""


@dataclass(frozen=True)
class Package:
    data: bytes
    sha256: str
    files: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def key(self) -> str:
        return package_key(self.sha256)


def _is_venv(path: str) -> bool:
    # Any folder holding pyvenv.cfg is a virtual environment, whatever its name.
    return os.path.isfile(os.path.join(path, "pyvenv.cfg"))


def iter_package_files(root: str) -> list[tuple[str, str]]:
    """(archive name, path on disk) of every file to package, sorted by archive name.

    Directory symlinks are not followed (they can loop or point anywhere); a file
    symlink is packaged as the file it points to, as Metaflow does.
    """
    root = os.path.abspath(root)
    out: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in EXCLUDED_DIRS
            and not os.path.islink(os.path.join(dirpath, d))
            and not _is_venv(os.path.join(dirpath, d))
        )
        for name in sorted(filenames):
            if name.endswith(EXCLUDED_SUFFIXES):
                continue
            path = os.path.join(dirpath, name)
            if not os.path.isfile(path):  # broken links, sockets, fifos
                continue
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            out.append((rel, path))
    out.sort()
    return out


def _tarinfo(name: str, size: int, executable: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = FIXED_MTIME
    info.mode = 0o755 if executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def build_package(root: str, manifest: Manifest, extra_files: Optional[dict[str, bytes]] = None) -> Package:
    """Package the folder `root` with `manifest` as `manifest.json`."""
    files = iter_package_files(root)
    names = [n for n, _ in files]
    if MANIFEST_NAME in names:
        raise PackageError(
            f"{os.path.join(root, MANIFEST_NAME)}: the package reserves {MANIFEST_NAME!r} at the top "
            "of the flow's folder for the flowplane manifest; rename your file"
        )
    if manifest.flow_file not in names:
        raise PackageError(f"the flow file {manifest.flow_file!r} is not inside {root}")
    entries: list[tuple[str, bytes, bool]] = []
    for name, path in files:
        try:
            with open(path, "rb") as f:
                data = f.read()
            executable = bool(os.stat(path).st_mode & stat.S_IXUSR)
        except OSError as e:
            raise PackageError(f"{path}: cannot read it ({e.strerror})") from None
        entries.append((name, data, executable))
    for name, data in sorted((extra_files or {}).items()):
        entries.append((name, data, False))
    entries.append((MANIFEST_NAME, manifest.model_dump_json(indent=1).encode("utf-8"), False))
    entries.sort(key=lambda e: e[0])
    data = _deterministic_targz(entries)
    return Package(data=data, sha256=hashlib.sha256(data).hexdigest(), files=[e[0] for e in entries])


def _deterministic_targz(entries: Iterable[tuple[str, bytes, bool]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, executable in entries:
            tar.addfile(_tarinfo(name, len(data), executable), io.BytesIO(data))
    out = io.BytesIO()
    # filename="" and mtime=0 keep the gzip header free of the machine's state.
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def read_manifest(data: bytes) -> Manifest:
    """The manifest inside a package's bytes (for tools; the server validates more)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.getmember(MANIFEST_NAME)
        f = tar.extractfile(member)
        if f is None:
            raise PackageError(f"{MANIFEST_NAME} in the package is not a regular file")
        return Manifest.model_validate_json(f.read())


def resolve_parameters(
    ctx: "FlowContext", logger: Callable[[str], None] = print, ds_type: str = "s3", ds_root: Optional[str] = None,
    include: Optional["IncludeSink"] = None,
) -> list[ParameterSpec]:
    """The source's parameters with their defaults evaluated once, here, at deploy time.

    A function default (e.g. one that records who deployed and when) runs on the
    deployer's machine; the control plane only ever sees its value. An IncludeFile's
    default file is read here and handed to `include` (the stage's datastore); its
    descriptor is the deployed default. Without `include` the file is read and checked
    only (`--only-json`).
    """
    from .datastore.includes import IncludeError
    from .includefile import IncludeFile

    objects = {p.name: p for p in ctx.parameters()}
    out = []
    for spec in ctx.source.parameters:
        param = objects.get(spec.name)
        if param is None:
            raise PackageError(f"parameter {spec.name!r} is in the source but not on {ctx.flow_name}")
        context = DeployTimeContext(
            flow_name=ctx.flow_name,
            parameter_name=spec.name,
            user_name=ctx.user,
            logger=logger,
            ds_type=ds_type,
            ds_root=ds_root,
        )
        try:
            value = param.resolve_default(context)
            if isinstance(param, IncludeFile) and value is not None:
                value = param.include(value, include or (lambda descriptor, data: None))
        except (ParameterError, IncludeError) as e:
            raise PackageError(str(e)) from None
        out.append(spec.model_copy(update={"default": value, "has_default": value is not None}))
    return out


def manifest_for(
    ctx: "FlowContext",
    options: DeployOptions,
    parameters: Optional[list[ParameterSpec]] = None,
    flowplane_version: Optional[str] = None,
    include: Optional["IncludeSink"] = None,
    environments: Optional[Environments] = None,
) -> Manifest:
    """The manifest of a deployment of the flow in `ctx` (graph with `--with` applied), with the
    locks of its @pypi/@conda environments (resolved by the caller: flowplane/environments/)."""
    if flowplane_version is None:
        from . import __version__ as flowplane_version
    return Manifest(
        flowplane_version=flowplane_version,
        flow_name=ctx.flow_name,
        flow_file=os.path.basename(ctx.flow_file),
        graph=ctx.graph,
        parameters=resolve_parameters(ctx, include=include) if parameters is None else parameters,
        configs=dict(ctx.configs or {}),
        options=options.model_copy(update={"with_decorators": list(ctx.with_decorators)}),
        environments=environments or Environments(),
        created_by=ctx.user,
        created_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def package_flow(ctx: "FlowContext", manifest: Manifest) -> Package:
    """The package of the flow's folder (the folder holding its file)."""
    return build_package(os.path.dirname(ctx.flow_file), manifest)
