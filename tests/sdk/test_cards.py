"""`@card`: components and their escaping, the default and blank cards rendered by a local
run and stored with the attempt, `get_cards` and `card get/view`, and bad input refused
(an unknown card type, a component given a wrong type, a task without cards)."""

from __future__ import annotations

import re

import pytest

from flowplane import card
from flowplane.cards import Artifact, Image, Markdown, Table
from flowplane.cards.collector import CardComponentCollector
from flowplane.cards.render import render_card
from flowplane.decorators import DecoratorArgumentError, parse_with_option
from flowplane.graph import read_source_flow
from flowplane.manifest import CardSpec
from tests.support.feature_flows import CARD_FLOW as FLOW
from tests.support.feature_flows import PNG
from tests.support.local_runs import RunView, run_cli, write_flow


@pytest.fixture(scope="module")
def card_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cards")
    path = write_flow(tmp, "card_flow", FLOW)
    proc = run_cli(path, tmp / "ds", tmp, "run")
    assert proc.returncode == 0, proc.stderr
    return path, tmp, RunView.only(tmp / "ds", "CardFlow")


def _cards(tmp, pathspec, **kw):
    from flowplane.cards import get_cards
    from flowplane.client import use_provider
    from flowplane.client.local import LocalProvider
    from flowplane.datastore.storage import storage_for

    with use_provider(LocalProvider(storage_for(str(tmp / "ds")))):
        return [(c.type, c.id, c.get()) for c in get_cards(pathspec, **kw)]


def test_a_local_run_stores_the_default_card_with_artifacts_and_components(card_run):
    _, tmp, run = card_run
    [(kind, card_id, html)] = _cards(tmp, f"CardFlow/{run.run_id}/start/1")
    assert (kind, card_id) == ("default", None)
    assert "<h1>Report</h1>" in html and "<strong>bold</strong>" in html
    assert "&lt;b&gt;not markup&lt;/b&gt;" in html and "<b>not markup" not in html
    assert "<th>n</th>" in html and "&lt;i&gt;a&lt;/i&gt;" in html and "[1, 2]" in html
    assert 'src="data:image/png;base64,' in html and "<figcaption>dot</figcaption>" in html
    # The default card lists the task's artifacts, escaped.
    assert "score" in html and "0.93" in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html and "<script>" not in html
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html)


def test_several_cards_on_a_step_are_told_apart_by_id(card_run):
    _, tmp, run = card_run
    cards = _cards(tmp, f"CardFlow/{run.run_id}/middle/1")
    assert [(t, i) for t, i, _ in cards] == [("blank", "summary"), ("default", None)]
    blank, default = cards[0][2], cards[1][2]
    assert "only this" in blank and "default card text" not in blank and "Artifacts" not in blank
    assert "default card text" in default and "only this" not in default
    assert [i for _, i, _ in _cards(tmp, f"CardFlow/{run.run_id}/middle/1", id="summary")] == ["summary"]
    assert [t for t, _, _ in _cards(tmp, f"CardFlow/{run.run_id}/middle/1", type="default")] == ["default"]


def test_a_step_without_card_has_none(card_run):
    _, tmp, run = card_run
    assert _cards(tmp, f"CardFlow/{run.run_id}/end/1") == []


def test_card_get_and_view_from_the_flows_command_line(card_run):
    path, tmp, run = card_run
    got = run_cli(path, tmp / "ds", tmp, "card", "get", f"{run.run_id}/start/1")
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith("<!DOCTYPE html>") and "Report" in got.stdout
    out = tmp / "start.html"
    saved = run_cli(path, tmp / "ds", tmp, "card", "get", f"{run.run_id}/start/1", str(out))
    assert saved.returncode == 0 and out.read_text() == got.stdout
    viewed = run_cli(path, tmp / "ds", tmp, "card", "view", f"{run.run_id}/middle/1", "--id", "summary",
                     BROWSER="", DISPLAY="")
    assert viewed.returncode == 0, viewed.stderr
    shown = viewed.stdout.strip().splitlines()[-1]
    assert shown.endswith(".html") and "only this" in open(shown).read()


def test_card_get_for_a_task_without_cards_or_with_several_is_a_clear_error(card_run):
    path, tmp, run = card_run
    none = run_cli(path, tmp / "ds", tmp, "card", "get", f"{run.run_id}/end/1")
    assert none.returncode != 0 and f"task CardFlow/{run.run_id}/end/1 has no card" in none.stderr
    several = run_cli(path, tmp / "ds", tmp, "card", "get", f"{run.run_id}/middle/1")
    assert several.returncode != 0 and "has 2 cards" in several.stderr and "--id" in several.stderr
    bad = run_cli(path, tmp / "ds", tmp, "card", "get", "start")
    assert bad.returncode != 0 and "RUN/STEP/TASK" in bad.stderr


