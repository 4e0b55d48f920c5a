"""`get_cards(task)`: a task's cards through the Client API, as Metaflow's.

The cards are listed by whichever provider holds the task's run (the local
datastore, or the control plane's cards route for a production run); a card's
HTML is read when `Card.get()` first asks for it.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Iterator, Optional, Union

from ..client.exceptions import ClientError


class CardNotPresentException(ClientError):
    """The task has no card (of that id or type)."""

    headline = "Card not found"


class IncorrectPathspecException(ClientError, ValueError):
    headline = "Incorrect pathspec"


class Card:
    """One rendered card: `get()` is its HTML, `view()` opens it in a browser."""

    def __init__(self, stored: Any, pathspec: str):
        self._stored = stored
        self._html: Optional[str] = None
        entry = stored.entry
        self.type: str = entry.type
        self.hash: str = entry.hash
        self.size: int = entry.size
        self.from_resumed = False
        self.origin_pathspec = None
        self._path = f"{pathspec}/cards/{entry.file}"
        self._id: Optional[str] = entry.id

    @property
    def id(self) -> Optional[str]:
        return self._id

    @property
    def path(self) -> str:
        """Where the card is, relative to the run's datastore (it names the card uniquely)."""
        return self._path

    def get(self) -> str:
        if self._html is None:
            self._html = self._stored.read()
        return self._html

    def save(self, path: Optional[str] = None) -> str:
        """Write the HTML to `path` (a temporary file if None) and return the path."""
        if path is None:
            fd, path = tempfile.mkstemp(prefix=f"card-{self.type}-", suffix=".html")
            os.close(fd)
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.get())
        return os.path.abspath(path)

    def view(self) -> str:
        """Open the card in a browser; without one, the file written is where to find it (returned)."""
        import webbrowser

        path = self.save()
        try:
            webbrowser.get()
        except webbrowser.Error:
            return path
        webbrowser.open("file://" + path)
        return path

    def _repr_html_(self) -> str:
        return self.get()

    def __str__(self) -> str:
        return f"<Card at '{self._path}'>"

    __repr__ = __str__


class CardContainer:
    """The cards `get_cards` found: indexable, iterable, sized (Metaflow's CardContainer)."""

    def __init__(self, cards: list[Card], origin_pathspec: Optional[str] = None):
        self._cards = cards
        self.from_resumed = False
        self.origin_pathspec = origin_pathspec

    def __len__(self) -> int:
        return len(self._cards)

    def __iter__(self) -> Iterator[Card]:
        return iter(self._cards)

    def __getitem__(self, index: int) -> Card:
        return self._cards[index]

    def _repr_html_(self) -> str:
        return "\n".join(c.get() for c in self._cards)


def get_cards(task: Union[str, Any], id: Optional[str] = None, type: Optional[str] = None,
              follow_resumed: bool = True) -> CardContainer:
    """The cards of `task` (a client Task or a "Flow/run/step/task" pathspec), optionally of one
    id or type; an empty container when it has none."""
    from ..client.core import Task

    if isinstance(task, str):
        if len(task.split("/")) != 4:
            raise IncorrectPathspecException(f"get_cards takes a task pathspec Flow/run/step/task, got {task!r}")
        # As Metaflow: a pathspec names the task exactly, in whichever namespace it is.
        task = Task(task, _namespace_check=False)
    elif not isinstance(task, Task):
        raise TypeError(f"get_cards takes a Task or a task pathspec, got {_type_name(task)}")
    attempt = task.current_attempt
    if attempt is None:
        return CardContainer([])
    stored = task._provider.list_cards(*task.path_components, attempt)
    cards = [Card(s, task.pathspec) for s in stored
             if (id is None or s.entry.id == id) and (type is None or s.entry.type == type)]
    return CardContainer(cards)


def _type_name(value: Any) -> str:
    return value.__class__.__name__
