"""Describe an ICC colour profile (ICC.1:2022): who made it, for which device.

The 128-byte header (ICC.1:2022 section 7.2) names the device manufacturer
(bytes 48-51), the device model (52-55), the profile creator (80-83) and the
creation date (24-35); the tag table (7.3) follows. The ``desc`` tag is a
``textDescriptionType`` in version 2 profiles and a ``multiLocalizedUnicodeType``
(``mluc``, 10.15) in version 4. Nothing
escapes :func:`describe`: a damaged profile is reported as such.
"""

from __future__ import annotations

import logging
import struct

from core.report import Category, Report, human_size, printable

log = logging.getLogger("onionclean.core")

MAX_TAGS = 200

#: Profiles shipped with every operating system or browser: they say little about a device.
COMMON_PROFILES = (
    "srgb iec61966-2.1",
    "srgb iec61966-2-1",
    "srgb",
    "display p3",
    "adobe rgb (1998)",
    "gimp built-in srgb",
    "srgb built-in",
    "generic rgb profile",
    "srgb v4 icc preference perceptual intent beta",
    "srgb2014",
    "c2",  # Facebook/Instagram's compact sRGB
    "uncalibrated",
)

#: Four-character ICC signatures for manufacturers, in words.
MANUFACTURERS = {
    "APPL": "Apple", "appl": "Apple", "ADBE": "Adobe", "HP  ": "Hewlett-Packard",
    "MSFT": "Microsoft", "GOOG": "Google", "SAMS": "Samsung", "EPSO": "Epson",
    "CANO": "Canon", "NIKO": "Nikon", "KODA": "Kodak", "lcms": "Little CMS",
    "SONY": "Sony", "FF  ": "Fujifilm", "LINO": "Linotype", "XRIT": "X-Rite",
    "GMB ": "GretagMacbeth", "QCOM": "Qualcomm", "HTC ": "HTC", "LEIC": "Leica",
    "OLYM": "Olympus", "PENT": "Pentax", "RICO": "Ricoh", "SIGM": "Sigma",
    "IEC ": "IEC", "none": "",
}


def describe(profile: bytes, report: Report) -> None:
    """Add a finding for an embedded ICC profile."""
    try:
        _describe(profile, report)
    except Exception as e:  # noqa: BLE001 - strangers' bytes: never crash inspect
        log.debug("unreadable ICC profile: %s", type(e).__name__)
        report.add(Category.COLOUR_PROFILE, "Colour profile",
                   f"{human_size(len(profile))} that could not be read (damaged)")


def description_of(profile: bytes) -> str:
    """The profile's ``desc`` text, or ``''``."""
    for sig, offset, size in _tags(profile):
        if sig == b"desc":
            return _text_tag(profile[offset : offset + size])
    return ""


def _describe(profile: bytes, report: Report) -> None:
    if len(profile) < 128 or profile[36:40] != b"acsp":
        report.add(Category.COLOUR_PROFILE, "Colour profile",
                   f"{human_size(len(profile))} that could not be read (not an ICC profile)")
        return
    desc = description_of(profile)
    manufacturer = _signature(profile[48:52])
    model = _signature(profile[52:56])
    creator = _signature(profile[80:84])
    created = _date(profile[24:36])
    common = desc.strip().lower() in COMMON_PROFILES
    details = []
    if manufacturer or model:
        details.append("device: " + " ".join(p for p in (manufacturer, model) if p))
    if creator and creator != manufacturer:
        details.append(f"made by {creator}")
    if created:
        details.append(f"created {created}")
    name = f"\u201c{desc}\u201d" if desc else "an unnamed profile"
    value = name + (f" ({', '.join(details)})" if details else "")
    if common:
        value += "; a standard profile shared by countless photos, it says little about you"
    else:
        value += (
            "; a colour profile can identify the device or the software that made the photo"
        )
    report.add(
        Category.COLOUR_PROFILE,
        "Colour profile",
        value,
        description=desc,
        manufacturer=manufacturer,
        model=model,
        creator=creator,
        created=created,
        common=common,
        size=len(profile),
    )


def _tags(profile: bytes) -> list[tuple[bytes, int, int]]:
    if len(profile) < 132:
        return []
    (count,) = struct.unpack(">L", profile[128:132])
    out = []
    for i in range(min(count, MAX_TAGS)):
        pos = 132 + 12 * i
        if pos + 12 > len(profile):
            break
        sig = profile[pos : pos + 4]
        offset, size = struct.unpack(">LL", profile[pos + 4 : pos + 12])
        if offset + size <= len(profile):
            out.append((sig, offset, size))
    return out


def _text_tag(tag: bytes) -> str:
    """``desc`` (v2 textDescriptionType), ``mluc`` (v4) or ``text``: the (English) text."""
    kind = tag[:4]
    if kind == b"desc" and len(tag) >= 12:
        (n,) = struct.unpack(">L", tag[8:12])
        return printable(tag[12 : 12 + min(n, 4096)].split(b"\x00", 1)[0], 120)
    if kind == b"mluc" and len(tag) >= 16:
        count, rec_size = struct.unpack(">LL", tag[8:16])
        if rec_size < 12:
            return ""
        best = ""
        for i in range(min(count, 100)):
            pos = 16 + i * rec_size
            if pos + 12 > len(tag):
                break
            lang = tag[pos : pos + 2]
            length, offset = struct.unpack(">LL", tag[pos + 4 : pos + 12])
            raw = tag[offset : offset + min(length, 4096)]
            text = printable(raw[: len(raw) // 2 * 2].decode("utf-16-be", "replace"), 120)
            if text and (not best or lang == b"en"):
                best = text
                if lang == b"en":
                    break
        return best
    if kind == b"text":
        return printable(tag[8:].split(b"\x00", 1)[0], 120)
    return ""


def _signature(sig: bytes) -> str:
    if sig == b"\x00\x00\x00\x00":
        return ""
    text = sig.decode("latin-1")
    if text in MANUFACTURERS:
        return MANUFACTURERS[text]
    return printable(text, 8)


def _date(raw: bytes) -> str:
    """dateTimeNumber (ICC.1 4.2): six big-endian uint16 -> ``1998-02-09``."""
    if len(raw) < 12:
        return ""
    y, mo, d, _h, _mi, _s = struct.unpack(">6H", raw)
    if not (1900 <= y <= 2200 and 1 <= mo <= 12 and 1 <= d <= 31):
        return ""
    return f"{y:04d}-{mo:02d}-{d:02d}"



#: ICC.1:2022 7.2.1: the header is 128 bytes; the tag count (7.3.2) follows it.
HEADER_SIZE = 128


def is_profile(profile: bytes | memoryview) -> bool:
    """True when ``profile`` is one whole ICC profile and nothing else (ICC.1:2022 7.2, 7.3).

    The header's profile size (bytes 0-3) must equal the length (up to 3 zero bytes
    of padding allowed), the file signature
    (bytes 36-39) must be ``acsp``, and the tag table must fit. Used when the policy
    keeps colour profiles: a block that only claims to be a profile (any bytes after
    an ``ICC_PROFILE`` name) could carry anything, so it is not kept.
    """
    length = len(profile)
    if length < HEADER_SIZE + 4:
        return False
    head = bytes(profile[: HEADER_SIZE + 4])
    size, count = struct.unpack(">L", head[:4])[0], struct.unpack(">L", head[128:132])[0]
    if not HEADER_SIZE + 4 <= size <= length or head[36:40] != b"acsp":
        return False
    # Some writers pad the profile to a 4-byte boundary: zeros carry nothing.
    return 132 + 12 * count <= size and length - size < 4 and not any(profile[size:])
