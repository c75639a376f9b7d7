"""Logs carry counters only: no addresses, subjects, file names, bodies or peers.

aiosmtpd logs every command line (``MAIL FROM:<...>``) and the peer address on
its ``mail.log`` logger at INFO/DEBUG, and the text of exceptions on errors.
:func:`silence_aiosmtpd` caps that logger at WARNING and replaces the text of
whatever still passes with a fixed sentence (the level and exception type stay,
so an operator still sees that something happened).
"""

from __future__ import annotations

import logging

AIOSMTPD_LOGGER = "mail.log"


class RedactingFilter(logging.Filter):
    """Rewrite each record to a fixed text: drop its arguments and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        record.msg = "aiosmtpd %s event%s (details withheld: they may name a sender)"
        record.args = (record.levelname.lower(), f" {kind}" if kind else "")
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


_FILTER = RedactingFilter()


def silence_aiosmtpd() -> None:
    """Idempotent: cap aiosmtpd's logger at WARNING and redact what it still logs."""
    logger = logging.getLogger(AIOSMTPD_LOGGER)
    logger.setLevel(logging.WARNING)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
