"""The aiosmtpd handler: policy at the earliest SMTP stage, then clean, reply, relay.

Like Postfix's smtpd restrictions, each decision is taken as soon as SMTP
allows (RFC 5321 section 4.2 reply codes, RFC 3463 enhanced status codes):

- MAIL: rate limits (``450 4.7.1``); SIZE over the limit is refused by aiosmtpd
  with ``552`` before any data is sent.
- RCPT: only our own addresses (``550 5.1.1``: never an open relay); at most
  ``max_recipients`` (``452 4.5.3``, RFC 5321 section 4.5.3.1.10).
- DATA: over the size limit, aiosmtpd discards the bytes as they arrive and
  answers ``552`` (never holds the message whole). Otherwise: parse, clean each
  attachment off the event loop, build the reply, hand it to the relay, and
  answer ``250`` only when the relay has accepted it (else ``451``, the sender's
  MTA retries; see :mod:`mailgw.delivery`).

Automatic mail gets no reply (RFC 3834 section 2): it is accepted with ``250``
and dropped, so that no loop can start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial

from aiosmtpd.smtp import SMTP, Envelope, Session

import core
from mailgw import mime, reply
from mailgw.config import GatewayConfig
from mailgw.delivery import Delivery, DeliveryError
from mailgw.limits import SenderKeys, SlidingWindow

log = logging.getLogger("onionclean.mailgw")

# --- replies (RFC 5321 section 4.2.2 codes, RFC 3463 enhanced codes) ---------------------
OK_SENDER = "250 2.1.0 Sender OK"
OK_RECIPIENT = "250 2.1.5 Recipient OK"
OK_REPLIED = "250 2.0.0 Cleaned; the reply has been handed on"
OK_NO_REPLY = "250 2.0.0 Accepted; automatic mail gets no automatic reply"
RATE_SENDER = "450 4.7.1 Too many messages from this sender; please try again later"
RATE_GLOBAL = "450 4.7.1 The gateway is busy; please try again later"
NOT_LOCAL = ("550 5.1.1 No such mailbox here: this gateway only accepts mail for its own"
             " address and relays nothing")
TOO_MANY_RCPTS = "452 4.5.3 Too many recipients"
PROCESSING_TIMEOUT = ("451 4.4.7 Cleaning took too long; your message was not accepted,"
                      " please try again later")
INTERNAL_ERROR = ("451 4.3.0 Internal error; your message was not accepted, please try"
                  " again later")
BAD_CONTENT = "554 5.6.0"

#: local parts that never get an automatic reply (RFC 3834 section 2, RFC 5321 4.5.1).
NO_REPLY_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster", "listserv", "majordomo"})


@dataclass
class Counters:
    """What the logs may say: numbers only."""

    connections: int = 0
    connections_refused: int = 0
    messages: int = 0
    replied: int = 0
    no_reply: int = 0
    deferred: int = 0
    rejected: int = 0
    images_cleaned: int = 0
    files_refused: int = 0
    inflight: int = 0
    by_route: dict[str, int] = field(default_factory=dict)


class CleaningHandler:
    """aiosmtpd handler hooks (``handle_EHLO`` ... ``handle_DATA``) for the gateway."""

    def __init__(self, config: GatewayConfig, executor: Executor,
                 delivery: Delivery | None = None,
                 clean: Callable[[bytes, core.Policy], core.Cleaned] = core.clean) -> None:
        self.config = config
        self.executor = executor
        self.delivery = delivery or Delivery(config)
        self.clean = clean
        self.policy = core.Policy(max_bytes=config.max_message_bytes)
        self.inflight = asyncio.Semaphore(config.max_inflight)
        self.sender_keys = SenderKeys()
        self.per_sender = SlidingWindow(config.per_sender_per_hour, 3600.0)
        self.global_rate = SlidingWindow(config.global_per_minute, 60.0)
        self.counters = Counters()
        self.idle = asyncio.Event()
        self.idle.set()

    # --- connection ----------------------------------------------------------------------

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str) -> str:
        session.host_name = hostname
        return f"250 {self.config.hostname}"

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        """RFC 5321 section 4.1.1.1; aiosmtpd has put SIZE (RFC 1870) in ``responses``."""
        session.host_name = hostname
        return responses

    # --- envelope ------------------------------------------------------------------------

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if not self.global_rate.allow():
            return RATE_GLOBAL
        if address != "<>" and not self.per_sender.allow(self.sender_keys(address)):
            return RATE_SENDER
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return OK_SENDER

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.lower() not in self.config.addresses:
            return NOT_LOCAL
        if address.lower() in (a.lower() for a in envelope.rcpt_tos):
            return OK_RECIPIENT
        if len(envelope.rcpt_tos) >= self.config.max_recipients:
            return TOO_MANY_RCPTS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return OK_RECIPIENT

    # --- content -------------------------------------------------------------------------

    def _never_reply_to(self, sender: str | None) -> bool:
        """Null sender, MAILER-DAEMON & co., or ourselves (RFC 3834 section 2)."""
        if not sender or sender == "<>":
            return True
        local, at, _domain = sender.lower().rpartition("@")
        if not at:
            return True
        if local in NO_REPLY_LOCAL_PARTS or local.startswith("owner-") \
                or local.endswith("-request"):
            return True
        return sender.lower() in self.config.addresses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        # Drop aiosmtpd's references: only this coroutine holds the message from here on.
        envelope.content = envelope.original_content = None
        self.counters.messages += 1
        started = time.perf_counter()
        # aiosmtpd's idle timer runs while we work; give it the processing deadline.
        _extend_timeout(server, self.config.processing_timeout + 10)
        self.counters.inflight += 1
        self.idle.clear()
        try:
            async with asyncio.timeout(self.config.processing_timeout):
                async with self.inflight:
                    # hand the bytes over: _process drops them as soon as they are parsed
                    held, raw = [raw], b""
                    status = await self._process(held, envelope)
        except TimeoutError:
            self.counters.deferred += 1
            status = PROCESSING_TIMEOUT
        except DeliveryError as e:
            self.counters.deferred += 1
            status = e.smtp_reply
        except mime.MimeError as e:
            self.counters.rejected += 1
            status = f"{BAD_CONTENT} {e}"
        except Exception as e:  # noqa: BLE001 - never crash; the sender retries
            self.counters.deferred += 1
            log.error("message processing failed (%s)", type(e).__name__)
            status = INTERNAL_ERROR
        finally:
            del raw
            self.counters.inflight -= 1
            if self.counters.inflight == 0:
                self.idle.set()
            _extend_timeout(server, None)
        log.info("message done: status %s in %.2fs (%s)", status[:3],
                 time.perf_counter() - started, self.summary())
        return status

    async def _process(self, held: list[bytes], envelope: Envelope) -> str:
        loop = asyncio.get_running_loop()
        sender = envelope.mail_from
        if self._never_reply_to(sender):
            self.counters.no_reply += 1
            return OK_NO_REPLY
        c = self.config
        t0 = time.perf_counter()
        mail = await loop.run_in_executor(self.executor, partial(
            mime.parse, held.pop(), max_header_fields=c.max_header_fields,
            max_parts=c.max_mime_parts, max_depth=c.max_mime_depth,
            max_attachments=c.max_attachments))
        if mail.no_reply_reason:
            self.counters.no_reply += 1
            return OK_NO_REPLY
        t1 = time.perf_counter()
        outcomes = list(await asyncio.gather(*(self._clean(a) for a in mail.attachments)))
        t2 = time.perf_counter()
        mail.attachments.clear()
        assert sender is not None
        message = await loop.run_in_executor(self.executor, partial(
            reply.render_reply, mail, outcomes, from_address=envelope.rcpt_tos[0].lower(),
            to_address=sender, hostname=c.hostname or c.domains[0]))
        del outcomes
        t3 = time.perf_counter()
        route = await self.delivery.deliver(message, sender)
        log.debug("stages: parse %.3fs, clean %.3fs, reply %.3fs, relay %.3fs",
                  t1 - t0, t2 - t1, t3 - t2, time.perf_counter() - t3)
        self.counters.replied += 1
        self.counters.by_route[route] = self.counters.by_route.get(route, 0) + 1
        return OK_REPLIED

    async def _clean(self, attachment: mime.Attachment) -> reply.Outcome:
        """core.clean in the bounded pool; a CleanError becomes the reason in the reply."""
        loop = asyncio.get_running_loop()
        outcome = reply.Outcome(attachment=attachment)
        try:
            cleaned = await loop.run_in_executor(
                self.executor, self.clean, attachment.data, self.policy)
        except core.CleanError as e:
            self.counters.files_refused += 1
            outcome.error = _sentence(str(e))
            outcome.not_an_image = isinstance(e, core.UnsupportedFormat)
        else:
            self.counters.images_cleaned += 1
            outcome.data = cleaned.data
            outcome.media_type = cleaned.media_type
            outcome.extension = cleaned.extension
            outcome.report_text = cleaned.report.text()
        attachment.data = b""
        return outcome

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd calls this for an exception in a command; log its type only."""
        log.error("SMTP command failed (%s)", type(error).__name__)
        return INTERNAL_ERROR

    def summary(self) -> str:
        k = self.counters
        return (f"messages={k.messages} replied={k.replied} no_reply={k.no_reply}"
                f" deferred={k.deferred} rejected={k.rejected} images={k.images_cleaned}"
                f" refused_files={k.files_refused}")


def _sentence(text: str) -> str:
    text = text.strip() or "it could not be read"
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."




def _extend_timeout(server: SMTP, seconds: float | None) -> None:
    """Re-arm aiosmtpd's idle timer (``SMTP._reset_timeout``; None: the configured idle)."""
    reset = getattr(server, "_reset_timeout", None)
    if reset is not None and getattr(server, "transport", None) is not None:
        reset(seconds)
