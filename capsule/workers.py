"""A bounded pool of cleaning threads, off the reactor thread.

``core.clean`` can take a second on a large photo; the event loop must keep
answering everyone else meanwhile. Jobs run in a dedicated Twisted
:class:`ThreadPool` of ``workers`` threads (not the reactor's shared pool, which
DNS and other libraries use); the queue in front of it is bounded by the
capsule's in-flight byte budget, which every queued upload holds.

Threads rather than processes, measured on this 2-core machine with the 12-MP
phone photo (6.4 MB, bench/photo.py): ``core.clean`` takes 4.3 ms on one thread
(~1.5 GB/s: a segment walk, no decoding); two threads together give only 1.06x
(the JPEG path holds the GIL), but a process pool would spend ~3.4 ms just
pickling the photo there and back, as much as the cleaning itself, and the
reactor thread's TLS work (~10 ms of CPU per upload) dwarfs both. Threads keep
the event loop free, which is what matters; a process pool would not pay off.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = typing.TypeVar("T")


class CleaningPool:
    """``workers`` threads; ``submit(fn, *args)`` returns a Deferred fired on the reactor."""

    def __init__(self, reactor: typing.Any, workers: int) -> None:
        self.reactor = reactor
        self.workers = workers
        self.pool = ThreadPool(minthreads=workers, maxthreads=workers, name="onionclean-clean")
        self.running_jobs = 0

    def start(self) -> None:
        self.pool.start()

    def stop(self) -> None:
        if self.pool.started:
            self.pool.stop()

    def submit(self, fn: Callable[..., T], *args: typing.Any) -> Deferred[tuple[T, float]]:
        """Run ``fn(*args)`` on a worker; the result comes with its run time in seconds."""

        def timed() -> tuple[T, float]:
            start = time.perf_counter()
            result = fn(*args)
            return result, time.perf_counter() - start

        self.running_jobs += 1
        d = deferToThreadPool(self.reactor, self.pool, timed)

        def done(result: typing.Any) -> typing.Any:
            self.running_jobs -= 1
            return result

        d.addBoth(done)
        return d
