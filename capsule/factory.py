"""The connection factory: Jetforce's :class:`GeminiServer` with the capsule's limits.

It counts connections and reserves upload bytes (the in-flight budget), and
replaces Jetforce's logging (``print`` of the client's address and full URL)
with counters on the ``onionclean.capsule`` logger.
"""

from __future__ import annotations

import logging
import math
import threading
import typing
from collections import Counter

from jetforce.server import GeminiServer

from capsule.config import CapsuleConfig
from capsule.titan import TitanProtocol

log = logging.getLogger("onionclean.capsule")


class InflightBudget:
    """Bytes of uploads being received, queued or cleaned, across all connections.

    An upload reserves its declared ``size`` before its body is read and keeps it
    until its connection closes (the cleaned copy is as large as the upload).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._lock = threading.Lock()

    def reserve(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.limit:
                return False
            self.used += n
            self.peak = max(self.peak, self.used)
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.used = max(0, self.used - n)


class CapsuleServer(GeminiServer):
    """Builds a :class:`TitanProtocol` per connection; holds the shared limits."""

    protocol_class = TitanProtocol

    def __init__(
        self,
        app: typing.Any,
        config: CapsuleConfig,
        reactor: typing.Any,
        certfile: str,
        keyfile: str,
    ) -> None:
        super().__init__(
            app,
            reactor=reactor,
            host=config.host,
            port=config.port,
            hostname=config.hostname,
            certfile=certfile,
            keyfile=keyfile,
        )
        self.config = config
        self.budget = InflightBudget(config.max_inflight_bytes)
        self.connections = 0
        self.peak_connections = 0
        self.stats: Counter[str] = Counter()
        self.url_port = config.url_port
        #: Bytes per second the workers clean (moving average), for 44's wait.
        self.clean_rate = 20_000_000.0

    # --- limits ------------------------------------------------------------------------

    def connection_opened(self) -> bool:
        """Count a connection; False when it is over ``max_connections``."""
        self.connections += 1
        self.peak_connections = max(self.peak_connections, self.connections)
        return self.connections <= self.config.max_connections

    def connection_closed(self) -> None:
        self.connections -= 1

    def retry_after(self) -> int:
        """Seconds to wait (44 SLOW DOWN): the time to clean what is in flight."""
        self.stats["busy"] += 1
        estimate = math.ceil(self.budget.used / max(self.clean_rate, 1.0))
        return max(self.config.busy_retry_seconds, min(estimate, 120))

    def note_clean_rate(self, nbytes: int, seconds: float) -> None:
        if nbytes > 100_000 and seconds > 0:
            self.clean_rate = 0.8 * self.clean_rate + 0.2 * (nbytes / seconds)

    # --- logging (privacy: counters only) ------------------------------------------------

    def count_response(self, scheme: str, route: str, status: int) -> None:
        self.stats[f"{status}"] += 1
        log.info("%s %s %d", scheme, route, status)

    def log_access(self, message: str) -> None:
        """Jetforce's access line carries the client's address; never written."""

    def log_message(self, message: str) -> None:
        """Jetforce logs tracebacks here; keep only their last line's exception name."""
        lines = message.strip().splitlines()
        if lines and lines[0].startswith("Traceback"):
            log.error("internal error: %s", lines[-1].split(":", 1)[0])
        else:
            log.info("%s", message)
