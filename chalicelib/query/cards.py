"""A task attempt's @card pages for the Client API: the attempt's card index read from the
datastore, each card with a presigned GET (flowplane/cards/client.py reads them).

The index is parsed with the SDK's own model (flowplane/cards/store.py), so a file
name that is not a card's is refused rather than presigned: the route hands out
URLs to the attempt's card files only.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from flowplane.cards.store import CardIndex
from flowplane.datastore import layout

from ..aws import client_error
from ..errors import ApiError
from .blobs import presigned_blob_url, split_root


class BadCardIndex(ApiError):
    status = 500
    code = "bad_card_index"


def list_cards(s3: Any, datastore_root: str, pathspec: tuple[str, str, str, str, int], expires: int) -> dict[str, Any]:
    bucket, base = split_root(datastore_root)
    key = layout.card_key(*pathspec, layout.CARD_INDEX)
    try:
        body = s3.get_object(Bucket=bucket, Key=base + key)["Body"].read()
    except client_error() as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return {"attempt": pathspec[4], "cards": []}  # the attempt rendered no card
        raise
    try:
        index = CardIndex.model_validate_json(body)
    except ValidationError as e:
        raise BadCardIndex(f"the card index of {'/'.join(map(str, pathspec))} is not valid: "
                           f"{e.error_count()} error(s)", field="cards") from None
    cards = [{**entry.model_dump(),
              "url": presigned_blob_url(s3, datastore_root, layout.card_key(*pathspec, entry.file), expires)}
             for entry in index.cards]
    return {"attempt": pathspec[4], "cards": cards}
