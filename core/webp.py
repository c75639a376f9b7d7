"""WebP, cleaned losslessly at chunk level (RIFF container, Google's WebP Container Spec).

The container: ``RIFF`` + file size (little-endian 32 bits, counted from the
``WEBP`` FourCC on) + ``WEBP``, then chunks: FourCC, payload size (LE 32), the
payload, and one zero pad byte when the size is odd. A simple file holds one
``VP8 `` (lossy) or ``VP8L`` (lossless) chunk; the extended format starts with
``VP8X`` (feature flags and canvas size) and may add ``ICCP``, ``ANIM``,
``ANMF`` (frames, holding ALPH/VP8/VP8L and possibly unknown chunks), ``ALPH``,
``EXIF``, ``XMP `` and unknown chunks.

Allow-list: VP8, VP8L, VP8X, ALPH, one ANIM, ANMF (with only ALPH/VP8/VP8L
inside), and a simple file's first chunk alone;
ICCP only when the policy keeps colour profiles. EXIF, XMP, ICCP and unknown
chunks go, and so do the bytes after the RIFF size. The VP8X flags and the
RIFF size are rewritten; pad bytes are written as zeros (never copied). The
only EXIF ever written holds the Orientation alone; a simple file that needs
it gets a VP8X chunk (canvas = bitstream size, alpha flag from the bitstream).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from core import exif, icc, pixels, xmp
from core.chunk_tools import (
    describe_safely,
    describe_trailing,
    note_orientation,
    orientation_to_write,
)
from core.errors import MalformedImage, TooLarge
from core.formats import CleanOutput, ImageFormat, check_pixels, register
from core.policy import Orientation, Policy
from core.report import Category, Report, human_size
from core.tiff_ifd import build_orientation_exif, is_orientation_only, read_orientation

# VP8X feature flags (Container spec, "Extended File Format"): |Rsv|I|L|E|X|A|R|
FLAG_ICC = 0x20
FLAG_ALPHA = 0x10
FLAG_EXIF = 0x08
FLAG_XMP = 0x04
FLAG_ANIMATION = 0x02

IMAGE_CHUNKS = frozenset({b"VP8 ", b"VP8L", b"ALPH"})
#: Top-level chunks the output may carry (ICCP and EXIF are decided by the policy).
KEEP = frozenset({b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"})
ANMF_HEADER = 16
#: ANIM: background colour (4) + loop count (2); VP8X: flags (1) + reserved (3) + canvas (6).
FIXED_SIZES = {b"ANIM": 6, b"VP8X": 10}

@dataclass(frozen=True)
class Chunk:
    """One RIFF chunk, by offsets into the file (no copy of its payload)."""

    fourcc: bytes
    start: int  # offset of the FourCC
    size: int  # payload size, without the pad byte

    @property
    def payload_start(self) -> int:
        return self.start + 8

    @property
    def payload_end(self) -> int:
        return self.start + 8 + self.size

    @property
    def name(self) -> str:
        """The FourCC for messages, or a placeholder when it is not printable ASCII."""
        if all(0x20 <= b < 0x7F for b in self.fourcc) and self.fourcc.strip():
            return self.fourcc.decode("ascii").strip()
        return "unnamed"


@dataclass
class Parsed:
    """A checked WebP: its top-level chunks, the ANMF sub-chunks, sizes, where RIFF ends."""

    chunks: list[Chunk]
    frames: dict[int, list[Chunk]]  # ANMF chunk start -> its sub-chunks
    riff_end: int
    width: int
    height: int
    extended: bool
    bitstream_alpha: bool  # a simple VP8L file's alpha_is_used bit
    bad_padding: int  # how many pad bytes were not zero (only leftovers cares)


def _chunks(data: bytes, pos: int, end: int, policy: Policy, count: list[int],
            where: str) -> tuple[list[Chunk], int]:
    """The chunks between ``pos`` and ``end``; a missing last pad byte is tolerated."""
    chunks: list[Chunk] = []
    bad_padding = 0
    while pos < end:
        if pos + 8 > end:
            raise MalformedImage(f"the WebP ends in the middle of a chunk header{where}")
        fourcc, size = struct.unpack_from("<4sI", data, pos)
        chunk = Chunk(fourcc, pos, size)
        if chunk.payload_end > end:
            raise MalformedImage(
                f"the WebP ends in the middle of a chunk ({chunk.name} is cut short){where}"
            )
        count[0] += 1
        if count[0] > policy.max_segments:
            raise TooLarge(f"the WebP has more than {policy.max_segments} chunks")
        chunks.append(chunk)
        pos = chunk.payload_end
        if size & 1 and pos < end:
            bad_padding += data[pos] != 0
            pos += 1
    return chunks, bad_padding


def _vp8_size(payload: bytes) -> tuple[int, int]:
    """VP8 key frame header (RFC 6386 section 9.1): start code 9D 01 2A, 14-bit sizes."""
    if len(payload) < 10 or payload[3:6] != b"\x9d\x01\x2a" or payload[0] & 1:
        raise MalformedImage("the WebP's VP8 image data does not start with a key frame")
    w, h = struct.unpack_from("<HH", payload, 6)
    return w & 0x3FFF, h & 0x3FFF


def _vp8l_header(payload: bytes) -> tuple[int, int, bool]:
    """VP8L header (WebP Lossless Bitstream spec 3.1): 0x2F, 14+14 bits size-1, alpha, version."""
    if len(payload) < 5 or payload[0] != 0x2F:
        raise MalformedImage("the WebP's VP8L image data has no lossless signature")
    (bits,) = struct.unpack_from("<I", payload, 1)
    if bits >> 29:
        raise MalformedImage("the WebP's VP8L image data has an unknown version")
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)


def parse(data: bytes, policy: Policy) -> Parsed:
    """Check the RIFF header and every chunk; refuse images over the pixel limit."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise MalformedImage("this is not a WebP file (no RIFF/WEBP header)")
    (riff_size,) = struct.unpack_from("<I", data, 4)
    riff_end = 8 + riff_size
    if riff_size < 4:
        raise MalformedImage("the WebP's RIFF header gives an impossible size")
    if riff_end > len(data):
        raise MalformedImage("the WebP ends in the middle of a chunk (the file is cut short)")
    count = [0]
    chunks, bad_padding = _chunks(data, 12, riff_end, policy, count, "")
    if not chunks:
        raise MalformedImage("the WebP holds no image")
    first = chunks[0]
    # Headers only: never copy a whole bitstream (memory stays near the input's size).
    first_payload = data[first.payload_start : min(first.payload_end, first.payload_start + 32)]
    alpha = False
    if first.fourcc == b"VP8X":
        if first.size < 10:
            raise MalformedImage("the WebP's VP8X chunk is too short")
        width = 1 + int.from_bytes(first_payload[4:7], "little")
        height = 1 + int.from_bytes(first_payload[7:10], "little")
        extended = True
    elif first.fourcc == b"VP8 ":
        width, height = _vp8_size(first_payload)
        extended = False
    elif first.fourcc == b"VP8L":
        width, height, alpha = _vp8l_header(first_payload)
        extended = False
    else:
        raise MalformedImage("the WebP does not start with an image chunk (VP8, VP8L or VP8X)")
    check_pixels(width, height, policy, "WebP")
    frames: dict[int, list[Chunk]] = {}
    for chunk in chunks[1:]:
        if chunk.fourcc in FIXED_SIZES and chunk.size != FIXED_SIZES[chunk.fourcc]:
            raise MalformedImage(f"the WebP's {chunk.name} chunk has an impossible size")
        if chunk.fourcc == b"VP8X":
            raise MalformedImage("the WebP has a second VP8X header chunk")
        if chunk.fourcc == b"ANMF":
            if not extended or chunk.size < ANMF_HEADER:
                raise MalformedImage("the WebP has a damaged animation frame (ANMF)")
            fx, fy, fw, fh = (
                int.from_bytes(data[chunk.payload_start + i : chunk.payload_start + i + 3],
                               "little") for i in (0, 3, 6, 9))
            fw, fh = fw + 1, fh + 1
            check_pixels(fw, fh, policy, "WebP animation frame")
            if 2 * fx + fw > width or 2 * fy + fh > height:
                raise MalformedImage("a WebP animation frame lies outside the canvas")
            subs, bad = _chunks(data, chunk.payload_start + ANMF_HEADER, chunk.payload_end,
                                policy, count, " (inside an animation frame)")
            frames[chunk.start] = subs
            bad_padding += bad
    if not any(c.fourcc in (b"VP8 ", b"VP8L", b"ANMF") for c in chunks):
        raise MalformedImage("the WebP holds no image data (no VP8, VP8L or ANMF chunk)")
    if extended:
        still = next((c for c in chunks if c.fourcc in (b"VP8 ", b"VP8L")), None)
        if still is not None:
            payload = data[still.payload_start : min(still.payload_end, still.payload_start + 32)]
            size = _vp8_size(payload) if still.fourcc == b"VP8 " else _vp8l_header(payload)[:2]
            if size != (width, height):
                raise MalformedImage("the WebP's canvas size does not match its image")
    return Parsed(chunks, frames, riff_end, width, height, extended, alpha, bad_padding)


