"""PNG and APNG, cleaned losslessly at chunk level (ISO/IEC 15948, W3C PNG 3rd edition).

PNG spec 5.2: a file is the 8-byte signature ``89 50 4E 47 0D 0A 1A 0A`` then
chunks. Spec 5.3: a chunk is Length (4 bytes, big-endian, at most 2^31-1),
Chunk Type (4 ASCII letters), Chunk Data, and a CRC-32 computed over the type
and the data. The image data (IDAT, and APNG's fdAT) are copied untouched, so
the output decodes to exactly the input's pixels, with one exception: each zlib
stream is inflated (counted, not kept) and bytes after its end, or inflated
bytes past what the scanlines need (spec 10.1, 13.7), are cut, since decoders
never read them and they can carry anything.

Allow-list: IHDR, PLTE, IDAT, IEND, tRNS, gAMA, cHRM, sRGB, sBIT, and the APNG
chunks acTL, fcTL, fdAT; iCCP only when the policy keeps colour profiles. Every
other chunk goes (tEXt, zTXt, iTXt with XMP, eXIf, tIME, pHYs, private and
unknown chunks), and so does every byte after IEND. The one EXIF block ever
written is a fresh eXIf chunk holding only the Orientation (the 3rd edition
orders eXIf before IDAT; it is placed right after IHDR).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from core import exif, icc, iptc, pixels, xmp
from core.chunk_tools import (
    MAX_SHOWN_TEXT,
    InflateBudget,
    describe_safely,
    describe_trailing,
    note_orientation,
    orientation_to_write,
    readable,
)
from core.errors import MalformedImage, TooLarge
from core.formats import CleanOutput, ImageFormat, check_pixels, register
from core.policy import Orientation, Policy
from core.report import Category, Report, human_size
from core.tiff_ifd import build_orientation_exif, is_orientation_only, read_orientation

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG spec 5.3: "a 4-byte unsigned integer ... restricted to 2^31-1 bytes".
MAX_CHUNK_LENGTH = 2**31 - 1

#: Chunks the output may carry (critical chunks, colour/transparency, APNG).
KEEP = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT",
     b"acTL", b"fcTL", b"fdAT"}
)
#: Allowed data sizes of the kept chunks (spec 11.2, 11.3; APNG 1.0): nothing can hide in them.
KEPT_SIZES: dict[bytes, range] = {
    b"IHDR": range(13, 14),
    b"IEND": range(0, 1),
    b"PLTE": range(3, 769),
    b"tRNS": range(0, 257),
    b"gAMA": range(4, 5),
    b"cHRM": range(32, 33),
    b"sRGB": range(1, 2),
    b"sBIT": range(1, 5),
    b"acTL": range(8, 9),
    b"fcTL": range(26, 27),
}
#: PNG spec 11.2.2 (IHDR), Table 11.1: the allowed bit depths of each colour type.
BIT_DEPTHS: dict[int, tuple[int, ...]] = {
    0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16),
}
#: Standard ancillary chunks that say nothing about the person (removed without a finding).
HARMLESS = frozenset(
    {b"bKGD", b"hIST", b"sPLT", b"oFFs", b"pCAL", b"sCAL", b"sTER", b"cICP", b"mDCV",
     b"cLLI", b"gIFg", b"gIFx", b"fRAc", b"dSIG"}
)

#: PNG spec 11.3.4.2: the predefined text keywords, in plain words.
TEXT_KEYWORDS: dict[str, tuple[Category, str]] = {
    "title": (Category.DESCRIPTION, "Title"),
    "author": (Category.PEOPLE, "Author"),
    "description": (Category.DESCRIPTION, "Description"),
    "copyright": (Category.PEOPLE, "Copyright"),
    "creation time": (Category.TIME, "Creation time"),
    "software": (Category.SOFTWARE, "Software"),
    "disclaimer": (Category.DESCRIPTION, "Disclaimer"),
    "warning": (Category.DESCRIPTION, "Warning"),
    "source": (Category.DEVICE, "Device that made it"),
    "comment": (Category.COMMENT, "Comment"),
}
XMP_KEYWORD = "XML:com.adobe.xmp"
#: ImageMagick's hex "Raw profile type ..." texts larger than this are not decoded.
MAX_RAW_PROFILE = 8_000_000

@dataclass(frozen=True)
class Chunk:
    """One chunk, by offsets into the file (no copy of its data)."""

    type: bytes
    start: int  # offset of the Length field
    length: int

    @property
    def data_start(self) -> int:
        return self.start + 8

    @property
    def end(self) -> int:
        """Offset just past the CRC."""
        return self.start + 12 + self.length

    @property
    def name(self) -> str:
        return self.type.decode("ascii")


@dataclass
class Walk:
    """A checked chunk list: the chunks up to IEND and where IEND ends."""

    chunks: list[Chunk]
    end: int  # offset just past IEND's CRC
    width: int
    height: int


def walk(data: bytes, policy: Policy) -> Walk:
    """Check the signature, every chunk's length, name and CRC, and the pixel limit.

    Raises MalformedImage (damaged file) or TooLarge (chunk count, pixels).
    """
    if not data.startswith(SIGNATURE):
        raise MalformedImage("this is not a PNG file (its signature is wrong)")
    view = memoryview(data)
    size = len(data)
    pos = len(SIGNATURE)
    chunks: list[Chunk] = []
    width = height = 0
    unpack = struct.unpack_from
    while True:
        if pos == size:
            raise MalformedImage("the PNG ends before its IEND chunk (the file is cut short)")
        if pos + 12 > size:
            raise MalformedImage("the PNG ends in the middle of a chunk")
        length, ctype = unpack(">I4s", data, pos)
        if length > MAX_CHUNK_LENGTH:
            raise MalformedImage("the PNG has a chunk longer than the PNG spec allows")
        if not ctype.isalpha():
            raise MalformedImage("the PNG has a chunk with an invalid name (the file is damaged)")
        end = pos + 12 + length
        if end > size:
            raise MalformedImage(
                f"the PNG ends in the middle of a chunk ({ctype.decode()} is cut short)"
            )
        (crc,) = unpack(">I", data, end - 4)
        if zlib.crc32(view[pos + 4 : end - 4]) != crc:
            raise MalformedImage(
                f"the PNG's {ctype.decode()} chunk has a bad checksum (CRC): the file is damaged"
            )
        if len(chunks) >= policy.max_segments:
            raise TooLarge(f"the PNG has more than {policy.max_segments} chunks")
        chunk = Chunk(ctype, pos, length)
        if not chunks:
            if ctype == b"CgBI":
                raise MalformedImage("this is an Apple-optimised PNG (CgBI) that only Apple"
                                     " software can read; export it as a normal PNG first")
            if ctype != b"IHDR" or length != 13:
                raise MalformedImage("the PNG does not start with its IHDR header chunk")
            width, height, depth, colour, compression, filtering, interlace = unpack(
                ">IIBBBBB", data, pos + 8)
            check_pixels(width, height, policy, "PNG")
            if depth not in BIT_DEPTHS.get(colour, ()) or compression or filtering or (
                    interlace > 1):
                raise MalformedImage("the PNG's header (IHDR) describes an impossible image")
        elif ctype == b"IHDR":
            raise MalformedImage("the PNG has a second IHDR header chunk")
        allowed = KEPT_SIZES.get(ctype)
        if allowed is not None and length not in allowed:
            raise MalformedImage(f"the PNG's {ctype.decode()} chunk has an impossible size")
        chunks.append(chunk)
        pos = end
        if ctype == b"IEND":
            break
    if not any(c.type == b"IDAT" for c in chunks):
        raise MalformedImage("the PNG has no image data (no IDAT chunk)")
    return Walk(chunks, pos, width, height)


# --- the image data streams (spec 10.1, 12.3; APNG 1.0 fdAT) ----------------------------

#: Channels per colour type (spec 11.2.2, Table 11.1).
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Adam7 passes (spec 8.2): x start, y start, x step, y step.
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))
#: How much inflated data one step of the stream check produces (memory stays bounded).
INFLATE_STEP = 1 << 20


def filtered_size(width: int, height: int, bits_per_pixel: int, interlaced: bool) -> int:
    """Bytes of filtered scanlines an image of this size needs (spec 7.3, 8.2): no more."""
    def rows(w: int, h: int) -> int:
        return h * (1 + (w * bits_per_pixel + 7) // 8) if w and h else 0

    if not interlaced:
        return rows(width, height)
    return sum(rows((width - xs + dx - 1) // dx if width > xs else 0,
                    (height - ys + dy - 1) // dy if height > ys else 0)
               for xs, ys, dx, dy in ADAM7)


@dataclass
class Stream:
    """One zlib datastream of image data: the IDAT chunks, or one APNG frame's fdAT chunks.

    ``skip`` is 0 for IDAT and 4 for fdAT (its sequence number precedes the data).
    ``keep`` (after :func:`check_stream`) maps a chunk's start to how many of its data
    bytes belong to the stream; ``excess`` is True when the stream inflates to more
    than the picture needs.
    """

    chunks: list[Chunk]
    skip: int
    needed: int
    keep: dict[int, int]
    excess: bool = False

    @property
    def trailing(self) -> bool:
        """Bytes after the end of the zlib stream (decoders ignore them)."""
        return any(self.keep[c.start] != c.length - self.skip for c in self.chunks)


def image_streams(data: bytes, w: Walk) -> list[Stream]:
    """The IDAT stream and each APNG frame's fdAT stream, with the size each must inflate to."""
    depth, colour, interlace = data[24], data[25], data[28]
    bpp = depth * CHANNELS[colour]
    streams: list[Stream] = []
    idat = Stream([c for c in w.chunks if c.type == b"IDAT"], 0,
                  filtered_size(w.width, w.height, bpp, bool(interlace)), {})
    streams.append(idat)
    frame: Stream | None = None
    for c in w.chunks:
        if c.type == b"fcTL":
            fw, fh, fx, fy = struct.unpack_from(">IIII", data, c.data_start + 4)
            if fx + fw > w.width or fy + fh > w.height:  # APNG 1.0, fcTL
                raise MalformedImage("a PNG animation frame lies outside the picture")
            frame = Stream([], 4, filtered_size(fw, fh, bpp, bool(interlace)), {})
            streams.append(frame)
        elif c.type == b"fdAT":
            if frame is None or c.length < 4:
                raise MalformedImage("the PNG has animation data (fdAT) outside a frame")
            frame.chunks.append(c)
    return [s for s in streams if s.chunks]


