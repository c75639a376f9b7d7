"""Describe EXIF (CIPA DC-008, "Exif 2.32") in plain words: where, when, which device.

EXIF is a TIFF structure (TIFF 6.0 section 2): IFD0 describes the main image
and points to the Exif sub-IFD (tag 0x8769, capture settings and times) and
the GPS sub-IFD (tag 0x8825, CIPA DC-008 section 4.6.6); IFD1 describes the
embedded thumbnail. :func:`describe` turns the tags a person should know about
into :class:`core.report.Finding` objects. It reads bytes from strangers: an
unreadable tag is skipped, an unreadable block is reported as such, and
nothing escapes (a describer never makes cleaning fail).
"""

from __future__ import annotations

import contextvars
import io
import logging
import struct
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from core.report import Category, Report, human_size, printable
from core.tiff_ifd import (
    TAG_EXIF_IFD,
    TAG_GPS_IFD,
    TAG_ORIENTATION,
    Entry,
    TiffReader,
)

log = logging.getLogger("onionclean.core")

#: Nested blocks (EXIF inside Photoshop inside TIFF inside ...) are described
#: this many levels deep at most.
MAX_NESTING = 4
_nesting: contextvars.ContextVar[int] = contextvars.ContextVar("exif_nesting", default=0)

#: Raw bytes looked at for one text tag (longer values are cut, then capped for display).
MAX_TAG_BYTES = 64 * 1024

# IFD0 / Exif IFD tags (CIPA DC-008 tables 4 and 7; Microsoft XP* tags; DNG 1.6).
TAG_PROCESSING_SOFTWARE = 0x000B
TAG_DOCUMENT_NAME = 0x010D
TAG_IMAGE_DESCRIPTION = 0x010E
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_STRIP_OFFSETS = 0x0111
TAG_SOFTWARE = 0x0131
TAG_DATETIME = 0x0132
TAG_ARTIST = 0x013B
TAG_HOST_COMPUTER = 0x013C
TAG_JPEG_IF = 0x0201
TAG_JPEG_IF_LENGTH = 0x0202
TAG_XMP = 0x02BC
TAG_COPYRIGHT = 0x8298
TAG_IPTC = 0x83BB
TAG_PHOTOSHOP = 0x8649
TAG_ICC = 0x8773
TAG_DATETIME_ORIGINAL = 0x9003
TAG_DATETIME_DIGITIZED = 0x9004
TAG_OFFSET_TIME = 0x9010
TAG_OFFSET_TIME_ORIGINAL = 0x9011
TAG_OFFSET_TIME_DIGITIZED = 0x9012
TAG_MAKER_NOTE = 0x927C
TAG_USER_COMMENT = 0x9286
TAG_SUBSEC_TIME = 0x9290
TAG_SUBSEC_TIME_ORIGINAL = 0x9291
TAG_SUBSEC_TIME_DIGITIZED = 0x9292
TAG_XP_TITLE = 0x9C9B
TAG_XP_COMMENT = 0x9C9C
TAG_XP_AUTHOR = 0x9C9D
TAG_XP_KEYWORDS = 0x9C9E
TAG_XP_SUBJECT = 0x9C9F
TAG_IMAGE_UNIQUE_ID = 0xA420
TAG_CAMERA_OWNER_NAME = 0xA430
TAG_BODY_SERIAL_NUMBER = 0xA431
TAG_LENS_MAKE = 0xA433
TAG_LENS_MODEL = 0xA434
TAG_LENS_SERIAL_NUMBER = 0xA435
TAG_DNG_CAMERA_SERIAL = 0xC62F
TAG_MS_OWNER_NAME = 0xFDE8  # Photoshop "OwnerName"
TAG_MS_SERIAL_NUMBER = 0xFDE9  # Photoshop "SerialNumber"
TAG_MS_LENS = 0xFDEA  # Photoshop "Lens"

