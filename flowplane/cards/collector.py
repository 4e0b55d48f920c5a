"""`current.card`: the components a step adds to its cards while it runs (Metaflow's
CardComponentCollector).

`current.card.append(c)` adds to the step's default editable card: its only card,
or, with several, the one without an id. `current.card['id']` is the card with
that id. Both card types this SDK renders take components.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable, Optional

from .components import MetaflowCardComponent, check_component


class CardComponents(list):
    """The components of one card: a list that takes components only."""

    def append(self, component: Any) -> None:  # type: ignore[override]
        super().append(check_component(component))

    def extend(self, components: Iterable[Any]) -> None:  # type: ignore[override]
        super().extend([check_component(c) for c in components])

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            super().__setitem__(index, [check_component(c) for c in value])
        else:
            super().__setitem__(index, check_component(value))


class CardComponentCollector:
    """One per task: the cards its @card decorators declared, in order, and their components."""

    def __init__(self, cards: list[Any]):
        self._cards = list(cards)  # CardSpec, in the step's order
        self._components = [CardComponents() for _ in cards]
        self._default = self._default_index()

    def _default_index(self) -> Optional[int]:
        if len(self._cards) == 1:
            return 0
        unnamed = [i for i, c in enumerate(self._cards) if c.id is None]
        return unnamed[0] if len(unnamed) == 1 else None

    def components(self, position: int) -> list[MetaflowCardComponent]:
        return list(self._components[position])

    def _target(self) -> Optional[CardComponents]:
        if self._default is None:
            # As Metaflow: a warning, and the step goes on (its cards lose nothing they had).
            why = ("this step has no @card" if not self._cards else
                   "this step has several cards; name one with current.card['id']")
            print(f"current.card: components not added: {why}", file=sys.stderr)
            return None
        return self._components[self._default]

    def append(self, component: Any) -> None:
        check_component(component)
        target = self._target()
        if target is not None:
            target.append(component)

    def extend(self, components: Iterable[Any]) -> None:
        checked = [check_component(c) for c in components]
        target = self._target()
        if target is not None:
            target.extend(checked)

    def clear(self) -> None:
        target = self._target()
        if target is not None:
            target.clear()

    def __getitem__(self, card_id: str) -> CardComponents:
        for spec, components in zip(self._cards, self._components):
            if spec.id is not None and spec.id == card_id:
                return components
        known = ", ".join(repr(c.id) for c in self._cards if c.id) or "none"
        raise KeyError(f"this step has no @card with id {card_id!r} (ids: {known})")

    def __setitem__(self, card_id: str, components: Iterable[Any]) -> None:
        target = self[card_id]
        target[:] = list(components)

    def __contains__(self, card_id: object) -> bool:
        return any(c.id == card_id for c in self._cards)

    def __len__(self) -> int:
        return len(self._cards)
