"""What one package may hold, and the refusal when it holds more (see flowplane/archive.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

MB = 1024 * 1024

# The stage's cap on unpacked bytes may be raised up to this (chalicelib/settings.py);
# the task reads with it, so it never refuses a package the control plane accepted.
MAX_UNPACKED_CEILING = 4 * 1024 * MB
# Source code deflates 3-6x, text data 10-20x: a package may unpack to 100 times its size
# (never less than RATIO_FLOOR), which a gzip bomb (~1000x) does not pass.
MAX_RATIO = 100
RATIO_FLOOR = 32 * MB


@dataclass(frozen=True)
class ArchiveLimits:
    """What one package may hold. Only `max_unpacked` is a stage setting; the rest are
    fixed here so that the control plane and every task agree on them."""

    max_unpacked: int = 500 * MB  # inflated bytes, tar headers included
    # Said with a refusal for size: which rule set `max_unpacked` (see `for_package`).
    unpacked_rule: str = ""
    # tarfile spends ~50 us on a header and an empty member compresses to ~15 bytes: this
    # bounds that cost (a flow's folder holds code; data belongs in S3). Extended headers
    # (a PAX header, a GNU long name) count too: they cost as much as a member.
    max_headers: int = 5_000
    # One PAX or GNU long-name header's payload: a path and a link target fit with room.
    max_header: int = 8 * 1024
    # Extended headers in a row before one member (tarfile reads each one recursively).
    max_header_run: int = 4
    max_name: int = 1024  # bytes of a member's path, UTF-8
    max_component: int = 255  # bytes of one path component (Linux NAME_MAX)
    max_link_target: int = 1024
    # Links followed within one link's target (Linux's own limit is 40).
    max_link_depth: int = 40

    @classmethod
    def for_package(cls, size: int, max_unpacked: int) -> "ArchiveLimits":
        """The control plane's limits for a package of `size` bytes: inflating costs time in
        proportion to the inflated bytes, so they are capped at MAX_RATIO times the package
        (a gzip bomb's ratio is ~1000), and at the stage's `max_unpacked`."""
        by_ratio = max(MAX_RATIO * size, RATIO_FLOOR)
        if by_ratio < max_unpacked:
            return cls(max_unpacked=by_ratio, unpacked_rule=f"{MAX_RATIO} times the package's own size")
        return cls(max_unpacked=max_unpacked, unpacked_rule="FLOWPLANE_MAX_UNPACKED_BYTES")


class ArchiveError(ValueError):
    """The archive is refused. `path` names the member at fault, `limit` the cap it broke;
    `too_large` is set when the fault is size alone (a 413 rather than a 400)."""

    def __init__(self, message: str, path: Optional[str] = None, limit: Optional[int] = None, too_large: bool = False):
        super().__init__(message)
        self.message = message
        self.path = path
        self.limit = limit
        self.too_large = too_large


def too_large(cap: int, rule: str) -> ArchiveError:
    why = f" ({rule})" if rule else ""
    return ArchiveError(f"the package unpacks to more than {cap} bytes; the limit is {cap}{why}", limit=cap, too_large=True)