def check_stream(data: bytes, stream: Stream) -> Stream:
    """Inflate ``stream`` (counting, never keeping, the output); note where it ends.

    Stops as soon as the stream gives more than the picture needs (``excess``).
    A stream that is cut short keeps all its bytes: nothing follows it.
    """
    view = memoryview(data)
    inflater = zlib.decompressobj()
    total = 0
    for c in stream.chunks:
        piece = view[c.data_start + stream.skip : c.data_start + c.length]
        if inflater.eof or stream.excess:
            stream.keep[c.start] = 0
            continue
        buf: bytes | memoryview = piece
        while buf and not inflater.eof:
            total += len(inflater.decompress(buf, INFLATE_STEP))
            buf = inflater.unconsumed_tail
            if total > stream.needed:
                stream.excess = True
                break
        stream.keep[c.start] = len(piece) - len(inflater.unused_data) if inflater.eof \
            else len(piece)
    return stream


def recompressed(data: bytes, stream: Stream) -> bytes:
    """The stream's first ``needed`` inflated bytes, compressed again (the pixels are equal)."""
    view = memoryview(data)
    inflater, deflater = zlib.decompressobj(), zlib.compressobj()
    left = stream.needed
    out: list[bytes] = []
    for c in stream.chunks:
        buf: bytes | memoryview = view[c.data_start + stream.skip : c.data_start + c.length]
        while buf and left and not inflater.eof:
            raw = inflater.decompress(buf, min(left, INFLATE_STEP))
            left -= len(raw)
            out.append(deflater.compress(raw))
            buf = inflater.unconsumed_tail
    out.append(deflater.flush())
    return b"".join(out)


