"""Describe Photoshop image resources and IPTC-IIM records in plain words.

Photoshop image resource blocks (Adobe Photoshop File Format Specification,
"Image Resource Blocks"): signature ``8BIM``, a 2-byte resource ID, a Pascal
string name padded to an even size, a 4-byte data size, the data padded to an
even size. JPEG APP13 segments start with ``Photoshop 3.0\\0`` before them.

IPTC-IIM (IPTC Information Interchange Model 4.2, section 1.5): datasets
``0x1C record dataset length data``; a length with its high bit set is an
"extended" length whose low 15 bits say how many bytes hold the real length.
Record 1 dataset 90 names the character set (``ESC % G`` = UTF-8); record 2
holds the descriptive fields (author, city, keywords, ...).

Nothing escapes these functions: what cannot be read is reported as such.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from core.report import Category, Report, human_size, printable

log = logging.getLogger("onionclean.core")

#: Resource blocks and IIM datasets read at most.
MAX_BLOCKS = 10_000
MAX_DATASETS = 20_000
#: Resources of one kind described at most (more are only counted).
MAX_SAME_RESOURCE = 3

PHOTOSHOP_HEADER = b"Photoshop 3.0\x00"
IRB_SIGNATURES = (b"8BIM", b"MeSa", b"PHUT", b"AgHg", b"DCSR")

RES_IPTC = 0x0404
RES_THUMBNAIL_OLD = 0x0409
RES_THUMBNAIL = 0x040C
RES_ICC = 0x040F
RES_EXIF = 0x0422
RES_EXIF_2 = 0x0423
RES_XMP = 0x0424
RES_CAPTION_DIGEST = 0x0425
RES_URL = 0x040B
RES_URL_LIST = 0x041E
RES_CAPTION = 0x03F0

#: IIM record 2 datasets: number -> (category, label, ExifTool name).
IIM_TEXT: dict[int, tuple[Category, str, str]] = {
    5: (Category.DESCRIPTION, "Title", "ObjectName"),
    25: (Category.DESCRIPTION, "Keywords", "Keywords"),
    40: (Category.DESCRIPTION, "Instructions", "SpecialInstructions"),
    65: (Category.SOFTWARE, "Software", "OriginatingProgram"),
    70: (Category.SOFTWARE, "Software version", "ProgramVersion"),
    80: (Category.PEOPLE, "Author", "By-line"),
    85: (Category.PEOPLE, "Author's job title", "By-lineTitle"),
    90: (Category.LOCATION, "City", "City"),
    92: (Category.LOCATION, "Sub-location", "Sub-location"),
    95: (Category.LOCATION, "Province or state", "Province-State"),
    100: (Category.LOCATION, "Country code", "Country-PrimaryLocationCode"),
    101: (Category.LOCATION, "Country", "Country-PrimaryLocationName"),
    103: (Category.DESCRIPTION, "Reference", "OriginalTransmissionReference"),
    105: (Category.DESCRIPTION, "Headline", "Headline"),
    110: (Category.PEOPLE, "Credit", "Credit"),
    115: (Category.PEOPLE, "Source", "Source"),
    116: (Category.PEOPLE, "Copyright", "CopyrightNotice"),
    118: (Category.PEOPLE, "Contact", "Contact"),
    120: (Category.DESCRIPTION, "Caption", "Caption-Abstract"),
    122: (Category.PEOPLE, "Caption written by", "Writer-Editor"),
}
IIM_DATE_CREATED, IIM_TIME_CREATED = 55, 60
IIM_DIGITAL_DATE, IIM_DIGITAL_TIME = 62, 63
IIM_CHARSET = (1, 90)
UTF8_ESCAPES = (b"\x1b%G", b"\x1b%/G", b"\x1b%/I")


def describe_photoshop(irb: bytes, report: Report) -> None:
    """Add findings for Photoshop image resource blocks (``8BIM`` records)."""
    try:
        _photoshop(irb, report)
    except Exception as e:  # noqa: BLE001 - strangers' bytes: never crash inspect
        log.debug("unreadable Photoshop resources: %s", type(e).__name__)
        report.add(Category.OTHER, "Photoshop metadata",
                   f"{human_size(len(irb))} that could not be read (damaged)")


def describe_iim(iim: bytes, report: Report) -> None:
    """Add findings for IPTC-IIM records (author, city, keywords, ...)."""
    try:
        _iim(iim, report)
    except Exception as e:  # noqa: BLE001
        log.debug("unreadable IPTC records: %s", type(e).__name__)
        report.add(Category.OTHER, "IPTC metadata",
                   f"{human_size(len(iim))} that could not be read (damaged)")


def resource_blocks(irb: bytes) -> list[tuple[int, str, bytes]]:
    """``(id, name, data)`` of each resource block, stopping at the first broken one."""
    data = irb[len(PHOTOSHOP_HEADER):] if irb.startswith(PHOTOSHOP_HEADER) else irb
    blocks: list[tuple[int, str, bytes]] = []
    pos = 0
    while pos + 12 <= len(data) and len(blocks) < MAX_BLOCKS:
        if data[pos : pos + 4] not in IRB_SIGNATURES:
            break
        (res_id,) = struct.unpack(">H", data[pos + 4 : pos + 6])
        name_len = data[pos + 6]
        name_end = pos + 7 + name_len
        name = printable(data[pos + 7 : name_end], 80)
        if (1 + name_len) % 2:
            name_end += 1  # the Pascal string is padded to an even size
        if name_end + 4 > len(data):
            break
        (size,) = struct.unpack(">L", data[name_end : name_end + 4])
        start = name_end + 4
        if start + size > len(data):
            break
        blocks.append((res_id, name, data[start : start + size]))
        pos = start + size + (size % 2)
    return blocks


def _photoshop(irb: bytes, report: Report) -> None:
    from core import exif, icc, xmp

    other = 0
    seen: dict[int, int] = {}
    for res_id, _name, data in resource_blocks(irb):
        seen[res_id] = seen.get(res_id, 0) + 1
        if seen[res_id] > MAX_SAME_RESOURCE:
            other += 1  # a file repeating one resource thousands of times: count, don't read
        elif res_id == RES_IPTC:
            describe_iim(data, report)
        elif res_id in (RES_THUMBNAIL, RES_THUMBNAIL_OLD):
            _thumbnail(res_id, data, report)
        elif res_id in (RES_EXIF, RES_EXIF_2):
            exif.describe(data, report, source="EXIF in Photoshop data")
        elif res_id == RES_XMP:
            xmp.describe(data, report)
        elif res_id == RES_ICC:
            icc.describe(data, report)
        elif res_id in (RES_URL, RES_CAPTION):
            text = printable(data)
            if text:
                label = "Web address" if res_id == RES_URL else "Caption"
                report.add(Category.DESCRIPTION, label, text, source="Photoshop")
        else:
            other += 1
    if other:
        report.add(
            Category.OTHER,
            "Photoshop settings",
            f"{other} Photoshop resource{'s' if other != 1 else ''} (print settings,"
            " layers, slices, ...)",
            count=other,
            source="Photoshop",
        )


def _thumbnail(res_id: int, data: bytes, report: Report) -> None:
    """Resource 0x040C: a 28-byte header (format, width, height, ...) then a JPEG."""
    from core.exif import thumbnail_text

    if len(data) < 28:
        return
    _fmt, width, height = struct.unpack(">LLL", data[:12])
    jpeg = data[28:]
    text = thumbnail_text(jpeg, len(jpeg)) if res_id == RES_THUMBNAIL else (
        f"{width}x{height} pixels, {human_size(len(data))}; a preview can show the photo"
        " as it was before it was cropped or edited"
    )
    report.add(Category.THUMBNAIL, "Photoshop preview image", text, size=len(jpeg),
               pixels=[width, height], source="Photoshop")


def datasets(iim: bytes) -> list[tuple[int, int, bytes]]:
    """``(record, dataset, value)`` of each IIM dataset, stopping at the first broken one."""
    out: list[tuple[int, int, bytes]] = []
    pos = 0
    while pos + 5 <= len(iim) and len(out) < MAX_DATASETS:
        if iim[pos] != 0x1C:
            break
        record, number = iim[pos + 1], iim[pos + 2]
        (length,) = struct.unpack(">H", iim[pos + 3 : pos + 5])
        pos += 5
        if length & 0x8000:  # extended dataset: the next n bytes hold the length
            n = length & 0x7FFF
            if n == 0 or n > 4 or pos + n > len(iim):
                break
            length = int.from_bytes(iim[pos : pos + n], "big")
            pos += n
        if pos + length > len(iim):
            break
        out.append((record, number, iim[pos : pos + length]))
        pos += length
    return out


def _iim(iim: bytes, report: Report) -> None:
    items = datasets(iim)
    utf8 = any((r, d) == IIM_CHARSET and v.startswith(UTF8_ESCAPES) for r, d, v in items)

    def decode(v: bytes) -> str:
        if utf8:
            return printable(v.decode("utf-8", "replace"))
        try:
            return printable(v.decode("utf-8"))  # many writers use UTF-8 without saying so
        except UnicodeDecodeError:
            return printable(v.decode("latin-1"))

    values: dict[int, list[str]] = {}
    raw: dict[int, bytes] = {}
    for record, number, value in items:
        if record != 2:
            continue
        raw.setdefault(number, value)
        if number in IIM_TEXT:
            text = decode(value)
            if text:
                values.setdefault(number, []).append(text)
    for number, (category, label, name) in IIM_TEXT.items():
        found = list(dict.fromkeys(values.get(number, [])))
        if not found:
            continue
        data: dict[str, Any] = {"tag": name, "raw": found[0], "source": "IPTC"}
        if category == Category.LOCATION:
            data["place"] = found[0]
        if number == 25:
            data["keywords"] = found[:100]
        report.add(category, label, printable(", ".join(found)), **data)
    for date_n, time_n, label, name in (
        (IIM_DATE_CREATED, IIM_TIME_CREATED, "Taken", "DateCreated"),
        (IIM_DIGITAL_DATE, IIM_DIGITAL_TIME, "Digitised", "DigitalCreationDate"),
    ):
        when = _iim_datetime(raw.get(date_n, b""), raw.get(time_n, b""))
        if when:
            words, iso = when
            report.add(Category.TIME, label, words, tag=name, datetime=iso, source="IPTC")


def _iim_datetime(date: bytes, clock: bytes) -> tuple[str, str] | None:
    """IIM ``CCYYMMDD`` and ``HHMMSS±HHMM`` -> (plain words, ISO string)."""
    d = date.decode("ascii", "replace")
    if len(d) != 8 or not d.isdigit() or d == "00000000":
        return None
    day = f"{d[:4]}-{d[4:6]}-{d[6:8]}"
    words, iso = f"on {day}", day
    t = clock.decode("ascii", "replace")
    if len(t) >= 6 and t[:6].isdigit():
        hms = f"{t[:2]}:{t[2:4]}:{t[4:6]}"
        words += f" at {hms}"
        iso += f"T{hms}"
        tz = t[6:11]
        if len(tz) == 5 and tz[0] in "+-" and tz[1:].isdigit():
            offset = f"{tz[:3]}:{tz[3:]}"
            words += f" (UTC{offset})"
            iso += offset
    return words, iso
