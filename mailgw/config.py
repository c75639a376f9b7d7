"""What the operator chooses: addresses, limits, the relay, the SOCKS proxy.

A :class:`GatewayConfig` is plain data; :mod:`mailgw.server` assembles the
gateway from it. The relay may be left unset (``relay_host=None``): the
gateway then answers every DATA with ``451`` and a clear text, so the sending
MTA keeps the message (nothing is lost, nothing is stored here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``"host:port"``, ``"host"``, ``"[::1]:25"`` -> ``(host, port)``; ValueError on garbage."""
    text = text.strip()
    if not text:
        raise ValueError("empty host")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port_text)


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway needs; defaults are safe for an onion service on loopback."""

    #: where to listen (the onion service maps its port 25 here)
    host: str = "127.0.0.1"
    port: int = 2525
    #: mail to ``<local_part>@<domain>`` is accepted, for each configured domain
    domains: tuple[str, ...] = ("localhost",)
    local_part: str = "clean"
    #: the name in the greeting, EHLO answers, Message-IDs and our own EHLO to the relay;
    #: never the machine's name (defaults to the first domain)
    hostname: str | None = None

    # --- the relay (smarthost) that takes the replies ------------------------------------
    relay_host: str | None = None
    relay_port: int = 25
    #: True: STARTTLS required; False: never; None: used when the relay offers it
    relay_starttls: bool | None = None
    relay_verify_tls: bool = True
    #: a CA bundle (PEM) for the relay's certificate, instead of the system's
    relay_ca_file: str | None = None
    relay_username: str | None = None
    relay_password: str | None = field(default=None, repr=False)
    #: Tor's SOCKS5 port; replies to ``.onion`` senders go through it to ``<domain>:25``
    socks_host: str | None = None
    socks_port: int = 9050
    delivery_timeout: float = 60.0

    # --- limits --------------------------------------------------------------------------
    max_message_bytes: int = 25_000_000
    max_recipients: int = 5
    max_connections: int = 20
    #: messages being cleaned/relayed at once (memory stays bounded: each holds ~5x its size)
    max_inflight: int = 4
    #: threads running core.clean (CPU-bound); default: one per core
    clean_workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    max_attachments: int = 20
    max_mime_parts: int = 200
    max_mime_depth: int = 10
    max_header_fields: int = 500
    #: seconds a client may stay idle between commands, and at most for one DATA transfer
    idle_timeout: float = 120.0
    #: seconds for cleaning and replying after the final "." (then 451, the sender retries)
    processing_timeout: float = 120.0
    per_sender_per_hour: int = 30
    global_per_minute: int = 120

    def __post_init__(self) -> None:
        domains = tuple(d.strip().lower().rstrip(".") for d in self.domains if d.strip())
        if not domains:
            raise ValueError("at least one domain is needed")
        object.__setattr__(self, "domains", domains)
        object.__setattr__(self, "local_part", self.local_part.strip().lower())
        if self.hostname is None:
            object.__setattr__(self, "hostname", domains[0])
        for name in ("max_message_bytes", "max_recipients", "max_connections", "max_inflight",
                     "clean_workers", "max_attachments", "max_mime_parts", "max_mime_depth",
                     "max_header_fields", "per_sender_per_hour", "global_per_minute"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("idle_timeout", "processing_timeout", "delivery_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    @property
    def addresses(self) -> frozenset[str]:
        """The local addresses, lower-case (``clean@domain`` for each domain)."""
        return frozenset(f"{self.local_part}@{d}" for d in self.domains)

    @property
    def relay_configured(self) -> bool:
        return bool(self.relay_host)
