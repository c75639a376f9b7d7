"""Describe Photoshop image resources and IPTC-IIM records in plain words.

STUB: the inspect work fills this in. Signatures are fixed.
"""

from __future__ import annotations

from core.report import Category, Report


def describe_photoshop(irb: bytes, report: Report) -> None:
    """Add findings for Photoshop image resource blocks (``8BIM`` records)."""
    report.add(Category.DESCRIPTION, "Photoshop/IPTC metadata", f"{len(irb)} bytes")


def describe_iim(iim: bytes, report: Report) -> None:
    """Add findings for IPTC-IIM records (author, city, keywords, ...)."""
    report.add(Category.DESCRIPTION, "IPTC metadata", f"{len(iim)} bytes")
