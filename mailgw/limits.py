"""Rate limits that remember no address: per-sender keys are keyed hashes that expire.

The per-sender window needs *some* memory of who sent what; it keeps only an
HMAC of the address under a random key made at start-up (never written, never
logged), and forgets each entry when its window has passed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most ``limit`` events per ``window`` seconds, per key (bounded key table)."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_keys, self.clock = limit, window, max_keys, clock
        self._events: dict[bytes, deque[float]] = {}

    def _expire(self, now: float) -> None:
        cutoff = now - self.window
        for key in [k for k, q in self._events.items() if not q or q[-1] <= cutoff]:
            del self._events[key]

    def allow(self, key: bytes = b"") -> bool:
        """Record an event for ``key`` if it is within the limit; False when it is not."""
        now = self.clock()
        q = self._events.get(key)
        if q is None:
            if len(self._events) >= self.max_keys:
                self._expire(now)
                if len(self._events) >= self.max_keys:
                    return False  # the table is full of live senders: refuse, stay bounded
            q = self._events[key] = deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        return True


class SenderKeys:
    """Turn an address into an opaque, per-process key (HMAC-SHA256, random key)."""

    def __init__(self) -> None:
        self._secret = os.urandom(32)

    def __call__(self, address: str) -> bytes:
        return hmac.new(self._secret, address.lower().encode("utf-8", "surrogateescape"),
                        hashlib.sha256).digest()
