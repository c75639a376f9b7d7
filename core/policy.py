"""What a caller may choose about cleaning, and the limits that protect the cleaner."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Orientation(StrEnum):
    """What to do with the EXIF Orientation tag (TIFF 6.0 tag 274)."""

    KEEP = "keep"  # lossless: a fresh EXIF block holding only Orientation (when not 1)
    BAKE = "bake"  # rotate/mirror the pixels, re-encode, no tag
    DROP = "drop"  # drop the tag; the picture may then display rotated


@dataclass(frozen=True)
class Policy:
    """Cleaning options. The defaults are what a person sharing a photo wants."""

    orientation: Orientation = Orientation.KEEP
    keep_icc: bool = False
    max_bytes: int = 50_000_000
    max_pixels: int = 100_000_000
    max_segments: int = 20_000
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        object.__setattr__(self, "orientation", Orientation(self.orientation))
        for name in ("max_bytes", "max_pixels", "max_segments"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
