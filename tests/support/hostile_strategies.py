"""Hypothesis strategies that mutate valid packages and request bodies (no tests here).

Shared by the property tests (tests/control_plane/test_hostile_property.py, and through the
routes tests/control_plane/test_app_hostile_property.py) and by `make bench`, which reports
the worst validation time per MB among the packages they generate.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from tests.support.hostile_packages import FLOW_FILE, PARAMETER_FLOW, manifest_of, tar_gz

# `make test` runs more examples than the quick subset (FLOWPLANE_HYPOTHESIS=full). Given to
# the hostile-input tests alone: loading a profile would change every other property test too.
EXAMPLES = {"quick": 15, "full": 100}[os.environ.get("FLOWPLANE_HYPOTHESIS", "quick")]
HOSTILE = settings(max_examples=EXAMPLES, deadline=None, print_blob=True)

NAMES = st.sampled_from(
    [
        FLOW_FILE,
        f".//{FLOW_FILE}",
        f"./{FLOW_FILE}",
        f"{FLOW_FILE}/",
        "Parameter_Flow.py",
        "PARAMETER_FLOW.PY",
        "manifest.json",
        "./manifest.json",
        "../evil.py",
        "a/../../evil.py",
        "/etc/passwd",
        "C:\\evil.py",
        "\\evil.py",
        "lib",
        "lib/x.py",
        "lib/sub/y.py",
        "caf\u00e9.py",
        "cafe\u0301.py",
        "a\nb",
        "nul\x00.py",
        "x" * 300,
        "d/" * 600 + "f",
        "",
        ".",
        "./",
    ]
)
TARGETS = st.sampled_from(
    [".", "..", "../..", "lib", "lib/x.py", "/etc", "a/b/../..", "l0", "l1", "lib/../..", "a/" * 700, "x" * 300, FLOW_FILE]
)
KINDS = st.sampled_from(["file", "dir", "sym", "hard", "fifo", "chr"])

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["x" * 20_000, "[" * 500, "1e999", "NaN", "not-a-number", "99.0.0", "./parameter_flow.py"]),
)
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)

# Where in a manifest to put a hostile value.
MANIFEST_PATHS = st.sampled_from(
    [
        ("flowplane_version",),
        ("flow_name",),
        ("flow_file",),
        ("format",),
        ("created_by",),
        ("options", "tags"),
        ("options", "name"),
        ("options", "max_workers"),
        ("parameters", 0, "default"),
        ("parameters", 0, "type"),
        ("parameters", 0, "name"),
        ("parameters", 0, "deploy_time"),
        ("graph", "steps", "start", "out_funcs"),
        ("graph", "flow_name"),
        ("graph", "schedule"),
    ]
)


def _set(doc: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    """The valid manifest, or one with hostile values at drawn places, or raw hostile text."""
    doc = json.loads(manifest_of().model_dump_json())
    # Mostly valid manifests, so that the archive's own faults are reached too.
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        _set(doc, draw(MANIFEST_PATHS), draw(JSON_VALUES))
    text = json.dumps(doc)
    raw = draw(st.sampled_from(["as-is"] * 8 + ["deep", "nan", "bigint", "truncated"]))
    if raw == "deep":
        text = text[:-1] + ', "x": ' + "[" * 50_000 + "]" * 50_000 + "}"
    elif raw == "nan":
        text = text.replace('"default": 0.01', '"default": NaN')
    elif raw == "bigint":
        text = text.replace('"max_workers": 100', '"max_workers": ' + "9" * 5000)
    elif raw == "truncated":
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode()


@st.composite
def members(draw: st.DrawFn) -> list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]]:
    extra: list[Any] = []
    for i in range(draw(st.integers(0, 4))):
        name, kind = draw(NAMES), draw(KINDS)
        info = tarfile.TarInfo(name)
        if kind == "file":
            size = draw(st.sampled_from([0, 10, 4096, 3 * 1024 * 1024]))
            data = draw(st.sampled_from([b"\0", b"x", PARAMETER_FLOW[:1]])) * size
            info.size = len(data)
            if draw(st.booleans()):
                info.pax_headers = {"comment": "7" * draw(st.sampled_from([10, 7_000, 20_000]))}
            if draw(st.integers(0, 9)) == 0:
                info.pax_headers = {"GNU.sparse.size": "10"}
            extra.append((info, data))
            continue
        info.type = {
            "dir": tarfile.DIRTYPE,
            "sym": tarfile.SYMTYPE,
            "hard": tarfile.LNKTYPE,
            "fifo": tarfile.FIFOTYPE,
            "chr": tarfile.CHRTYPE,
        }[kind]
        if kind in ("sym", "hard"):
            info.linkname = draw(TARGETS)
        extra.append(info)
    many = draw(st.sampled_from([0, 0, 0, 100, 5_001]))
    for i in range(many):
        extra.append(tarfile.TarInfo(f"many/m{i}"))
    return extra


@st.composite
def packages(draw: st.DrawFn) -> bytes:
    """A valid ParameterFlow package mutated: manifest fields, extra members of every kind,
    sizes, PAX headers, member counts, order, and the gzip bytes themselves."""
    manifest = draw(manifests())
    source = draw(st.sampled_from([PARAMETER_FLOW] * 4 + [PARAMETER_FLOW + b"\nX = " + b"-" * 50_000 + b"1\n", b"\xff\xfe"]))
    extra = draw(members())
    order = draw(st.sampled_from(["manifest-first", "flow-first", "extra-first"]))

    def build(tar: tarfile.TarFile) -> None:
        base = [(_info("manifest.json", manifest), manifest), (_info(FLOW_FILE, source), source)]
        if order == "flow-first":
            base.reverse()
        rest = [(e, None) if isinstance(e, tarfile.TarInfo) else e for e in extra]
        for info, data in (rest + base if order == "extra-first" else base + rest):
            tar.addfile(info, io.BytesIO(data) if data is not None and info.isreg() else None)

    try:
        data = tar_gz(build, level=draw(st.sampled_from([1, 9])))
    except (ValueError, tarfile.TarError, UnicodeError):
        data = tar_gz(lambda tar: None)  # a name tarfile itself will not write: an empty archive
    cut = draw(st.sampled_from([None] * 8 + ["truncate", "flip"]))
    if cut == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif cut == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    return data


def _info(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


# --- request bodies ---------------------------------------------------------------------------------


@st.composite
def trigger_bodies(draw: st.DrawFn) -> str:
    """A valid trigger body mutated: hostile values for known and unknown parameters, raw
    non-JSON numbers, deep nesting, sizes past the limits."""
    params: dict[str, Any] = {"alpha": 0.5}
    for _ in range(draw(st.integers(0, 3))):
        params[draw(st.sampled_from(["alpha", "n", "flag", "config", "name", "unknown"]))] = draw(JSON_VALUES)
    text = json.dumps({"parameters": params})
    raw = draw(st.sampled_from(["as-is", "as-is", "deep", "NaN", "Infinity", "1e999", "digits", "not-an-object", "big"]))
    if raw == "deep":
        text = '{"parameters": {"config": ' + "[" * draw(st.sampled_from([65, 1_000, 100_000])) + "]}}"
    elif raw in ("NaN", "Infinity", "1e999"):
        text = '{"parameters": {"alpha": ' + raw + "}}"
    elif raw == "digits":
        text = '{"parameters": {"n": ' + "7" * 5000 + "}}"
    elif raw == "not-an-object":
        text = draw(st.sampled_from(["[]", "1", '"x"', "null", '{"parameters": []}']))
    elif raw == "big":
        text = json.dumps({"parameters": {"name": "x" * (5 * 1024 * 1024)}})
    return text
