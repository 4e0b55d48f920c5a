"""A tar.gz read as a bounded stream: inflated bytes counted as they come, and tarfile's
header reader with every extended header capped before it is read (see flowplane/archive.py)."""

from __future__ import annotations

import io
import tarfile
import zlib
from typing import IO, Union

from .archive_limits import ArchiveError, ArchiveLimits, too_large

# --- inflating, counted -------------------------------------------------------------


class Inflater(io.RawIOBase):
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


def member_class(limits: ArchiveLimits) -> type[tarfile.TarInfo]:
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