def image_chunks(p: Parsed) -> list[Chunk]:
    """The top-level chunks a decoder reads: a simple file is its first chunk alone
    (Container spec, "Simple File Format": a single VP8/VP8L chunk); an extended file
    has one VP8X and at most one ANIM, and every other chunk is judged by its name."""
    if not p.extended:
        return p.chunks[:1]
    seen_anim = False
    out = []
    for chunk in p.chunks:
        if chunk.fourcc == b"ANIM":
            if seen_anim:
                continue
            seen_anim = True
        out.append(chunk)
    return out


def alph_payload(payload: bytes | memoryview, width: int, height: int) -> bytes:
    """ALPH as decoders read it (Container spec, "Alpha"): the header byte with its
    reserved bits zeroed, and, for raw (uncompressed) alpha, exactly width x height
    values; bytes past them are never read."""
    if not payload:
        return b""
    header = payload[0]
    rest = payload[1 : 1 + width * height] if header & 0x03 == 0 else payload[1:]
    return bytes([header & 0x3F]) + bytes(rest)


def _frame_size(payload: bytes | memoryview) -> tuple[int, int]:
    """An ANMF frame's width and height (24-bit minus-one fields at bytes 6 and 9)."""
    return (1 + int.from_bytes(payload[6:9], "little"),
            1 + int.from_bytes(payload[9:12], "little"))


