"""Package validation time per MB of package, worst case (issue 12). Goal: <= 0.5 s a MB.

Two sources of packages: the property test's own generator (tests/support/hostile_strategies.py:
valid packages mutated in names, types, sizes, headers and manifest fields), searched
for the slowest per MB, and the attacks crafted to cost the most (a gzip bomb at the
ratio cap, the member cap, link chains, PAX digit runs, a large incompressible package).
A package under 1 MB counts as 1 MB: below that the fixed cost of a request dominates,
and "per MB" would measure nothing but it. The slowest candidates are timed again
(median of several runs) so one scheduler hiccup on these shared machines is not the figure.
"""

from __future__ import annotations

import os
import statistics
import tarfile
import time
from typing import Callable

from common import BenchContext, Row

from chalicelib.errors import ApiError
from chalicelib.deploy.package_check import validate_package

MB = 1024 * 1024
GOAL = 0.5
SEARCH_EXAMPLES = 300


def _validate(data: bytes) -> None:
    try:
        validate_package(data, 50 * MB, 500 * MB)
    except ApiError:
        pass


def _per_mb(data: bytes, repeat: int) -> tuple[float, float]:
    """(median seconds, seconds per MB with the 1 MB floor)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        _validate(data)
        times.append(time.perf_counter() - started)
    t = statistics.median(times)
    return t, t / max(len(data) / MB, 1.0)


def _search() -> list[bytes]:
    """The property test's packages, slowest per MB first."""
    from hypothesis import HealthCheck, given, settings

    from tests.support.hostile_strategies import packages

    seen: list[tuple[float, bytes]] = []

    @settings(max_examples=SEARCH_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(packages())
    def probe(data: bytes) -> None:
        started = time.perf_counter()
        _validate(data)
        seen.append(((time.perf_counter() - started) / max(len(data) / MB, 1.0), data))

    probe()
    seen.sort(key=lambda s: -s[0])
    return [data for _, data in seen[:5]]


def _crafted() -> dict[str, Callable[[], bytes]]:
    from tests.support.hostile_packages import add, many_members_package, package, tar_gz, zeros_package

    def chain() -> bytes:
        return package(lambda tar: [add(tar, f"l{i}", type=tarfile.SYMTYPE, linkname=f"l{i + 1}") for i in range(2_000)])

    def links() -> bytes:
        # 2,450 links each 500 parts long, through a chain of 39 others: each needs a PAX
        # header, so this is as many as the 5,000-header cap lets in.
        return package(
            lambda tar: [add(tar, f"l{i}", type=tarfile.SYMTYPE, linkname="./" * 500 + f"l{i + 1}") for i in range(39)]
            + [add(tar, f"m{i}", type=tarfile.SYMTYPE, linkname="l0/" + "./" * 500) for i in range(2_410)]
        )

    def pax_digits() -> bytes:
        def build(tar: tarfile.TarFile) -> None:
            for i in range(2_499):
                info = tarfile.TarInfo(f"f{i}")
                info.pax_headers = {"comment": "7" * 8_000}
                tar.addfile(info)

        return tar_gz(build)

    def incompressible() -> bytes:
        return package(lambda tar: add(tar, "data.bin", os.urandom(20 * MB)))

    return {
        "gzip bomb at the ratio cap (32 MB of zeros)": lambda: zeros_package(32 * MB - 64 * 1024),
        "gzip bomb past the cap (400 MB of zeros)": lambda: zeros_package(400 * MB),
        "5,000 empty members (the cap)": lambda: many_members_package(5_000, distinct=4_998),
        "200,000 empty members": lambda: many_members_package(200_000),
        "a chain of 2,000 links": chain,
        "2,450 links of 500 parts (accepted)": links,
        "2,499 PAX headers of 8 KB digits": pax_digits,
        "20 MB incompressible package (accepted)": incompressible,
    }


def run(ctx: BenchContext) -> list[Row]:
    rows = []
    worst_found = 0.0
    worst_seconds = 0.0
    for data in _search():
        seconds, per_mb = _per_mb(data, max(3, ctx.repeat))
        worst_found = max(worst_found, per_mb)
        worst_seconds = max(worst_seconds, seconds)
    rows.append(
        Row(
            "worst found by the property test (per MB)",
            worst_found,
            "s/MB",
            goal=GOAL,
            note=f"({SEARCH_EXAMPLES} packages; slowest one {worst_seconds:.3f} s)",
        )
    )
    worst_crafted = 0.0
    for what, build in _crafted().items():
        data = build()
        seconds, per_mb = _per_mb(data, max(3, ctx.repeat))
        worst_crafted = max(worst_crafted, per_mb)
        rows.append(Row(f"  {what}", per_mb, "s/MB", note=f"({len(data) / MB:.2f} MB, {seconds:.3f} s)"))
    rows.append(Row("worst of the crafted attacks (per MB)", worst_crafted, "s/MB", goal=GOAL))
    return rows
