"""The Gemini capsule: Jetforce with Titan uploads, cleaning photos with ``core``.

    from capsule import CapsuleConfig, listen, run

``listen(config, reactor)`` sets the capsule up on an installed reactor;
``run(config)`` installs Twisted's asyncio reactor and runs it. This package
imports ``core`` only (never ``mailgw``); Jetforce is imported lazily, after
the reactor is chosen (see :mod:`capsule.server`).
"""

from capsule.config import CapsuleConfig
from capsule.server import install_asyncio_reactor, listen, route_twisted_logs, run

__all__ = ["CapsuleConfig", "install_asyncio_reactor", "listen", "route_twisted_logs", "run"]
