"""Card components, as Metaflow's `metaflow.cards`: Markdown, Table, Image, Artifact.

Each renders itself to an HTML fragment in which everything the user gave is
escaped (the card is opened in a browser: a value must never become markup).
A component given a value it cannot show is refused where it is built, with a
TypeError naming what it takes, rather than leaving a broken card behind.
"""

from __future__ import annotations

import base64
import html
import io
import re
from typing import Any, Optional

from .markdown import to_html as _markdown_html

# How much of an artifact's repr a card shows: a card is a summary, not a dump.
MAX_REPR = 2000
MAX_TABLE_ROWS = 1000
_IMAGE_TYPES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


class MetaflowCardComponent:
    """What `current.card.append` takes: anything with `render()` returning escaped HTML."""

    def render(self) -> str:  # pragma: no cover - every component overrides it
        raise NotImplementedError


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def short_repr(value: Any, limit: int = MAX_REPR) -> str:
    try:
        text = repr(value)
    except Exception as e:  # a broken __repr__ must not break the card
        text = f"<unrepresentable {type(value).__name__}: {type(e).__name__}>"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


class Markdown(MetaflowCardComponent):
    """`Markdown(text)`: headings, emphasis, code, lists, links and paragraphs (raw HTML is shown as text)."""

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise TypeError(f"Markdown takes a str, got {type(text).__name__}")
        self.text = text

    def render(self) -> str:
        return f'<div class="fp-markdown">{_markdown_html(self.text)}</div>'


class Artifact(MetaflowCardComponent):
    """`Artifact(value, name=None, compressed=True)`: a value's repr, cut to a readable length."""

    def __init__(self, artifact: Any, name: Optional[str] = None, compressed: bool = True):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Artifact's name is a str, got {type(name).__name__}")
        self.artifact = artifact
        self.name = name
        self.compressed = compressed

    def render(self) -> str:
        text = short_repr(self.artifact, MAX_REPR if self.compressed else 100 * MAX_REPR)
        label = f'<div class="fp-label">{escape(self.name)}</div>' if self.name else ""
        return f'<div class="fp-artifact">{label}<pre>{escape(text)}</pre></div>'


class Image(MetaflowCardComponent):
    """`Image(src, label=None)`: PNG, JPEG or GIF bytes, embedded in the card as a data URL."""

    def __init__(self, src: bytes, label: Optional[str] = None, disable_updates: bool = True):
        if not isinstance(src, (bytes, bytearray)):
            raise TypeError(
                f"Image takes the image's bytes (PNG, JPEG or GIF), got {type(src).__name__}; "
                "for a matplotlib figure use Image.from_matplotlib(fig)")
        mime = next((m for magic, m in _IMAGE_TYPES.items() if bytes(src[: len(magic)]) == magic), None)
        if mime is None:
            raise TypeError("Image takes PNG, JPEG or GIF bytes; these bytes are none of them")
        if label is not None and not isinstance(label, str):
            raise TypeError(f"Image's label is a str, got {type(label).__name__}")
        self.src = bytes(src)
        self.mime = mime
        self.label = label

    @classmethod
    def from_matplotlib(cls, plot: Any, label: Optional[str] = None) -> "Image":
        """A matplotlib Figure (or Axes) as a PNG; needs matplotlib, as in Metaflow."""
        figure = getattr(plot, "figure", plot)
        if not hasattr(figure, "savefig"):
            raise TypeError(f"Image.from_matplotlib takes a matplotlib Figure or Axes, got {type(plot).__name__}")
        buf = io.BytesIO()
        figure.savefig(buf, format="png")
        return cls(buf.getvalue(), label=label)

    def render(self) -> str:
        data = base64.b64encode(self.src).decode("ascii")
        caption = f"<figcaption>{escape(self.label)}</figcaption>" if self.label else ""
        alt = escape(self.label or "image")
        return f'<figure class="fp-image"><img alt="{alt}" src="data:{self.mime};base64,{data}">{caption}</figure>'


class Table(MetaflowCardComponent):
    """`Table(data=[[...], ...], headers=[...])`: cells are values (shown by repr) or components."""

    def __init__(self, data: Optional[list] = None, headers: Optional[list] = None, disable_updates: bool = False):
        data = [] if data is None else data
        headers = [] if headers is None else headers
        if not isinstance(data, (list, tuple)) or not all(isinstance(r, (list, tuple)) for r in data):
            raise TypeError(f"Table's data is a list of rows, each a list, got {_shape(data)}")
        if not isinstance(headers, (list, tuple)) or not all(isinstance(h, str) for h in headers):
            raise TypeError(f"Table's headers are a list of str, got {_shape(headers)}")
        self.data = [list(r) for r in data]
        self.headers = list(headers)

    @classmethod
    def from_dataframe(cls, dataframe: Any, truncate: bool = True) -> "Table":
        """A pandas DataFrame: its columns as headers, at most 1,000 rows when truncating."""
        if not (hasattr(dataframe, "columns") and hasattr(dataframe, "itertuples")):
            raise TypeError(f"Table.from_dataframe takes a pandas DataFrame, got {type(dataframe).__name__}")
        rows = [list(r) for r in dataframe.itertuples(index=False)]
        return cls(rows[:MAX_TABLE_ROWS] if truncate else rows, headers=[str(c) for c in dataframe.columns])

    def render(self) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in self.headers)
        rows = self.data[:MAX_TABLE_ROWS]
        body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
        more = len(self.data) - len(rows)
        note = f'<div class="fp-note">{more} more rows not shown</div>' if more > 0 else ""
        return f'<table class="fp-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}'


def _cell(value: Any) -> str:
    if isinstance(value, MetaflowCardComponent):
        return value.render()
    if isinstance(value, str):
        return escape(value)
    return escape(short_repr(value, 200))


def _shape(value: Any) -> str:
    return re.sub(r"\s+", " ", type(value).__name__)


def check_component(value: Any) -> MetaflowCardComponent:
    """What `current.card.append` accepts; anything else is a TypeError naming the components."""
    if not isinstance(value, MetaflowCardComponent):
        raise TypeError(
            f"a card takes components (Markdown, Table, Image, Artifact from flowplane.cards), got "
            f"{type(value).__name__}; wrap a value in Artifact(value) to show it")
    return value
