"""GIF, cleaned losslessly at block level (GIF89a specification, CompuServe 1990).

GIF89a section 17-18: a Header (``GIF87a``/``GIF89a``), the Logical Screen
Descriptor and an optional Global Color Table, then blocks until the Trailer
(0x3B): Image Descriptors (0x2C, section 20) with an optional Local Color Table
and the LZW-coded Table Based Image Data as data sub-blocks (size byte + up to
255 bytes, ended by a zero-size block terminator, section 15), and Extensions
(0x21 + a label): Graphic Control (0xF9, section 23), Comment (0xFE, section
24), Plain Text (0x01, section 25), Application (0xFF, section 26).

Allow-list: header, screen descriptor, colour tables, images with their LZW
data (the codes copied untouched: the pixels cannot change; cut after the End of
Information code or the last pixel, and written in 255-byte sub-blocks), graphic control extensions
and the NETSCAPE2.0/ANIMEXTS1.0 loop extension, both rebuilt from their
values so nothing can hide in them; the ICC extension (``ICCRGBG1012``) only
when the policy keeps colour profiles. Comments, plain text, XMP and every
other application or unknown extension go, and so does every byte after the
trailer.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from core import icc, iptc, xmp
from core.chunk_tools import (
    MAX_SHOWN_TEXT,
    decode_text,
    describe_safely,
    describe_trailing,
    readable,
)
from core.errors import MalformedImage, TooLarge
from core.formats import CleanOutput, ImageFormat, check_pixels, register
from core.policy import Policy
from core.report import Category, Report, human_size

IMAGE_SEPARATOR = 0x2C
EXTENSION_INTRODUCER = 0x21
TRAILER = 0x3B
LABEL_GRAPHIC_CONTROL = 0xF9
LABEL_COMMENT = 0xFE
LABEL_PLAIN_TEXT = 0x01
LABEL_APPLICATION = 0xFF

LOOP_APPLICATIONS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")
ICC_APPLICATION = b"ICCRGBG1012"
XMP_APPLICATION = b"XMP DataXMP"
#: XMP spec part 3, 1.1.2: the "magic trailer" that makes raw XMP look like sub-blocks
#: (0x01, 0xFF down to 0x00) followed by the block terminator.
XMP_MAGIC_TRAILER = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
#: How much of a comment the report decodes (it shows a few hundred characters).
SHOWN_BYTES = 4 * MAX_SHOWN_TEXT


@dataclass
class Block:
    """One GIF block by offsets: ``kind`` is header/image/gce/comment/text/app/ext/trailer."""

    kind: str
    start: int
    end: int  # just past the block (after its terminator)
    label: int = 0
    app: bytes = b""  # application identifier + authentication code
    data_start: int = 0  # first sub-block (size byte) of the block's data
    values: dict[str, int] = field(default_factory=dict)


@dataclass
class Parsed:
    blocks: list[Block]
    end: int  # just past the trailer (or the last block when the trailer is missing)
    width: int
    height: int
    has_trailer: bool


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """Offset just past the block terminator of the data sub-blocks starting at ``pos``."""
    size = len(data)
    while True:
        if pos >= size:
            raise MalformedImage("the GIF ends in the middle of a block")
        n = data[pos]
        pos += 1 + n
        if n == 0:
            return pos


def sub_block_data(data: bytes, pos: int, end: int, limit: int | None = None) -> bytes:
    """The concatenated payload of the sub-blocks between ``pos`` and ``end``
    (only about the first ``limit`` bytes when given)."""
    parts = []
    total = 0
    while pos < end and (limit is None or total < limit):
        n = data[pos]
        parts.append(data[pos + 1 : pos + 1 + n])
        total += n
        pos += 1 + n
    return b"".join(parts)


def _color_table_size(packed: int) -> int:
    """GIF89a 18/20: a colour table holds 3 * 2^(size+1) bytes when its flag is set."""
    return 3 << ((packed & 0x07) + 1) if packed & 0x80 else 0


def parse(data: bytes, policy: Policy) -> Parsed:
    """Walk the blocks, checking every length; refuse images over the pixel limit."""
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        raise MalformedImage("this is not a GIF file (no GIF87a/GIF89a header)")
    width, height, packed = struct.unpack_from("<HHB", data, 6)
    if width and height:  # a 0x0 screen takes the first frame's size (checked below)
        check_pixels(width, height, policy, "GIF")
    pos = 13 + _color_table_size(packed)
    if pos > len(data):
        raise MalformedImage("the GIF ends in the middle of its colour table")
    blocks = [Block("header", 0, pos)]
    size = len(data)
    has_trailer = False
    while pos < size:
        if len(blocks) > policy.max_segments:
            raise TooLarge(f"the GIF has more than {policy.max_segments} blocks")
        intro = data[pos]
        if intro == TRAILER:
            blocks.append(Block("trailer", pos, pos + 1))
            pos += 1
            has_trailer = True
            break
        if intro == IMAGE_SEPARATOR:
            if pos + 10 > size:
                raise MalformedImage("the GIF ends in the middle of an image descriptor")
            _x, _y, w, h, ipacked = struct.unpack_from("<HHHHB", data, pos + 1)
            check_pixels(w, h, policy, "GIF frame")
            lzw = pos + 10 + _color_table_size(ipacked)
            if lzw + 1 > size:
                raise MalformedImage("the GIF ends in the middle of an image")
            end = _skip_sub_blocks(data, lzw + 1)
            blocks.append(Block("image", pos, end, data_start=lzw + 1))
        elif intro == EXTENSION_INTRODUCER:
            if pos + 2 > size:
                raise MalformedImage("the GIF ends in the middle of an extension")
            label = data[pos + 1]
            end = _skip_sub_blocks(data, pos + 2)
            block = Block("ext", pos, end, label=label, data_start=pos + 2)
            first = data[pos + 2]
            if label == LABEL_GRAPHIC_CONTROL:
                block.kind = "gce"
                if first == 4 and end >= pos + 8:
                    packed_gce, delay, transparent = struct.unpack_from("<BHB", data, pos + 3)
                    block.values = {"packed": packed_gce, "delay": delay,
                                    "transparent": transparent}
            elif label == LABEL_COMMENT:
                block.kind = "comment"
            elif label == LABEL_PLAIN_TEXT:
                block.kind = "text"
            elif label == LABEL_APPLICATION:
                block.kind = "app"
                block.app = data[pos + 3 : pos + 3 + first]
                block.data_start = pos + 3 + first
            blocks.append(block)
            pos = end
            continue
        else:
            raise MalformedImage(
                f"the GIF has an unknown block (starting with byte 0x{intro:02X}): it is damaged"
            )
        pos = end
    first = next((b for b in blocks if b.kind == "image"), None)
    if first is None:
        raise MalformedImage("the GIF holds no image")
    # Like Pillow (and browsers), a first frame reaching past the logical screen grows it.
    x, y, w, h = struct.unpack_from("<HHHH", data, first.start + 1)
    width, height = max(width, x + w), max(height, y + h)
    check_pixels(width, height, policy, "GIF")
    return Parsed(blocks, pos, width, height, has_trailer)


def lzw_data_end(lzw: bytes, min_code_size: int, pixels: int) -> int:
    """How many bytes of ``lzw`` the image uses (GIF89a appendix F, variable-length codes).

    Codes are read LSB first, ``min_code_size + 1`` bits wide, growing by one bit
    each time the code table reaches the next power of two (up to 12 bits); a Clear
    code resets the width. The image ends at the End of Information code, or at the
    code that fills its last pixel (plus an End of Information code right after it).
    Only the code widths and string lengths are followed, never the pixels. A code
    that no decoder could read raises :class:`MalformedImage`.
    """
    if not 2 <= min_code_size <= 11:
        raise MalformedImage("the GIF's image data has an impossible code size")
    clear = 1 << min_code_size
    eoi = clear + 1
    lengths = [1] * (eoi + 1) + [0] * (4096 - eoi - 1)
    size, nxt, prev = min_code_size + 1, eoi + 1, -1
    mask = (1 << size) - 1
    acc = nbits = i = done = 0
    n = len(lzw)
    filled = -1  # offset just after the code that filled the last pixel
    while True:
        while nbits < size:
            if i >= n:
                return n if filled < 0 else filled
            acc |= lzw[i] << nbits
            i += 1
            nbits += 8
        code = acc & mask
        acc >>= size
        nbits -= size
        if filled >= 0:
            return i if code == eoi else filled
        if code == clear:
            size, nxt, prev = min_code_size + 1, eoi + 1, -1
            mask = (1 << size) - 1
            continue
        if code == eoi:
            return i
        if code > nxt or (code == nxt and prev < 0) or code == nxt == 4096:
            raise MalformedImage("the GIF's image data is damaged (an impossible LZW code)")
        if prev >= 0 and nxt < 4096:
            lengths[nxt] = lengths[prev] + 1
            nxt += 1
            if nxt == 1 << size and size < 12:
                size += 1
                mask = (1 << size) - 1
        done += lengths[code]
        prev = code
        if done >= pixels:
            filled = i


def sub_blocks(payload: bytes) -> bytes:
    """``payload`` as data sub-blocks (GIF89a 15) of 255 bytes, the last shorter, then a
    block terminator: the one layout onionclean writes."""
    parts = [bytes([len(payload[i : i + 255])]) + payload[i : i + 255]
             for i in range(0, len(payload), 255)]
    return b"".join(parts) + b"\x00"


def canonical_image(data: bytes, block: Block) -> tuple[bytes, int]:
    """An image block with only the LZW data its pixels use, in canonical sub-blocks,
    and how many LZW bytes were left out.

    Bytes after the End of Information code (or after the last pixel) are never
    decoded, so anything could hide there; the pixels stay exactly the same.
    """
    _x, _y, w, h = struct.unpack_from("<HHHH", data, block.start + 1)
    lzw = sub_block_data(data, block.data_start, block.end)
    used = lzw_data_end(lzw, data[block.data_start - 1], w * h)
    return data[block.start : block.data_start] + sub_blocks(lzw[:used]), len(lzw) - used


#: The image blocks the last clean of this thread wrote, for the output check that
#: follows it: ``(output, {(offset, length)})``; popped on first use. canonical_image
#: is idempotent, so a block it just made need not be walked again (a GIF's LZW walk
#: runs in Python).
_CANONICAL = threading.local()


def _take_canonical(data: bytes) -> frozenset[tuple[int, int]]:
    slot = getattr(_CANONICAL, "slot", None)
    _CANONICAL.slot = None  # used once; never keeps the output past its check
    return slot[1] if slot is not None and slot[0] is data else frozenset()


def _loop_count(data: bytes, block: Block) -> int | None:
    """The NETSCAPE2.0 loop count: sub-block ID 1 holding a little-endian 16-bit count."""
    payload = sub_block_data(data, block.data_start, block.end)
    if len(payload) >= 3 and payload[0] == 1 and block.app in LOOP_APPLICATIONS:
        return int(struct.unpack_from("<H", payload, 1)[0])
    return None


def canonical_gce(values: dict[str, int]) -> bytes:
    """A Graphic Control Extension rebuilt from its values, reserved bits zeroed (23.c)."""
    return struct.pack("<BBBBHBB", EXTENSION_INTRODUCER, LABEL_GRAPHIC_CONTROL, 4,
                       values["packed"] & 0x1F, values["delay"], values["transparent"], 0)


def canonical_loop(app: bytes, count: int) -> bytes:
    """The looping application extension rebuilt from its loop count."""
    return struct.pack("<BBB11sBBHB", EXTENSION_INTRODUCER, LABEL_APPLICATION, 11, app, 3, 1,
                       count, 0)


def _holds_profile(data: bytes, block: Block) -> bool:
    """The ICCRGBG1012 extension's sub-blocks join into exactly one ICC profile."""
    return icc.is_profile(sub_block_data(data, block.data_start, block.end))