def _payload(data: bytes, chunk: Chunk) -> bytes:
    return data[chunk.payload_start : chunk.payload_end]


def _exif_tiff(payload: bytes) -> bytes:
    """The EXIF chunk should hold a bare TIFF structure; many writers add ``Exif\\0\\0``."""
    return payload[6:] if payload.startswith(b"Exif\x00\x00") else payload


def _chunk_bytes(fourcc: bytes, payload: bytes | memoryview) -> list[bytes | memoryview]:
    """A chunk as pieces to join: header, payload, zero pad byte when the size is odd."""
    parts: list[bytes | memoryview] = [fourcc + struct.pack("<I", len(payload)), payload]
    if len(payload) & 1:
        parts.append(b"\x00")
    return parts


def _describe(chunk: Chunk, payload: bytes, report: Report) -> None:
    if chunk.fourcc == b"EXIF":
        describe_safely(exif.describe, _exif_tiff(payload), report, "EXIF metadata", source="EXIF")
    elif chunk.fourcc == b"XMP ":
        describe_safely(xmp.describe, payload, report, "XMP metadata")
    elif chunk.fourcc == b"ICCP":
        describe_safely(icc.describe, payload, report, "Colour profile")
    else:
        report.add(Category.OTHER, "Unknown chunk", f"“{chunk.name}”, {human_size(chunk.size)}")


