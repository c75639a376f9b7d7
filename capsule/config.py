"""The capsule's settings: one frozen dataclass, no Twisted, no Jetforce.

``onionclean capsule`` builds it from flags; ``onionclean serve`` builds it too
and hands it to :func:`capsule.server.listen` on its own reactor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import core

DEFAULT_PORT = 1965  # Gemini's port (Gemini spec, section 1.2)


@dataclass(frozen=True)
class CapsuleConfig:
    """Everything the capsule needs to listen and to protect itself.

    Limits (every input path has a size and a time limit):

    - ``max_upload_bytes``: the largest Titan ``size`` accepted (refused before
      the body is read);
    - ``max_inflight_bytes``: sum of the declared sizes of all uploads being
      received, queued or cleaned; beyond it new uploads get ``44`` (memory
      stays bounded whatever clients do);
    - ``max_connections``: open connections; beyond it requests get ``44``;
    - ``request_timeout``: seconds for the request line to arrive;
    - ``body_idle_timeout``: seconds without a single body byte (reset per chunk);
    - ``body_deadline``: seconds for the whole body (a trickling client is cut off);
    - ``drain_bytes`` / ``drain_seconds``: after an early answer (too large,
      wrong token...) what the client still sends is read and discarded up to
      this many bytes / seconds, so that it can read the answer (Lagrange issue
      523) before the connection closes.

    Memory: measured peak ≈ idle (~55 MB) + ``max_inflight_bytes`` + ``workers`` x
    ~3 x ``max_upload_bytes`` (the cleaner's working copies), whatever the number
    of clients (bench/bench_capsule.py: 16 and 64 concurrent 25 MB uploads both
    peak under 400 MB with the defaults).
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    hostname: str = "localhost"
    state_dir: Path = field(default_factory=lambda: Path("capsule-state"))
    #: The port people put in URLs (behind Tor the onion's virtual port); None: ``port``.
    public_port: int | None = None
    max_upload_bytes: int = 25_000_000
    token: str | None = None
    workers: int = 2
    max_connections: int = 256
    max_inflight_bytes: int = 200_000_000
    request_timeout: float = 10.0
    body_idle_timeout: float = 30.0
    body_deadline: float = 600.0
    drain_bytes: int = 64_000_000
    drain_seconds: float = 15.0
    #: Seconds a refused client is asked to wait (44 SLOW DOWN) at the least.
    busy_retry_seconds: int = 5
    policy: core.Policy = field(default_factory=core.Policy)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(self.state_dir))
        if not self.hostname or any(c in self.hostname for c in "/:@ \r\n"):
            raise ValueError("hostname must be a bare host name, like example.onion")
        if self.max_upload_bytes <= 0 or self.max_inflight_bytes < self.max_upload_bytes:
            raise ValueError("max_inflight_bytes must be at least max_upload_bytes (> 0)")
        if self.workers < 1 or self.max_connections < 1:
            raise ValueError("workers and max_connections must be at least 1")
        if self.token is not None and (not self.token or any(c in self.token for c in "\r\n")):
            raise ValueError("token must be a non-empty single line")
        if self.policy.max_bytes < self.max_upload_bytes:
            object.__setattr__(
                self,
                "policy",
                core.Policy(
                    orientation=self.policy.orientation,
                    keep_icc=self.policy.keep_icc,
                    max_bytes=self.max_upload_bytes,
                    max_pixels=self.policy.max_pixels,
                    max_segments=self.policy.max_segments,
                    jpeg_quality=self.policy.jpeg_quality,
                ),
            )

    @property
    def url_port(self) -> int:
        """The port in the capsule's own URLs (links on its pages)."""
        return self.public_port if self.public_port is not None else self.port
