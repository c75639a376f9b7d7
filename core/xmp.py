"""Describe an XMP packet (ISO 16684-1) in plain words. Parsed with defusedxml.

STUB: the inspect work fills this in. Signature is fixed.
"""

from __future__ import annotations

from core.report import Category, Report


def describe(packet: bytes, report: Report) -> None:
    """Add findings for an XMP packet (the XML bytes)."""
    report.add(Category.SOFTWARE, "XMP metadata", f"{len(packet)} bytes")
