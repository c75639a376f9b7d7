"""What a photo was giving away, in words a non-expert understands.

A :class:`Report` holds structured :class:`Finding` objects (grouped by
:class:`Category`: where, when, which device, ...), the list of pieces that
were removed, and what was kept. ``Report.text()`` renders it as plain
language; ``Report.to_dict()`` as JSON-ready data.
"""

from __future__ import annotations

import re
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
    #: True for the report of :func:`core.clean` (the text then speaks in the past tense:
    #: what the photo revealed and what was removed); False for :func:`core.inspect`.
    cleaned: bool = False

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
        """A plain-language account for a non-expert.

        The first line answers the most important question (does the photo say
        where it was taken?), a second one says what else it gives away; then one
        heading per kind of finding (where, when, which device, ...), what was
        removed (in human units), kept, and notes.
        """
        lines: list[str] = [self.location_summary()]
        size = f", {self.width}x{self.height} pixels" if self.width and self.height else ""
        head = f"{self.format.upper() or 'Image'}{size}."
        others = [
            SHORT_HEADINGS[c] for c in HEADINGS
            if c != Category.LOCATION and self.by_category(c)
        ]
        if others:
            verb = "revealed" if self.cleaned else "reveals"
            also = " also" if self.by_category(Category.LOCATION) else ""
            head += f" It{also} {verb} " + _join(others) + "."
        lines.append(head)
        for category, heading in HEADINGS.items():
            found = self.by_category(category)
            if not found:
                continue
            lines.append("")
            lines.append(f"{heading}:")
            lines.extend(f"  - {label}: {value}" for label, value in _grouped(category, found))
        if self.removed:
            lines.append("")
            lines.append(self.removed_summary())
        if self.kept or self.notes:
            lines.append("")
        for kept in self.kept:
            lines.append(f"Kept: {kept}")
        for note in self.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines)

    def location_summary(self) -> str:
        """One sentence: did the photo give away where it was taken?"""
        verb = "revealed" if self.cleaned else "reveals"
        where = self.by_category(Category.LOCATION)
        for f in where:
            if "latitude" in f.data and "longitude" in f.data:
                lat, lon = float(f.data["latitude"]), float(f.data["longitude"])
                ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
                text = (
                    f"WARNING: this photo {verb} exactly where it was taken: "
                    f"{abs(lat):.6f}\u00b0 {ns}, {abs(lon):.6f}\u00b0 {ew}"
                )
                if f.data.get("map_url"):
                    text += f" (map: {f.data['map_url']})"
                return text + "."
        places = [str(f.data["place"]) for f in where if f.data.get("place")]
        if places:
            return f"WARNING: this photo {verb} a place: {', '.join(dict.fromkeys(places))}."
        if where:
            return f"This photo {verb} location data, but no usable position."
        if not self.findings:
            return "No revealing metadata was found in this photo."
        return "This photo does not say where it was taken (no GPS position, no place names)."

    def removed_summary(self) -> str:
        """``Removed 3 pieces of metadata (13.2 KB): EXIF (11.2 KB), XMP (2.0 KB).``"""
        total = sum(r.size for r in self.removed)
        sizes: dict[str, int] = {}
        for r in self.removed:
            sizes[r.what] = sizes.get(r.what, 0) + r.size
        parts = [f"{what} ({human_size(n)})" for what, n in list(sizes.items())[:10]]
        if len(sizes) > 10:
            parts.append(f"{len(sizes) - 10} more kinds")
        n = len(self.removed)
        did = "Removed" if self.cleaned else "Cleaning removes"
        return (
            f"{did} {n} piece{'s' if n != 1 else ''} of metadata ({human_size(total)}): "
            + ", ".join(parts) + "."
        )


#: What each heading gives away, as part of a sentence ("It also reveals ...").
SHORT_HEADINGS: dict[Category, str] = {
    Category.LOCATION: "where it was taken",
    Category.TIME: "when it was taken",
    Category.DEVICE: "which device took it",
    Category.PEOPLE: "who took it or owns it",
    Category.DESCRIPTION: "descriptions or keywords",
    Category.SOFTWARE: "the software and edit history",
    Category.THUMBNAIL: "a hidden preview image",
    Category.EXTRA_IMAGE: "extra images",
    Category.TRAILING_DATA: "data hidden after the picture",
    Category.MAKER_NOTES: "the camera maker's private notes",
    Category.COMMENT: "comments",
    Category.COLOUR_PROFILE: "a colour profile",
    Category.OTHER: "other metadata",
}


#: The order times are shown in: capture first, then edits.
TIME_ORDER = ["Taken", "Digitised", "Created", "Satellite (GPS) time", "Last changed"]


def _grouped(category: Category, found: list[Finding]) -> list[tuple[str, str]]:
    """Lines for one heading: equal values told by several tags become one line."""
    if category == Category.TIME:
        def rank(f: Finding) -> int:
            return TIME_ORDER.index(f.label) if f.label in TIME_ORDER else len(TIME_ORDER)

        found = sorted(found, key=rank)
        # "on 2005-09-07 at 15:09:51" says less than "...:51.054 (UTC-07:00)": show the latter.
        found = [
            f for f in found
            if not any(g.label == f.label and _time_key(g.value) == _time_key(f.value)
                       and len(g.value) > len(f.value) for g in found)
        ]
    labels: dict[str, list[str]] = {}
    for f in found:
        names = labels.setdefault(f.value, [])
        if f.label not in names:
            names.append(f.label)
    return [(" / ".join(names), value) for value, names in labels.items()]


def _time_key(value: str) -> str:
    """A time told without its fraction of a second and its time zone."""
    return re.sub(r"\.\d+", "", value).split(" (UTC")[0]


def _join(items: list[str]) -> str:
    """``['a', 'b', 'c']`` -> ``'a, b and c'``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


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
