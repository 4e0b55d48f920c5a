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
import re
import tarfile
import unicodedata
import zlib
from dataclasses import dataclass, field
from typing import IO, Callable, Optional, Union

GZIP_MAGIC = b"\x1f\x8b"
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


# --- inflating, counted -------------------------------------------------------------


class _Inflater(io.RawIOBase):
    """The gzip stream's content, read in chunks; past `cap` inflated bytes it raises."""

    _CHUNK = 64 * 1024

    def __init__(self, source: IO[bytes], cap: int, rule: str = "") -> None:
        self._src = source
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._cap = cap
        self._rule = rule
        self._done = False
        self.inflated = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Union[bytearray, memoryview]) -> int:  # type: ignore[override]
        while not self._done:
            data = self._z.unconsumed_tail or self._src.read(self._CHUNK)
            if not data:
                raise ArchiveError("the package is not a readable gzip-compressed tar archive: its gzip stream ends early (truncated)")
            try:
                out = self._z.decompress(data, len(b))
            except zlib.error as e:
                raise ArchiveError(f"the package is not a readable gzip stream ({e})") from None
            # What follows the gzip member (padding, a second member) is never read.
            self._done = self._z.eof
            if out:
                self.inflated += len(out)
                if self.inflated > self._cap:
                    raise too_large(self._cap, self._rule)
                b[: len(out)] = out
                return len(out)
        return 0


# --- headers, bounded -----------------------------------------------------------------

_EXTENDED = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_PAX_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


def _parse_pax(buf: bytes) -> dict[str, str]:
    """PAX records ("<length> <key>=<value>\\n") read by their lengths: linear in `buf`."""
    out: dict[str, str] = {}
    pos, end = 0, len(buf)
    while pos < end and buf[pos] != 0:  # NUL: the block's padding
        space = buf.find(b" ", pos, min(end, pos + 12))
        digits = buf[pos:space] if space > pos else b""
        if not digits.isdigit():
            raise ArchiveError("the package has a malformed PAX header")
        stop = pos + int(digits)
        record = buf[space + 1 : stop - 1]
        equals = record.find(b"=")
        if stop > end or stop <= space + 1 or buf[stop - 1 : stop] != b"\n" or equals <= 0:
            raise ArchiveError("the package has a malformed PAX header")
        try:
            key, value = record[:equals].decode("utf-8"), record[equals + 1 :].decode("utf-8")
        except UnicodeDecodeError:
            raise ArchiveError("the package has a PAX header that is not UTF-8") from None
        if key.startswith("GNU.sparse.") or key == "hdrcharset":
            raise ArchiveError(f"the package uses the PAX field {key!r}, which packages do not support")
        out[key] = value
        pos = stop
    return out