def _describe(data: bytes, block: Block, report: Report) -> None:
    """Findings for a block that cleaning drops."""
    if block.kind == "comment":
        text = decode_text(sub_block_data(data, block.data_start, block.end, SHOWN_BYTES))
        report.add(Category.COMMENT, "Comment", readable(text) or "(empty)")
    elif block.kind == "text":
        payload = sub_block_data(data, block.data_start, block.end, SHOWN_BYTES)
        text = decode_text(payload[12:])  # after the 12-byte text grid header (25.c)
        report.add(Category.COMMENT, "Text drawn over the picture", readable(text) or "(empty)")
    elif block.kind == "app":
        if block.app == XMP_APPLICATION:
            raw = data[block.data_start : block.end]
            if raw.endswith(XMP_MAGIC_TRAILER):
                raw = raw[: -len(XMP_MAGIC_TRAILER)]
            describe_safely(xmp.describe, raw, report, "XMP metadata")
        elif block.app in DESCRIBERS:
            describe, what = DESCRIBERS[block.app]
            describe_safely(describe, sub_block_data(data, block.data_start, block.end), report,
                            what)
        elif block.app not in LOOP_APPLICATIONS:
            ident = readable(block.app.decode("latin-1"), 11)
            report.add(Category.OTHER, "Application data",
                       f"“{ident}”, {human_size(block.end - block.start)}")
    elif block.kind == "ext":
        report.add(Category.OTHER, "Unknown extension",
                   f"type 0x{block.label:02X}, {human_size(block.end - block.start)}")


