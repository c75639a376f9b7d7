"""Small helpers shared by the chunk-level format plugins (PNG, WebP, GIF).

Bounded decompression of text and profile blocks (a zTXt chunk of a few
kilobytes can inflate to gigabytes), readable renderings of strangers' text,
and a plain-language description of data hidden after the end of a picture.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from typing import Any

from core.policy import Orientation, Policy
from core.report import Category, Report, human_size

log = logging.getLogger("onionclean.core")

#: The most a single compressed block (zTXt, iTXt, iCCP) may inflate to for the report.
MAX_INFLATE_ONE = 4_000_000
#: The most all compressed blocks of one file may inflate to together.
MAX_INFLATE_TOTAL = 16_000_000
#: How much of a text value a finding shows.
MAX_SHOWN_TEXT = 300

#: EXIF Orientation values (TIFF 6.0 tag 274) as a person would say how the photo is stored.
ORIENTATION_WORDS = {
    1: "upright", 2: "mirrored", 3: "upside down", 4: "upside down and mirrored",
    5: "mirrored and turned 90° anticlockwise", 6: "turned 90° clockwise",
    7: "mirrored and turned 90° clockwise", 8: "turned 90° anticlockwise",
}


def describe_safely(describe: Callable[..., None], blob: bytes, report: Report, what: str,
                    **kwargs: Any) -> None:
    """Run a shared describer (EXIF, XMP, ICC, IPTC) on a block that cleaning drops anyway.

    The report is best effort: a block too damaged to describe is named as such, and
    never stops the cleaning of the rest of the file.
    """
    try:
        describe(blob, report, **kwargs)
    except Exception as e:  # noqa: BLE001 - strangers' bytes; the block is dropped regardless
        log.debug("unreadable %s block: %s", what, type(e).__name__)
        report.add(Category.OTHER, what, f"{human_size(len(blob))} that could not be read"
                   " (damaged)")


def orientation_to_write(orientation: int | None, policy: Policy) -> int:
    """The Orientation a lossless output carries: the input's (2..8) under KEEP, else 1."""
    if orientation is None or orientation == 1 or policy.orientation != Orientation.KEEP:
        return 1
    return orientation


def note_orientation(orientation: int | None, policy: Policy, report: Report) -> None:
    """Say in the report what happened to a non-trivial orientation."""
    if orientation is None or orientation == 1:
        return
    if policy.orientation == Orientation.KEEP:
        report.kept.append(f"the orientation ({ORIENTATION_WORDS[orientation]}), in a fresh"
                           " EXIF block holding nothing else")
    elif policy.orientation == Orientation.DROP:
        report.notes.append("the orientation tag was dropped as asked; the picture may now"
                            " display rotated or mirrored")


class InflateBudget:
    """How many inflated bytes the report may still spend on one file (decompression bombs).

    Cleaning never needs the inflated text (the chunk is dropped whole); only the
    report does, so past the budget the report says "too large to read" instead.
    """

    def __init__(self, total: int = MAX_INFLATE_TOTAL) -> None:
        self.left = total

    def inflate(self, data: bytes | memoryview, cap: int = MAX_INFLATE_ONE) -> bytes | None:
        """The zlib stream inflated, or None when it is damaged or would exceed the caps."""
        limit = min(cap, self.left)
        if limit <= 0:
            return None
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(data, limit)
        except zlib.error:
            return None
        self.left -= len(out)
        if inflater.unconsumed_tail or (len(out) >= limit and not inflater.eof):
            return None  # more to come than we allow: refuse, memory stays bounded
        return out


def readable(text: str, limit: int = MAX_SHOWN_TEXT) -> str:
    """``text`` without control characters, shortened to ``limit`` characters."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text[: limit + 1])
    cleaned = " ".join(cleaned.split())
    if len(text) > limit:
        cleaned = cleaned[:limit].rstrip() + "…"
    return cleaned


def decode_text(raw: bytes, encoding: str = "utf-8") -> str:
    """Bytes from a stranger as text: ``encoding`` first, Latin-1 when that fails."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        if e.start >= len(raw) - 3:  # only the last character was cut by a length limit
            return raw[: e.start].decode(encoding, "replace")
        return raw.decode("latin-1")


#: What a blob hidden after the end of a picture is, by its magic number.
_TRAILER_KINDS: list[tuple[bytes, int, str]] = [
    (b"\xff\xd8\xff", 0, "a JPEG image"),
    (b"\x89PNG", 0, "a PNG image"),
    (b"GIF8", 0, "a GIF image"),
    (b"PK\x03\x04", 0, "a ZIP archive"),
    (b"%PDF", 0, "a PDF document"),
    (b"ftyp", 4, "a video (ISO media, e.g. MP4/MOV)"),
    (b"RIFF", 0, "a RIFF file (WebP/WAV/AVI)"),
]


def describe_trailing(blob: bytes | memoryview, report: Report, after: str) -> None:
    """Add a TRAILING_DATA finding for ``blob``, found after ``after`` (e.g. "the IEND chunk")."""
    head = bytes(blob[:16])
    kind = next((k for magic, off, k in _TRAILER_KINDS if head[off : off + len(magic)] == magic),
                None)
    if kind is None and not bytes(blob).strip(b"\x00"):
        kind = "padding (zero bytes)"
    what = f"{human_size(len(blob))} after {after}"
    if kind:
        what += f": {kind}"
    report.add(Category.TRAILING_DATA, "Data hidden after the picture", what, size=len(blob))
