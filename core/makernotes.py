"""Read the few maker-note tags that name a person or a device (serial numbers, owners).

Maker notes (EXIF tag 0x927C) are private to each camera maker and
undocumented; most are TIFF IFDs behind a maker-specific header, with offsets
counted either from the start of the EXIF block or from the note itself (the
layouts below follow ExifTool's MakerNotes.pm). Only tags that identify a
device or its owner are read; everything else stays summarised as "maker
notes". Unknown or damaged notes add nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from core.report import Category, Report, printable
from core.tiff_ifd import Entry, TiffReader


@dataclass(frozen=True)
class Layout:
    """Where a maker's IFD starts and what its offsets count from."""

    maker: str
    signature: bytes
    ifd_start: int  # offset of the IFD inside the note
    relative_to_note: bool  # offsets count from the note (else from the EXIF block)
    byteorder: str | None  # "<" / ">", or None: the EXIF block's own


LAYOUTS: list[Layout] = [
    # Nikon type 3: "Nikon\0" + version, then a complete TIFF header of its own.
    Layout("Nikon", b"Nikon\x00\x02", 10, True, None),
    Layout("Olympus", b"OLYMPUS\x00", 12, True, None),
    Layout("Olympus", b"OLYMP\x00", 8, False, None),
    Layout("Panasonic", b"Panasonic\x00", 12, False, None),
    Layout("Fujifilm", b"FUJIFILM", -1, True, "<"),
    Layout("Apple", b"Apple iOS\x00", 14, True, ">"),
    Layout("Canon", b"", 0, False, None),  # no header at all
]

#: maker -> {tag: (category, label, tag name)}
TAGS: dict[str, dict[int, tuple[Category, str, str]]] = {
    "Canon": {
        0x0007: (Category.DEVICE, "Camera firmware", "FirmwareVersion"),
        0x0009: (Category.PEOPLE, "Camera owner", "OwnerName"),
        0x000C: (Category.DEVICE, "Camera serial number", "SerialNumber"),
        0x0095: (Category.DEVICE, "Lens model", "LensModel"),
        0x0096: (Category.DEVICE, "Internal serial number", "InternalSerialNumber"),
    },
    "Nikon": {
        0x001D: (Category.DEVICE, "Camera serial number", "SerialNumber"),
        0x00A0: (Category.DEVICE, "Camera serial number", "SerialNumber"),
    },
    "Olympus": {
        0x0404: (Category.DEVICE, "Camera serial number", "SerialNumber"),
        0x0405: (Category.DEVICE, "Camera firmware", "Firmware"),
    },
    "Panasonic": {
        0x0002: (Category.DEVICE, "Camera firmware", "FirmwareVersion"),
        0x0025: (Category.DEVICE, "Internal serial number", "InternalSerialNumber"),
    },
    "Fujifilm": {
        0x0010: (Category.DEVICE, "Internal serial number", "InternalSerialNumber"),
    },
    "Apple": {
        0x000B: (Category.DEVICE, "Burst ID", "BurstUUID"),
        0x0011: (Category.DEVICE, "Live Photo ID (links the photo to its video)",
                 "MediaGroupUUID"),
    },
}


#: maker -> tags holding an embedded preview JPEG.
PREVIEW_TAGS: dict[str, set[int]] = {
    "Olympus": {0x0100},  # ThumbnailImage
}


def describe(note: Entry, tiff: bytes, maker: str, report: Report, source: str) -> None:
    """Add the owner names and serial numbers a known maker note holds."""
    raw = note.raw
    layout = _layout_for(raw, maker)
    if layout is None or layout.maker not in TAGS:
        return
    entries = _read(layout, raw, tiff, note)
    for tag, (category, label, name) in TAGS[layout.maker].items():
        entry = entries.get(tag)
        if entry is None:
            continue
        text = _value_text(layout.maker, tag, entry)
        if text:
            report.add(category, label, text, tag=name, raw=text, source=f"{source} maker notes")
    for tag in PREVIEW_TAGS.get(layout.maker, set()):
        entry = entries.get(tag)
        if entry is not None and entry.raw.startswith(b"\xff\xd8"):
            from core.exif import pixel_size, thumbnail_text

            report.add(Category.THUMBNAIL, "Preview image in the maker notes",
                       thumbnail_text(entry.raw, len(entry.raw)), size=len(entry.raw),
                       pixels=pixel_size(entry.raw), source=f"{source} maker notes")


def _layout_for(raw: bytes, maker: str) -> Layout | None:
    for layout in LAYOUTS:
        if layout.signature and raw.startswith(layout.signature):
            return layout
    if maker.lower().startswith("canon"):
        return LAYOUTS[-1]
    return None


def _read(layout: Layout, raw: bytes, tiff: bytes, note: Entry) -> dict[int, Entry]:
    bo = layout.byteorder
    if layout.maker == "Nikon":
        # A TIFF structure of its own starts at byte 10; offsets count from there.
        reader = TiffReader(raw[10:])
        entries, _ = reader.read_ifd(reader.first_ifd)
        return entries
    if layout.maker == "Fujifilm":
        (start,) = struct.unpack("<L", raw[8:12])
        return _ifd_in(raw, start, "<")
    if layout.maker == "Olympus" and layout.signature == b"OLYMPUS\x00":
        bo = "<" if raw[8:10] == b"II" else ">"
        return _ifd_in(raw, layout.ifd_start, bo)
    if layout.relative_to_note:
        return _ifd_in(raw, layout.ifd_start, bo or note.byteorder)
    # Offsets count from the EXIF block: read the IFD where the note sits in it.
    reader = TiffReader(tiff)
    entries, _ = reader.read_ifd(note.value_offset + layout.ifd_start)
    return entries


def _ifd_in(raw: bytes, start: int, bo: str) -> dict[int, Entry]:
    """An IFD inside the note, offsets relative to the note: read it as a tiny TIFF."""
    header = (b"II" if bo == "<" else b"MM") + struct.pack(bo + "HL", 42, 8)
    # Pad so the note's offsets stay valid: note byte k sits at k + 8 - 8 = k (header
    # replaces the first 8 bytes, which are the maker's signature, never an offset target).
    fake = header + raw[8:]
    reader = TiffReader(fake)
    entries, _ = reader.read_ifd(start)
    return entries


def _value_text(maker: str, tag: int, entry: Entry) -> str:
    if entry.type in (3, 4) and entry.count == 1:
        value = int(entry.first())
        return str(value) if value else ""
    if maker == "Panasonic" and tag == 0x0002 and entry.count == 4:
        return ".".join(chr(b) if 48 <= b <= 57 else str(b) for b in entry.raw[:4])
    text = printable(entry.raw[:256].strip(b"\x00 ").split(b"\x00", 1)[0], 80)
    return text if text.strip("0 ") else ""
