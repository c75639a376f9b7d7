"""What a photo was giving away, in words a non-expert understands.

A :class:`Report` holds structured :class:`Finding` objects (grouped by
:class:`Category`: where, when, which device, ...), the list of pieces that
were removed, and what was kept. ``Report.text()`` renders it as plain
language; ``Report.to_dict()`` as JSON-ready data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Category(StrEnum):
    LOCATION = "location"
    TIME = "time"
    DEVICE = "device"
    PEOPLE = "people"
    SOFTWARE = "software"
    DESCRIPTION = "description"
    THUMBNAIL = "thumbnail"
    MAKER_NOTES = "maker_notes"
    COMMENT = "comment"
    COLOUR_PROFILE = "colour_profile"
    TRAILING_DATA = "trailing_data"
    EXTRA_IMAGE = "extra_image"
    OTHER = "other"


#: Headings in the order a person cares about them.
HEADINGS: dict[Category, str] = {
    Category.LOCATION: "Where the photo was taken",
    Category.TIME: "When it was taken",
    Category.DEVICE: "Which device took it",
    Category.PEOPLE: "Who took it or owns it",
    Category.DESCRIPTION: "Descriptions, captions and keywords",
    Category.SOFTWARE: "Software and edit history",
    Category.THUMBNAIL: "Hidden preview images",
    Category.EXTRA_IMAGE: "Extra images",
    Category.TRAILING_DATA: "Data hidden after the picture",
    Category.MAKER_NOTES: "Camera maker's private notes",
    Category.COMMENT: "Comments",
    Category.COLOUR_PROFILE: "Colour profile",
    Category.OTHER: "Other metadata",
}


@dataclass
class Finding:
    """One thing the photo gives away, e.g. ``GPS position: 48.858370, 2.294481``."""

    category: Category
    label: str
    value: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Removed:
    """One structural piece that cleaning removed (a JPEG segment, a PNG chunk...)."""

    what: str
    size: int


@dataclass
class Report:
    """Everything inspect found and clean removed, kept or changed."""

    format: str = ""
    media_type: str = ""
    width: int | None = None
    height: int | None = None
    findings: list[Finding] = field(default_factory=list)
    removed: list[Removed] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self, category: Category, label: str, value: str, **data: Any
    ) -> Finding:
        """Record a finding, ignoring exact duplicates (EXIF and XMP often repeat)."""
        for f in self.findings:
            if f.category == category and f.label == label and f.value == value:
                return f
        finding = Finding(Category(category), label, value, dict(data))
        self.findings.append(finding)
        return finding

    def removed_piece(self, what: str, size: int) -> None:
        self.removed.append(Removed(what, size))

    def by_category(self, category: Category) -> list[Finding]:
        return [f for f in self.findings if f.category == category]

    @property
    def is_revealing(self) -> bool:
        """True when the photo carried anything beyond the pixels."""
        return bool(self.findings or self.removed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """A plain-language account, one heading per kind of finding."""
        lines: list[str] = []
        size = f", {self.width}x{self.height} pixels" if self.width and self.height else ""
        lines.append(f"{self.format.upper() or 'Image'}{size}.")
        if not self.findings:
            lines.append("No revealing metadata was found in this photo.")
        else:
            for category, heading in HEADINGS.items():
                found = self.by_category(category)
                if not found:
                    continue
                lines.append("")
                lines.append(f"{heading}:")
                for f in found:
                    lines.append(f"  - {f.label}: {f.value}")
        if self.removed:
            total = sum(r.size for r in self.removed)
            lines.append("")
            lines.append(
                f"Removed {len(self.removed)} piece(s) of metadata, {human_size(total)} in all."
            )
        for kept in self.kept:
            lines.append(f"Kept: {kept}")
        for note in self.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines)


#: Longest text a single finding shows; metadata strings can be megabytes long.
MAX_TEXT = 300


def printable(text: str | bytes, limit: int = MAX_TEXT) -> str:
    """Text safe to show a person: control characters dropped, whitespace folded, capped.

    Metadata comes from strangers: it may hold terminal escape sequences, NULs,
    bidirectional overrides or megabytes of padding.
    """
    if isinstance(text, bytes | bytearray):
        raw = bytes(text[: limit * 4])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    text = text[: limit * 4]
    kept = [ch if ch.isprintable() else " " for ch in text]
    out = " ".join("".join(kept).split())
    if len(out) > limit:
        out = out[: limit - 1].rstrip() + "\u2026"
    return out


def human_size(n: int) -> str:
    """``2_100_000`` -> ``'2.1 MB'`` (decimal units, as people read them)."""
    if n < 1000:
        return f"{n} bytes"
    for unit in ("KB", "MB", "GB"):
        n_f = n / 1000
        if n_f < 1000 or unit == "GB":
            return f"{n_f:.1f} {unit}"
        n = int(n_f)
    raise AssertionError("unreachable")
