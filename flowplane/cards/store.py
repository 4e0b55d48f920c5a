"""Where a task's cards are kept: the contract between the task that writes them, the
local Client API and the control plane's cards route (chalicelib/query/cards.py).

An attempt that succeeded writes each rendered card beside its artifacts
(layout.card_key) and then one index, `cards.json`, naming them; readers go
through the index only, so a card is listed once it is whole.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..datastore import layout
from ..datastore.storage import NotFound, Storage

# A card's file name: its position on the step, its type and id; never a path.
CARD_FILE = r"^[0-9]{1,3}-[a-z]{1,20}(-[A-Za-z0-9_]{1,80})?\.html$"
MAX_CARDS = 100


class CardEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(pattern=CARD_FILE)
    type: str = Field(pattern=r"^[a-z]{1,20}$")
    id: Optional[str] = Field(None, pattern=r"^[a-zA-Z0-9_]{1,80}$")
    size: int = Field(ge=0)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")  # sha256 of the HTML (Metaflow's Card.hash)


class CardIndex(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cards: list[CardEntry] = Field(default_factory=list, max_length=MAX_CARDS)


def card_file(position: int, card_type: str, card_id: Optional[str]) -> str:
    return f"{position}-{card_type}{'-' + card_id if card_id else ''}.html"


def entry_for(position: int, card_type: str, card_id: Optional[str], html: bytes) -> CardEntry:
    return CardEntry(file=card_file(position, card_type, card_id), type=card_type, id=card_id, size=len(html),
                     hash=hashlib.sha256(html).hexdigest())


def write_card(storage: Storage, pathspec: tuple[str, str, str, str, int], entry: CardEntry, html: bytes) -> None:
    storage.put_bytes(layout.card_key(*pathspec, entry.file), html)


def write_index(storage: Storage, pathspec: tuple[str, str, str, str, int], index: CardIndex) -> None:
    storage.put_bytes(layout.card_key(*pathspec, layout.CARD_INDEX), index.model_dump_json().encode())


def read_index(storage: Storage, pathspec: tuple[str, str, str, str, int]) -> Optional[CardIndex]:
    """The attempt's card index, None when it rendered no card."""
    try:
        data = storage.get_bytes(layout.card_key(*pathspec, layout.CARD_INDEX))
    except NotFound:
        return None
    return CardIndex.model_validate_json(data)


def read_card(storage: Storage, pathspec: tuple[str, str, str, str, int], file: str) -> str:
    if not re.match(CARD_FILE, file):
        raise ValueError(f"not a card file name: {file!r}")
    return storage.get_bytes(layout.card_key(*pathspec, file)).decode("utf-8")


@dataclass(frozen=True)
class StoredCard:
    """A card a Client API provider listed: its index entry, and how to read its HTML
    (from the datastore, or from the presigned URL the control plane handed out)."""

    entry: CardEntry
    read: Callable[[], str]


def stored_cards(storage: Storage, pathspec: tuple[str, str, str, str, int]) -> list[StoredCard]:
    index = read_index(storage, pathspec)
    if index is None:
        return []
    return [StoredCard(e, lambda f=e.file: read_card(storage, pathspec, f)) for e in index.cards]
