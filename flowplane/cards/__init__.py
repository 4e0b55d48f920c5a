"""`flowplane.cards`, as `metaflow.cards`: card components and `get_cards`.

Components are what a step adds with `current.card.append(...)`; `get_cards(task)`
reads a finished task's cards through the Client API. The Client API is imported
only when `get_cards` is used, so a task adding components stays lean.
"""

from __future__ import annotations

from typing import Any

from .components import Artifact, Image, Markdown, MetaflowCardComponent, Table

_CLIENT_NAMES = {"get_cards", "Card", "CardContainer", "CardNotPresentException"}

__all__ = ["Artifact", "Image", "Markdown", "Table", "MetaflowCardComponent", *sorted(_CLIENT_NAMES)]


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'flowplane.cards' has no attribute {name!r}")
