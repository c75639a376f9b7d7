"""JPEG (ITU-T T.81 | ISO/IEC 10918-1), cleaned losslessly at the segment level.

A JPEG is a sequence of marker segments (T.81 Annex B): ``FF xx`` markers,
most followed by a two-byte big-endian length that counts itself. "Any marker
may optionally be preceded by any number of fill bytes, which are bytes
assigned code X'FF'" (B.1.1.2). After each SOS header comes entropy-coded
data in which a data byte ``FF`` is followed by a stuffed ``00`` and restart
markers ``FF D0``..``FF D7`` may appear (B.1.1.5, B.2.5); any other marker ends
the scan. One compiled regular expression finds that end, so the walk never
loops over bytes in Python and the scan data is copied once, into the output.
The output check (:func:`leftovers`) walks the result again; the scans it knows
were just copied are compared with the input bytes that were searched (memcmp)
rather than searched a second time.

Allow-list (like mat2, everything else goes, known or unknown): SOI, SOFn,
DHT, DQT, DRI, DAC, DNL, DHP, EXP, SOS with its entropy-coded data and
restart markers, EOI (DQT/DHT tables that no frame or scan can read, see
:func:`live_tables`, are dropped); APP14 only when it starts with ``Adobe`` (its colour
transform is needed to decode the colours); APP0 only when it starts with
``JFIF\\0``, and then rebuilt without thumbnail (JFIF 1.02 section 4.1);
APP2 ``ICC_PROFILE`` chunks only when the policy keeps colour profiles; and,
when the policy keeps orientation, one freshly built APP1 EXIF block holding
only the Orientation tag. Every byte after EOI (MPF second images, maker
trailers, motion-photo videos) is dropped. MPO files are JPEGs here: the
output is the first image.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from core import formats
from core.errors import MalformedImage, TooLarge
from core.formats import CleanOutput, ImageFormat, register
from core.policy import Orientation, Policy
from core.report import Category, Report, human_size
from core.tiff_ifd import (
    TiffReader,
    build_orientation_exif,
    is_orientation_only,
    read_orientation,
)

log = logging.getLogger("onionclean.core.jpeg")

# --- markers (T.81 Table B.1) ----------------------------------------------------------

TEM = 0x01
SOF0, DHT, JPG, DAC = 0xC0, 0xC4, 0xC8, 0xCC
RST0, RST7 = 0xD0, 0xD7
SOI, EOI, SOS, DQT, DNL, DRI, DHP, EXP = 0xD8, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF
APP0, APP1, APP2, APP12, APP13, APP14, APP15 = 0xE0, 0xE1, 0xE2, 0xEC, 0xED, 0xEE, 0xEF
JPG0, JPG13, COM = 0xF0, 0xFD, 0xFE

#: Start-of-frame markers: C0..CF except DHT (C4), JPG (C8) and DAC (CC).
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {DHT, JPG, DAC}
#: Differential (hierarchical) frames, which may follow a first frame (T.81 Annex J).
DIFFERENTIAL_SOF = frozenset({0xC5, 0xC6, 0xC7, 0xCD, 0xCE, 0xCF})
#: Segments kept byte for byte: they describe how the pixels are coded, nothing else.
STRUCTURAL = SOF_MARKERS | {DHT, DQT, DRI, DAC, DNL, DHP, EXP, SOS}

MARKER_NAMES = {
    TEM: "TEM", DHT: "DHT", JPG: "JPG", DAC: "DAC", SOI: "SOI", EOI: "EOI", SOS: "SOS",
    DQT: "DQT", DNL: "DNL", DRI: "DRI", DHP: "DHP", EXP: "EXP", COM: "COM",
}

SOI_BYTES = b"\xff\xd8"
EOI_BYTES = b"\xff\xd9"
JFIF_ID = b"JFIF\x00"
JFXX_ID = b"JFXX\x00"
ADOBE_ID = b"Adobe"
EXIF_ID = b"Exif\x00\x00"
XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXT_ID = b"http://ns.adobe.com/xmp/extension/\x00"
ICC_ID = b"ICC_PROFILE\x00"
MPF_ID = b"MPF\x00"
PHOTOSHOP_ID = b"Photoshop 3.0\x00"

#: The end of entropy-coded data: FF followed by anything but a stuffed 00, a restart
#: marker RST0..7 or another FF (fill) (T.81 B.1.1.5). One pass in C over the scan.
SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
#: Fill bytes, then the marker code (B.1.1.2).
MARKER_AT = re.compile(rb"\xff+([^\xff])", re.S)
#: Zero bytes some writers leave after a segment; libjpeg skips them with a warning.
ZERO_PADDING = re.compile(rb"\x00+")

ORIENTATION_WORDS = {
    1: "as stored",
    2: "mirrored left to right",
    3: "rotated 180°",
    4: "mirrored top to bottom",
    5: "mirrored left to right and rotated 90° counter-clockwise",
    6: "rotated 90° clockwise",
    7: "mirrored left to right and rotated 90° clockwise",
    8: "rotated 90° counter-clockwise",
}


def marker_name(marker: int) -> str:
    if marker in SOF_MARKERS:
        return f"SOF{marker - SOF0}"
    if APP0 <= marker <= APP15:
        return f"APP{marker - APP0}"
    if RST0 <= marker <= RST7:
        return f"RST{marker - RST0}"
    if JPG0 <= marker <= JPG13:
        return f"JPG{marker - JPG0}"
    return MARKER_NAMES.get(marker, f"0xFF{marker:02X}")


# --- the walk -------------------------------------------------------------------------


@dataclass(slots=True)
class Segment:
    """One marker segment: ``data[start:end]`` is the marker and everything it owns.

    For SOS, ``end`` is after the entropy-coded data (restart markers included);
    ``payload`` spans the bytes after the length field (the SOS header for SOS).
    """

    marker: int
    start: int
    end: int
    payload_start: int
    payload_end: int


@dataclass
class JpegLayout:
    """The result of walking a JPEG: its segments, frame size and what follows EOI."""

    segments: list[Segment] = field(default_factory=list)
    width: int = 0
    height: int = 0
    eoi_end: int = 0  # offset just after EOI; data[eoi_end:] is trailing data
    padding: int = 0  # zero bytes found between segments (dropped)
    height_from_dnl: bool = False  # the frame header said 0 lines; a DNL gave the height


def _damaged(what: str) -> MalformedImage:
    return MalformedImage(f"the JPEG's {what} is damaged")


def _check_frame(data: bytes, p: int, q: int, what: str) -> tuple[int, int]:
    """SOFn / DHP (B.2.2): P, Y, X, Nf, then Nf component specifications of 3 bytes."""
    if q - p < 6:
        raise _damaged(what)
    height = data[p + 1] << 8 | data[p + 2]
    width = data[p + 3] << 8 | data[p + 4]
    nf = data[p + 5]
    if nf == 0 or q - p != 6 + 3 * nf:
        raise _damaged(what)
    return width, height


def _check_dqt(data: bytes, p: int, q: int) -> None:
    """DQT (B.2.4.1): repeated Pq/Tq byte and 64 (Pq=0) or 128 (Pq=1) values."""
    while p < q:
        pq, tq = data[p] >> 4, data[p] & 15
        if pq > 1 or tq > 3:
            raise _damaged("quantisation table")
        p += 1 + 64 * (pq + 1)
    if p != q:
        raise _damaged("quantisation table")


def _check_dht(data: bytes, p: int, q: int) -> None:
    """DHT (B.2.4.2): repeated Tc/Th byte, 16 code counts, then that many values."""
    while p < q:
        tc, th = data[p] >> 4, data[p] & 15
        if tc > 1 or th > 3 or p + 17 > q:
            raise _damaged("Huffman table")
        total = sum(data[p + 1 : p + 17])
        if total > 256:
            raise _damaged("Huffman table")
        p += 17 + total
    if p != q:
        raise _damaged("Huffman table")


def _check_segment(marker: int, data: bytes, p: int, q: int) -> None:
    """Structural segments must have exactly the shape T.81 B.2 gives them."""
    n = q - p
    if marker == DQT:
        _check_dqt(data, p, q)
    elif marker == DHT:
        _check_dht(data, p, q)
    elif marker == DAC:  # B.2.4.3: pairs Tc/Tb, Cs
        if n == 0 or n % 2 or any(data[i] >> 4 > 1 or data[i] & 15 > 3 for i in range(p, q, 2)):
            raise _damaged("arithmetic-coding table")
    elif marker in (DRI, DNL):  # B.2.4.4, B.2.5: one 16-bit number
        if n != 2:
            raise _damaged(marker_name(marker) + " segment")
    elif marker == EXP:  # B.3.3: one byte Eh/Ev
        if n != 1:
            raise _damaged("EXP segment")
    elif marker == SOS:  # B.2.3: Ns, Ns x (Cs, Td/Ta), Ss, Se, Ah/Al
        ns = data[p] if n else 0
        if not 1 <= ns <= 4 or n != 4 + 2 * ns:
            raise _damaged("scan header")


def walk(
    data: bytes,
    policy: Policy,
    *,
    check_size: bool = True,
    proven: dict[int, memoryview] | None = None,
) -> JpegLayout:
    """Walk ``data`` segment by segment (T.81 Annex B) up to and including EOI.

    Checks the pixel limit as soon as the frame header is read, before any scan
    data is looked at. Raises :class:`MalformedImage` on anything that is not a
    whole JPEG, :class:`TooLarge` past ``policy.max_segments`` segments.

    ``proven`` (used by :func:`leftovers` on a fresh output) maps the offset where
    a scan's entropy-coded data starts to bytes that an earlier walk already
    searched and found free of markers, ending just before a marker. When ``data``
    holds exactly those bytes there and a marker follows them, the search over
    them would give the same answer, so it is replaced by a comparison (memcmp).
    """
    if data[:2] != SOI_BYTES:
        raise MalformedImage("this does not start like a JPEG (no start-of-image marker)")
    layout = JpegLayout()
    segments = layout.segments
    append = segments.append
    n = len(data)
    pos = 2
    limit = policy.max_segments
    have_frame = False
    while True:
        if pos >= n:
            raise MalformedImage("the JPEG is cut short: it has no end-of-image marker")
        if data[pos] == 0x00:
            pad = ZERO_PADDING.match(data, pos)
            if pad is not None and pad.end() < n and data[pad.end()] == 0xFF:
                layout.padding += pad.end() - pos
                pos = pad.end()
        if data[pos] != 0xFF:
            raise MalformedImage(
                f"the JPEG has stray bytes between its segments (at byte {pos})"
            )
        m = MARKER_AT.match(data, pos)
        if m is None:
            raise MalformedImage("the JPEG ends in the middle of a marker")
        mpos = m.start(1) - 1
        marker = data[mpos + 1]
        if len(segments) >= limit:
            raise TooLarge(f"the JPEG has more than {limit} segments")
        if marker == EOI:
            append(Segment(EOI, mpos, mpos + 2, mpos + 2, mpos + 2))
            layout.eoi_end = mpos + 2
            break
        if marker == SOI:
            raise MalformedImage("the JPEG has a second start-of-image marker inside it")
        if marker == TEM or RST0 <= marker <= RST7:
            # Standalone markers (B.1.1.3, B.1.1.4); outside a scan they mean nothing.
            append(Segment(marker, mpos, mpos + 2, mpos + 2, mpos + 2))
            pos = mpos + 2
            continue
        if marker < 0xC0:
            raise MalformedImage(
                f"the JPEG has an invalid marker 0xFF{marker:02X} at byte {mpos}"
            )
        if mpos + 4 > n:
            raise MalformedImage("the JPEG ends in the middle of a segment")
        length = data[mpos + 2] << 8 | data[mpos + 3]
        end = mpos + 2 + length
        if length < 2:
            raise MalformedImage(f"a JPEG {marker_name(marker)} segment has an impossible length")
        if end > n:
            raise MalformedImage("the JPEG ends in the middle of a segment")
        p = mpos + 4
        if marker in SOF_MARKERS or marker == DHP:
            width, height = _check_frame(data, p, end, "frame header")
            if marker != DHP:
                if have_frame and marker not in DIFFERENTIAL_SOF:
                    raise MalformedImage("the JPEG has two frame headers")
                if not have_frame:
                    layout.width, layout.height = width, height
                    have_frame = True
                    if check_size and height:
                        formats.check_pixels(width, height, policy, "JPEG")
        elif marker in STRUCTURAL:
            _check_segment(marker, data, p, end)
            if marker == DNL and not layout.height:
                layout.height = data[p] << 8 | data[p + 1]
                layout.height_from_dnl = True
                if check_size:
                    formats.check_pixels(layout.width, layout.height, policy, "JPEG")
        if marker == SOS:
            if not have_frame:
                raise MalformedImage("the JPEG's image data comes before its frame header")
            proof = proven.get(end) if proven is not None else None
            if (
                proof is not None
                and data.startswith(proof, end)
                and SCAN_END.match(data, end + len(proof)) is not None
            ):
                scan_end = end + len(proof)
            else:
                hit = SCAN_END.search(data, end)
                if hit is None:
                    raise MalformedImage(
                        "the JPEG is cut short in the middle of its image data"
                    )
                scan_end = _before_fill(data, end, hit.start())
            append(Segment(SOS, mpos, scan_end, p, end))
            pos = scan_end
            continue
        append(Segment(marker, mpos, end, p, end))
        pos = end
    if not have_frame:
        raise MalformedImage("the JPEG has no frame header (no SOF marker)")
    if not any(s.marker == SOS for s in segments):
        raise MalformedImage("the JPEG has no image data (no SOS)")
    if not layout.width or not layout.height:
        raise MalformedImage(
            f"the JPEG says it is {layout.width}x{layout.height} pixels"
        )
    return layout


def _before_fill(data: bytes, lo: int, hi: int) -> int:
    """Move ``hi`` back over the FF fill bytes that precede the marker at ``hi``."""
    while hi > lo and data[hi - 1] == 0xFF:
        window = data[max(lo, hi - 4096) : hi]
        hi -= len(window) - len(window.rstrip(b"\xff"))
        if window[:1] != b"\xff":
            break
    return hi


# --- what each segment is ---------------------------------------------------------------


def identify(marker: int, payload: bytes) -> str:
    """A person-readable name for an APPn/COM/other segment, from its marker and signature."""
    if marker == COM:
        return "comment (COM)"
    if marker == APP0:
        if payload.startswith(JFIF_ID):
            return "JFIF header (APP0)"
        if payload.startswith(JFXX_ID):
            return "JFXX thumbnail (APP0)"
        return "camera maker data in an APP0 segment"
    if marker == APP1:
        if payload.startswith(b"Exif\x00"):
            return "EXIF block (APP1)"
        if payload.startswith(XMP_ID):
            return "XMP packet (APP1)"
        if payload.startswith(XMP_EXT_ID):
            return "extended XMP (APP1)"
    if marker == APP2:
        if payload.startswith(ICC_ID):
            return "ICC colour profile (APP2)"
        if payload.startswith(MPF_ID):
            return "MPF extra-image index (APP2)"
        if payload.startswith(b"FPXR"):
            return "FlashPix data (APP2)"
    if marker == APP12 and payload.startswith(b"Ducky"):
        return "Photoshop 'Ducky' block (APP12)"
    if marker == APP12 and payload.startswith(b"PictureInfo"):
        return "camera picture info (APP12)"
    if marker == APP13 and payload.startswith((PHOTOSHOP_ID, b"Adobe_Photoshop")):
        return "Photoshop/IPTC block (APP13)"
    if marker == APP14 and payload.startswith(ADOBE_ID):
        return "Adobe colour header (APP14)"
    return f"{marker_name(marker)} segment"


def rebuilt_jfif(payload: bytes) -> bytes | None:
    """The JFIF APP0 rebuilt without thumbnail (JFIF 1.02 s.4.1), or None if unusable.

    Version, density units and densities are kept; Xthumbnail = Ythumbnail = 0.
    """
    if len(payload) < 14 or not payload.startswith(JFIF_ID):
        return None
    major, minor, units = payload[5], payload[6], payload[7]
    if major != 1 or minor > 2:
        major, minor = 1, 1
    if units > 2:
        units = 0
    return b"\xff\xe0\x00\x10" + JFIF_ID + bytes((major, minor, units)) + payload[8:12] + b"\0\0"


def rebuilt_adobe(payload: bytes) -> bytes | None:
    """APP14 "Adobe" cut to its 12 defined bytes: version, flags0, flags1, transform."""
    if len(payload) < 12 or not payload.startswith(ADOBE_ID):
        return None
    return b"\xff\xee\x00\x0e" + payload[:12]


def icc_profile_segments(data: bytes, layout: JpegLayout) -> frozenset[int]:
    """Start offsets of the APP2 ``ICC_PROFILE`` segments, when together they hold one profile.

    ICC.1:2022 annex B.4: each chunk is ``ICC_PROFILE\\0``, its sequence number
    (1..N), the count N, then a piece of the profile. Kept (policy keep_icc) only
    when the N chunks are numbered 1..N once each and join into exactly one whole
    profile (:func:`core.icc.is_profile`); otherwise none is kept, since bytes after
    the ``ICC_PROFILE`` name can carry anything.
    """
    from core import icc

    chunks = [
        s for s in layout.segments
        if s.marker == APP2 and data.startswith(ICC_ID, s.payload_start, s.end)
    ]
    if not chunks or any(s.end - s.payload_start < 14 for s in chunks):
        return frozenset()
    count = len(chunks)
    by_seq = {data[s.payload_start + 12]: s for s in chunks}
    if sorted(by_seq) != list(range(1, count + 1)) or any(
        data[s.payload_start + 13] != count for s in chunks
    ):
        return frozenset()
    profile = b"".join(data[by_seq[i].payload_start + 14 : by_seq[i].end]
                       for i in range(1, count + 1))
    return frozenset(s.start for s in chunks) if icc.is_profile(profile) else frozenset()


def _tables(data: bytes, seg: Segment) -> list[tuple[tuple[int, int, int], int, int]]:
    """The tables one DQT/DHT segment defines: ``(key, start, end)``, key = (kind, class, slot).

    DQT (B.2.4.1): Pq/Tq then 64 or 128 bytes; DHT (B.2.4.2): Tc/Th, 16 counts, values.
    The walk already checked that the tables fill the segment exactly.
    """
    out = []
    p, q = seg.payload_start, seg.payload_end
    while p < q:
        if seg.marker == DQT:
            key, size = (DQT, 0, data[p] & 15), 1 + 64 * ((data[p] >> 4) + 1)
        else:
            key, size = (DHT, data[p] >> 4, data[p] & 15), 17 + sum(data[p + 1 : p + 17])
        out.append((key, p, p + size))
        p += size
    return out


def live_tables(data: bytes, layout: JpegLayout) -> dict[int, list[tuple[int, int]]]:
    """For each DQT/DHT segment (by start), the byte ranges of the tables a decoder can use.

    A table is dead when no header that reads it (a scan for DHT; a frame or scan
    for DQT) comes after it before the same slot is defined again (or before EOI),
    or when no frame header (DQT: a component's Tq) or scan header (DHT: a
    component's Td, Ta) ever names its slot (T.81 B.2.2, B.2.3).
    Dead tables are never read, so any bytes could ride in them.
    """
    refs: set[tuple[int, int, int]] = set()
    for seg in layout.segments:
        p = seg.payload_start
        if seg.marker in SOF_MARKERS or seg.marker == DHP:
            refs.update((DQT, 0, data[p + 8 + 3 * i] & 15) for i in range(data[p + 5]))
        elif seg.marker == SOS:
            for i in range(data[p]):
                tables = data[p + 2 + 2 * i]
                refs.update(((DHT, 0, tables >> 4), (DHT, 1, tables & 15)))
    live: dict[int, list[tuple[int, int]]] = {}
    pending: dict[tuple[int, int, int], tuple[int, int, int]] = {}  # not yet followed by a header
    for seg in layout.segments:
        if seg.marker in (DQT, DHT):
            live[seg.start] = []
            for key, start, end in _tables(data, seg):
                pending[key] = (seg.start, start, end)  # an earlier pending one is dead
        elif seg.marker in SOF_MARKERS or seg.marker in (DHP, SOS):
            # Huffman tables are read by scans only; quantisation tables by frames and
            # scans (libjpeg latches them at each component's first scan).
            used = [k for k in pending if k[0] == DQT or seg.marker == SOS]
            for key in used:
                owner, start, end = pending.pop(key)
                if key in refs:
                    live[owner].append((start, end))
    return live


def orientation_app1(orientation: int) -> bytes:
    """APP1 ``Exif\\0\\0`` holding only the Orientation tag (the only EXIF we write)."""
    body = EXIF_ID + build_orientation_exif(orientation)
    return b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body


def exif_orientation(data: bytes, layout: JpegLayout) -> int:
    """The Orientation of the first EXIF APP1 before the first scan, 1 when none.

    That is the block decoders and viewers read (Pillow's, libjpeg's saved markers);
    an EXIF block after the first SOS does not change how the picture displays.
    """
    for seg in layout.segments:
        if seg.marker == SOS:
            break
        if seg.marker == APP1 and data.startswith(EXIF_ID, seg.payload_start, seg.end):
            return read_orientation(data[seg.payload_start + 6 : seg.end]) or 1
    return 1


# --- findings --------------------------------------------------------------------------


def _safely(what: str, report: Report, func: Callable[..., None], *args: object) -> None:
    """Call a describer; a block it cannot read is still reported, never fatal."""
    try:
        func(*args)
    except Exception as e:  # noqa: BLE001 - describing must not break cleaning
        log.debug("could not describe %s: %s", what, type(e).__name__)
        report.add(Category.OTHER, what, "present (could not be read)")


def _text(raw: bytes, limit: int = 200) -> str:
    txt = raw.rstrip(b"\x00").decode("utf-8", "replace")
    txt = "".join(ch if ch.isprintable() else " " for ch in txt).strip()
    return txt[:limit] + ("..." if len(txt) > limit else "")


def _mpf_extra_images(payload: bytes) -> int:
    """How many images besides the first an MPF index lists (CIPA DC-007 5.2.2.2)."""
    try:
        reader = TiffReader(payload[4:])
        entries, _ = reader.read_ifd(reader.first_ifd)
        count = entries.get(0xB001)  # NumberOfImages
        return max(int(count.first()) - 1, 0) if count is not None else 0
    except Exception:  # noqa: BLE001 - a damaged index only loses a detail
        return 0


#: How many segments of one kind get their own findings (the rest are counted).
MAX_DESCRIBED_PER_KIND = 16


def describe(data: bytes, layout: JpegLayout, report: Report) -> None:
    """Add findings for every non-structural block the JPEG carries."""
    report.width, report.height = layout.width, layout.height
    icc_chunks: list[tuple[int, bytes]] = []
    photoshop: list[bytes] = []
    xmp_ext: dict[bytes, dict[int, bytes]] = {}
    mpf_extra = 0
    described: dict[str, int] = {}
    skipped = 0
    for seg in layout.segments:
        marker = seg.marker
        if marker in STRUCTURAL or marker == EOI:
            continue
        payload = data[seg.payload_start : seg.end]
        what = identify(marker, payload)
        # A file may repeat a segment thousands of times: describe the first few of
        # each kind (findings are de-duplicated one by one), count the rest.
        described[what] = described.get(what, 0) + 1
        if described[what] > MAX_DESCRIBED_PER_KIND and not what.startswith(
            ("ICC", "extended XMP", "Photoshop/IPTC")
        ):
            skipped += 1
            continue
        if marker == COM:
            text = _text(payload)
            report.add(Category.COMMENT, "Comment", text or f"{len(payload)} bytes")
        elif marker == APP0:
            if payload.startswith(JFIF_ID) and len(payload) >= 14:
                tw, th = payload[12], payload[13]
                if tw and th:
                    report.add(
                        Category.THUMBNAIL, "JFIF thumbnail",
                        f"a {tw}x{th} preview image in the JFIF header", width=tw, height=th,
                    )
            elif payload.startswith(JFXX_ID):
                report.add(
                    Category.THUMBNAIL, "JFXX thumbnail",
                    "a preview image in a JFXX segment; it can show the uncropped original",
                )
            elif not payload.startswith(JFIF_ID):
                report.add(Category.MAKER_NOTES, "Camera maker data", f"{len(payload)} bytes"
                           " in an APP0 segment")
        elif marker == APP1 and payload.startswith(b"Exif\x00"):
            _safely("EXIF metadata", report, _exif_describe, payload[6:], report)
        elif marker == APP1 and payload.startswith(XMP_ID):
            _safely("XMP metadata", report, _xmp_describe, payload[len(XMP_ID):], report)
        elif marker == APP1 and payload.startswith(XMP_EXT_ID) and len(payload) >= 75:
            body = payload[len(XMP_EXT_ID):]
            guid, offset = body[:32], int.from_bytes(body[36:40], "big")
            xmp_ext.setdefault(guid, {})[offset] = body[40:]
        elif marker == APP2 and payload.startswith(ICC_ID) and len(payload) >= 14:
            icc_chunks.append((payload[12], payload[14:]))
        elif marker == APP2 and payload.startswith(MPF_ID):
            mpf_extra = max(mpf_extra, _mpf_extra_images(payload))
        elif marker == APP13 and payload.startswith(PHOTOSHOP_ID):
            photoshop.append(payload[len(PHOTOSHOP_ID):])
        elif marker == APP14 and payload.startswith(ADOBE_ID):
            continue
        elif marker in (TEM,) or RST0 <= marker <= RST7:
            continue
        else:
            report.add(Category.OTHER, what[:1].upper() + what[1:], human_size(len(payload)))
    if skipped:
        report.add(Category.OTHER, "More metadata segments",
                   f"{skipped} more segments of kinds already listed", count=skipped)
    for chunks in list(xmp_ext.values())[:MAX_DESCRIBED_PER_KIND]:
        packet = b"".join(chunks[k] for k in sorted(chunks))
        _safely("extended XMP metadata", report, _xmp_describe, packet, report)
    if icc_chunks:
        profile = b"".join(chunk for _, chunk in sorted(icc_chunks, key=lambda c: c[0]))
        _safely("colour profile", report, _icc_describe, profile, report)
    if photoshop:
        _safely("Photoshop/IPTC metadata", report, _photoshop_describe,
                b"".join(photoshop), report)
    _describe_trailer(data, layout.eoi_end, mpf_extra, report)


def _exif_describe(tiff: bytes, report: Report) -> None:
    from core import exif

    exif.describe(tiff, report, source="EXIF")


def _xmp_describe(packet: bytes, report: Report) -> None:
    from core import xmp

    xmp.describe(packet, report)


def _icc_describe(profile: bytes, report: Report) -> None:
    from core import icc

    icc.describe(profile, report)


def _photoshop_describe(irb: bytes, report: Report) -> None:
    from core import iptc

    iptc.describe_photoshop(irb, report)


def _describe_trailer(data: bytes, start: int, mpf_extra: int, report: Report) -> None:
    """Say what hides after EOI: extra MPF images, a motion-photo video, other data."""
    size = len(data) - start
    if size <= 0:
        return
    ftyp = data.find(b"ftyp", start)
    video_start = ftyp - 4 if ftyp - 4 >= start else -1
    images_end = video_start if video_start >= 0 else len(data)
    extra = data.count(b"\xff\xd8\xff", start, images_end)
    if mpf_extra or extra:
        n = mpf_extra or extra
        report.add(
            Category.EXTRA_IMAGE, "Extra images",
            f"{n} extra image{'s' if n != 1 else ''} (MPF) stored after the picture"
            if mpf_extra else f"{n} extra image{'s' if n != 1 else ''} stored after the picture",
            count=n,
        )
    if video_start >= 0:
        vsize = len(data) - video_start
        # The bytes themselves are the evidence: replace what XMP only claimed
        # (e.g. GCamera:MicroVideo) by one finding with the real size.
        report.findings = [
            f for f in report.findings
            if not (f.category == Category.TRAILING_DATA and "motion photo" in f.value.lower())
        ]
        report.add(
            Category.TRAILING_DATA, "Embedded video",
            f"an embedded {human_size(vsize)} video: this is a motion photo", size=vsize,
        )
    elif not (mpf_extra or extra):
        report.add(
            Category.TRAILING_DATA, "Data after the picture",
            f"{human_size(size)} of hidden data after the end of the image", size=size,
        )


# --- cleaning --------------------------------------------------------------------------


def strip_segments(data: bytes, policy: Policy, report: Report) -> CleanOutput:
    """Clean a JPEG losslessly: the allow-listed segments, copied once, in their order.

    Output: SOI, the rebuilt JFIF APP0 (if the input had one), the orientation-only
    EXIF APP1 (policy KEEP, orientation not 1), then every kept segment in input
    order (Adobe APP14 rebuilt, ICC chunks when kept, tables, frame, scans), EOI.
    """
    layout = walk(data, policy)
    describe(data, layout, report)
    if layout.height_from_dnl:
        # T.81 B.2.5 allows it, but libjpeg-turbo (Pillow) cannot decode such files,
        # so the output check could never prove the result whole.
        raise MalformedImage(
            "this JPEG gives its height only after the image data (a DNL marker);"
            " such files are not supported"
        )
    orientation = exif_orientation(data, layout)
    if policy.orientation == Orientation.BAKE and orientation != 1:
        from core import pixels

        report.kept.append(
            f"orientation: the picture was {ORIENTATION_WORDS[orientation]} in its pixels"
        )
        return pixels.rebuild(data, policy, report, orientation=orientation)

    view = memoryview(data)
    parts: list[bytes | memoryview] = [SOI_BYTES]
    scans: list[tuple[int, Segment]] = []  # (index in parts, SOS segment)
    jfif: bytes | None = None
    removed = report.removed_piece
    icc_kept = icc_profile_segments(data, layout) if policy.keep_icc else frozenset()
    live = live_tables(data, layout)
    for seg in layout.segments:
        marker = seg.marker
        if marker in (DQT, DHT):
            kept = sorted(live[seg.start])
            size = sum(end - start for start, end in kept)
            if size != seg.payload_end - seg.payload_start:
                removed("unused JPEG table (never read by a decoder)",
                        seg.payload_end - seg.payload_start - size)
                if kept:
                    body = b"".join(data[start:end] for start, end in kept)
                    parts.append(bytes((0xFF, marker)) + (len(body) + 2).to_bytes(2, "big")
                                 + body)
                continue
        if marker in STRUCTURAL:
            if marker == SOS:
                scans.append((len(parts), seg))
            parts.append(view[seg.start : seg.end])
            continue
        if marker == EOI:
            continue
        payload = data[seg.payload_start : seg.end] if marker != SOS else b""
        if marker == APP0 and jfif is None and payload.startswith(JFIF_ID):
            jfif = rebuilt_jfif(payload)
            if jfif is not None:
                if len(payload) > 14:
                    removed("JFIF thumbnail (APP0)", len(payload) - 14)
                continue
        if marker == APP14 and payload.startswith(ADOBE_ID):
            adobe = rebuilt_adobe(payload)
            if adobe is not None:
                parts.append(adobe)
                if len(payload) > 12:
                    removed("extra bytes in the Adobe APP14 header", len(payload) - 12)
                continue
        if seg.start in icc_kept:
            parts.append(view[seg.start : seg.end])
            continue
        removed(identify(marker, payload), seg.end - seg.start)
    header: list[bytes | memoryview] = [SOI_BYTES]
    if jfif is not None:
        header.append(jfif)
    out_orientation = 1
    if orientation != 1:
        if policy.orientation == Orientation.KEEP:
            header.append(orientation_app1(orientation))
            out_orientation = orientation
            report.kept.append(f"orientation: {ORIENTATION_WORDS[orientation]}")
        else:
            report.notes.append(
                "the orientation tag was dropped: the picture may now display"
                f" {ORIENTATION_WORDS[orientation]} from how it looked"
            )
    if icc_kept:
        report.kept.append("colour profile (as asked)")
    elif policy.keep_icc and any(
        s.marker == APP2 and data.startswith(ICC_ID, s.payload_start, s.end)
        for s in layout.segments
    ):
        report.notes.append("the ICC_PROFILE segments did not hold one whole colour"
                            " profile, so they were removed")
    if layout.padding:
        removed("zero padding between segments", layout.padding)
    trailer = len(data) - layout.eoi_end
    if trailer > 0:
        removed("data after the end of the image", trailer)
    parts[0:1] = header
    parts.append(EOI_BYTES)
    out = b"".join(parts)
    _remember_scans(out, parts, [(i + len(header) - 1, seg) for i, seg in scans], view)
    return CleanOutput(
        data=out,
        format=JPEG.name,
        width=layout.width,
        height=layout.height,
        lossless=True,
        orientation=out_orientation,
    )


#: The scans the last :func:`strip_segments` of this thread copied, for the output
#: check that follows it (see :func:`leftovers`); popped on first use.
_SCAN_PROOFS = threading.local()


def _remember_scans(out: bytes, parts: list[bytes | memoryview],
                    scans: list[tuple[int, Segment]], source: memoryview) -> None:
    """Note where each copied scan's entropy-coded data sits in ``out``, and its source."""
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    proven = {
        offsets[i] + (seg.payload_end - seg.start): source[seg.payload_end : seg.end]
        for i, seg in scans
    }
    _SCAN_PROOFS.slot = (out, proven)


def _take_scan_proofs(data: bytes) -> dict[int, memoryview] | None:
    slot = getattr(_SCAN_PROOFS, "slot", None)
    _SCAN_PROOFS.slot = None  # used once; never keeps the input past the output check
    if slot is not None and slot[0] is data:
        return slot[1]
    return None


def leftovers(data: bytes, policy: Policy) -> list[str]:
    """Walk a cleaned JPEG again and name every piece that is not on the allow-list.

    Every marker segment of ``data`` is read again. The entropy-coded data of a scan
    is searched again for markers, except when ``data`` is the output this thread's
    :func:`strip_segments` just made: then each scan is compared byte for byte with
    the input bytes that walk searched (C memcmp instead of a second regex pass over
    megabytes); any difference falls back to the search.
    """
    layout = walk(data, policy, check_size=False, proven=_take_scan_proofs(data))
    icc_ok = icc_profile_segments(data, layout) if policy.keep_icc else frozenset()
    live = live_tables(data, layout)
    found: list[str] = []
    for seg in layout.segments:
        marker = seg.marker
        if marker in (DQT, DHT) and sum(e - s for s, e in live[seg.start]) != (
                seg.payload_end - seg.payload_start):
            found.append(f"unused tables in a {marker_name(marker)} segment")
            continue
        if marker in STRUCTURAL or marker == EOI:
            continue
        payload = data[seg.payload_start : seg.end]
        if marker == APP0 and len(payload) == 14 and payload.startswith(JFIF_ID) \
                and payload[12:14] == b"\0\0":
            continue
        if marker == APP14 and len(payload) == 12 and payload.startswith(ADOBE_ID):
            continue
        if marker == APP1 and policy.orientation == Orientation.KEEP \
                and payload.startswith(EXIF_ID) and is_orientation_only(payload[6:]):
            continue
        if seg.start in icc_ok:
            continue
        found.append(identify(marker, payload))
    if layout.padding:
        found.append(f"{layout.padding} padding bytes between segments")
    trailer = len(data) - layout.eoi_end
    if trailer > 0:
        found.append(f"{trailer} bytes after the end of the image")
    return found


@register
class JPEG(ImageFormat):
    """JPEG / JFIF / EXIF / MPO files, cleaned losslessly (T.81 Annex B segment walk)."""

    name = "jpeg"
    media_type = "image/jpeg"
    extension = ".jpg"
    label = "JPEG"

    @staticmethod
    def sniff(head: bytes) -> bool:
        return head[:3] == b"\xff\xd8\xff"

    def inspect(self, data: bytes, report: Report) -> None:
        layout = walk(data, Policy(), check_size=False)
        describe(data, layout, report)
        orientation = exif_orientation(data, layout)
        if orientation != 1:
            report.notes.append(f"the picture is displayed {ORIENTATION_WORDS[orientation]}")

    def clean(self, data: bytes, policy: Policy, report: Report) -> CleanOutput:
        return strip_segments(data, policy, report)

    def leftovers(self, data: bytes, policy: Policy) -> list[str]:
        return leftovers(data, policy)
