"""A card as one self-contained HTML page: inline CSS, no script, no external asset.

`default` shows the task (pathspec, time) and its artifacts, then the step's
components; `blank` shows the components only. Everything user-supplied is
escaped by the components; the page's own values are escaped here.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from .components import MetaflowCardComponent, escape, short_repr

# Artifacts larger than this are listed by type and size, not loaded to show a repr.
MAX_SHOWN_ARTIFACT_BYTES = 1 << 20

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1100px;margin:0 auto;padding:24px}
header{border-bottom:2px solid #2f6fde;margin-bottom:16px}
h1{font-size:22px;margin:0 0 4px}
.fp-meta{color:#5a6375;font-size:13px;margin-bottom:8px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px 16px;margin:12px 0}
h2{font-size:16px;margin:4px 0 10px}
pre{background:#f2f4f7;padding:8px;border-radius:4px;overflow-x:auto;white-space:pre-wrap;word-break:break-word}
table.fp-table{border-collapse:collapse;width:100%;font-size:13px}
.fp-table th,.fp-table td{border:1px solid #dde1e8;padding:4px 8px;text-align:left;vertical-align:top}
.fp-table th{background:#eef1f6}
.fp-image img{max-width:100%}
.fp-label{font-weight:600;margin-bottom:4px}
.fp-note{color:#5a6375;font-size:12px}
"""

# The page is a fixed template: the title, the header and the body are all escaped or
# built from escaped parts before they are placed.
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{title}</title><style>{css}</style></head>
<body><main>{body}</main></body></html>
"""


def page(title: str, body: str) -> str:
    return _PAGE.format(title=escape(title), css=_CSS, body=body)


def _section(heading: Optional[str], inner: str) -> str:
    h = f"<h2>{escape(heading)}</h2>" if heading else ""
    return f"<section>{h}{inner}</section>"


def _components(components: list[MetaflowCardComponent]) -> str:
    return "".join(_section(None, c.render()) for c in components)


def _artifact_rows(artifacts: dict[str, Any], load: Callable[[str], Any]) -> str:
    rows = []
    for name in sorted(artifacts):
        ref = artifacts[name]
        if ref.size > MAX_SHOWN_ARTIFACT_BYTES:
            shown = f"({ref.size:,} bytes pickled; too large to show here)"
        else:
            try:
                shown = short_repr(load(name))
            except Exception as e:  # one unreadable artifact must not cost the card
                shown = f"(cannot be loaded: {type(e).__name__}: {e})"
        rows.append(f"<tr><td>{escape(name)}</td><td>{escape(ref.type)}</td><td><pre>{escape(shown)}</pre></td></tr>")
    if not rows:
        return '<div class="fp-note">This task has no artifacts.</div>'
    return ('<table class="fp-table"><thead><tr><th>name</th><th>type</th><th>value</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def render_card(card_type: str, task: dict[str, Any], components: list[MetaflowCardComponent],
                artifacts: dict[str, Any], load: Callable[[str], Any]) -> str:
    """The card's HTML. `task` holds pathspec, created_at; `artifacts` the task's artifact index
    (name -> ArtifactRef) and `load` reads one value by name."""
    pathspec = task["pathspec"]
    if card_type == "blank":
        return page(pathspec, _components(components))
    if card_type != "default":
        raise ValueError(f"unknown card type {card_type!r}")
    header = (f"<header><h1>{escape(pathspec)}</h1>"
              f'<div class="fp-meta">task {escape(task.get("task_id", ""))} of step {escape(task.get("step", ""))}'
              f' &middot; attempt {escape(task.get("attempt", 0))} &middot; {escape(task.get("created_at", ""))}</div></header>')
    body = header + _components(components) + _section("Artifacts", _artifact_rows(artifacts, load))
    return page(pathspec, body)


def error_card(pathspec: str, message: str) -> str:
    """What is stored when a card fails to render (Metaflow's save_errors): the error, escaped."""
    return page(pathspec, _section("This card failed to render", f"<pre>{escape(message)}</pre>"))
