"""The format registry: one :class:`ImageFormat` subclass per format, found by magic number.

Like Pillow's plugin registry: each format module (``core/jpeg.py``,
``core/png.py``, ...) defines a subclass and decorates it with
:func:`register`. :func:`sniff` picks the handler from the first bytes of the
data alone, never from a file name or a declared media type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from core.errors import TooLarge, UnsupportedFormat
from core.policy import Policy
from core.report import Report

#: How many leading bytes sniffing looks at.
SNIFF_BYTES = 64


@dataclass(frozen=True)
class CleanOutput:
    """What a format's ``clean`` produced, before the output check."""

    data: bytes
    format: str  # registry name of the output's format ("jpeg", "png", ...)
    width: int  # stored pixel size, before any orientation tag is applied
    height: int
    lossless: bool  # True when rewritten at container level, pixels untouched
    orientation: int = 1  # the Orientation tag the output carries (1: none)


class ImageFormat(ABC):
    """One image format: what it accepts (sniff) and what may survive cleaning."""

    #: registry name, e.g. "jpeg"
    name: ClassVar[str]
    #: IANA media type of this format's output, e.g. "image/jpeg"
    media_type: ClassVar[str]
    #: file extension with the dot, e.g. ".jpg"
    extension: ClassVar[str]
    #: a human name for messages, e.g. "JPEG"
    label: ClassVar[str]

    @staticmethod
    @abstractmethod
    def sniff(head: bytes) -> bool:
        """True when ``head`` (the first SNIFF_BYTES bytes) starts a file of this format."""

    @abstractmethod
    def inspect(self, data: bytes, report: Report) -> None:
        """Fill ``report`` with what the file gives away (findings, size, ...)."""

    @abstractmethod
    def clean(self, data: bytes, policy: Policy, report: Report) -> CleanOutput:
        """Return the cleaned file; fill ``report`` as :meth:`inspect` does, plus what was
        removed and kept. Raise a :class:`core.errors.CleanError` on bad input."""

    @abstractmethod
    def leftovers(self, data: bytes, policy: Policy) -> list[str]:
        """Parse ``data`` (an output of :meth:`clean`) again and name every piece that is
        not on this format's allow-list. An empty list means the file is clean. Raise
        :class:`core.errors.CleanError` when the data is not structurally whole."""


_REGISTRY: list[type[ImageFormat]] = []


def register(cls: type[ImageFormat]) -> type[ImageFormat]:
    """Class decorator: add a format to the registry (order = sniffing order)."""
    if cls not in _REGISTRY:
        _REGISTRY.append(cls)
    return cls


def registered() -> list[type[ImageFormat]]:
    return list(_REGISTRY)


def by_name(name: str) -> ImageFormat:
    for cls in _REGISTRY:
        if cls.name == name:
            return cls()
    raise UnsupportedFormat(f"no handler for the {name} format")


#: Things people upload that are not images, so the error can say what it is.
NOT_IMAGES: list[tuple[bytes, int, str]] = [
    (b"%PDF-", 0, "a PDF document"),
    (b"PK\x03\x04", 0, "a ZIP archive (or an office document)"),
    (b"\x7fELF", 0, "a program (ELF executable)"),
    (b"MZ", 0, "a Windows program"),
    (b"ID3", 0, "an MP3 audio file"),
    (b"OggS", 0, "an Ogg audio/video file"),
    (b"fLaC", 0, "a FLAC audio file"),
    (b"\x1a\x45\xdf\xa3", 0, "a Matroska/WebM video"),
    (b"Rar!", 0, "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive"),
    (b"\x1f\x8b", 0, "a gzip-compressed file"),
    (b"8BPS", 0, "a Photoshop document"),
    (b"\xd0\xcf\x11\xe0", 0, "an old Microsoft Office document"),
    (b"WAVE", 8, "a WAV audio file"),
    (b"AVI ", 8, "an AVI video"),
]


def describe_non_image(head: bytes) -> str | None:
    """Name what the bytes are when they are a well-known non-image, else None."""
    for magic, offset, what in NOT_IMAGES:
        if head[offset : offset + len(magic)] == magic:
            return what
    if head[4:8] == b"ftyp":
        return "a video or other ISO media file, not a still image"
    text = head.lstrip()[:16].lower()
    if text.startswith((b"<svg", b"<?xml")):
        return "an SVG/XML file (vector drawings are not supported)"
    if text.startswith((b"<!doctype", b"<html")):
        return "a web page (HTML)"
    return None


def sniff(data: bytes) -> ImageFormat:
    """The handler for ``data``, chosen by magic number; raise UnsupportedFormat otherwise."""
    head = bytes(data[:SNIFF_BYTES])
    for cls in _REGISTRY:
        if cls.sniff(head):
            return cls()
    what = describe_non_image(head)
    if what:
        raise UnsupportedFormat(f"this is {what}, not an image")
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        raise UnsupportedFormat("this is a text file, not an image")
    raise UnsupportedFormat("this is not an image format onionclean recognises")


def check_pixels(width: int, height: int, policy: Policy, label: str = "image") -> None:
    """Refuse images over the pixel limit before decoding them (decompression bombs)."""
    if width <= 0 or height <= 0:
        from core.errors import MalformedImage

        raise MalformedImage(f"the {label} says it is {width}x{height} pixels")
    if width * height > policy.max_pixels:
        raise TooLarge(
            f"the {label} is {width}x{height} = {width * height / 1e6:.1f} megapixels;"
            f" the limit is {policy.max_pixels / 1e6:.0f} megapixels"
        )
