"""Run.add_tag / remove_tag / replace_tag, by Metaflow's rules (metadata_provider.mutate_user_tags_for_run)."""

from __future__ import annotations

import pytest

from tests.support.local_runs import USER, run, write_flow
from tests.support.run_layouts import isolate_client

FLOW = """
from flowplane import FlowSpec, step

class TagFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture()
def tag_run(root, tmp_path, monkeypatch):
    res = run(write_flow(tmp_path, "tag_flow", FLOW), root, tags=["first"])
    assert res.code == 0, res.out + res.err
    isolate_client(monkeypatch, str(root), user=USER)
    from flowplane import Flow

    return Flow("TagFlow").latest_run


def test_tags_change_and_are_stored(tag_run):
    from flowplane import Run

    r = tag_run
    r.add_tag("a")
    r.add_tags(["b", "c", "b"])
    r.remove_tag("missing")  # absent: nothing to do
    r.replace_tag("a", "z")
    r.replace_tags(["b"], ["y"])
    r.remove_tags(["c"])
    assert r.user_tags == {"first", "z", "y"}
    assert Run(r.pathspec).user_tags == {"first", "z", "y"}  # read back from the datastore
    assert Run(r.pathspec).system_tags == {f"user:{USER}", "runtime:local"}
    r.add_tag("runtime:local")  # already a (system) tag: not added as a user tag
    assert "runtime:local" not in Run(r.pathspec).user_tags


def test_system_tags_and_bad_tags_are_refused_changing_nothing(tag_run):
    from flowplane import Run
    from flowplane.client import MetaflowTaggingError, TaggingError

    r = tag_run
    with pytest.raises(TaggingError, match=r"Cannot remove a tag that is an existing system tag \(\['runtime:local'\]\)"):
        r.replace_tags(["runtime:local"], ["new"])
    with pytest.raises(MetaflowTaggingError, match="may not be a string"):
        r.add_tags("abc")
    with pytest.raises(TaggingError, match="Tags must be non-empty strings"):
        r.add_tags(["ok", ""])
    with pytest.raises(TaggingError, match="bytes; a tag is 1 to 500 bytes"):
        r.add_tag("x" * 501)
    with pytest.raises(TaggingError, match="50 tags|the limit is 50"):
        r.add_tags([f"t{i}" for i in range(60)])
    with pytest.raises(TaggingError, match="Must add or remove at least one tag"):
        r.replace_tags([], [])
    assert Run(r.pathspec).user_tags == {"first"}


def test_a_provider_that_cannot_change_tags_says_why(tag_run):
    from flowplane.client import TaggingError

    r = tag_run

    class ReadOnly:
        def __getattr__(self, name):
            return getattr(r._provider, name)

        set_user_tags = None

    r._provider = ReadOnly()
    with pytest.raises(TaggingError, match=r"tags of a production \(sfn-\.\.\.\) run cannot be changed"):
        r.add_tag("x")
