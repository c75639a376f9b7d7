"""Import every format plugin so that it registers itself (order = sniffing order)."""

from core import (  # noqa: F401
    gif,
    jpeg,
    pillow_formats,  # noqa: F401 - last: the re-encoding fallback
    png,
    webp,
)