# GPS IFD tags (CIPA DC-008 table 15).
GPS_LATITUDE_REF = 0x0001
GPS_LATITUDE = 0x0002
GPS_LONGITUDE_REF = 0x0003
GPS_LONGITUDE = 0x0004
GPS_ALTITUDE_REF = 0x0005
GPS_ALTITUDE = 0x0006
GPS_TIMESTAMP = 0x0007
GPS_SATELLITES = 0x0008
GPS_SPEED_REF = 0x000C
GPS_SPEED = 0x000D
GPS_TRACK_REF = 0x000E
GPS_TRACK = 0x000F
GPS_IMG_DIRECTION_REF = 0x0010
GPS_IMG_DIRECTION = 0x0011
GPS_MAP_DATUM = 0x0012
GPS_DEST_LATITUDE_REF = 0x0013
GPS_DEST_LATITUDE = 0x0014
GPS_DEST_LONGITUDE_REF = 0x0015
GPS_DEST_LONGITUDE = 0x0016
GPS_PROCESSING_METHOD = 0x001B
GPS_AREA_INFORMATION = 0x001C
GPS_DATESTAMP = 0x001D
GPS_H_POSITIONING_ERROR = 0x001F

#: Text tags: tag -> (category, label, tag name as ExifTool spells it).
TEXT_TAGS: dict[int, tuple[Category, str, str]] = {
    TAG_MAKE: (Category.DEVICE, "Camera make", "Make"),
    TAG_MODEL: (Category.DEVICE, "Camera model", "Model"),
    TAG_LENS_MAKE: (Category.DEVICE, "Lens make", "LensMake"),
    TAG_LENS_MODEL: (Category.DEVICE, "Lens model", "LensModel"),
    TAG_MS_LENS: (Category.DEVICE, "Lens", "Lens"),
    TAG_BODY_SERIAL_NUMBER: (Category.DEVICE, "Camera serial number", "SerialNumber"),
    TAG_DNG_CAMERA_SERIAL: (Category.DEVICE, "Camera serial number", "CameraSerialNumber"),
    TAG_MS_SERIAL_NUMBER: (Category.DEVICE, "Camera serial number", "SerialNumber"),
    TAG_LENS_SERIAL_NUMBER: (Category.DEVICE, "Lens serial number", "LensSerialNumber"),
    TAG_IMAGE_UNIQUE_ID: (Category.DEVICE, "Unique photo ID", "ImageUniqueID"),
    TAG_ARTIST: (Category.PEOPLE, "Photographer", "Artist"),
    TAG_CAMERA_OWNER_NAME: (Category.PEOPLE, "Camera owner", "OwnerName"),
    TAG_MS_OWNER_NAME: (Category.PEOPLE, "Camera owner", "OwnerName"),
    TAG_SOFTWARE: (Category.SOFTWARE, "Software", "Software"),
    TAG_PROCESSING_SOFTWARE: (Category.SOFTWARE, "Processing software", "ProcessingSoftware"),
    TAG_HOST_COMPUTER: (Category.SOFTWARE, "Computer or phone", "HostComputer"),
    TAG_IMAGE_DESCRIPTION: (Category.DESCRIPTION, "Description", "ImageDescription"),
    TAG_DOCUMENT_NAME: (Category.DESCRIPTION, "Document name", "DocumentName"),
}

#: Windows Explorer tags, UTF-16LE in BYTE arrays: tag -> (category, label, name).
XP_TAGS: dict[int, tuple[Category, str, str]] = {
    TAG_XP_TITLE: (Category.DESCRIPTION, "Title", "XPTitle"),
    TAG_XP_COMMENT: (Category.DESCRIPTION, "Comment", "XPComment"),
    TAG_XP_AUTHOR: (Category.PEOPLE, "Author", "XPAuthor"),
    TAG_XP_KEYWORDS: (Category.DESCRIPTION, "Keywords", "XPKeywords"),
    TAG_XP_SUBJECT: (Category.DESCRIPTION, "Subject", "XPSubject"),
}

#: (date tag, offset tag, sub-second tag, label, name)
TIME_TAGS: list[tuple[int, int, int, str, str]] = [
    (TAG_DATETIME_ORIGINAL, TAG_OFFSET_TIME_ORIGINAL, TAG_SUBSEC_TIME_ORIGINAL, "Taken",
     "DateTimeOriginal"),
    (TAG_DATETIME_DIGITIZED, TAG_OFFSET_TIME_DIGITIZED, TAG_SUBSEC_TIME_DIGITIZED, "Digitised",
     "CreateDate"),
    (TAG_DATETIME, TAG_OFFSET_TIME, TAG_SUBSEC_TIME, "Last changed", "ModifyDate"),
]

