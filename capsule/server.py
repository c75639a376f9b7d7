"""Assemble the capsule on a Twisted reactor: :func:`listen` and :func:`run`.

``listen(config, reactor)`` sets everything up on a reactor that is already
installed (``onionclean serve`` runs the capsule and the mail gateway in one
process on Twisted's asyncio reactor) and returns the listening port.
``run(config)`` installs the asyncio reactor if no reactor is installed yet,
listens, and runs until SIGINT/SIGTERM.

Importing Jetforce installs Twisted's default reactor (``jetforce.server``
imports ``twisted.internet.reactor``), so this module imports Jetforce and the
modules built on it only inside these functions, after the reactor is chosen.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import typing

from capsule.config import CapsuleConfig
from capsule.tls import ensure_certificate, fingerprint

log = logging.getLogger("onionclean.capsule")


def install_asyncio_reactor() -> typing.Any:
    """Install Twisted's asyncio reactor unless a reactor is installed already; return it."""
    if "twisted.internet.reactor" not in sys.modules:
        from twisted.internet import asyncioreactor

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        asyncioreactor.install(loop)
    from twisted.internet import reactor

    return reactor


def listen(config: CapsuleConfig, reactor: typing.Any) -> typing.Any:
    """Set the capsule up on ``reactor`` (not run); return the listening port.

    The worker pool starts now and stops before the reactor shuts down.
    """
    from jetforce.tls import GeminiCertificateOptions
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from capsule.app import CapsuleApplication
    from capsule.factory import CapsuleServer
    from capsule.workers import CleaningPool

    certfile, keyfile = ensure_certificate(config.state_dir, config.hostname)
    workers = CleaningPool(reactor, config.workers)
    workers.start()
    reactor.addSystemEventTrigger("before", "shutdown", workers.stop)
    app = CapsuleApplication(config, workers)
    server = CapsuleServer(app, config, reactor, str(certfile), str(keyfile))
    app.server = server
    tls = TLSMemoryBIOFactory(
        GeminiCertificateOptions(certfile=str(certfile), keyfile=str(keyfile)), False, server
    )
    port = reactor.listenTCP(config.port, tls, interface=config.host, backlog=128)
    actual = port.getHost().port
    server.port = actual
    if config.public_port is None:
        server.url_port = actual  # port 0 (tests): the port the system chose
    port.capsule_server = server  # for tests and `onionclean serve` statistics
    log.info(
        "capsule listening on %s:%d as gemini://%s (certificate %s)",
        config.host, actual, config.hostname, fingerprint(certfile),
    )
    return port


class PrivateTwistedLog:
    """Twisted's log events on the ``twisted`` logger, without what could identify a
    client: failures are reduced to their exception type, the log system (which for
    connections is "Protocol,N,client-address") is never written."""

    def __init__(self) -> None:
        self.logger = logging.getLogger("twisted")

    def __call__(self, event: dict[str, typing.Any]) -> None:
        from twisted.logger import LogLevel, formatEvent

        failure = event.get("log_failure")
        level = event.get("log_level")
        if failure is not None:
            self.logger.error("error: %s", getattr(failure.type, "__name__", "unknown"))
            return
        text = formatEvent(event)
        if level in (LogLevel.error, LogLevel.critical):
            self.logger.error("%s", text)
        elif level == LogLevel.warn:
            self.logger.warning("%s", text)
        else:
            self.logger.debug("%s", text)


def route_twisted_logs() -> None:
    from twisted.logger import globalLogBeginner

    globalLogBeginner.beginLoggingTo([PrivateTwistedLog()], redirectStandardIO=False)


def run(config: CapsuleConfig) -> None:
    """Run the capsule alone until SIGINT or SIGTERM (Twisted's handlers stop the
    reactor; the worker pool finishes the job in hand)."""
    reactor = install_asyncio_reactor()
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    route_twisted_logs()
    listen(config, reactor)
    log.info("running on Twisted's %s", type(reactor).__name__)
    reactor.addSystemEventTrigger("after", "shutdown", log.info, "capsule stopped")
    reactor.run()