def test_a_card_that_fails_to_render_does_not_fail_the_task(tmp_path):
    flow = FLOW.replace('current.card.append(Markdown("default card text"))',
                        'current.card.append(Boom())').replace(
        "class CardFlow", "class Boom(Markdown):\n    def __init__(self):\n        super().__init__('x')\n"
        "    def render(self):\n        raise RuntimeError('no render today')\n\n\nclass CardFlow")
    path = write_flow(tmp_path, "card_flow", flow)
    proc = run_cli(path, tmp_path / "ds", tmp_path, "run")
    assert proc.returncode == 0, proc.stderr
    run = RunView.only(tmp_path / "ds", "CardFlow")
    assert run.task("middle").status == "succeeded"
    assert "no render today" in run.log("middle", stream="stderr")
    cards = dict(((t, i), h) for t, i, h in _cards(tmp_path, f"CardFlow/{run.run_id}/middle/1"))
    assert "failed to render" in cards[("default", None)] and "no render today" in cards[("default", None)]
    assert "only this" in cards[("blank", "summary")]  # the other card is whole


def test_with_card_attaches_a_default_card_to_every_step_without_one():
    spec = parse_with_option("card")
    assert (spec.type, spec.id) == ("default", None)
    graph = read_source_flow(FLOW, "flow.py").graph.with_decorators([spec])
    assert [d.type for d in graph["end"].decorators if d.kind == "card"] == ["default"]
    assert [d.type for d in graph["middle"].decorators if d.kind == "card"] == ["blank", "default"]


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda: card(type="fancy"), "unknown card type 'fancy'"),
        (lambda: card(id="has space"), "id"),
        (lambda: card(timeout=0), "timeout"),
        (lambda: card(refresh_interval=3), "refresh_interval"),
    ],
)
def test_bad_card_arguments_fail_where_they_are_written(make, says):
    with pytest.raises(DecoratorArgumentError, match=says):
        make()


def test_two_cards_with_one_id_are_refused_in_code_and_in_the_source():
    def f(self):
        pass

    with pytest.raises(DecoratorArgumentError, match="two @card decorators have id 'a'"):
        card(id="a")(card(id="a")(f))
    src = read_source_flow(FLOW.replace('@card(type="blank", id="summary")', '@card(type="fancy")'), "flow.py")
    assert any("unknown card type 'fancy'" in message for _, message in src.problems)
    src = read_source_flow(FLOW.replace('@card(timeout=5)', '@card(id="summary")'), "flow.py")
    assert any("two @card decorators have id 'summary'" in message for _, message in src.problems)


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda: Markdown(3), "Markdown takes a str"),
        (lambda: Image("plot.png"), "Image takes the image's bytes"),
        (lambda: Image(b"not an image"), "PNG, JPEG or GIF"),
        (lambda: Table("a,b"), "list of rows"),
        (lambda: Table([[1]], headers=[1]), "headers are a list of str"),
        (lambda: Table.from_dataframe([[1]]), "pandas DataFrame"),
        (lambda: Image.from_matplotlib("fig"), "matplotlib Figure"),
        (lambda: CardComponentCollector([CardSpec()]).append("text"), "wrap a value in Artifact"),
    ],
)
def test_a_component_given_a_wrong_type_is_a_type_error_naming_what_it_takes(make, says):
    with pytest.raises(TypeError, match=says):
        make()


def test_markdown_escapes_markup_and_unsafe_links():
    html = Markdown('<img src=x onerror=alert(1)> [ok](https://e.com/a?b=1&c=2) [bad](javascript:alert(1))\n'
                    '- item `<code>`\n\n```\n<pre>\n```').render()
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert '<a href="https://e.com/a?b=1&amp;c=2">ok</a>' in html
    assert "javascript:" not in re.findall(r'href="([^"]*)"', html)[0] and html.count("<a ") == 1
    assert "<li>item <code>&lt;code&gt;</code></li>" in html and "<pre><code>&lt;pre&gt;</code></pre>" in html


def test_every_user_value_on_the_page_is_escaped():
    evil = '"><script>alert(1)</script>'
    page = render_card("default", {"pathspec": f"F/1/{evil}/1", "step": evil, "task_id": "1"},
                       [Artifact(evil, name=evil), Table([[evil]], headers=[evil]), Image(PNG, label=evil)],
                       {}, lambda name: None)
    assert "<script>" not in page and page.count("&lt;script&gt;") >= 6


def test_current_card_appends_to_the_default_card_and_indexes_by_id(capsys):
    collector = CardComponentCollector([CardSpec(id="a"), CardSpec(type="blank", id="b")])
    collector.append(Markdown("lost"))  # two named cards: no default one
    assert "several cards" in capsys.readouterr().err
    collector["b"].append(Markdown("x"))
    assert [len(collector.components(i)) for i in (0, 1)] == [0, 1]
    with pytest.raises(KeyError, match="ids: 'a', 'b'"):
        collector["c"]
    only = CardComponentCollector([CardSpec()])
    only.extend([Markdown("1"), Markdown("2")])
    only.clear()
    assert only.components(0) == []


def test_table_from_a_dataframe_takes_its_columns_and_rows():
    """pandas is not installed here: a stand-in with a DataFrame's columns and itertuples."""

    class Frame:
        columns = ["a", "<b>"]

        def itertuples(self, index=True):
            return iter([(1, "x"), (2, "<y>")])

    html = Table.from_dataframe(Frame()).render()
    assert "<th>&lt;b&gt;</th>" in html and "<td>&lt;y&gt;</td>" in html and "<td>1</td>" in html
