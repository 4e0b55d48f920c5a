"""The package reader (flowplane/archive.py) against hostile archives, and the task agreeing with it.

Each attack of issue 12 is its own test; each asserts the refusal, what it names,
and that it came within a bounded time (these ran for seconds, or were accepted).
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time

import pytest

from chalicelib.errors import ApiError
from chalicelib.deploy.package_check import validate_package
from flowplane.archive import ArchiveError, ArchiveLimits, scan
from flowplane.task.errors import TaskSetupError
from flowplane.task.loader import _extract
from tests.support.hostile_packages import (
    FLOW_FILE,
    MB,
    PARAMETER_FLOW,
    add,
    many_members_package,
    package,
    pax_header_package,
    tar_gz,
    zeros_package,
)

LIMITS = ArchiveLimits(max_unpacked=500 * MB)


def refused(data: bytes, fragment: str, limits: ArchiveLimits = LIMITS, seconds: float = 2.0) -> ArchiveError:
    # This thread's CPU time, not the wall clock: bounded work is what is checked, and other
    # processes on a shared machine stretch the wall clock several times over.
    started = time.thread_time()
    with pytest.raises(ArchiveError) as e:
        scan(data, limits)
    assert fragment in e.value.message, e.value.message
    assert time.thread_time() - started < seconds
    return e.value


def refused_by_the_api(data: bytes, fragment: str, status: int = 400) -> ApiError:
    with pytest.raises(ApiError) as e:
        validate_package(data, 50 * MB, 500 * MB)
    assert e.value.status == status and fragment in e.value.message, e.value.to_dict()
    assert e.value.field == "package"
    return e.value


# --- integrity: the file checked is the file that runs ----------------------------------------


def test_two_members_normalising_to_the_flow_file_are_refused():
    # Validated on the first, run from the second (the task extracted the later copy over it).
    evil = PARAMETER_FLOW.replace(b"alpha is", b"pwned; alpha is")
    data = package(lambda tar: add(tar, ".//parameter_flow.py", evil))
    e = refused_by_the_api(data, "which are one path once unpacked")
    assert e.extra["path"] == ".//parameter_flow.py"


@pytest.mark.parametrize("second", ["./parameter_flow.py", "parameter_flow.py/", "././parameter_flow.py", "x/../parameter_flow.py"])
def test_every_spelling_of_one_path_is_refused(second):
    data = tar_gz(lambda tar: (add(tar, "parameter_flow.py", b"a"), add(tar, second, b"b")))
    refused(data, "one path" if ".." not in second else "'..'")


def test_names_differing_only_in_case_or_unicode_form_are_one_path():
    # macOS (where the embedded plane runs tasks) folds both.
    refused(tar_gz(lambda tar: (add(tar, "Flow.py", b"a"), add(tar, "flow.py", b"b"))), "one path")
    refused(tar_gz(lambda tar: (add(tar, "caf\u00e9.py", b"a"), add(tar, "cafe\u0301.py", b"b"))), "one path")


def test_a_member_written_through_a_link_is_refused_in_either_order():
    link_first = tar_gz(lambda tar: (add(tar, "lib", type=tarfile.SYMTYPE, linkname="other"), add(tar, "lib/f.py", b"x")))
    file_first = tar_gz(lambda tar: (add(tar, "lib/f.py", b"x"), add(tar, "lib", type=tarfile.SYMTYPE, linkname="other")))
    refused(link_first, "under the link 'lib'")
    refused(file_first, "also a folder")


def test_a_file_used_as_a_folder_is_refused():
    refused(tar_gz(lambda tar: (add(tar, "a", b"x"), add(tar, "a/b.py", b"y"))), "which is a file")


def test_names_normalising_outside_or_onto_the_root_are_refused():
    refused(tar_gz(lambda tar: add(tar, "a/../../x.py", b"x")), "'..'")
    refused(tar_gz(lambda tar: add(tar, "./", b"x")), "at the root")
    refused(tar_gz(lambda tar: add(tar, "C:\\evil.py", b"x")), "absolute path")


def test_names_with_control_characters_are_refused():
    refused(tar_gz(lambda tar: add(tar, "a\nb.py", b"x")), "control character")


# --- bounded work --------------------------------------------------------------------------------


def test_a_link_target_of_40000_parts_is_refused_at_once():
    # 7 s of quadratic resolution before, and accepted.
    e = refused(tar_gz(lambda tar: add(tar, "l", type=tarfile.SYMTYPE, linkname="a/" * 40_000)), "extended tar header", seconds=1.0)
    assert e.limit == LIMITS.max_header


def test_a_link_target_over_the_cap_is_refused():
    target = "a/" * 600  # 1,200 bytes: over the 1,024 cap, under the header cap
    refused(tar_gz(lambda tar: add(tar, "l", type=tarfile.SYMTYPE, linkname=target)), "target is over 1024 bytes")


def test_link_resolution_is_linear_in_the_targets():
    # 400 links of 500 parts each, every one through the others: quadratic resolution took
    # seconds; each link is resolved once here.
    def build(tar: tarfile.TarFile) -> None:
        add(tar, "d/x.py", b"1")
        for i in range(400):
            add(tar, f"l{i}", type=tarfile.SYMTYPE, linkname="d/" + "./" * 250 + "x.py")

    started = time.thread_time()
    assert len(scan(tar_gz(build), LIMITS).links) == 400
    assert time.thread_time() - started < 2.0


def test_a_chain_of_links_longer_than_40_is_refused():
    def build(tar: tarfile.TarFile) -> None:
        for i in range(2_000):
            add(tar, f"l{i}", type=tarfile.SYMTYPE, linkname=f"l{i + 1}")

    refused(tar_gz(build), "chain of more than 40 links")


def test_a_link_loop_is_refused():
    refused(tar_gz(lambda tar: (add(tar, "a", type=tarfile.SYMTYPE, linkname="b"), add(tar, "b", type=tarfile.SYMTYPE, linkname="a"))), "in a loop")


def test_links_escaping_through_other_links_are_refused():
    data = tar_gz(lambda tar: (add(tar, "a/b/root", type=tarfile.SYMTYPE, linkname="../.."), add(tar, "out", type=tarfile.SYMTYPE, linkname="a/b/root/..")))
    refused(data, "'out' -> 'a/b/root/..' that leads outside")


def test_a_gzip_bomb_is_refused_after_inflating_the_cap_not_the_stream():
    bomb = zeros_package(200 * MB)  # ~200 KB that unpacks to 200 MB
    started = time.thread_time()
    e = refused_by_the_api(bomb, "100 times the package's own size", status=413)
    assert e.extra["limit"] == 32 * MB  # the floor: 100 x 200 KB is less
    assert time.thread_time() - started < 2.0


def test_inflated_bytes_are_counted_even_when_headers_lie():
    # Sizes declared small, content large: what is read is counted, not what is declared.
    e = refused(zeros_package(8 * MB), "unpacks to more than", ArchiveLimits(max_unpacked=4 * MB))
    assert e.too_large and e.limit == 4 * MB


def test_200000_empty_members_are_refused_at_the_member_cap():
    # 8 s and accepted before.
    e = refused(many_members_package(200_000), "more than 5000 members", seconds=3.0)
    assert e.limit == 5000


def test_a_100_mib_pax_header_is_refused_before_it_is_read():
    # 300 MB of memory before.
    e = refused(pax_header_package(100 * MB), "extended tar header of", seconds=1.0)
    assert e.limit == 8 * 1024


def test_pax_records_are_parsed_by_length_not_by_pattern():
    # A digit run the standard library's hdrcharset search backtracks over (quadratic).
    def build(tar: tarfile.TarFile) -> None:
        for i in range(500):
            info = tarfile.TarInfo(f"f{i}")
            info.pax_headers = {"comment": "7" * 7_000}
            tar.addfile(info)

    started = time.thread_time()
    scan(tar_gz(build), LIMITS)
    assert time.thread_time() - started < 3.0


def test_chained_extended_headers_are_refused():
    # tarfile reads each extended header recursively: ten GNU long names before one member.
    blocks = io.BytesIO()
    for _ in range(10):
        name = b"y" * 100 + b"\0"
        long = tarfile.TarInfo("././@LongLink")
        long.type, long.size = tarfile.GNUTYPE_LONGNAME, len(name)
        blocks.write(long.tobuf(format=tarfile.GNU_FORMAT) + name + b"\0" * (512 - len(name)))
    blocks.write(tarfile.TarInfo("z").tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024)
    refused(gzip.compress(blocks.getvalue()), "extended tar headers before one member")
    # One long name is what tar writes for a long path: fine.
    scan(tar_gz(lambda tar: add(tar, "x" * 200)), LIMITS)


def test_a_manifest_over_1_mib_is_refused_unread():
    huge = b'{"pad": "' + b" " * (2 * MB) + b'"}'
    e = refused_by_the_api_size(package(raw_manifest=huge))
    assert e.field == "manifest" and e.extra["limit"] == MB


def test_a_100_mib_manifest_is_refused_before_it_is_read():
    # Accepted before. Its size is known from its header: nothing of it is inflated.
    started = time.thread_time()
    e = refused_by_the_api_size(zeros_package(100 * MB, name="manifest.json"))
    assert e.field == "package" and "unpacks to more than" in e.message
    e = refused_by_the_api_size(package(raw_manifest=b" " * (2 * MB)))
    assert e.field == "manifest"
    assert time.thread_time() - started < 2.0


def refused_by_the_api_size(data: bytes) -> ApiError:
    with pytest.raises(ApiError) as e:
        validate_package(data, 50 * MB, 500 * MB)
    assert e.value.status == 413, e.value.to_dict()
    return e.value


# --- what stays right -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, fragment",
    [
        (dict(type=tarfile.LNKTYPE, linkname="parameter_flow.py"), "hard link"),
        (dict(type=tarfile.CHRTYPE), "neither a file"),
        (dict(type=tarfile.FIFOTYPE), "neither a file"),
    ],
    ids=["hard-link-inside", "device", "fifo"],
)
def test_hard_links_and_devices_are_refused(kind, fragment):
    refused(package(lambda tar: add(tar, "extra", **kind)), fragment)


def test_links_inside_the_package_are_allowed():
    data = package(
        lambda tar: (
            add(tar, "lib/x.py", b"1"),
            add(tar, "x.py", type=tarfile.SYMTYPE, linkname="lib/x.py"),
            add(tar, "lib/self", type=tarfile.SYMTYPE, linkname="."),
            add(tar, "dangling", type=tarfile.SYMTYPE, linkname="lib/later/not-there"),
        )
    )
    checked = validate_package(data, 50 * MB, 500 * MB)
    assert checked.source.graph.flow_name == "ParameterFlow"


# --- the task unpacks what was checked, with the same reader ---------------------------------------


def test_the_task_unpacks_exactly_the_members_checked(tmp_path):
    data = package(lambda tar: (add(tar, "lib/x.py", b"X = 1\n", mode=0o755), add(tar, "x.py", type=tarfile.SYMTYPE, linkname="lib/x.py")))
    listing = scan(data, LIMITS)
    target = tmp_path / "pkg"
    target.mkdir()
    _extract(io.BytesIO(data), str(target), "test.tar.gz")
    on_disk = sorted(
        os.path.relpath(os.path.join(d, f), target) for d, _, files in os.walk(target) for f in files
    )
    assert on_disk == sorted([*listing.files, *listing.links])
    assert (target / FLOW_FILE).read_bytes() == PARAMETER_FLOW
    assert os.readlink(target / "x.py") == "lib/x.py" and (target / "x.py").read_bytes() == b"X = 1\n"
    assert os.access(target / "lib" / "x.py", os.X_OK)


def test_the_task_refuses_what_the_control_plane_refuses(tmp_path):
    evil = PARAMETER_FLOW.replace(b"alpha is", b"pwned; alpha is")
    data = package(lambda tar: add(tar, ".//parameter_flow.py", evil))
    with pytest.raises(TaskSetupError, match="one path once unpacked"):
        _extract(io.BytesIO(data), str(tmp_path), "test.tar.gz")
