"""The SMTP gateway (aiosmtpd): mail a photo to ``clean@<domain>``, get it back clean.

    >>> from mailgw import GatewayConfig, start, run
    >>> gateway = await start(GatewayConfig(domains=("example.onion",), relay_host="127.0.0.1"))
    >>> await gateway.close()

Imports ``core`` only (never ``capsule``).
"""

from mailgw.config import GatewayConfig, parse_host_port
from mailgw.server import Gateway, run, start

__all__ = ["Gateway", "GatewayConfig", "parse_host_port", "run", "start"]
