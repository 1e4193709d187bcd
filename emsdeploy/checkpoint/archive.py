"""Know what a file is before reading it, and read zip archives within bounds.

Generic on purpose (nothing here knows about torch): :func:`sniff` names a file's container
from its first bytes, :class:`BoundedZip` opens a zip only after checking, from the end
records and every local header, that the entries are few, do not overlap and lie inside the
file, and reads an entry only up to a size the caller allows (CRC-32 checked by ``zipfile``).
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

__all__ = ["ArchiveError", "BoundedZip", "sniff"]

MAX_ENTRIES = 100_000
MAX_CENTRAL_DIRECTORY = 16 << 20
MAX_INFLATED_TOTAL = 256 << 20  # compressed entries together may inflate to at most this

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_LOCAL = b"PK\x03\x04"


class ArchiveError(ValueError):
    """An archive that is damaged or exceeds a bound; the message says which."""


def sniff(head: bytes) -> str:
    """The container kind of a file from its first 512 bytes or more.

    ``zip``, ``legacy-torch`` (torch.save's pre-1.6 stream of pickles, recognised by its
    pickled magic number), ``pickle`` (any other pickle), ``tar``, ``empty`` or ``unknown``.
    """
    if not head:
        return "empty"
    if head.startswith(_LOCAL) or head.startswith(_EOCD):
        return "zip"
    if head.startswith(b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")):
        return "legacy-torch"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "unknown"


class BoundedZip:
    """A zip archive opened only after its directory has been checked against the file."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f, self._size = f, size
        cd_offset, cd_size, n_entries = self._end_record()
        if n_entries > MAX_ENTRIES or cd_size > MAX_CENTRAL_DIRECTORY:
            raise ArchiveError(f"zip directory lists {n_entries} entries in {cd_size} bytes; at most {MAX_ENTRIES}")
        if cd_offset + cd_size > size:
            raise ArchiveError("zip directory reaches past the end of the file (truncated?)")
        try:
            self.zip = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as e:
            raise ArchiveError(f"damaged zip directory ({e})") from None
        self.entries = {i.filename: i for i in self.zip.infolist()}
        if len(self.entries) != len(self.zip.infolist()):
            raise ArchiveError("zip directory names an entry twice")
        self._check_extents(cd_offset)
        self._inflated = 0

    def _end_record(self) -> tuple[int, int, int]:
        tail_len = min(self._size, 22 + 65535)
        self._f.seek(self._size - tail_len)
        tail = self._f.read(tail_len)
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < 22:
            raise ArchiveError("no zip end record (truncated or not a zip)")
        _, _, _, _, n_entries, cd_size, cd_offset, _ = struct.unpack("<4sHHHHIIH", tail[at : at + 22])
        if 0xFFFF in (n_entries,) or 0xFFFFFFFF in (cd_size, cd_offset):
            loc = at - 20
            if loc < 0 or tail[loc : loc + 4] != _EOCD64_LOCATOR:
                raise ArchiveError("zip64 end record locator missing (truncated?)")
            (rec_offset,) = struct.unpack("<Q", tail[loc + 8 : loc + 16])
            if rec_offset + 56 > self._size:
                raise ArchiveError("zip64 end record lies past the end of the file")
            self._f.seek(rec_offset)
            rec = self._f.read(56)
            if rec[:4] != _EOCD64:
                raise ArchiveError("zip64 end record missing (damaged)")
            n_entries, cd_size, cd_offset = struct.unpack("<QQQ", rec[32:56])
        return cd_offset, cd_size, n_entries

    def _check_extents(self, cd_offset: int) -> None:
        end_prev = 0
        for info in sorted(self.entries.values(), key=lambda i: i.header_offset):
            if info.header_offset < end_prev:
                raise ArchiveError(f"zip entry {info.filename!r} overlaps the one before it")
            self._f.seek(info.header_offset)
            local = self._f.read(30)
            if len(local) < 30 or local[:4] != _LOCAL:
                raise ArchiveError(f"zip entry {info.filename!r}: local header missing (damaged or truncated)")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            end_prev = info.header_offset + 30 + name_len + extra_len + info.compress_size
            if end_prev > cd_offset:
                raise ArchiveError(f"zip entry {info.filename!r} reaches past the file's data (truncated?)")
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise ArchiveError(f"zip entry {info.filename!r}: stored entry with two different sizes")
            if info.flag_bits & 0x1:
                raise ArchiveError(f"zip entry {info.filename!r} is encrypted")

    def read(self, name: str, limit: int) -> bytes:
        """The bytes of entry ``name``, refused before reading if it declares more than ``limit``."""
        info = self.entries[name]
        if info.file_size > limit:
            raise ArchiveError(f"zip entry {name!r} declares {info.file_size:,} bytes; at most {limit:,} allowed here")
        if info.compress_type != zipfile.ZIP_STORED:
            self._inflated += info.file_size
            if self._inflated > MAX_INFLATED_TOTAL:
                raise ArchiveError(f"compressed zip entries inflate to more than {MAX_INFLATED_TOTAL >> 20} MiB")
        try:
            with self.zip.open(info) as f:
                data = f.read(info.file_size + 1)  # reads stop at the declared size, then the CRC is checked
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as e:
            raise ArchiveError(f"zip entry {name!r} is damaged ({e})") from None
        if len(data) != info.file_size:
            raise ArchiveError(f"zip entry {name!r} holds {len(data)} bytes, declares {info.file_size}")
        return data


def file_head(path: Path, n: int = 512) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)