@register
class WebP(ImageFormat):
    """WebP (simple, extended, animated): keep the image chunks, drop every other one."""

    name = "webp"
    media_type = "image/webp"
    extension = ".webp"
    label = "WebP"

    @staticmethod
    def sniff(head: bytes) -> bool:
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"

    def _read(self, data: bytes, policy: Policy, report: Report) -> tuple[Parsed, int | None]:
        p = parse(data, policy)
        report.width, report.height = p.width, p.height
        orientation: int | None = None
        for chunk in p.chunks:
            if chunk.fourcc in KEEP:
                for sub in p.frames.get(chunk.start, ()):
                    if sub.fourcc not in IMAGE_CHUNKS:
                        _describe(sub, _payload(data, sub), report)
                continue
            payload = _payload(data, chunk)
            _describe(chunk, payload, report)
            if chunk.fourcc == b"EXIF" and orientation is None:
                orientation = read_orientation(_exif_tiff(payload))
        if p.riff_end < len(data):
            describe_trailing(memoryview(data)[p.riff_end :], report, "the end of the WebP")
        return p, orientation

    def inspect(self, data: bytes, report: Report) -> None:
        self._read(data, Policy(), report)

    def clean(self, data: bytes, policy: Policy, report: Report) -> CleanOutput:
        p, orientation = self._read(data, policy, report)
        keep_orientation = orientation_to_write(orientation, policy)
        view = memoryview(data)
        body: list[bytes | memoryview] = []
        icc_kept = False
        vp8x_index = 0
        read = image_chunks(p)
        for chunk in p.chunks:
            if chunk not in read:
                report.removed_piece(f"WebP {chunk.name} chunk", chunk.size + 8 + (chunk.size & 1))
                continue
            payload = view[chunk.payload_start : chunk.payload_end]
            if (chunk.fourcc == b"ICCP" and policy.keep_icc and p.extended and not icc_kept
                    and icc.is_profile(payload)):
                icc_kept = True
                body += _chunk_bytes(chunk.fourcc, payload)
            elif chunk.fourcc == b"VP8X":
                body.append(b"")  # placeholder: the flags are known only at the end
                vp8x_index = len(body) - 1
            elif chunk.fourcc == b"ANMF":
                frame: list[bytes | memoryview] = [
                    payload[:15], bytes([payload[15] & 0x03])  # reserved flag bits zeroed
                ]
                for sub in p.frames[chunk.start]:
                    sub_payload = view[sub.payload_start : sub.payload_end]
                    if sub.fourcc == b"ALPH":
                        frame += _chunk_bytes(b"ALPH", alph_payload(sub_payload,
                                                                   *_frame_size(payload)))
                    elif sub.fourcc in IMAGE_CHUNKS:
                        frame += _chunk_bytes(sub.fourcc, sub_payload)
                    else:
                        report.removed_piece(f"WebP {sub.name} chunk in a frame", sub.size + 8)
                body += _chunk_bytes(b"ANMF", b"".join(frame))
            elif chunk.fourcc == b"ALPH":
                alph = alph_payload(payload, p.width, p.height)
                body += _chunk_bytes(b"ALPH", alph)
                if len(alph) < chunk.size:
                    report.removed_piece("bytes after the WebP's alpha values", chunk.size
                                         - len(alph))
            elif chunk.fourcc in KEEP:
                body += _chunk_bytes(chunk.fourcc, payload)
            else:
                report.removed_piece(f"WebP {chunk.name} chunk", chunk.size + 8 + (chunk.size & 1))
        if p.riff_end < len(data):
            report.removed_piece("data after the WebP's RIFF container", len(data) - p.riff_end)
        if keep_orientation != 1:
            body += _chunk_bytes(b"EXIF", build_orientation_exif(keep_orientation))
        if p.extended:
            old = data[p.chunks[0].payload_start : p.chunks[0].payload_start + 10]
            flags = old[0] & (FLAG_ALPHA | FLAG_ANIMATION)
            flags |= (FLAG_ICC if icc_kept else 0) | (FLAG_EXIF if keep_orientation != 1 else 0)
            body[vp8x_index] = b"".join(_chunk_bytes(b"VP8X", bytes([flags, 0, 0, 0]) + old[4:]))
        elif keep_orientation != 1:
            flags = FLAG_EXIF | (FLAG_ALPHA if p.bitstream_alpha else 0)
            canvas = (p.width - 1).to_bytes(3, "little") + (p.height - 1).to_bytes(3, "little")
            body.insert(0, b"".join(_chunk_bytes(b"VP8X", bytes([flags, 0, 0, 0]) + canvas)))
            report.notes.append("a VP8X header chunk was added to carry the orientation")
        if policy.keep_icc and icc_kept:
            report.kept.append("the colour profile (ICCP), as asked")
        if policy.orientation == Orientation.BAKE and orientation is not None and (
                orientation != 1):
            return pixels.rebuild(data, policy, report, orientation=orientation)
        note_orientation(orientation, policy, report)
        size = 4 + sum(len(b) for b in body)
        out = b"".join([b"RIFF", struct.pack("<I", size), b"WEBP", *body])
        return CleanOutput(out, "webp", p.width, p.height, lossless=True,
                           orientation=keep_orientation)

    def leftovers(self, data: bytes, policy: Policy) -> list[str]:
        p = parse(data, policy)
        left: list[str] = []
        has_icc = has_exif = False
        read = image_chunks(p)
        for chunk in p.chunks:
            if chunk not in read:
                left.append(f"WebP {chunk.name} chunk no decoder reads")
                continue
            if chunk.fourcc == b"ALPH":
                alph = _payload(data, chunk)
                if alph_payload(alph, p.width, p.height) != alph:
                    left.append("WebP ALPH chunk with bytes no decoder reads")
            if chunk.fourcc in KEEP:
                for sub in p.frames.get(chunk.start, ()):
                    if sub.fourcc not in IMAGE_CHUNKS:
                        left.append(f"WebP {sub.name} chunk in a frame")
                    elif sub.fourcc == b"ALPH":
                        alph = _payload(data, sub)
                        size = _frame_size(_payload(data, chunk))
                        if alph_payload(alph, *size) != alph:
                            left.append("WebP ALPH chunk with bytes no decoder reads")
            elif (chunk.fourcc == b"ICCP" and policy.keep_icc and not has_icc
                  and icc.is_profile(_payload(data, chunk))):
                has_icc = True
            elif (chunk.fourcc == b"EXIF" and not has_exif
                  and policy.orientation == Orientation.KEEP
                  and is_orientation_only(_payload(data, chunk))):
                has_exif = True
            else:
                left.append(f"WebP {chunk.name} chunk")
        if p.extended:
            vp8x = _payload(data, p.chunks[0])
            flags = vp8x[0]
            if flags & ~(FLAG_ALPHA | FLAG_ANIMATION | FLAG_ICC | FLAG_EXIF) or vp8x[1:4] != (
                b"\x00\x00\x00"
            ) or len(vp8x) != 10:
                left.append("VP8X reserved bits or XMP flag set")
            if bool(flags & FLAG_ICC) != has_icc or bool(flags & FLAG_EXIF) != has_exif:
                left.append("VP8X flags that do not match the chunks")
        elif has_icc or has_exif:
            left.append("a simple WebP with EXIF/ICCP chunks")
        if p.bad_padding:
            left.append(f"{p.bad_padding} non-zero pad bytes")
        if p.riff_end < len(data):
            left.append(f"{len(data) - p.riff_end} bytes after the RIFF container")
        return left
