"""Describe an ICC colour profile (ICC.1:2022): who made it, for which device.

STUB: the inspect work fills this in. Signature is fixed.
"""

from __future__ import annotations

from core.report import Category, Report


def describe(profile: bytes, report: Report) -> None:
    """Add a finding for an embedded ICC profile."""
    report.add(Category.COLOUR_PROFILE, "Colour profile", f"{len(profile)} bytes")
