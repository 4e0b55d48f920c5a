"""Member paths: normalised, checked, and placed in a tree where two members on one path,
a member under a link, and a link leaving the package are found (see flowplane/archive.py)."""

from __future__ import annotations

import re
import unicodedata
from typing import Optional

from .archive_limits import ArchiveError, ArchiveLimits

# --- names ------------------------------------------------------------------------------


def is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or (len(name) > 2 and name[0].isalpha() and name[1] == ":" and name[2] in "/\\")


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _fold(part: str) -> str:
    """A component as a case-insensitive, normalising filesystem (macOS) compares it."""
    return unicodedata.normalize("NFC", part).casefold()


def normalise(raw: str, limits: ArchiveLimits) -> str:
    """The member's path inside the package ('' for the root), or an ArchiveError."""
    if is_absolute(raw):
        raise ArchiveError(f"the package holds an absolute path {raw!r}; paths must be relative", path=raw)
    if has_control(raw):
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


class Tree:
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