def colour_body(data: bytes, w: Walk, chunk: Chunk) -> bytes | None:
    """PLTE/tRNS cut to the bytes a decoder reads (spec 11.2.3, 11.3.2.1); None: none.

    PLTE holds whole 3-byte entries, and only type 3 needs it (for types 2 and 6 it
    is a mere suggestion for quantisers, 11.2.3); tRNS holds one 2-byte grey (colour type 0), one
    6-byte RGB (type 2) or at most one alpha byte per palette entry (type 3), and is
    not allowed with an alpha channel. Longer chunks are cut where Pillow stops
    reading (libpng ignores them whole), so nothing rides after the colours.
    """
    body = _body(data, chunk)
    colour = data[25]
    if chunk.type == b"PLTE":  # only a palette image (type 3) is drawn from its palette
        return body[: len(body) - len(body) % 3] or None if colour == 3 else None
    if colour == 3:
        plte = next((c for c in w.chunks if c.type == b"PLTE"), None)
        return body[: plte.length // 3] if plte is not None else None
    size = {0: 2, 2: 6}.get(colour, 0)
    return body[:size] if size and len(body) >= size else None


def _body(data: bytes, chunk: Chunk) -> bytes:
    return data[chunk.data_start : chunk.data_start + chunk.length]


def _exif_tiff(body: bytes) -> bytes:
    """eXIf holds a TIFF structure; some writers wrongly prefix the JPEG ``Exif\\0\\0``."""
    return body[6:] if body.startswith(b"Exif\x00\x00") else body


def _describe_text(keyword: str, raw: bytes, encoding: str, report: Report) -> None:
    """A text chunk's keyword and value as a finding (or the XMP/EXIF it carries).

    Only the start of a long text is decoded: the report shows a few hundred characters.
    """
    if keyword == XMP_KEYWORD:
        describe_safely(xmp.describe, raw, report, "XMP metadata")
        return
    if keyword.lower().startswith("raw profile type ") and len(raw) <= MAX_RAW_PROFILE:
        if _describe_raw_profile(keyword[17:].lower(), raw.decode("latin-1"), report):
            return
    value = raw[: 4 * MAX_SHOWN_TEXT].decode(encoding, "replace")
    category, label = TEXT_KEYWORDS.get(keyword.lower(), (None, ""))
    if category is None:
        if keyword.lower().startswith("date:"):
            category, label = Category.TIME, f"Date ({readable(keyword, 40)})"
        else:
            category, label = Category.COMMENT, f"Text “{readable(keyword, 79)}”"
    report.add(category, label, readable(value) or "(empty)", keyword=readable(keyword, 79))


def _keyword(body: bytes) -> tuple[str, bytes]:
    """PNG spec 11.3.4.2: a 1-79 byte Latin-1 keyword, a NUL, then the rest."""
    keyword, _, rest = body.partition(b"\x00")
    return keyword[:79].decode("latin-1"), rest


def _describe_raw_profile(kind: str, value: str, report: Report) -> bool:
    """ImageMagick's "Raw profile type exif/xmp/iptc/8bim/icc": hex after two header lines."""
    lines = value.strip("\n").split("\n", 2)
    if len(lines) < 3:
        return False
    try:
        blob = bytes.fromhex("".join(lines[2].split()))
    except ValueError:
        return False
    if kind in ("exif", "app1") and blob.startswith(b"Exif\x00\x00"):
        describe_safely(exif.describe, blob[6:], report, "EXIF metadata", source="EXIF")
    elif kind in ("exif",) and blob[:2] in (b"II", b"MM"):
        describe_safely(exif.describe, blob, report, "EXIF metadata", source="EXIF")
    elif kind in ("xmp", "app1"):
        describe_safely(xmp.describe, blob, report, "XMP metadata")
    elif kind in ("icc", "icm"):
        describe_safely(icc.describe, blob, report, "Colour profile")
    elif kind in ("8bim", "iptc") and blob.startswith(b"8BIM"):
        describe_safely(iptc.describe_photoshop, blob, report, "Photoshop/IPTC metadata")
    elif kind == "iptc":
        describe_safely(iptc.describe_iim, blob, report, "IPTC metadata")
    else:
        return False
    return True


def describe_chunk(ctype: bytes, body: bytes, report: Report, budget: InflateBudget) -> None:
    """Add findings for one chunk that cleaning drops (PNG spec 11.3)."""
    if ctype == b"tEXt":
        keyword, text = _keyword(body)
        _describe_text(keyword, text, "latin-1", report)
    elif ctype in (b"zTXt", b"iTXt"):
        keyword, rest = _keyword(body)
        if ctype == b"zTXt":
            compressed, method, encoding = b"\x01", rest[:1], "latin-1"
            text = rest[1:]
        else:
            compressed, method, encoding = rest[:1], rest[1:2], "utf-8"
            _language, _, rest = rest[2:].partition(b"\x00")
            _translated, _, text = rest.partition(b"\x00")
        if compressed == b"\x01":
            inflated = budget.inflate(text) if method == b"\x00" else None
            if inflated is None:
                report.add(Category.COMMENT, f"Compressed text “{readable(keyword, 79)}”",
                           f"{human_size(len(body))}, too large or damaged to read",
                           keyword=readable(keyword, 79))
                return
            text = inflated
        _describe_text(keyword, text, encoding, report)
    elif ctype == b"eXIf":
        describe_safely(exif.describe, _exif_tiff(body), report, "EXIF metadata", source="EXIF")
    elif ctype == b"iCCP":
        name, _, rest = body.partition(b"\x00")
        profile = budget.inflate(rest[1:]) if rest[:1] == b"\x00" else None
        if profile is None:
            label = readable(name[:79].decode("latin-1"), 79)
            report.add(Category.COLOUR_PROFILE, "Colour profile",
                       f"“{label}” (too large or damaged to read)")
        else:
            describe_safely(icc.describe, profile, report, "Colour profile")
    elif ctype == b"tIME" and len(body) == 7:
        y, mo, d, h, mi, s = struct.unpack(">HBBBBB", body)
        report.add(Category.TIME, "Last modified",
                   f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d} UTC")
    elif ctype == b"pHYs" and len(body) == 9:
        x, y, unit = struct.unpack(">IIB", body)
        if unit == 1:
            value = f"{x} x {y} pixels per metre ({round(x * 0.0254)} dpi)"
        else:
            value = f"pixel aspect ratio {x}:{y}"
        report.add(Category.OTHER, "Pixel density", value)
    elif ctype not in HARMLESS:
        kind = "Private chunk" if ctype[1:2].islower() else "Unknown chunk"
        report.add(Category.OTHER, kind, f"“{ctype.decode()}”, {human_size(len(body))}")


#: The profile name every kept iCCP chunk gets (spec 11.3.2.3: a 1-79 byte keyword that
#: only names the profile, free text a writer could fill with anything).
ICCP_NAME = b"ICC profile"
#: The most a kept colour profile may inflate to.
MAX_ICC_PROFILE = 16_000_000


def iccp_profile(body: bytes) -> bytes | None:
    """The profile an iCCP chunk holds (spec 11.3.2.3), or None unless it is exactly one.

    Name, NUL, compression method 0, then a zlib stream that must end the chunk
    and inflate to one whole ICC profile (:func:`core.icc.is_profile`).
    """
    _name, sep, rest = body.partition(b"\x00")
    if not sep or rest[:1] != b"\x00":
        return None
    inflater = zlib.decompressobj()
    try:
        profile = inflater.decompress(rest[1:], MAX_ICC_PROFILE)
    except zlib.error:
        return None
    if not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        return None
    return profile if icc.is_profile(profile) else None


def rebuilt_iccp(body: bytes) -> bytes | None:
    """A fresh iCCP chunk: fixed name, the profile alone, compressed again; None if unusable."""
    profile = iccp_profile(body)
    if profile is None:
        return None
    return _make_chunk(b"iCCP", ICCP_NAME + b"\x00\x00" + zlib.compress(profile, 9))


def _make_chunk(ctype: bytes, body: bytes) -> bytes:
    """PNG spec 5.3: length, type, data, CRC-32 over type and data."""
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(
        ">I", zlib.crc32(ctype + body)
    )


@register
class PNG(ImageFormat):
    """PNG/APNG: keep the chunks that make the picture, drop every other one."""

    name = "png"
    media_type = "image/png"
    extension = ".png"
    label = "PNG"

    @staticmethod
    def sniff(head: bytes) -> bool:
        return head.startswith(SIGNATURE)

    def _read(self, data: bytes, policy: Policy, report: Report) -> tuple[Walk, int | None]:
        """Walk the chunks, fill the report's findings; return the walk and the orientation."""
        w = walk(data, policy)
        report.width, report.height = w.width, w.height
        budget = InflateBudget()
        orientation: int | None = None
        for chunk in w.chunks:
            if chunk.type in KEEP:
                continue
            body = _body(data, chunk)
            describe_chunk(chunk.type, body, report, budget)
            if chunk.type == b"eXIf" and orientation is None:
                orientation = read_orientation(_exif_tiff(body))
        if w.end < len(data):
            describe_trailing(memoryview(data)[w.end :], report, "the end of the PNG (IEND)")
        return w, orientation

    def inspect(self, data: bytes, report: Report) -> None:
        self._read(data, Policy(), report)

    def clean(self, data: bytes, policy: Policy, report: Report) -> CleanOutput:
        w, orientation = self._read(data, policy, report)
        keep_orientation = orientation_to_write(orientation, policy)
        view = memoryview(data)
        out: list[bytes | memoryview] = [SIGNATURE]
        icc_kept = False
        rewritten = self._image_data(data, w, report)
        for chunk in w.chunks:
            if chunk.start in rewritten:
                out.append(rewritten[chunk.start])
                continue
            if chunk.type == b"iCCP" and policy.keep_icc and not icc_kept:
                iccp = rebuilt_iccp(_body(data, chunk))
                if iccp is not None:
                    icc_kept = True
                    out.append(iccp)
                    continue
            if chunk.type in (b"PLTE", b"tRNS"):
                body = colour_body(data, w, chunk)
                if body is None:
                    report.removed_piece(f"PNG {chunk.name} chunk", chunk.length + 12)
                elif len(body) < chunk.length:
                    out.append(_make_chunk(chunk.type, body))
                    report.removed_piece(f"bytes after the colours in the PNG {chunk.name}"
                                         " chunk", chunk.length - len(body))
                else:
                    out.append(view[chunk.start : chunk.end])
                continue
            if chunk.type in KEEP:
                out.append(view[chunk.start : chunk.end])
                if chunk.type == b"IHDR" and keep_orientation != 1:
                    out.append(_make_chunk(b"eXIf", build_orientation_exif(keep_orientation)))
            else:
                report.removed_piece(f"PNG {chunk.name} chunk", chunk.length + 12)
        if w.end < len(data):
            report.removed_piece("data after the PNG's IEND chunk", len(data) - w.end)
        if icc_kept:
            report.kept.append("the colour profile (iCCP), as asked")
        if policy.orientation == Orientation.BAKE and orientation is not None and (
                orientation != 1):
            return pixels.rebuild(data, policy, report, orientation=orientation)
        note_orientation(orientation, policy, report)
        return CleanOutput(b"".join(out), "png", w.width, w.height, lossless=True,
                           orientation=keep_orientation)

    @staticmethod
    def _image_data(data: bytes, w: Walk, report: Report) -> dict[int, bytes]:
        """Image data chunks that must change, by start: bytes after the end of a zlib
        stream are cut (the chunk stays, shorter, so APNG sequence numbers still run);
        a stream that inflates to more than the picture needs is compressed again
        from exactly the bytes it needs. Both are places decoders never look."""
        rewritten: dict[int, bytes] = {}
        for stream in image_streams(data, w):
            check_stream(data, stream)
            if not (stream.excess or stream.trailing):
                continue
            if stream.excess:
                fresh = recompressed(data, stream)
                report.removed_piece("hidden data inside the PNG's compressed image data",
                                     sum(c.length - stream.skip for c in stream.chunks))
                keep = {c.start: b"" for c in stream.chunks}
                keep[stream.chunks[0].start] = fresh
            else:
                keep = {c.start: _body(data, c)[stream.skip : stream.skip + stream.keep[c.start]]
                        for c in stream.chunks}
                report.removed_piece("data after the end of the PNG's compressed image data",
                                     sum(c.length - stream.skip - stream.keep[c.start]
                                         for c in stream.chunks))
            for c in stream.chunks:
                prefix = _body(data, c)[: stream.skip]
                rewritten[c.start] = _make_chunk(c.type, prefix + keep[c.start])
        return rewritten

    def leftovers(self, data: bytes, policy: Policy) -> list[str]:
        w = walk(data, policy)
        left: list[str] = []
        for stream in image_streams(data, w):
            check_stream(data, stream)
            if stream.excess:
                left.append("more compressed image data than the picture needs")
            if stream.trailing:
                left.append("bytes after the end of the compressed image data")
        exif_seen = icc_seen = False
        for chunk in w.chunks:
            if chunk.type in (b"PLTE", b"tRNS") and colour_body(data, w, chunk) != _body(
                    data, chunk):
                left.append(f"PNG {chunk.name} chunk with bytes no decoder reads")
                continue
            if chunk.type in KEEP:
                continue
            if chunk.type == b"iCCP" and policy.keep_icc and not icc_seen:
                body = _body(data, chunk)
                if body.startswith(ICCP_NAME + b"\x00\x00") and iccp_profile(body) is not None:
                    icc_seen = True
                    continue
            if (chunk.type == b"eXIf" and not exif_seen
                    and policy.orientation == Orientation.KEEP
                    and is_orientation_only(_body(data, chunk))):
                exif_seen = True
                continue
            left.append(f"PNG {chunk.name} chunk")
        if w.end < len(data):
            left.append(f"{len(data) - w.end} bytes after IEND")
        return left