#: How maker notes announce themselves (the first bytes of tag 0x927C).
MAKER_NOTE_SIGNATURES: list[tuple[bytes, str]] = [
    (b"Nikon\x00", "Nikon"),
    (b"OLYMPUS\x00", "Olympus"),
    (b"OLYMP\x00", "Olympus"),
    (b"OM SYSTEM\x00", "OM System"),
    (b"Panasonic\x00", "Panasonic"),
    (b"FUJIFILM", "Fujifilm"),
    (b"SONY", "Sony"),
    (b"Apple iOS", "Apple"),
    (b"PENTAX ", "Pentax"),
    (b"AOC\x00", "Pentax"),
    (b"RICOH", "Ricoh"),
    (b"Ricoh", "Ricoh"),
    (b"SAMSUNG", "Samsung"),
    (b"LEICA", "Leica"),
    (b"SIGMA", "Sigma"),
    (b"KDK", "Kodak"),
    (b"MLT0", "Minolta"),
    (b"HUAWEI", "Huawei"),
    (b"DJI", "DJI"),
]

#: Plain words for the GPS reference letters.
SPEED_UNITS = {"K": "km/h", "M": "mph", "N": "knots"}
NORTH_REFS = {"T": "true north", "M": "magnetic north"}


def describe(tiff: bytes, report: Report, *, source: str = "EXIF") -> None:
    """Add findings for an EXIF block (a TIFF structure, without the ``Exif\\0\\0`` header).

    Never raises; a block that cannot be read at
    all is reported as "unreadable" and the rest of the file is still described.
    """
    depth = _nesting.get()
    if depth >= MAX_NESTING:
        report.add(Category.OTHER, f"{source} metadata",
                   f"{human_size(len(tiff))}, nested too deep to read")
        return
    token = _nesting.set(depth + 1)
    try:
        if tiff.startswith(b"Exif\x00\x00"):
            tiff = tiff[6:]
        _Describer(tiff, report, source).run()
    except Exception as e:  # noqa: BLE001 - strangers' bytes: never crash inspect
        log.debug("unreadable %s block: %s", source, type(e).__name__)
        report.add(
            Category.OTHER,
            f"{source} metadata",
            f"{human_size(len(tiff))} that could not be read (damaged)",
        )
    finally:
        _nesting.reset(token)


def orientation_of(tiff: bytes) -> int | None:
    """The Orientation (1..8) of IFD0, or None; kept by cleaning, so not a finding."""
    from core.tiff_ifd import read_orientation

    return read_orientation(tiff[6:] if tiff.startswith(b"Exif\x00\x00") else tiff)


