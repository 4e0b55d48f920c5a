"""Production tokens: who may deploy over a deployment, and the token its runs are tagged with.

Metaflow's rule: the first deployment of a name mints a token; whoever deployed
last may deploy again, anyone else must give the token (`--authorize`), and
`--new-token` mints another.
"""

from __future__ import annotations

import secrets
from typing import Any, Optional

from ..errors import Forbidden
from .records import live

TOKEN_PREFIX = "production:"


def strip_token(token: Optional[str]) -> Optional[str]:
    if token and token.startswith(TOKEN_PREFIX):
        return token[len(TOKEN_PREFIX) :]
    return token or None


def mint_token(name: str) -> str:
    return f"{name.lower()}-{secrets.token_hex(4)}"


def check_authorized(name: str, head: Optional[dict[str, Any]], user: str, authorize: Optional[str]) -> None:
    """Metaflow's rule: the last deployer may redeploy; anyone else needs the token."""
    if not live(head):
        return
    assert head is not None
    if head.get("deployer") == user:
        return
    given = strip_token(authorize)
    if given == head["production_token"]:
        return
    owner = head.get("deployer", "someone else")
    if given:
        message = (
            f"the production token given does not match the one of {name!r} (deployed by {owner}); "
            "ask them for it and call `step-functions create --authorize TOKEN`"
        )
    else:
        message = (
            f"{name!r} is deployed by {owner}; to deploy a new version you need the same production "
            "token they used: ask them for it and call `step-functions create --authorize TOKEN`"
        )
    raise Forbidden(message, field="authorize", deployer=owner)


def resolve_token(name: str, head: Optional[dict[str, Any]], new_token: bool) -> tuple[str, bool]:
    """(token, minted): the first deployment and `--new-token` mint one; others keep it."""
    if not live(head) or new_token:
        return mint_token(name), True
    assert head is not None
    return head["production_token"], False
