"""One family of errors, each with a message a person can read.

Every failure of :func:`core.clean` or :func:`core.inspect` is a
:class:`CleanError`; callers (the capsule, the mail gateway, the CLI) only need
to catch that one class and show ``str(error)`` to the person.
"""

from __future__ import annotations


class CleanError(Exception):
    """Base class: the input could not be cleaned; nothing is returned."""


class UnsupportedFormat(CleanError):
    """The bytes are not an image format onionclean handles ("this is a PDF, not an image")."""


class MalformedImage(CleanError):
    """The image is broken ("the JPEG ends in the middle of a segment")."""


class TooLarge(CleanError):
    """A limit was exceeded: bytes, pixels, or segment/chunk count."""


class UncleanOutput(CleanError):
    """Fail closed: the output check found metadata or damage; nothing is returned."""
