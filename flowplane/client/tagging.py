"""Changing a run's user tags after it started (Run.add_tag / remove_tag / replace_tag).

Metaflow's rules (metadata_provider.mutate_user_tags_for_run): removals apply
first, then additions; a system tag cannot be removed, and adding one is a no-op
(it already is a tag); every tag is checked first, so a bad one changes nothing.
The tag limits are the recorder's (flowplane/limits.py), the same a run starts with.
"""

from __future__ import annotations

from typing import Iterable

from .. import limits
from .exceptions import ClientError


# Why a production run's tags stay as they started: its record is the control plane's, and
# the control plane has no route that changes it (yet).
PRODUCTION_TAGS_FIXED = (
    "the tags of a production (sfn-...) run cannot be changed: they are the deployment's "
    "(step-functions create --tag ...) and the run's trigger's; change local runs' tags only"
)


class TaggingError(ClientError):
    """A tag change that is refused (Metaflow: MetaflowTaggingError)."""

    headline = "Tagging error"


def tag_list(tags: Iterable[str], what: str) -> list[str]:
    """`tags` as a list; a lone string is refused (as Metaflow: it is almost always a mistake)."""
    if isinstance(tags, (str, bytes)):
        raise TaggingError(f"{what} may not be a string; give a list of tags")
    try:
        return list(tags)
    except TypeError:
        raise TaggingError(f"{what} must be iterable") from None


def next_user_tags(user: Iterable[str], system: Iterable[str], remove: list[str], add: list[str]) -> list[str]:
    """The user tags after the change, or TaggingError (nothing is changed then)."""
    if not remove and not add:
        raise TaggingError("Must add or remove at least one tag")
    for tag in [*remove, *add]:
        if not isinstance(tag, str) or not tag:
            raise TaggingError(f"Tags must be non-empty strings, got {tag!r}")
    system_set = frozenset(system)
    protected = sorted(set(remove) & system_set)
    if protected:
        raise TaggingError(f"Cannot remove a tag that is an existing system tag ({protected})")
    current = list(user)
    kept = [t for t in current if t not in set(remove)]
    out = kept + [t for t in dict.fromkeys(add) if t not in system_set and t not in kept]
    try:
        limits.check_tags(out)
    except ValueError as e:
        raise TaggingError(str(e)) from None
    return out
