"""A small, defensive reader of ISO base media files (ISO/IEC 14496-12) as HEIF uses them.

HEIF (ISO/IEC 23008-12) and AVIF store a still image as *items* described in
the ``meta`` box: ``iinf`` lists the items and their types (``hvc1``/``av01``
coded images, ``grid``/``iden``/``iovl`` derived images, ``Exif`` and ``mime``
(XMP) metadata, ``uri `` items), ``iloc`` says where their bytes are,
``iref`` links them (``thmb`` thumbnails, ``cdsc`` "content describes",
``auxl`` auxiliary images such as depth maps or gain maps), and ``iprp``
holds their properties (``ispe`` size, ``colr`` colour, ``irot``/``imir``
orientation, ...). Every size and offset is checked; nonsense raises
:class:`MalformedImage`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from core.errors import MalformedImage, TooLarge, UnsupportedFormat

MAX_BOXES = 20_000
MAX_DEPTH = 8

#: Containers whose payload is a sequence of boxes (with the byte count of the header
#: fields that precede the children: full boxes have version + flags).
CONTAINERS: dict[bytes, int] = {
    b"meta": 4, b"iprp": 0, b"ipco": 0, b"dinf": 0, b"moov": 0, b"trak": 0, b"mdia": 0,
    b"minf": 0, b"stbl": 0,
}


@dataclass(frozen=True)
class Box:
    """One box: its type and where its payload lies in the data."""

    type: bytes
    start: int  # offset of the box header
    payload: int  # offset of the payload
    end: int  # offset after the box

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def name(self) -> str:
        return self.type.decode("latin-1")


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """The boxes between ``start`` and ``end`` (ISO/IEC 14496-12 section 4.2)."""
    end = len(data) if end is None else end
    pos, count = start, 0
    while pos < end:
        if end - pos < 8:
            raise MalformedImage("the HEIF/AVIF file ends in the middle of a box header")
        size, typ = struct.unpack(">L4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if end - pos < 16:
                raise MalformedImage("the HEIF/AVIF file ends in the middle of a box header")
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            header = 16
        elif size == 0:
            size = end - pos
        if typ == b"uuid":
            header += 16
        if size < header or pos + size > end:
            raise MalformedImage(f"a '{typ.decode('latin-1')}' box runs past the end of the file")
        yield Box(typ, pos, pos + header, pos + size)
        pos += size
        count += 1
        if count > MAX_BOXES:
            raise TooLarge("the file holds too many boxes")


def children(data: bytes, box: Box) -> list[Box]:
    skip = CONTAINERS.get(box.type, 0)
    return list(iter_boxes(data, box.payload + skip, box.end))


def _cstring(data: bytes, pos: int, end: int) -> tuple[str, int]:
    nul = data.find(b"\x00", pos, end)
    stop = end if nul < 0 else nul
    return data[pos:stop].decode("utf-8", "replace"), (end if nul < 0 else nul + 1)


@dataclass
class Item:
    """One HEIF item (an ``infe`` entry) with its extents from ``iloc``."""

    id: int
    type: str
    name: str = ""
    content_type: str = ""
    uri_type: str = ""
    construction: int = 0
    extents: list[tuple[int, int]] = field(default_factory=list)  # (offset, length)

    @property
    def length(self) -> int:
        return sum(n for _, n in self.extents)


@dataclass
class Property:
    """One item property from ``ipco`` (e.g. ``colr`` with its colour type)."""

    type: str
    box: Box
    detail: str = ""  # colr: 'nclx'/'prof'/'rICC'; auxC: the aux type URN


@dataclass
class Meta:
    """What a HEIF ``meta`` box declares."""

    box: Box
    children: list[Box]
    handler: str = ""
    handler_name: str = ""
    primary: int | None = None
    items: dict[int, Item] = field(default_factory=dict)
    refs: list[tuple[str, int, list[int]]] = field(default_factory=list)  # (type, from, to)
    properties: list[Property] = field(default_factory=list)
    associations: dict[int, list[int]] = field(default_factory=dict)  # item -> prop idx (1-b)
    idat: Box | None = None
    dref_urls: list[tuple[int, str]] = field(default_factory=list)  # (flags, location)

    def item_bytes(self, data: bytes, item: Item, limit: int = 1 << 26) -> bytes:
        """The bytes of ``item`` (file extents or ``idat``), at most ``limit`` bytes."""
        out = bytearray()
        base = self.idat.payload if (item.construction == 1 and self.idat) else 0
        stop = self.idat.end if (item.construction == 1 and self.idat) else len(data)
        for offset, length in item.extents:
            a = base + offset
            if length == 0:  # 0: "to the end of the file/idat"
                length = stop - a
            if a < 0 or a + length > stop:
                raise MalformedImage("a HEIF item points outside the file")
            out += data[a : a + length]
            if len(out) > limit:
                raise TooLarge("a HEIF metadata item is too large")
        return bytes(out)

    def properties_of(self, item_id: int) -> list[Property]:
        return [
            self.properties[i - 1]
            for i in self.associations.get(item_id, [])
            if 0 < i <= len(self.properties)
        ]


def _uint(data: bytes, pos: int, size: int) -> tuple[int, int]:
    if size == 0:
        return 0, pos
    if pos + size > len(data):
        raise MalformedImage("the HEIF item locations end early")
    return int.from_bytes(data[pos : pos + size], "big"), pos + size


def parse_meta(data: bytes, meta: Box) -> Meta:
    """Read ``hdlr``, ``pitm``, ``iinf``, ``iloc``, ``iref``, ``iprp`` and ``dinf``."""
    kids = children(data, meta)
    m = Meta(meta, kids)
    for b in kids:
        p, e = b.payload, b.end
        if b.type == b"hdlr" and e - p >= 24:
            m.handler = data[p + 8 : p + 12].decode("latin-1")
            m.handler_name, _ = _cstring(data, p + 24, e)
        elif b.type == b"pitm" and e - p >= 6:
            m.primary = (
                struct.unpack(">H", data[p + 4 : p + 6])[0]
                if data[p] == 0
                else (struct.unpack(">L", data[p + 4 : p + 8])[0] if e - p >= 8 else None)
            )
        elif b.type == b"iinf":
            _parse_iinf(data, b, m)
        elif b.type == b"iloc":
            _parse_iloc(data, b, m)
        elif b.type == b"iref":
            _parse_iref(data, b, m)
        elif b.type == b"iprp":
            _parse_iprp(data, b, m)
        elif b.type == b"idat":
            m.idat = b
        elif b.type == b"dinf":
            for dref in children(data, b):
                if dref.type == b"dref" and dref.end - dref.payload >= 8:
                    for entry in iter_boxes(data, dref.payload + 8, dref.end):
                        flags = int.from_bytes(data[entry.payload + 1 : entry.payload + 4], "big")
                        loc, _ = _cstring(data, entry.payload + 4, entry.end)
                        m.dref_urls.append((flags, loc))
    return m


def _parse_iinf(data: bytes, box: Box, m: Meta) -> None:
    p = box.payload
    if box.end - p < 6:
        raise MalformedImage("the HEIF item list is too short")
    version = data[p]
    p += 4 + (2 if version == 0 else 4)
    for infe in iter_boxes(data, p, box.end):
        if infe.type != b"infe":
            continue
        q, e = infe.payload, infe.end
        if e - q < 8:
            raise MalformedImage("a HEIF item entry is too short")
        v = data[q]
        q += 4
        if v >= 2:
            if v == 2:
                item_id, q = _uint(data, q, 2)
            else:
                item_id, q = _uint(data, q, 4)
            q += 2  # item_protection_index
            typ = data[q : q + 4].decode("latin-1")
            q += 4
            name, q = _cstring(data, q, e)
            item = Item(item_id, typ, name)
            if typ == "mime":
                item.content_type, q = _cstring(data, q, e)
            elif typ == "uri ":
                item.uri_type, q = _cstring(data, q, e)
        else:
            item_id, q = _uint(data, q, 2)
            q += 2
            name, q = _cstring(data, q, e)
            content_type, q = _cstring(data, q, e)
            item = Item(item_id, "mime", name, content_type)
        known = m.items.get(item_id)
        if known is not None:  # iloc came first: keep its extents
            item.construction, item.extents = known.construction, known.extents
        m.items[item_id] = item


def _parse_iloc(data: bytes, box: Box, m: Meta) -> None:
    p, e = box.payload, box.end
    if e - p < 8:
        raise MalformedImage("the HEIF item locations are too short")
    version = data[p]
    p += 4
    off_size, len_size = data[p] >> 4, data[p] & 15
    base_size, idx_size = data[p + 1] >> 4, (data[p + 1] & 15 if version in (1, 2) else 0)
    p += 2
    count, p = _uint(data, p, 2 if version < 2 else 4)
    if count > MAX_BOXES:
        raise TooLarge("the HEIF file lists too many items")
    for _ in range(count):
        item_id, p = _uint(data, p, 2 if version < 2 else 4)
        construction = 0
        if version in (1, 2):
            cm, p = _uint(data, p, 2)
            construction = cm & 15
        _, p = _uint(data, p, 2)  # data_reference_index
        base, p = _uint(data, p, base_size)
        n, p = _uint(data, p, 2)
        if n > MAX_BOXES:
            raise TooLarge("a HEIF item has too many pieces")
        extents = []
        for _ in range(n):
            _, p = _uint(data, p, idx_size)
            off, p = _uint(data, p, off_size)
            length, p = _uint(data, p, len_size)
            extents.append((base + off, length))
        item = m.items.setdefault(item_id, Item(item_id, "?"))
        item.construction = construction
        item.extents = extents
        if p > e:
            raise MalformedImage("the HEIF item locations run past their box")


def _parse_iref(data: bytes, box: Box, m: Meta) -> None:
    p = box.payload
    if box.end - p < 4:
        raise MalformedImage("the HEIF item references are too short")
    wide = data[p] != 0
    size = 4 if wide else 2
    for ref in iter_boxes(data, p + 4, box.end):
        q = ref.payload
        src, q = _uint(data, q, size)
        n, q = _uint(data, q, 2)
        targets = []
        for _ in range(n):
            t, q = _uint(data, q, size)
            targets.append(t)
        if q > ref.end:
            raise MalformedImage("a HEIF item reference runs past its box")
        m.refs.append((ref.name, src, targets))


def _parse_iprp(data: bytes, box: Box, m: Meta) -> None:
    for b in children(data, box):
        if b.type == b"ipco":
            for prop in children(data, b):
                detail = ""
                if prop.type == b"colr":
                    detail = data[prop.payload : prop.payload + 4].decode("latin-1")
                elif prop.type == b"auxC":
                    detail, _ = _cstring(data, prop.payload + 4, prop.end)
                m.properties.append(Property(prop.name, prop, detail))
        elif b.type == b"ipma":
            p, e = b.payload, b.end
            if e - p < 8:
                raise MalformedImage("the HEIF property associations are too short")
            version, flags = data[p], int.from_bytes(data[p + 1 : p + 4], "big")
            p += 4
            count, p = _uint(data, p, 4)
            for _ in range(min(count, MAX_BOXES)):
                item_id, p = _uint(data, p, 2 if version < 1 else 4)
                n, p = _uint(data, p, 1)
                idx = []
                for _ in range(n):
                    if flags & 1:
                        v, p = _uint(data, p, 2)
                        idx.append(v & 0x7FFF)
                    else:
                        v, p = _uint(data, p, 1)
                        idx.append(v & 0x7F)
                m.associations[item_id] = idx
                if p > e:
                    raise MalformedImage("the HEIF property associations run past their box")


def brands(data: bytes) -> tuple[bytes, set[bytes]]:
    """Major brand and compatible brands of the leading ``ftyp`` box (may be partial)."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return b"", set()
    size = int.from_bytes(data[0:4], "big")
    end = min(len(data), size if size >= 16 else 16)
    compat = {data[i : i + 4] for i in range(16, end - 3, 4)}
    return data[8:12], compat


def top_level(data: bytes) -> list[Box]:
    boxes = list(iter_boxes(data))
    if not boxes or boxes[0].type != b"ftyp":
        raise MalformedImage("the HEIF/AVIF file does not start with an 'ftyp' box")
    return boxes


def the_meta(data: bytes, boxes: list[Box]) -> Meta:
    metas = [b for b in boxes if b.type == b"meta"]
    if not metas and any(b.type == b"moov" for b in boxes):
        raise UnsupportedFormat(
            "this HEIF/AVIF file is an image sequence without a still image; onionclean"
            " cleans still pictures"
        )
    if len(metas) != 1:
        raise MalformedImage(f"the HEIF/AVIF file has {len(metas)} 'meta' boxes, not one")
    return parse_meta(data, metas[0])
