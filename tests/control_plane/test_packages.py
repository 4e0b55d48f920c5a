"""Packages: the SDK builds them deterministically; the server opens them warily."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from chalicelib.errors import BadRequest, PayloadTooLarge
from chalicelib.deploy.package_check import validate_package
from flowplane.archive import ArchiveError, ArchiveLimits, scan
from flowplane.manifest import DeployOptions
from flowplane.package import (
    MANIFEST_NAME,
    PackageError,
    build_package,
    iter_package_files,
    manifest_for,
    read_manifest,
)
from tests.support.control_plane import EXAMPLES, flow_context, package_with, targz

# No moto runs here: `aws` keeps these tests out of make test-quick, where they were when
# the marker was inferred from a module's text (they import the control plane's helpers).
pytestmark = pytest.mark.aws

MB = 1024 * 1024


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "parameter_flow.py").write_text((EXAMPLES / "parameter_flow.py").read_text())
    (root / "helpers").mkdir()
    (root / "helpers" / "util.py").write_text("X = 1\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "run.sh", 0o755)
    return root


def _manifest(root: Path, user: str = "alice"):
    ctx = flow_context("parameter_flow.py", user=user, folder=root)
    return manifest_for(ctx, DeployOptions())


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getnames()


# --- the SDK side ------------------------------------------------------------------


def test_package_is_content_addressed_and_ignores_mtimes(tmp_path):
    root = _project(tmp_path)
    manifest = _manifest(root)
    first = build_package(str(root), manifest)
    os.utime(root / "helpers" / "util.py", (1, 1))
    second = build_package(str(root), manifest)
    assert first.data == second.data
    assert first.sha256 == hashlib.sha256(first.data).hexdigest() == second.sha256
    assert first.key == f"packages/{first.sha256}.tar.gz"
    # Any content change changes the address.
    (root / "helpers" / "util.py").write_text("X = 2\n")
    assert build_package(str(root), manifest).sha256 != first.sha256


def test_package_entries_are_sorted_with_fixed_owner_time_and_mode(tmp_path):
    root = _project(tmp_path)
    package = build_package(str(root), _manifest(root))
    with tarfile.open(fileobj=io.BytesIO(package.data), mode="r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) == ["helpers/util.py", MANIFEST_NAME, "parameter_flow.py", "run.sh"]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 315532800)}
    modes = {m.name: m.mode for m in members}
    assert modes["run.sh"] == 0o755 and modes["parameter_flow.py"] == 0o644
    # The gzip header carries no timestamp or file name.
    assert package.data[4:8] == b"\x00\x00\x00\x00"
    assert gzip.decompress(package.data)  # a plain gzip stream


def test_package_leaves_out_vcs_venvs_caches_and_node_modules(tmp_path):
    root = _project(tmp_path)
    for folder in (".git", ".hg", ".svn", ".venv", "venv", "__pycache__", ".flowplane", "node_modules",
                   "helpers/__pycache__"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "junk.py").write_text("junk\n")
    # A virtual environment under any name is recognised by its pyvenv.cfg.
    (root / "py311").mkdir()
    (root / "py311" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / "py311" / "site.py").write_text("junk\n")
    (root / "helpers" / "util.pyc").write_bytes(b"\x00")
    names = [n for n, _ in iter_package_files(str(root))]
    assert names == ["helpers/util.py", "parameter_flow.py", "run.sh"]


def test_package_follows_file_links_but_not_folder_links(tmp_path):
    root = _project(tmp_path)
    outside = tmp_path / "shared.py"
    outside.write_text("SHARED = True\n")
    os.symlink(outside, root / "shared.py")
    os.symlink(tmp_path, root / "everything")  # a folder link could loop or drag in the disk
    package = build_package(str(root), _manifest(root))
    names = _names(package.data)
    assert "shared.py" in names and not any(n.startswith("everything") for n in names)
    with tarfile.open(fileobj=io.BytesIO(package.data), mode="r:gz") as tar:
        member = tar.getmember("shared.py")
        assert member.isfile()
        assert tar.extractfile(member).read() == b"SHARED = True\n"


def test_package_refuses_a_users_own_manifest_json(tmp_path):
    root = _project(tmp_path)
    (root / MANIFEST_NAME).write_text("{}")
    with pytest.raises(PackageError, match="reserves 'manifest.json'"):
        build_package(str(root), _manifest(root))


def test_manifest_travels_inside_and_reads_back(tmp_path):
    root = _project(tmp_path)
    manifest = _manifest(root)
    package = build_package(str(root), manifest)
    assert read_manifest(package.data) == manifest
    assert manifest.flow_file == "parameter_flow.py"
    assert manifest.parameter("alpha").default == 0.01


def test_deploy_time_defaults_are_evaluated_once_on_the_client():
    ctx = flow_context("deployment_info_flow.py", user="carol")
    manifest = manifest_for(ctx, DeployOptions())
    spec = manifest.parameter("deployment_info")
    assert spec.deploy_time and spec.has_default and spec.type == "json"
    assert spec.default["who"] == "carol" and spec.default["when"]


# --- the server side ---------------------------------------------------------------


def _valid(tmp_path: Path):
    root = _project(tmp_path)
    manifest = _manifest(root)
    return manifest, (root / "parameter_flow.py").read_bytes()


def test_server_accepts_what_the_sdk_builds(tmp_path):
    root = _project(tmp_path)
    manifest = _manifest(root)
    package = build_package(str(root), manifest)
    checked = validate_package(package.data, 50 * MB, 500 * MB)
    assert checked.sha256 == package.sha256 and checked.manifest == manifest
    assert checked.source.graph.flow_name == "ParameterFlow"


def test_server_refuses_bytes_that_are_not_gzip():
    with pytest.raises(BadRequest, match="not gzip-compressed") as e:
        validate_package(b"PK\x03\x04 a zip file", MB, MB)
    assert e.value.field == "package"


def test_server_refuses_gzip_that_is_not_tar():
    with pytest.raises(BadRequest, match="not a readable gzip-compressed tar") as e:
        validate_package(gzip.compress(b"just some text, no tar headers" * 40), MB, MB)
    assert e.value.field == "package"


def test_server_refuses_a_truncated_archive(tmp_path):
    manifest, source = _valid(tmp_path)
    data = package_with(manifest, source)
    with pytest.raises(BadRequest, match="not a readable"):
        validate_package(data[: len(data) // 2], MB, MB)


@pytest.mark.parametrize(
    "entry, fragment",
    [
        (("/etc/cron.d/evil", b"x"), "absolute path '/etc/cron.d/evil'"),
        (("../evil.py", b"x"), "path with '..'"),
        (("a/../../evil.py", b"x"), "path with '..'"),
        (("up", ("sym", "..")), "link 'up' -> '..' that leads outside"),
        (("passwd", ("sym", "/etc/passwd")), "link 'passwd' -> '/etc/passwd'"),
        (("hard", ("hard", "../../etc/passwd")), "hard link 'hard'"),
        (("pipe", ("fifo",)), "neither a file, a folder nor a link"),
    ],
)
def test_server_refuses_members_that_could_escape(tmp_path, entry, fragment):
    manifest, source = _valid(tmp_path)
    with pytest.raises(BadRequest, match=fragment.replace("(", r"\(").replace(".", r"\.")) as e:
        validate_package(package_with(manifest, source, [entry]), MB, MB)
    assert e.value.field == "package"


def test_server_follows_link_chains_to_catch_an_escape():
    # Each link alone stays inside; followed as a filesystem would, the second leaves.
    data = targz([("a/b/root", ("sym", "../..")), ("out", ("sym", "a/b/root/.."))])
    with pytest.raises(ArchiveError, match="'out' -> 'a/b/root/..'"):
        scan(data, ArchiveLimits(max_unpacked=MB))


def test_server_allows_links_that_stay_inside():
    data = targz([("lib/x.py", b"1"), ("x.py", ("sym", "lib/x.py")), ("lib/self", ("sym", "."))])
    listing = scan(data, ArchiveLimits(max_unpacked=MB))
    assert set(listing.files) == {"lib/x.py"} and set(listing.links) == {"x.py", "lib/self"}


def test_server_caps_packed_and_unpacked_size(tmp_path):
    manifest, source = _valid(tmp_path)
    data = package_with(manifest, source)
    with pytest.raises(PayloadTooLarge) as e:
        validate_package(data, len(data) - 1, MB)
    assert e.value.status == 413 and e.value.extra["limit"] == len(data) - 1
    bomb = package_with(manifest, source, [("zeros.bin", b"\x00" * (2 * MB))])
    assert len(bomb) < MB
    with pytest.raises(PayloadTooLarge, match="unpacks to more than"):
        validate_package(bomb, MB, MB)


def test_server_needs_a_manifest_and_the_flow_file_it_names(tmp_path):
    manifest, source = _valid(tmp_path)
    with pytest.raises(BadRequest, match="no manifest.json") as e:
        validate_package(targz([("parameter_flow.py", source)]), MB, MB)
    assert e.value.field == "manifest"
    with pytest.raises(BadRequest, match="no flow file: the manifest names 'parameter_flow.py'") as e:
        validate_package(targz([(MANIFEST_NAME, manifest.model_dump_json().encode()), ("other.py", source)]), MB, MB)
    assert e.value.field == "flow_file"


def test_server_names_the_manifest_field_at_fault(tmp_path):
    manifest, source = _valid(tmp_path)
    raw = manifest.model_dump(mode="json")
    raw["options"]["max_workers"] = 0
    import json

    data = targz([(MANIFEST_NAME, json.dumps(raw).encode()), ("parameter_flow.py", source)])
    with pytest.raises(BadRequest, match="options.max_workers") as e:
        validate_package(data, MB, MB)
    assert e.value.field == "manifest.options.max_workers"
