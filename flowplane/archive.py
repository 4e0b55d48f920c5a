"""Reading a package archive: the one reader the control plane checks with and the task extracts with.

A package is untrusted bytes. Both sides read it through `scan`, so what the
control plane validated is, member for member and byte for byte, what the
task puts on disk and runs: the same names after the same normalisation, the
same refusals, the same members (a reader that stops early stops at the same
place on both sides).

Every check is bounded and linear in the package's bytes:
- the gzip stream is inflated in chunks and the inflated bytes are counted as
  they are read; reading stops at the cap, so a gzip bomb costs the cap, no more;
- members, extended (PAX, GNU long name) headers, names and link targets are
  capped before their contents are held in memory; PAX records are parsed here
  by length, not by the standard library's regular expressions;
- paths go into a tree keyed by their folded form (NFC, case-folded, as macOS
  compares names), so two members that would land on one file, or a member
  written through a link, are refused whatever their order;
- links are resolved through that tree once each (memoised), so a long target
  or a long chain costs its own length, not its square.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import IO, Callable, Optional, Union

from .archive_limits import MAX_RATIO, MAX_UNPACKED_CEILING, RATIO_FLOOR, ArchiveError, ArchiveLimits, too_large
from .archive_paths import Tree, has_control, is_absolute, normalise
from .tar_stream import Inflater, member_class

__all__ = [
    "MAX_RATIO",
    "MAX_UNPACKED_CEILING",
    "RATIO_FLOOR",
    "ArchiveError",
    "ArchiveLimits",
    "Entry",
    "Listing",
    "Stop",
    "scan",
]

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Entry:
    name: str  # normalised: no '.', '..' or empty components, '/' separated
    kind: str  # "file", "dir" or "link"
    size: int = 0
    target: Optional[str] = None  # a link's target, as stored
    executable: bool = False


@dataclass
class Listing:
    files: dict[str, Entry] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    links: dict[str, Entry] = field(default_factory=dict)
    inflated: int = 0
    complete: bool = True  # False when an `on_file` callback stopped the scan (Stop)


# --- the scan -------------------------------------------------------------------------------


def _entry(m: tarfile.TarInfo, name: str, limits: ArchiveLimits) -> Entry:
    raw = m.name
    if m.issym():
        target = m.linkname
        if is_absolute(target):
            raise ArchiveError(
                f"the package holds a link {raw!r} -> {target!r} that leads outside the package", path=raw
            )
        if has_control(target) or len(target.encode("utf-8", "surrogatepass")) > limits.max_link_target:
            raise ArchiveError(
                f"the package holds a link {raw!r} whose target is over {limits.max_link_target} bytes or has "
                "control characters",
                path=raw,
                limit=limits.max_link_target,
            )
        if not name:
            raise ArchiveError(f"the package holds a link {raw!r} at its root", path=raw)
        return Entry(name, "link", target=target)
    if m.islnk():
        raise ArchiveError(
            f"the package holds a hard link {raw!r} -> {m.linkname!r}; packages hold files, folders and "
            "symbolic links only",
            path=raw,
        )
    if m.isfile() and not m.issparse() and m.type != tarfile.CONTTYPE:
        return Entry(name, "file", size=m.size, executable=bool(m.mode & 0o100))
    if m.isdir():
        return Entry(name, "dir")
    raise ArchiveError(f"the package holds {raw!r}, which is neither a file, a folder nor a link", path=raw)


class Stop(Exception):
    """Raised by an `on_file` callback that has read what it came for: `scan` stops there."""


# Inflating in large pieces; tarfile keeps its own 10 KB records (it copies what is left of
# its buffer on every read, so a larger one makes each header cost more).
_BUFFER = 1024 * 1024

OnFile = Callable[[Entry, IO[bytes]], None]


def scan(source: Union[bytes, IO[bytes]], limits: ArchiveLimits, on_file: Optional[OnFile] = None) -> Listing:
    """Check every member of a .tar.gz; `on_file` may read each regular file as it streams by.

    Raises ArchiveError for anything a package may not hold. Links are checked once every
    member is known (a link may name one that comes later), so a caller that writes files
    as they come must create the links only after `scan` returns.
    """
    if isinstance(source, (bytes, bytearray)):
        if not bytes(source[:2]) == GZIP_MAGIC:
            raise ArchiveError("the package is not gzip-compressed: expected a .tar.gz made by `step-functions create`")
        source = io.BytesIO(source)
    inflater = Inflater(source, limits.max_unpacked, limits.unpacked_rule)
    stream = io.BufferedReader(inflater, buffer_size=_BUFFER)
    tree = Tree(limits)
    listing = Listing()
    declared = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|", tarinfo=member_class(limits), encoding="utf-8") as tar:
            for m in tar:
                name = normalise(m.name, limits)
                entry = _entry(m, name, limits)
                tree.add(name, entry.kind, m.name, entry.target)
                if entry.kind == "file":
                    declared += entry.size
                    if declared > limits.max_unpacked:
                        raise too_large(limits.max_unpacked, limits.unpacked_rule)
                    listing.files[name] = entry
                    if on_file is not None:
                        f = tar.extractfile(m)
                        assert f is not None  # a regular file always has content
                        on_file(entry, f)
                elif entry.kind == "dir":
                    if name:
                        listing.dirs.append(name)
                else:
                    listing.links[name] = entry
                # Streaming mode keeps every member it has read: only the tree is needed.
                tar.members.clear()
    except ArchiveError:
        raise
    except Stop:
        # The caller has what it came for; this package was checked whole before.
        listing.complete = False
        listing.inflated = inflater.inflated
        return listing
    except RecursionError:
        raise ArchiveError("the package's tar headers are nested too deeply to read") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError, UnicodeError, ValueError, OverflowError) as e:
        raise ArchiveError(f"the package is not a readable gzip-compressed tar archive ({e})") from None
    tree.check_links()
    listing.inflated = inflater.inflated
    return listing
