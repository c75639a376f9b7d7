"""Rebuild an image from its pixels alone (the re-encoding path).

Used by formats that cannot be cleaned losslessly (TIFF, HEIC, AVIF, BMP, ...)
and by every format when the policy bakes the orientation into the pixels.

CONTRACT (fixed; the implementation is being written):

    rebuild(data, policy, report, *, orientation=1, prefer=None) -> CleanOutput

decode ``data`` with Pillow (pixel limit checked before decoding), apply
``orientation`` (1..8) to the pixels, convert to sRGB when the input has an
ICC profile (unless ``policy.keep_icc``), and encode a brand-new image from the
pixels alone in format ``prefer`` (a registry name) or the input's own format,
falling back to PNG (or JPEG for photos) when no encoder exists, saying so in
``report.notes``.
"""

from __future__ import annotations

from core.formats import CleanOutput
from core.policy import Policy
from core.report import Report


def rebuild(
    data: bytes,
    policy: Policy,
    report: Report,
    *,
    orientation: int = 1,
    prefer: str | None = None,
) -> CleanOutput:
    raise NotImplementedError("core.pixels.rebuild is not written yet")