#: Application extensions whose data one of the shared describers reads.
DESCRIBERS: dict[bytes, tuple[Callable[[bytes, Report], None], str]] = {
    ICC_APPLICATION: (icc.describe, "Colour profile"),
    b"MGK8BIM0000": (iptc.describe_photoshop, "Photoshop/IPTC metadata"),  # ImageMagick
    b"MGKIPTC0000": (iptc.describe_iim, "IPTC metadata"),  # ImageMagick
}

PIECE_NAMES = {
    "comment": "GIF comment", "text": "GIF plain-text extension", "gce": "GIF graphic control",
    "ext": "GIF unknown extension",
}


def _piece_name(block: Block) -> str:
    if block.kind == "app":
        return f"GIF application extension {readable(block.app.decode('latin-1'), 11)}"
    return PIECE_NAMES.get(block.kind, f"GIF {block.kind} block")


@register
class GIF(ImageFormat):
    """GIF87a/GIF89a, animated or not: keep the images and their timing, drop the rest."""

    name = "gif"
    media_type = "image/gif"
    extension = ".gif"
    label = "GIF"

    @staticmethod
    def sniff(head: bytes) -> bool:
        return head[:6] in (b"GIF87a", b"GIF89a")

    def _read(self, data: bytes, policy: Policy, report: Report) -> Parsed:
        p = parse(data, policy)
        report.width, report.height = p.width, p.height
        for block in p.blocks:
            _describe(data, block, report)
        if p.end < len(data):
            describe_trailing(memoryview(data)[p.end :], report, "the end of the GIF")
        return p

    def inspect(self, data: bytes, report: Report) -> None:
        self._read(data, Policy(), report)

    def clean(self, data: bytes, policy: Policy, report: Report) -> CleanOutput:
        p = self._read(data, policy, report)
        view = memoryview(data)
        out: list[bytes | memoryview] = []
        pending_gce: int | None = None  # index in out of a GCE not yet followed by an image
        images: list[int] = []  # indexes in out of the (canonical) image blocks
        for block in p.blocks:
            keep: bytes | memoryview | None = None
            if block.kind in ("header", "trailer"):
                keep = view[block.start : block.end]
            elif block.kind == "image":
                keep, unused = canonical_image(data, block)
                if unused:
                    report.removed_piece("data after the end of a GIF frame's image data",
                                         unused)
            elif block.kind == "gce" and block.values:
                keep = canonical_gce(block.values)
            elif block.kind == "app" and block.app in LOOP_APPLICATIONS:
                count = _loop_count(data, block)
                keep = canonical_loop(block.app, count) if count is not None else None
            elif block.kind == "app" and block.app == ICC_APPLICATION and policy.keep_icc \
                    and _holds_profile(data, block):
                keep = view[block.start : block.end]
                report.kept.append("the colour profile (ICCRGBG1), as asked")
            if keep is None:
                report.removed_piece(_piece_name(block), block.end - block.start)
                if block.kind == "text" and pending_gce is not None:
                    # GIF89a 23: a GCE governs the next graphic block; that block (this
                    # plain text) is gone, so its GCE must not move onto the next image.
                    report.removed_piece("GIF graphic control", len(out[pending_gce]))
                    out[pending_gce] = b""
                    pending_gce = None
                continue
            if block.kind == "gce":
                pending_gce = len(out)
            elif block.kind == "image":
                pending_gce = None
            if block.kind == "image":
                images.append(len(out))
            out.append(keep)
        if not p.has_trailer:
            out.append(bytes([TRAILER]))
            report.notes.append("the GIF had no trailer; one was added")
        if p.end < len(data):
            report.removed_piece("data after the GIF's trailer", len(data) - p.end)
        cleaned = b"".join(out)
        offsets, pos = [], 0
        for part in out:
            offsets.append(pos)
            pos += len(part)
        _CANONICAL.slot = (cleaned, frozenset((offsets[i], len(out[i])) for i in images))
        return CleanOutput(cleaned, "gif", p.width, p.height, lossless=True)

    def leftovers(self, data: bytes, policy: Policy) -> list[str]:
        p = parse(data, policy)
        proven = _take_canonical(data)
        left: list[str] = []
        for block in p.blocks:
            if block.kind in ("header", "trailer"):
                continue
            raw = data[block.start : block.end]
            if block.kind == "image":
                if (block.start, len(raw)) not in proven and raw != canonical_image(data, block)[0]:
                    left.append("GIF image data with bytes its pixels do not use")
                continue
            if block.kind == "gce" and block.values and raw == canonical_gce(block.values):
                continue
            if block.kind == "app" and block.app in LOOP_APPLICATIONS:
                count = _loop_count(data, block)
                if count is not None and raw == canonical_loop(block.app, count):
                    continue
            if block.kind == "app" and block.app == ICC_APPLICATION and policy.keep_icc \
                    and _holds_profile(data, block):
                continue
            left.append(_piece_name(block))
        if not p.has_trailer:
            left.append("no GIF trailer")
        if p.end < len(data):
            left.append(f"{len(data) - p.end} bytes after the trailer")
        return left
