"""A small, defensive reader and writer of TIFF-structured data (TIFF 6.0 section 2).

EXIF (CIPA DC-008, "Exif 2.32") is a TIFF structure: a byte-order mark ``II``
or ``MM``, the number 42, an offset to the first Image File Directory (IFD),
then IFDs of 12-byte entries ``tag, type, count, value-or-offset``. This module
reads such directories from bytes of strangers (every offset and count is
checked) and builds the one EXIF block onionclean ever writes: an IFD0 holding
only the Orientation tag.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from core.errors import MalformedImage

TAG_ORIENTATION = 0x0112
TAG_EXIF_IFD = 0x8769
TAG_GPS_IFD = 0x8825
TAG_INTEROP_IFD = 0xA005

#: TIFF field types: type -> (size in bytes, struct code or None for raw bytes)
FIELD_TYPES: dict[int, tuple[int, str | None]] = {
    1: (1, "B"),  # BYTE
    2: (1, None),  # ASCII
    3: (2, "H"),  # SHORT
    4: (4, "L"),  # LONG
    5: (8, "LL"),  # RATIONAL
    6: (1, "b"),  # SBYTE
    7: (1, None),  # UNDEFINED
    8: (2, "h"),  # SSHORT
    9: (4, "l"),  # SLONG
    10: (8, "ll"),  # SRATIONAL
    11: (4, "f"),  # FLOAT
    12: (8, "d"),  # DOUBLE
    13: (4, "L"),  # IFD (TIFF technical note 1)
}

MAX_ENTRIES_PER_IFD = 1000
MAX_IFDS = 64
MAX_VALUES = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One IFD entry, with its raw value bytes (already resolved from the offset)."""

    tag: int
    type: int
    count: int
    raw: bytes
    byteorder: str  # "<" or ">"
    value_offset: int  # where the value bytes start in the TIFF data

    def values(self) -> list[Any]:
        """Decoded values: ints, Fractions (rationals) or floats."""
        size, code = FIELD_TYPES[self.type]
        if code is None:
            return list(self.raw)
        n = min(self.count, MAX_VALUES)
        if self.type in (5, 10):
            flat = struct.unpack(f"{self.byteorder}{2 * n}{code[0]}", self.raw[: 8 * n])
            return [
                Fraction(flat[i], flat[i + 1]) if flat[i + 1] else Fraction(0)
                for i in range(0, len(flat), 2)
            ]
        return list(struct.unpack(f"{self.byteorder}{n}{code}", self.raw[: size * n]))

    def text(self) -> str:
        """ASCII/UNDEFINED value as text (NULs and control characters removed)."""
        raw = self.raw.split(b"\x00", 1)[0] if self.type == 2 else self.raw.rstrip(b"\x00")
        txt = raw.decode("utf-8", "replace")
        return "".join(ch for ch in txt if ch.isprintable()).strip()

    def first(self) -> Any:
        vals = self.values()
        return vals[0] if vals else None


class TiffReader:
    """Reads the IFDs of a TIFF structure; raises :class:`MalformedImage` on nonsense."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 8:
            raise MalformedImage("the EXIF block is too short to hold a TIFF header")
        if data[:2] == b"II":
            self.bo = "<"
        elif data[:2] == b"MM":
            self.bo = ">"
        else:
            raise MalformedImage("the EXIF block does not start with a TIFF byte-order mark")
        magic, first = struct.unpack(self.bo + "HL", data[2:8])
        if magic != 42:
            raise MalformedImage("the EXIF block is not a TIFF structure (no 42)")
        self.data = data
        self.first_ifd = first

    def read_ifd(self, offset: int) -> tuple[dict[int, Entry], int]:
        """Entries of the IFD at ``offset`` and the offset of the next IFD (0: none)."""
        data, bo = self.data, self.bo
        if offset < 8 or offset + 2 > len(data):
            raise MalformedImage("an EXIF directory points outside the block")
        (n,) = struct.unpack(bo + "H", data[offset : offset + 2])
        if n > MAX_ENTRIES_PER_IFD:
            raise MalformedImage("an EXIF directory claims an absurd number of entries")
        end = offset + 2 + 12 * n
        if end > len(data):
            raise MalformedImage("an EXIF directory runs past the end of the block")
        entries: dict[int, Entry] = {}
        for i in range(n):
            pos = offset + 2 + 12 * i
            tag, typ, count = struct.unpack(bo + "HHL", data[pos : pos + 8])
            if typ not in FIELD_TYPES:
                continue  # unknown type: skip, as TIFF 6.0 asks readers to
            size = FIELD_TYPES[typ][0] * count
            if size <= 4:
                voff = pos + 8
            else:
                (voff,) = struct.unpack(bo + "L", data[pos + 8 : pos + 12])
                if voff + size > len(data):
                    continue  # value outside the block: unreadable, skip it
            entries[tag] = Entry(tag, typ, count, data[voff : voff + size], bo, voff)
        nxt = 0
        if end + 4 <= len(data):
            (nxt,) = struct.unpack(bo + "L", data[end : end + 4])
            if nxt >= len(data):
                nxt = 0
        return entries, nxt

    def ifd_chain(self) -> Iterator[tuple[int, dict[int, Entry]]]:
        """IFD0, IFD1, ... as ``(index, entries)``; stops at loops and after MAX_IFDS."""
        seen: set[int] = set()
        offset, index = self.first_ifd, 0
        while offset and offset not in seen and index < MAX_IFDS:
            seen.add(offset)
            entries, offset = self.read_ifd(offset)
            yield index, entries
            index += 1

    def sub_ifd(self, entries: dict[int, Entry], tag: int) -> dict[int, Entry]:
        """The sub-directory (Exif, GPS, Interop) a pointer tag names, or ``{}``."""
        entry = entries.get(tag)
        if entry is None or entry.type not in (4, 13) or entry.count < 1:
            return {}
        try:
            sub, _ = self.read_ifd(int(entry.first()))
        except MalformedImage:
            return {}
        return sub


def read_orientation(tiff: bytes) -> int | None:
    """The Orientation (1..8) of IFD0, or None when absent or invalid."""
    try:
        reader = TiffReader(tiff)
        entries, _ = reader.read_ifd(reader.first_ifd)
    except (MalformedImage, struct.error):
        return None
    entry = entries.get(TAG_ORIENTATION)
    if entry is None or entry.type != 3 or entry.count < 1:
        return None
    value = int(entry.first())
    return value if 1 <= value <= 8 else None


def build_orientation_exif(orientation: int) -> bytes:
    """A minimal TIFF structure: IFD0 with the single entry Orientation=value.

    Big-endian, 26 bytes: header (8), entry count (2), one entry (12), next-IFD 0 (4).
    """
    if not 1 <= orientation <= 8:
        raise ValueError("orientation must be 1..8")
    return (
        b"MM\x00\x2a\x00\x00\x00\x08"
        + struct.pack(">H", 1)
        + struct.pack(">HHLHH", TAG_ORIENTATION, 3, 1, orientation, 0)
        + b"\x00\x00\x00\x00"
    )


def is_orientation_only(tiff: bytes) -> bool:
    """True when the TIFF structure is exactly what :func:`build_orientation_exif` makes."""
    o = read_orientation(tiff)
    return o is not None and o != 1 and tiff == build_orientation_exif(o)
