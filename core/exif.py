"""Describe EXIF (CIPA DC-008) in plain words: where, when, which device.

STUB: the inspect work fills this in. Signature is fixed.
"""

from __future__ import annotations

from core.report import Category, Report


def describe(tiff: bytes, report: Report, *, source: str = "EXIF") -> None:
    """Add findings for an EXIF block (a TIFF structure, without the ``Exif\\0\\0`` header)."""
    report.add(Category.OTHER, f"{source} metadata", f"{len(tiff)} bytes")
