"""`python flow.py card get RUN/STEP/TASK [FILE]` and `card view RUN/STEP/TASK`.

`get` prints the card's HTML (or writes it to FILE); `view` writes it to a file,
opens it in a browser when there is one, and prints the file's path either way,
so a machine without a browser (CI, a container) still gets the card.
"""

from __future__ import annotations

from typing import Any, Optional

import click


def _find_card(fctx: Any, pathspec: str, card_id: Optional[str], card_type: Optional[str]) -> Any:
    from ..client.exceptions import ClientError
    from .client import CardNotPresentException, get_cards

    parts = pathspec.strip("/").split("/")
    if len(parts) != 3 or not all(parts):
        raise click.BadParameter(f"give the task as RUN/STEP/TASK, got {pathspec!r}", param_hint="PATHSPEC")
    task = f"{fctx.flow_name}/{'/'.join(parts)}"
    try:
        cards = list(get_cards(task, id=card_id, type=card_type))
        if not cards:
            which = " ".join(f"{k} {v!r}" for k, v in (("with id", card_id), ("of type", card_type)) if v)
            raise CardNotPresentException(
                f"task {task} has no card{' ' + which if which else ''} (cards are rendered for steps "
                "with @card, or run with --with card, once the task succeeds)")
    except ClientError as e:
        raise click.ClickException(str(e)) from None
    if len(cards) > 1:
        listed = ", ".join(f"type {c.type!r}" + (f" id {c.id!r}" if c.id else "") for c in cards)
        raise click.ClickException(f"task {task} has {len(cards)} cards ({listed}); choose one with --id or --type")
    return cards[0]


def _options(f: Any) -> Any:
    f = click.option("--type", "card_type", default=None, help="The card's type (default, blank).")(f)
    f = click.option("--id", "card_id", default=None, help="The card's id (@card(id=...)).")(f)
    return click.argument("pathspec", metavar="RUN/STEP/TASK")(f)


@click.group(help="Read the cards (@card) a task rendered.")
def card() -> None:
    pass


@card.command(help="Print the card's HTML, or write it to FILE.")
@_options
@click.argument("file", required=False, type=click.Path(dir_okay=False, writable=True))
@click.pass_obj
def get(fctx: Any, pathspec: str, card_id: Optional[str], card_type: Optional[str], file: Optional[str]) -> None:
    found = _find_card(fctx, pathspec, card_id, card_type)
    if file:
        click.echo(found.save(file))
    else:
        click.echo(found.get(), nl=False)


@card.command(help="Write the card to an HTML file, open it in a browser if there is one, and print its path.")
@_options
@click.pass_obj
def view(fctx: Any, pathspec: str, card_id: Optional[str], card_type: Optional[str]) -> None:
    click.echo(_find_card(fctx, pathspec, card_id, card_type).view())