def _member_class(limits: ArchiveLimits) -> type[tarfile.TarInfo]:
    class CheckedInfo(tarfile.TarInfo):
        """tarfile's header reader with every extended header capped before it is read."""

        def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
            count = getattr(tar, "_flowplane_headers", 0) + 1
            tar._flowplane_headers = count  # type: ignore[attr-defined]
            if count > limits.max_headers:
                raise ArchiveError(
                    f"the package holds more than {limits.max_headers} members (tar headers, extended ones included)",
                    limit=limits.max_headers,
                )
            run = getattr(tar, "_flowplane_header_run", 0)
            if self.type not in _EXTENDED:
                tar._flowplane_header_run = 0  # type: ignore[attr-defined]
                return super()._proc_member(tar)  # type: ignore[misc]
            if self.size > limits.max_header:
                raise ArchiveError(
                    f"the package has an extended tar header of {self.size} bytes; the limit is {limits.max_header}",
                    limit=limits.max_header,
                )
            if run + 1 > limits.max_header_run:
                raise ArchiveError(
                    f"the package has more than {limits.max_header_run} extended tar headers before one member",
                    limit=limits.max_header_run,
                )
            tar._flowplane_header_run = run + 1  # type: ignore[attr-defined]
            if self.type in _PAX_TYPES:
                return self._proc_pax(tar)
            return super()._proc_member(tar)  # type: ignore[misc]

        def _proc_pax(self, tar: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
            # The standard library's, with the records parsed by `_parse_pax` (its regular
            # expressions can take quadratic time) and sparse files left out.
            buf = tar.fileobj.read(self._block(self.size))  # type: ignore[union-attr,attr-defined]
            records = _parse_pax(buf)
            pax_headers = tar.pax_headers if self.type == tarfile.XGLTYPE else tar.pax_headers.copy()
            pax_headers.update(records)
            try:
                nxt = self.fromtarfile(tar)
            except tarfile.HeaderError as e:
                raise tarfile.SubsequentHeaderError(str(e)) from None
            if self.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
                nxt._apply_pax_info(pax_headers, tar.encoding, tar.errors)  # type: ignore[attr-defined]
                nxt.offset = self.offset
                if "size" in pax_headers:
                    offset = nxt.offset_data
                    if nxt.isreg() or nxt.type not in tarfile.SUPPORTED_TYPES:
                        offset += nxt._block(nxt.size)  # type: ignore[attr-defined]
                    tar.offset = offset
            return nxt

    return CheckedInfo


# --- names ------------------------------------------------------------------------------


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or (len(name) > 2 and name[0].isalpha() and name[1] == ":" and name[2] in "/\\")


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _fold(part: str) -> str:
    """A component as a case-insensitive, normalising filesystem (macOS) compares it."""
    return unicodedata.normalize("NFC", part).casefold()


def normalise(raw: str, limits: ArchiveLimits) -> str:
    """The member's path inside the package ('' for the root), or an ArchiveError."""
    if _is_absolute(raw):
        raise ArchiveError(f"the package holds an absolute path {raw!r}; paths must be relative", path=raw)
    if _has_control(raw):
        raise ArchiveError(f"the package holds a path with a control character: {raw!r}", path=raw)
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError:
        raise ArchiveError(f"the package holds a path that is not UTF-8: {raw!r}", path=raw) from None
    if size > limits.max_name:
        raise ArchiveError(
            f"the package holds a path of {size} bytes; the limit is {limits.max_name}", path=raw[:200], limit=limits.max_name
        )
    # Backslashes are plain characters on Linux, but a separator where the package may be
    # unpacked by hand: '..' between them is refused too.
    if ".." in raw.replace("\\", "/").split("/"):
        raise ArchiveError(f"the package holds a path with '..': {raw!r}", path=raw)
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    for p in parts:
        if len(p.encode("utf-8")) > limits.max_component:
            raise ArchiveError(
                f"the package holds a path whose component is longer than {limits.max_component} bytes: {raw[:200]!r}",
                path=raw[:200],
                limit=limits.max_component,
            )
    return "/".join(parts)


# --- the tree of paths --------------------------------------------------------------------

_PENDING, _DONE = 1, 2


class _Node:
    __slots__ = ("parent", "children", "kind", "raw", "target", "state", "resolved")

    def __init__(self, parent: Optional["_Node"], kind: str, raw: str = "") -> None:
        self.parent = parent
        self.children: dict[str, _Node] = {}
        self.kind = kind  # file, dir, implicit (a folder only implied), link, virtual (a link's missing target)
        self.raw = raw
        self.target: Optional[str] = None
        self.state = 0
        self.resolved: Optional[_Node] = None  # a link's target node; None once done means outside


class _Tree:
    def __init__(self, limits: ArchiveLimits) -> None:
        self.root = _Node(None, "dir")
        self.root_seen = False
        self.limits = limits
        self.links: list[_Node] = []

    def add(self, name: str, kind: str, raw: str, target: Optional[str] = None) -> None:
        if not name:
            if kind != "dir" or self.root_seen:
                raise ArchiveError(f"the package holds {raw!r} at the root of the package, which only a folder may be", path=raw)
            self.root_seen = True
            return
        node = self.root
        parts = name.split("/")
        for i, part in enumerate(parts):
            key = _fold(part)
            child = node.children.get(key)
            last = i == len(parts) - 1
            if child is None:
                child = _Node(node, kind if last else "implicit", raw if last else "")
                node.children[key] = child
            elif last:
                if child.kind == "implicit" and kind == "dir":
                    child.kind, child.raw = "dir", raw
                elif child.kind == "implicit":
                    raise ArchiveError(f"the package holds {raw!r}, which is also a folder of other members", path=raw)
                else:
                    raise ArchiveError(
                        f"the package holds {child.raw!r} and {raw!r}, which are one path once unpacked", path=raw
                    )
            elif child.kind == "link":
                raise ArchiveError(
                    f"the package holds {raw!r} under the link {child.raw!r}; no member may be written through a link",
                    path=raw,
                )
            elif child.kind == "file":
                raise ArchiveError(f"the package holds {raw!r} under {child.raw!r}, which is a file", path=raw)
            node = child
        if kind == "link":
            node.target = target
            self.links.append(node)

    def check_links(self) -> None:
        for link in self.links:
            if self._resolve(link, 0) is None:
                raise ArchiveError(
                    f"the package holds a link {link.raw!r} -> {link.target!r} that leads outside the package",
                    path=link.raw,
                )

    def _resolve(self, link: _Node, depth: int) -> Optional[_Node]:
        """The node `link` leads to, None when it leaves the package (memoised)."""
        if link.state == _DONE:
            return link.resolved
        if link.state == _PENDING or depth > self.limits.max_link_depth:
            raise ArchiveError(
                f"the package holds a link {link.raw!r} -> {link.target!r} in a loop or a chain of more than "
                f"{self.limits.max_link_depth} links",
                path=link.raw,
                limit=self.limits.max_link_depth,
            )
        link.state = _PENDING
        node: Optional[_Node] = link.parent
        for part in (link.target or "").split("/"):
            if node is None:
                break
            if part in ("", "."):
                continue
            if part == "..":
                node = node.parent
                continue
            key = _fold(part)
            child = node.children.get(key)
            if child is None:  # not in the package: a folder as far as leaving it goes
                child = node.children[key] = _Node(node, "virtual")
            node = self._resolve(child, depth + 1) if child.kind == "link" else child
        link.state, link.resolved = _DONE, node
        return node


# --- the scan -------------------------------------------------------------------------------


def _entry(m: tarfile.TarInfo, name: str, limits: ArchiveLimits) -> Entry:
    raw = m.name
    if m.issym():
        target = m.linkname
        if _is_absolute(target):
            raise ArchiveError(
                f"the package holds a link {raw!r} -> {target!r} that leads outside the package", path=raw
            )
        if _has_control(target) or len(target.encode("utf-8", "surrogatepass")) > limits.max_link_target:
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
    inflater = _Inflater(source, limits.max_unpacked, limits.unpacked_rule)
    stream = io.BufferedReader(inflater, buffer_size=_BUFFER)
    tree = _Tree(limits)
    listing = Listing()
    declared = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|", tarinfo=_member_class(limits), encoding="utf-8") as tar:
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
