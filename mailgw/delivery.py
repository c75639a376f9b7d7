"""Hand the reply on: to the smarthost with aiosmtplib, or through Tor to a ``.onion`` host.

Design: nothing lost, nothing stored. The gateway keeps no queue. It answers
the sender's DATA with ``250`` only once the next hop has accepted the reply
(RFC 5321 section 4.2.5: the receiver takes responsibility with the 250). When
the relay is down, refuses or times out, the sender gets ``451 4.4.x`` and its
MTA keeps the original and retries later (RFC 5321 section 4.5.4.1); the retry
is cleaned again from scratch. So a message exists either at the sender's MTA or
past our relay, never only here; a crash of the gateway loses nothing.

Routing: recipients in ``.onion`` domains go through the SOCKS5 proxy (Tor,
RFC 1928 with the name resolved by the proxy) to ``<domain>:25`` when a proxy is
configured; every other recipient (and ``.onion`` ones without a proxy) goes to
the relay. The reply is sent with the null reverse-path ``MAIL FROM:<>``
(RFC 3834 section 3.3, RFC 5321 section 4.5.5): bounces of an automatic reply
must not come back to an automatic responder.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiosmtplib
from python_socks import ProxyError, ProxyType
from python_socks.async_.asyncio import Proxy

from mailgw.config import GatewayConfig

#: RFC 3463 enhanced status codes used in our 451 answers.
NO_ANSWER = "4.4.1"  # no answer from host
BAD_CONNECTION = "4.4.2"  # bad connection
ROUTING = "4.4.0"  # other or undefined network or routing status
SYSTEM_NOT_CONFIGURED = "4.3.5"  # system incorrectly configured
DELIVERY_TIME_EXPIRED = "4.4.7"

SMTP_PORT = 25


class DeliveryError(Exception):
    """The reply was not accepted by the next hop; ``smtp_reply`` is what the sender gets."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.smtp_reply = f"451 {code} {text}"


def is_onion(domain: str) -> bool:
    return domain.lower().rstrip(".").endswith(".onion")


class Delivery:
    """Deliver one serialized reply to one recipient, or raise :class:`DeliveryError`."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._tls: ssl.SSLContext | None = None

    def tls_context(self) -> ssl.SSLContext:
        """Made once: loading the CA store costs ~25 ms, too much to pay per reply."""
        if self._tls is None:
            ctx = ssl.create_default_context(cafile=self.config.relay_ca_file)
            if not self.config.relay_verify_tls:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._tls = ctx
        return self._tls

    def route(self, recipient: str) -> str:
        """``"socks"``, ``"relay"`` or ``"none"`` (nothing can take it)."""
        domain = recipient.rpartition("@")[2]
        if is_onion(domain) and self.config.socks_host:
            return "socks"
        if self.config.relay_configured:
            return "relay"
        return "none"

    async def deliver(self, message: bytes, recipient: str) -> str:
        """Send ``message`` to ``recipient``; return the route used."""
        route = self.route(recipient)
        if route == "none":
            raise DeliveryError(
                SYSTEM_NOT_CONFIGURED,
                "This gateway has no relay configured and cannot send replies yet;"
                " your message was not accepted and your server will try again later.",
            )
        try:
            async with asyncio.timeout(self.config.delivery_timeout):
                if route == "socks":
                    await self._via_socks(message, recipient)
                else:
                    await self._via_relay(message, recipient)
        except TimeoutError as e:
            raise DeliveryError(
                DELIVERY_TIME_EXPIRED,
                "The reply could not be handed on in time; please try again later.",
            ) from e
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = ",".join(str(r.code) for r in e.recipients)
            raise DeliveryError(
                ROUTING, f"The next mail server refused the reply (code {codes});"
                " please try again later.") from e
        except aiosmtplib.SMTPResponseException as e:
            raise DeliveryError(
                ROUTING, f"The next mail server refused the reply (code {e.code});"
                " please try again later.") from e
        except ssl.SSLError as e:
            raise DeliveryError(
                BAD_CONNECTION, "TLS with the next mail server failed; please try again later."
            ) from e
        except (aiosmtplib.SMTPConnectError, ProxyError, ConnectionError, OSError) as e:
            raise DeliveryError(
                NO_ANSWER, "The next mail server is not answering; please try again later."
            ) from e
        except aiosmtplib.SMTPException as e:
            raise DeliveryError(
                BAD_CONNECTION, "The connection to the next mail server failed;"
                " please try again later.") from e
        return route

    async def _via_relay(self, message: bytes, recipient: str) -> None:
        c = self.config
        assert c.relay_host is not None
        await _send_null_sender(
            message,
            recipient,
            hostname=c.relay_host,
            port=c.relay_port,
            local_hostname=c.hostname,  # never the machine's own name
            start_tls=c.relay_starttls,
            tls_context=self.tls_context(),
            username=c.relay_username,
            password=c.relay_password,
            timeout=c.delivery_timeout,
        )

    async def _via_socks(self, message: bytes, recipient: str) -> None:
        c = self.config
        assert c.socks_host is not None
        domain = recipient.rpartition("@")[2].rstrip(".")
        proxy = Proxy(ProxyType.SOCKS5, c.socks_host, c.socks_port, rdns=True)
        sock = await proxy.connect(dest_host=domain, dest_port=SMTP_PORT,
                                   timeout=c.delivery_timeout)
        # Onion services are end-to-end encrypted and authenticated by their address;
        # STARTTLS would add nothing (and their certificates are usually self-signed).
        await _send_null_sender(
            message,
            recipient,
            hostname=None,
            port=None,
            sock=sock,
            local_hostname=c.hostname,
            start_tls=False,
            timeout=c.delivery_timeout,
        )


async def _send_null_sender(message: bytes, recipient: str, **client: Any) -> None:
    """One SMTP transaction ``MAIL FROM:<>`` / ``RCPT TO:<recipient>`` / DATA.

    (``aiosmtplib.send`` refuses an empty sender for raw messages; the client's
    ``sendmail`` sends the null reverse-path as ``<>``.)
    """
    async with aiosmtplib.SMTP(**client) as smtp:
        await smtp.sendmail("", [recipient], message)