class _Describer:
    """One pass over one EXIF block."""

    def __init__(self, tiff: bytes, report: Report, source: str) -> None:
        self.tiff = tiff
        self.report = report
        self.source = source
        self.other_tags = 0

    def run(self) -> None:
        try:
            reader = TiffReader(self.tiff)
            ifds = list(_safe_chain(reader))
        except Exception:  # noqa: BLE001
            self.report.add(
                Category.OTHER,
                f"{self.source} metadata",
                f"{human_size(len(self.tiff))} that could not be read (damaged)",
            )
            return
        if not ifds:
            self.report.add(
                Category.OTHER,
                f"{self.source} metadata",
                f"{human_size(len(self.tiff))} that could not be read (damaged)",
            )
            return
        self.reader = reader
        ifd0 = ifds[0][1]
        exif_ifd = reader.sub_ifd(ifd0, TAG_EXIF_IFD)
        gps_ifd = reader.sub_ifd(ifd0, TAG_GPS_IFD)
        if not gps_ifd:
            gps_ifd = reader.sub_ifd(exif_ifd, TAG_GPS_IFD)  # misplaced by some writers
        merged: dict[int, Entry] = {**exif_ifd, **ifd0}
        self._step(self._gps, gps_ifd)
        self._step(self._times, merged)
        self._step(self._texts, merged)
        self._step(self._copyright, merged)
        self._step(self._xp_tags, ifd0)
        self._step(self._user_comment, exif_ifd)
        self._step(self._maker_note, exif_ifd, ifd0)
        for index, entries in ifds[1:]:
            self._step(self._thumbnail, entries, index)
        self._step(self._embedded_blocks, ifd0)
        known = (
            set(TEXT_TAGS) | set(XP_TAGS) | {TAG_COPYRIGHT, TAG_USER_COMMENT, TAG_MAKER_NOTE,
                                              TAG_EXIF_IFD, TAG_GPS_IFD, TAG_ORIENTATION}
            | {t for row in TIME_TAGS for t in row[:3]}
        )
        self._step(self._settings, exif_ifd, known)

    def _step(self, func: Callable[..., None], *args: Any) -> None:
        """Run one describer; an unreadable tag is skipped, never fatal."""
        try:
            func(*args)
        except Exception as e:  # noqa: BLE001
            log.debug("skipped an unreadable %s part: %s", self.source, type(e).__name__)

    def add(self, category: Category, label: str, value: str, **data: Any) -> None:
        data.setdefault("source", self.source)
        self.report.add(category, label, value, **data)

    # -- where -----------------------------------------------------------------

    def _gps(self, gps: dict[int, Entry]) -> None:
        if not gps:
            return
        lat = _coordinate(gps.get(GPS_LATITUDE), _text(gps.get(GPS_LATITUDE_REF)), "NS")
        lon = _coordinate(gps.get(GPS_LONGITUDE), _text(gps.get(GPS_LONGITUDE_REF)), "EW")
        altitude = _altitude(gps.get(GPS_ALTITUDE), gps.get(GPS_ALTITUDE_REF))
        if lat is not None and lon is not None and not (lat == 0 and lon == 0):
            url = map_url(lat, lon)
            value = f"{format_position(lat, lon)} (on a map: {url})"
            data: dict[str, Any] = {
                "latitude": round(lat, 7),
                "longitude": round(lon, 7),
                "altitude": None if altitude is None else round(altitude, 3),
                "map_url": url,
            }
            self.add(Category.LOCATION, "GPS position", value, **data)
        elif gps.keys() - {0x0000}:
            self.add(
                Category.LOCATION,
                "GPS fields",
                f"{len(gps)} GPS fields, but no usable position",
                tag="GPS",
            )
        if altitude is not None:
            where = "above" if altitude >= 0 else "below"
            self.add(
                Category.LOCATION,
                "Altitude",
                f"{abs(altitude):.1f} metres {where} sea level",
                altitude=round(altitude, 3),
            )
        err = _rational(gps.get(GPS_H_POSITIONING_ERROR))
        if err is not None:
            self.add(Category.LOCATION, "Position accuracy", f"within about {err:.0f} metres",
                     accuracy=round(err, 3))
        when = _gps_time(gps.get(GPS_DATESTAMP), gps.get(GPS_TIMESTAMP))
        if when:
            date, _, clock = when.partition(" ")
            if len(date) == 10:
                words = f"on {date} at {clock} (UTC)" if clock else f"on {date} (UTC)"
            else:
                words = f"at {date} (UTC)"  # a time of day without a date
            iso = when.replace(" ", "T") + ("+00:00" if clock else "")
            self.add(Category.TIME, "Satellite (GPS) time", words, tag="GPSDateTime",
                     datetime=iso)
        direction = _rational(gps.get(GPS_IMG_DIRECTION))
        if direction is not None:
            ref = NORTH_REFS.get(_text(gps.get(GPS_IMG_DIRECTION_REF)), "north")
            self.add(
                Category.LOCATION,
                "Direction the camera faced",
                f"{direction:.0f}\u00b0 from {ref} ({compass(direction)})",
                direction=round(direction, 3),
            )
        speed = _rational(gps.get(GPS_SPEED))
        if speed is not None:
            unit = SPEED_UNITS.get(_text(gps.get(GPS_SPEED_REF)), "km/h")
            self.add(Category.LOCATION, "Speed", f"{speed:.1f} {unit}", speed=round(speed, 3),
                     unit=unit)
        track = _rational(gps.get(GPS_TRACK))
        if track is not None:
            self.add(Category.LOCATION, "Direction of travel",
                     f"{track:.0f}\u00b0 ({compass(track)})", track=round(track, 3))
        dlat = _coordinate(gps.get(GPS_DEST_LATITUDE), _text(gps.get(GPS_DEST_LATITUDE_REF)),
                           "NS")
        dlon = _coordinate(gps.get(GPS_DEST_LONGITUDE), _text(gps.get(GPS_DEST_LONGITUDE_REF)),
                           "EW")
        if dlat is not None and dlon is not None and not (dlat == 0 and dlon == 0):
            self.add(Category.LOCATION, "Position of the subject",
                     f"{format_position(dlat, dlon)} ({map_url(dlat, dlon)})",
                     dest_latitude=round(dlat, 7), dest_longitude=round(dlon, 7))
        area = gps.get(GPS_AREA_INFORMATION)
        if area is not None:
            text = _charset_text(area.raw, self.reader.bo)
            if text:
                self.add(Category.LOCATION, "Place name", text, tag="GPSAreaInformation")

    # -- when ------------------------------------------------------------------

    def _times(self, tags: dict[int, Entry]) -> None:
        for date_tag, offset_tag, subsec_tag, label, name in TIME_TAGS:
            stamp = _text(tags.get(date_tag))
            when = _exif_datetime(stamp)
            if when is None:
                continue
            date, clock = when
            subsec = _text(tags.get(subsec_tag))
            if subsec.isdigit() and subsec.strip("0"):
                clock += "." + subsec[:6]
            offset = _offset(_text(tags.get(offset_tag)))
            value = f"on {date} at {clock}"
            if offset:
                value += f" (UTC{offset})"
            iso = f"{date}T{clock}{offset or ''}"
            self.add(Category.TIME, label, value, tag=name, datetime=iso, offset=offset)

    # -- which device, who, which software -------------------------------------

    def _texts(self, tags: dict[int, Entry]) -> None:
        for tag, (category, label, name) in TEXT_TAGS.items():
            text = _text(tags.get(tag))
            if text:
                self.add(category, label, text, tag=name, raw=text)

    def _copyright(self, tags: dict[int, Entry]) -> None:
        entry = tags.get(TAG_COPYRIGHT)
        if entry is None:
            return
        # TIFF 6.0: "photographer copyright NUL editor copyright NUL".
        parts = [printable(p) for p in entry.raw[:MAX_TAG_BYTES].split(b"\x00")]
        parts = [p for p in parts if p]
        if parts:
            self.add(Category.PEOPLE, "Copyright", "; ".join(parts[:2]), tag="Copyright",
                     raw=parts[0])

    def _xp_tags(self, ifd0: dict[int, Entry]) -> None:
        for tag, (category, label, name) in XP_TAGS.items():
            entry = ifd0.get(tag)
            if entry is None:
                continue
            raw = entry.raw[:MAX_TAG_BYTES]
            raw = raw[: len(raw) // 2 * 2]
            text = printable(raw.decode("utf-16-le", "replace").split("\x00", 1)[0])
            if text:
                self.add(category, label, text, tag=name, raw=text)

    def _user_comment(self, exif_ifd: dict[int, Entry]) -> None:
        entry = exif_ifd.get(TAG_USER_COMMENT)
        if entry is None:
            return
        text = _charset_text(entry.raw, self.reader.bo)
        if text:
            self.add(Category.DESCRIPTION, "Comment", text, tag="UserComment", raw=text)

    def _maker_note(self, exif_ifd: dict[int, Entry], ifd0: dict[int, Entry]) -> None:
        entry = exif_ifd.get(TAG_MAKER_NOTE)
        if entry is None or not entry.raw.strip(b"\x00"):
            return
        maker = maker_of(entry.raw) or printable(_text(ifd0.get(TAG_MAKE)), 40)
        whose = f"the camera maker ({maker})" if maker else "the camera maker"
        self.add(
            Category.MAKER_NOTES,
            "Maker notes",
            f"{human_size(len(entry.raw))} of private data from {whose};"
            " they can hold serial numbers, owner names and more",
            tag="MakerNote",
            size=len(entry.raw),
            maker=maker,
        )
        from core import makernotes

        makernotes.describe(entry, self.tiff, maker, self.report, self.source)

    # -- hidden preview images -------------------------------------------------

    def _thumbnail(self, entries: dict[int, Entry], index: int) -> None:
        start_e, length_e = entries.get(TAG_JPEG_IF), entries.get(TAG_JPEG_IF_LENGTH)
        if start_e is not None and length_e is not None:
            start, length = int(start_e.first()), int(length_e.first())
            thumb = self.tiff[start : start + length] if length > 0 else b""
            if not thumb:
                return
            self.report.add(
                Category.THUMBNAIL,
                "Embedded preview image" if index == 1 else f"Preview image {index}",
                thumbnail_text(thumb, len(thumb)),
                size=len(thumb),
                pixels=pixel_size(thumb),
                source=self.source,
            )
        elif TAG_STRIP_OFFSETS in entries:
            self.report.add(
                Category.THUMBNAIL,
                "Embedded preview image",
                "an uncompressed preview; it can show the photo before it was cropped or edited",
                source=self.source,
            )

    # -- blocks nested in a TIFF IFD0 (TIFF files carry XMP, IPTC, ICC here) ----

    def _embedded_blocks(self, ifd0: dict[int, Entry]) -> None:
        from core import icc, iptc, xmp

        nested: list[tuple[int, Callable[[bytes, Report], None]]] = [
            (TAG_XMP, xmp.describe),
            (TAG_IPTC, iptc.describe_iim),
            (TAG_PHOTOSHOP, iptc.describe_photoshop),
            (TAG_ICC, icc.describe),
        ]
        for tag, func in nested:
            entry = ifd0.get(tag)
            if entry is not None and entry.raw:
                self._step(func, entry.raw, self.report)

    # -- the rest: camera settings, counted ------------------------------------

    def _settings(self, exif_ifd: dict[int, Entry], known: set[int]) -> None:
        parts: list[str] = []
        exposure = _rational(exif_ifd.get(0x829A))
        if exposure:
            shown = f"1/{round(1 / exposure)}" if exposure < 1 else f"{exposure:g}"
            parts.append(f"exposure {shown} s")
        fnumber = _rational(exif_ifd.get(0x829D))
        if fnumber:
            parts.append(f"f/{fnumber:.1f}")
        iso = exif_ifd.get(0x8827)
        if iso is not None and iso.type in (3, 4):
            parts.append(f"ISO {iso.first()}")
        focal = _rational(exif_ifd.get(0x920A))
        if focal:
            parts.append(f"focal length {focal:g} mm")
        others = [t for t in exif_ifd if t not in known and t not in (0x829A, 0x829D, 0x8827,
                                                                      0x920A)]
        if parts:
            summary = ", ".join(parts)
            if others:
                summary += ("; " if summary else "") + f"{len(others)} other technical settings"
            self.add(Category.OTHER, "Camera settings", summary, count=len(others) + len(parts))


# -- helpers ---------------------------------------------------------------------


def _safe_chain(reader: TiffReader) -> list[tuple[int, dict[int, Entry]]]:
    """IFD0, IFD1, ...: as many as can be read (a broken IFD1 keeps IFD0)."""
    out: list[tuple[int, dict[int, Entry]]] = []
    chain = reader.ifd_chain()
    while True:
        try:
            item = next(chain)
        except StopIteration:
            break
        except Exception:  # noqa: BLE001 - a broken link ends the chain
            break
        out.append(item)
    return out


def _text(entry: Entry | None) -> str:
    """An ASCII (or UTF-8, as many writers use) tag as printable text."""
    if entry is None:
        return ""
    raw = entry.raw[:MAX_TAG_BYTES]
    if entry.type in (2, 7, 1):
        raw = raw.split(b"\x00", 1)[0]
        return printable(raw)
    return ""


def _charset_text(raw: bytes, byteorder: str) -> str:
    """A CIPA DC-008 "comment" value: an 8-byte character code, then the text (4.6.5 Table 9)."""
    raw = raw[:MAX_TAG_BYTES]
    code, body = raw[:8], raw[8:]
    if code.startswith(b"UNICODE"):
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            enc = "utf-16"
        else:
            enc = "utf-16-le" if byteorder == "<" else "utf-16-be"
        body = body[: len(body) // 2 * 2]
        text = body.decode(enc, "replace")
    elif code.startswith(b"JIS"):
        text = body.decode("shift_jis", "replace")
    elif code.startswith(b"ASCII") or code == b"\x00" * 8:
        text = body.split(b"\x00", 1)[0].decode("utf-8", "replace")
    else:  # no header at all: some writers put plain text here
        text = raw.split(b"\x00", 1)[0].decode("utf-8", "replace")
    return printable(text.replace("\x00", " "))


def _rational(entry: Entry | None) -> float | None:
    if entry is None or entry.type not in (3, 4, 5, 10, 11, 12) or entry.count < 1:
        return None
    value = entry.first()
    if entry.type in (5, 10):
        raw = entry.raw
        num, den = struct.unpack(entry.byteorder + ("2L" if entry.type == 5 else "2l"), raw[:8])
        if den == 0:
            return None
        value = Fraction(num, den)
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if out == out and abs(out) != float("inf") else None


def _coordinate(entry: Entry | None, ref: str, refs: str) -> float | None:
    """Degrees, minutes, seconds (three rationals) with an N/S or E/W reference, as decimal."""
    if entry is None or entry.type not in (5, 10) or entry.count < 1:
        return None
    raw = entry.raw
    parts: list[float] = []
    fmt = entry.byteorder + ("2L" if entry.type == 5 else "2l")
    for i in range(min(entry.count, 3)):
        num, den = struct.unpack(fmt, raw[8 * i : 8 * i + 8])
        if den == 0:
            if i == 0:
                return None
            parts.append(0.0)  # 0/0 minutes or seconds: "not recorded"
            continue
        parts.append(num / den)
    while len(parts) < 3:
        parts.append(0.0)
    value = parts[0] + parts[1] / 60 + parts[2] / 3600
    if ref[:1].upper() == refs[1]:
        value = -value
    limit = 90 if refs == "NS" else 180
    if not -limit <= value <= limit:
        return None
    return value


def _altitude(entry: Entry | None, ref: Entry | None) -> float | None:
    value = _rational(entry)
    if value is None:
        return None
    if ref is not None and ref.count >= 1 and ref.raw[:1] == b"\x01":
        value = -value
    return value if abs(value) < 100_000 else None


def _gps_time(date_e: Entry | None, time_e: Entry | None) -> str:
    date = _text(date_e).replace(":", "-")
    clock = ""
    if time_e is not None and time_e.type == 5 and time_e.count >= 3:
        fmt = time_e.byteorder + "2L"
        vals = []
        for i in range(3):
            num, den = struct.unpack(fmt, time_e.raw[8 * i : 8 * i + 8])
            vals.append(num / den if den else 0.0)
        h, m, s = vals
        if 0 <= h < 25 and 0 <= m < 60 and 0 <= s < 61:
            clock = f"{int(h):02d}:{int(m):02d}:{int(s):02d}"
    if len(date) == 10 and date[4] == "-" and clock:
        return f"{date} {clock}"
    return date if len(date) == 10 and date[4] == "-" else clock


def _exif_datetime(stamp: str) -> tuple[str, str] | None:
    """``2008:10:22 16:28:39`` -> ``('2008-10-22', '16:28:39')``; None for blanks."""
    stamp = stamp.strip()
    if len(stamp) < 10 or not stamp[:4].isdigit() or stamp.startswith("0000"):
        return None
    date = stamp[:10].replace(":", "-")
    clock = stamp[11:19] if len(stamp) >= 19 else ""
    if not clock:
        return date, "an unknown time"
    return date, clock


def _offset(text: str) -> str:
    """``+02:00`` stays; anything else (blank, "   :  ") becomes ``''``."""
    text = text.strip()
    if len(text) == 6 and text[0] in "+-" and text[1:3].isdigit() and text[4:6].isdigit():
        return text
    return ""


def pixel_size(image: bytes) -> list[int] | None:
    """Width and height of an embedded preview, read by Pillow from its header only."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(image)) as im:
            return [int(im.size[0]), int(im.size[1])]
    except Exception:  # noqa: BLE001 - a damaged preview is still a preview
        return None


def thumbnail_text(image: bytes, size: int) -> str:
    """Plain words for an embedded preview image (shared with the Photoshop describer)."""
    pixels = pixel_size(image)
    what = f"{pixels[0]}x{pixels[1]} pixels, " if pixels else ""
    return (
        f"{what}{human_size(size)}; a preview can show the photo as it was before it was"
        " cropped or edited"
    )


def maker_of(note: bytes) -> str:
    """The camera maker a maker note announces in its first bytes, or ``''``."""
    for sig, maker in MAKER_NOTE_SIGNATURES:
        if note.startswith(sig):
            return maker
    return ""


def format_position(lat: float, lon: float) -> str:
    """``43.467448 N, 11.885127 E`` (6 decimals: about 10 cm)."""
    ns = "N" if lat >= 0 else "S"
    ew = "E" if lon >= 0 else "W"
    return f"{abs(lat):.6f}\u00b0 {ns}, {abs(lon):.6f}\u00b0 {ew}"


def map_url(lat: float, lon: float) -> str:
    """An OpenStreetMap link that puts a pin on the position."""
    return (
        f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}"
        f"#map=16/{lat:.6f}/{lon:.6f}"
    )


def compass(degrees: float) -> str:
    """``348`` -> ``'north'``: one of eight compass points."""
    names = ["north", "north-east", "east", "south-east", "south", "south-west", "west",
             "north-west"]
    return names[int(((degrees % 360) + 22.5) // 45) % 8]
