"""onionclean's cleaning core: bytes in, bytes out; no files, no network, no protocols.

    >>> import core
    >>> cleaned = core.clean(photo_bytes)          # core.Cleaned
    >>> cleaned.data, cleaned.media_type, cleaned.extension, cleaned.report.text()
    >>> core.inspect(photo_bytes).text()           # what the photo gives away

Every failure is a :class:`core.CleanError`.
"""

from core import formats_all as _formats_all  # noqa: F401 - registers the format plugins
from core.api import Cleaned, clean, inspect, verify
from core.errors import CleanError, MalformedImage, TooLarge, UncleanOutput, UnsupportedFormat
from core.policy import Orientation, Policy
from core.report import Category, Finding, Report

__all__ = [
    "Category",
    "CleanError",
    "Cleaned",
    "Finding",
    "MalformedImage",
    "Orientation",
    "Policy",
    "Report",
    "TooLarge",
    "UncleanOutput",
    "UnsupportedFormat",
    "clean",
    "inspect",
    "verify",
]
