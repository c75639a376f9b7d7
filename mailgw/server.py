"""Assembly: an aiosmtpd ``SMTP`` server on the *running* asyncio loop.

:func:`start` uses ``loop.create_server`` with aiosmtpd's ``SMTP`` protocol
rather than the threaded ``Controller``: ``onionclean serve`` runs the capsule
(Twisted, on the asyncio reactor) and this gateway in one process on one loop,
and a second loop in a thread would only add locking and a second place for
things to go wrong. :func:`run` is the standalone entry point (``asyncio.run``
with SIGINT/SIGTERM handling).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.smtp import MISSING, SMTP

from mailgw.config import GatewayConfig
from mailgw.delivery import Delivery
from mailgw.handler import CleaningHandler
from mailgw.privacy import silence_aiosmtpd

log = logging.getLogger("onionclean.mailgw")

#: RFC 5321 section 4.2.3: 421 = service not available, closing the channel.
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections; please try again later"
SHUTTING_DOWN = "421 4.3.2 The gateway is shutting down; please try again later"
#: The greeting's text after the host name: says ESMTP, names no software or version.
IDENT = "ESMTP"
#: per-connection command budget (aiosmtpd answers 421 and hangs up beyond it)
COMMAND_LIMITS = {"*": 60, "MAIL": 20, "RCPT": 50, "DATA": 20, "NOOP": 20, "RSET": 20}


END_OF_DATA = b"\r\n.\r\n"
READ_CHUNK = 1 << 16
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
TOO_MUCH_DATA = "552 5.3.4 Message too big for this gateway"


class ChunkedDataSMTP(SMTP):
    """aiosmtpd's SMTP protocol with a DATA reader that works in 64 KiB chunks with a hard
    size cap (also used by the benchmark's sink relay)."""

    async def smtp_DATA(self, arg: str) -> None:
        """RFC 5321 section 4.1.1.4 DATA, read in chunks instead of line by line.

        aiosmtpd 1.4 reads DATA one line at a time into a list of bytearrays: a
        5 MB photo is ~70 000 Python-level reads and ~1.8x its size in memory,
        and an oversized message is held up to the limit before it is refused.
        Here the data arrive in 64 KiB chunks into one buffer; beyond
        ``data_size_limit`` nothing more is kept (only the last 4 bytes, to find
        the end), and the answer is 552. Transparency (section 4.5.2: a leading
        dot is removed) is undone in one pass at the end.
        """
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push(START_DATA)
        limit = self.data_size_limit or 0
        # A virtual CRLF before the first line: "." alone on the first line ends DATA too,
        # and a dot starting the first line is unstuffed like any other.
        buf = bytearray(b"\r\n")
        too_big = False
        while True:
            chunk = await self._reader.read(READ_CHUNK)
            if not chunk:  # the client went away: no answer, nothing kept
                return
            search_from = max(0, len(buf) - 4)
            buf += chunk
            end = buf.find(END_OF_DATA, search_from)
            if end >= 0:
                rest = bytes(buf[end + len(END_OF_DATA):])
                del buf[end + 2:]
                if rest:  # pipelined commands after the end of data: give them back
                    self._reader._buffer[0:0] = rest  # type: ignore[attr-defined]
                break
            if limit and len(buf) - 2 > limit:
                too_big = True
                del buf[:-6]  # keep only what may begin the terminator (and 2 bytes before)
        if too_big or (limit and len(buf) - 2 > limit):
            del buf[:]
            self._set_post_data_state()
            await self.push(TOO_MUCH_DATA)
            return
        # Long lines (over RFC 5321's 1000 octets) are accepted, as Postfix does: the
        # size limit bounds memory, and the MIME parser does not mind them.
        del buf[:2]  # the virtual CRLF
        content = bytes(buf)
        del buf
        # section 4.5.2: the first character of a line, when it is a period, is deleted
        if content.startswith(b"."):
            content = content[1:]
        if content.find(b"\r\n.") >= 0:
            content = content.replace(b"\r\n.", b"\r\n")
        self.envelope.content = self.envelope.original_content = content
        del content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


class GatewaySMTP(ChunkedDataSMTP):
    """The gateway's protocol: chunked DATA and a connection limit (421 beyond it)."""

    def __init__(self, gateway: Gateway, **kw: object) -> None:
        super().__init__(gateway.handler, **kw)  # type: ignore[arg-type]
        self.gateway = gateway

    async def _handle_client(self) -> None:
        # aiosmtpd has no connection-limit hook; wrapping its per-connection coroutine
        # (SMTP._handle_client, aiosmtpd 1.4) is the narrowest place to add one.
        g = self.gateway
        if g.closing or len(g.connections) >= g.config.max_connections:
            g.handler.counters.connections_refused += 1
            await self.push(SHUTTING_DOWN if g.closing else TOO_MANY_CONNECTIONS)
            if self.transport is not None:
                self.transport.close()
            return
        g.connections.add(self)
        g.handler.counters.connections += 1
        try:
            await super()._handle_client()
        finally:
            g.connections.discard(self)


class Gateway:
    """A running gateway: its listening server, handler, worker pool and connections."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.executor = ThreadPoolExecutor(max_workers=config.clean_workers,
                                           thread_name_prefix="mailgw-clean")
        self.handler = CleaningHandler(config, self.executor, Delivery(config))
        self.connections: set[GatewaySMTP] = set()
        self.closing = False
        self.server: asyncio.Server | None = None

    def protocol(self) -> GatewaySMTP:
        c = self.config
        return GatewaySMTP(
            self,
            data_size_limit=c.max_message_bytes,
            hostname=c.hostname,
            ident=IDENT,
            timeout=c.idle_timeout,
            # No SMTPUTF8 (RFC 6531): the reply to a non-ASCII address would need it all the
            # way through the relay; such senders are refused at MAIL, before any data.
            enable_SMTPUTF8=False,
            command_call_limit=COMMAND_LIMITS,
            loop=asyncio.get_running_loop(),
        )

    @property
    def sockets(self) -> list[tuple[str, int]]:
        return [s.getsockname()[:2] for s in (self.server.sockets if self.server else [])]

    async def close(self, deadline: float = 30.0) -> None:
        """Stop accepting, let in-flight messages finish (up to ``deadline`` s), hang up.

        A message cut off here never got its 250: its sender's MTA retries.
        """
        self.closing = True
        if self.server is not None:
            self.server.close()
        try:
            async with asyncio.timeout(deadline):
                await self.handler.idle.wait()
        except TimeoutError:
            log.warning("closing with %d message(s) unfinished; their senders will retry",
                        self.handler.counters.inflight)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        if self.server is not None:
            await self.server.wait_closed()
        self.executor.shutdown(wait=False, cancel_futures=True)
        log.info("mail gateway stopped (%s)", self.handler.summary())


async def start(config: GatewayConfig) -> Gateway:
    """Listen on ``config.host:config.port`` on the running loop; return the Gateway."""
    silence_aiosmtpd()
    gateway = Gateway(config)
    loop = asyncio.get_running_loop()
    gateway.server = await loop.create_server(gateway.protocol, host=config.host,
                                              port=config.port)
    log.info("mail gateway listening on %s (%d local address(es), relay %s, socks %s)",
             ", ".join(f"{h}:{p}" for h, p in gateway.sockets), len(config.addresses),
             "configured" if config.relay_configured else "NOT configured (replies 451)",
             "configured" if config.socks_host else "off")
    return gateway


def run(config: GatewayConfig) -> int:
    """Standalone: serve until SIGINT/SIGTERM, then close gracefully. Returns an exit code."""

    async def main() -> None:
        gateway = await start(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await gateway.close(deadline=config.processing_timeout)

    asyncio.run(main())
    return 0
