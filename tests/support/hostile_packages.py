"""Packages and manifests for the hostile-input tests, built without any AWS (no tests here).

The quick subset (`make test-quick`) runs what imports only this; the end-to-end
tests add the control plane from tests/support/control_plane.py.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from typing import Any, Callable, Optional

import flowplane
from flowplane.graph import read_source_flow
from flowplane.manifest import DeployOptions, Manifest
from tests.support.paths import ROOT

EXAMPLES = ROOT / "examples"
MB = 1024 * 1024
PARAMETER_FLOW = (EXAMPLES / "parameter_flow.py").read_bytes()
FLOW_FILE = "parameter_flow.py"


def manifest_of(source: bytes = PARAMETER_FLOW, flow_file: str = FLOW_FILE, **options: Any) -> Manifest:
    """The manifest the SDK would build for a flow whose defaults are all literals."""
    read = read_source_flow(source.decode(), flow_file)
    return Manifest(
        flowplane_version=flowplane.__version__,
        flow_name=read.graph.flow_name,
        flow_file=flow_file,
        graph=read.graph,
        parameters=read.parameters,
        options=DeployOptions(**options),
        created_by="alice",
    )


def member(name: str, data: bytes = b"", **fields: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    return info


Build = Callable[[tarfile.TarFile], None]


def tar_gz(build: Build, level: int = 6) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return gzip.compress(raw.getvalue(), compresslevel=level, mtime=0)


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields: Any) -> None:
    info = member(name, data, **fields)
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def package(
    extra: Optional[Build] = None,
    manifest: Optional[Manifest] = None,
    source: bytes = PARAMETER_FLOW,
    raw_manifest: Optional[bytes] = None,
) -> bytes:
    """A valid ParameterFlow package (manifest first), with `extra` members after it."""
    m = manifest or manifest_of(source)
    body = raw_manifest if raw_manifest is not None else m.model_dump_json(indent=1).encode()

    def build(tar: tarfile.TarFile) -> None:
        add(tar, "manifest.json", body)
        add(tar, m.flow_file, source)
        if extra is not None:
            extra(tar)

    return tar_gz(build)


def _deflate(pieces: Callable[[], Any]) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join([*(c.compress(p) for p in pieces()), c.flush()])


def many_members_package(count: int, distinct: int = 5_100) -> bytes:
    """`count` empty members; past the first `distinct` the same header repeats (the reader
    stops at its cap long before), which keeps building it quick."""
    headers = [member(f"f{i}").tobuf(format=tarfile.USTAR_FORMAT) for i in range(distinct)]

    def pieces() -> Any:
        yield b"".join(headers)
        yield headers[-1] * (count - distinct)
        yield bytes(1024)

    return _deflate(pieces)


def pax_header_package(size: int) -> bytes:
    """One PAX extended header whose records are `size` bytes, before an empty member."""
    record = b" comment=" + b"1" * (size - 20) + b"\n"
    record = str(len(record) + len(str(len(record) + 8))).encode() + record
    header = member("././@PaxHeader", type=tarfile.XHDTYPE)
    header.size = len(record)

    def pieces() -> Any:
        yield header.tobuf(format=tarfile.USTAR_FORMAT)
        yield record
        yield bytes(-len(record) % 512)
        yield member("x").tobuf(format=tarfile.USTAR_FORMAT) + bytes(1024)

    return _deflate(pieces)


def zeros_package(size: int, name: str = "zeros.bin") -> bytes:
    """A package whose one member is `size` zero bytes, deflated as hard as gzip can
    (~1000:1), built in 1 MB pieces so the test never holds `size` bytes."""
    header = member(name, size=0)
    header.size = size
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [c.compress(header.tobuf(format=tarfile.PAX_FORMAT))]
    chunk = bytes(MB)
    for _ in range(size // MB):
        out.append(c.compress(chunk))
    out.append(c.compress(bytes(size % MB + 1024)))
    out.append(c.flush())
    return b"".join(out)
