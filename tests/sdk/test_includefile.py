"""`IncludeFile`: read on the client, stored by content, its content the parameter's value."""

from __future__ import annotations

import hashlib
import json

import pytest

from flowplane.datastore import includes, layout
from flowplane.datastore.includes import IncludeDescriptor, IncludeError, load_include, read_include, store_include
from flowplane.datastore.storage import LocalStorage
from flowplane.graph import read_source_flow
from flowplane.includefile import IncludeFile, include_values
from flowplane.lint import lint
from flowplane.parameters import ParameterError, convert
from tests.support.local_runs import USER, RunView, run_cli, write_flow

FLOW = """
import os
from flowplane import FlowSpec, IncludeFile, Parameter, step


def here(name):
    return os.path.join(os.path.dirname(__file__), name)


class IncFlow(FlowSpec):
    text = IncludeFile("text", help="A text file.", default=here("a.txt"))
    blob = IncludeFile("blob", is_text=False, default="b.bin")
    latin = IncludeFile("latin", encoding="latin-1", required=False)

    @step
    def start(self):
        self.seen = (self.text, self.blob, self.latin)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    IncFlow()
"""


@pytest.fixture()
def flow(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWPLANE_USER", USER)
    path = write_flow(tmp_path, "inc_flow", FLOW)
    (path.parent / "a.txt").write_text("héllo\n", encoding="utf-8")
    (tmp_path / "b.bin").write_bytes(b"\x00\xff")  # relative default: read from where the command runs
    return path


def test_the_source_reads_include_files_as_deploy_time_parameters():
    src = read_source_flow(FLOW, "flow.py")
    by_name = {p.name: p for p in src.parameters}
    assert {n: (p.type, p.has_default, p.deploy_time, p.required) for n, p in by_name.items()} == {
        "text": ("include", True, True, False),
        "blob": ("include", True, True, False),
        "latin": ("include", False, False, False),
    }
    assert lint(src) == []


def test_a_run_gives_every_step_the_content_and_stores_the_file_once(flow, tmp_path):
    root = tmp_path / "ds"
    proc = run_cli(flow, root, tmp_path, "run")
    assert proc.returncode == 0, proc.stderr
    run = RunView.only(root, "IncFlow")
    assert run.data("start")["seen"] == ("héllo\n", b"\x00\xff", None)
    assert run.data("end")["text"] == "héllo\n" and run.data("end")["blob"] == b"\x00\xff"
    # The run record keeps the small descriptor, not the content.
    text = IncludeDescriptor.parse(run.record.parameters["text"])
    assert text.size == len("héllo\n".encode()) and text.is_text
    stored = LocalStorage(str(root)).get_bytes(layout.include_key("IncFlow", text.sha256))
    assert stored == "héllo\n".encode()
    # Given on the command line: another file, its content decoded as declared.
    (tmp_path / "l.txt").write_bytes("ça".encode("latin-1"))
    (tmp_path / "u.txt").write_text("other")
    proc = run_cli(flow, tmp_path / "ds2", tmp_path, "run", "--latin", "l.txt", "--text", "u.txt")
    assert proc.returncode == 0, proc.stderr
    seen = RunView.only(tmp_path / "ds2", "IncFlow").data("start")["seen"]
    assert seen[0] == "other" and seen[2] == "ça"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--text", "nope.txt"], "IncludeFile 'text': no file at 'nope.txt'; nothing ran"),
        (["--text", "s3://bucket/key"], "is a URL; flowplane includes local files only"),
        (["--text", "b.bin"], "'b.bin' is not utf-8 text (invalid start byte at byte 1); pass is_text=False"),
        (["--text", "."], "Invalid value for '--text'"),
    ],
)
def test_bad_include_files_are_refused_before_anything_runs(flow, tmp_path, args, message):
    proc = run_cli(flow, tmp_path / "ds", tmp_path, "run", *args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not (tmp_path / "ds" / "IncFlow").exists()


def test_the_size_cap_names_the_file_and_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(includes, "MAX_INCLUDE_BYTES", 4)
    (tmp_path / "big").write_bytes(b"12345")
    with pytest.raises(IncludeError, match=r"big' is 5 bytes, more than the 4 an included file may have; put it in S3"):
        read_include("data", str(tmp_path / "big"))
    (tmp_path / "ok").write_bytes(b"1234")
    descriptor, data = read_include("data", str(tmp_path / "ok"))
    assert descriptor.size == 4 and data == b"1234"


def test_descriptors_are_checked_wherever_a_value_arrives():
    good = {"type": "flowplane-include-v1", "sha256": "a" * 64, "size": 3, "is_text": True, "encoding": "utf-8"}
    assert convert("include", json.dumps(good), "data") == good
    for bad, says in [
        ("movies.csv", "give a path to the flow's command line"),
        ({**good, "sha256": "xyz"}, "64 lowercase hex"),
        ({**good, "size": -1}, "size must be an integer"),
        ({**good, "type": "uploader-v1"}, "not an included file's descriptor"),
        ({**good, "url": "s3://x"}, "unknown descriptor field"),
    ]:
        with pytest.raises(ParameterError, match=says):
            convert("include", bad, "data")


def test_a_stored_file_loads_back_and_a_missing_one_is_named(tmp_path):
    storage = LocalStorage(str(tmp_path))
    data = "x,y\n1,2\n".encode()
    descriptor = IncludeDescriptor(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    store_include(storage, "F", descriptor, data)
    assert load_include(storage, "F", descriptor.to_json(), "d") == "x,y\n1,2\n"
    with pytest.raises(IncludeError, match="IncludeFile 'd': the included file .* is not in the datastore"):
        load_include(storage, "Other", descriptor.to_json(), "d")


def test_include_values_hands_the_bytes_to_the_sink_and_keeps_other_values(tmp_path):
    (tmp_path / "f.txt").write_text("abc")
    p = IncludeFile("f")
    p.attribute = "f"
    got = []
    values = include_values([p], {"f": str(tmp_path / "f.txt"), "alpha": 1}, lambda d, b: got.append((d, b)))
    assert values["alpha"] == 1 and values["f"]["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert got[0][1] == b"abc"


def test_parser_is_refused_with_a_way_out():
    with pytest.raises(ParameterError, match="parser= is not supported; parse self.data in the step"):
        IncludeFile("data", parser=json.loads)
