"""`onionclean serve`: the capsule and the mail gateway in one process, optionally behind Tor.

One process, one event loop: Twisted runs on its asyncio reactor, Jetforce (the
capsule) listens on it, and aiosmtpd (the mail gateway) is created on the very
same asyncio loop. With ``--tor`` a v3 onion service maps port 1965 to the
capsule and port 25 to the gateway; both still listen on loopback only, and the
onion address becomes the capsule's host name (certificate included) and the
gateway's host name and mail domain.

Logs: one line per start, stop and error; counters only, never user data (no
per-request lines: their timing alone could help correlate an onion's users).
SIGTERM/SIGINT: stop accepting, finish the work in flight within a deadline, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import Any

import platformdirs

from onionclean_config import ConfigError, build, env_overrides, load_file

log = logging.getLogger("onionclean.serve")

#: Loggers whose per-request lines serve silences (errors still get through).
PER_REQUEST_LOGGERS = ("onionclean.capsule", "onionclean.mailgw", "mail.log", "twisted")
#: Seconds given to work in flight at shutdown.
SHUTDOWN_DEADLINE = 30.0
#: The onion's virtual ports (what people put in URLs and MX-less mail).
ONION_GEMINI_PORT = 1965
ONION_SMTP_PORT = 25


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """Top-level settings of the file's root table."""

    state_dir: Path = dataclasses.field(
        default_factory=lambda: Path(platformdirs.user_state_dir("onionclean"))
    )
    tor: bool = False
    #: attach to this tor control port ("9051", "127.0.0.1:9051") or socket
    #: ("unix:/run/tor/control"); empty: launch a private tor
    tor_control: str | None = None
    log_level: str = "INFO"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="TOML config file (default: $ONIONCLEAN_CONFIG, else none)")
    p.add_argument("--state-dir", type=Path, help="certificate and onion key live here")
    p.add_argument("--tor", action="store_true", default=None,
                   help="publish both services as one Tor onion service")
    p.add_argument("--tor-control", metavar="PORT|unix:PATH",
                   help="attach to a running tor instead of launching one")
    p.add_argument("--hostname", help="the capsule's and gateway's host name (not with --tor)")
    p.add_argument("--gemini-port", type=int, help="capsule port on 127.0.0.1 (1965)")
    p.add_argument("--smtp-port", type=int, help="mail gateway port on 127.0.0.1 (2525)")
    p.add_argument("--relay", metavar="HOST:PORT", help="smarthost for the mail replies")
    p.add_argument("--token", help="Titan upload token (uploads without it are refused)")


def _flags(args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """CLI flags as the top, capsule and mailgw layers (None: not given)."""
    top = {"state_dir": args.state_dir, "tor": args.tor, "tor_control": args.tor_control}
    capsule = {"port": args.gemini_port, "hostname": args.hostname, "token": args.token}
    mailgw: dict[str, Any] = {"port": args.smtp_port, "hostname": args.hostname}
    if args.hostname:
        mailgw["domains"] = (args.hostname,)
    if args.relay:
        from mailgw.config import parse_host_port

        try:
            host, port = parse_host_port(args.relay, 25)
        except ValueError as e:
            raise ConfigError(f"--relay: {e}") from e
        mailgw["relay_host"], mailgw["relay_port"] = host, port
    drop = lambda d: {k: v for k, v in d.items() if v is not None}  # noqa: E731
    return drop(top), drop(capsule), drop(mailgw)


def load_settings(args: argparse.Namespace) -> tuple[ServeSettings, Any, Any]:
    """Defaults < TOML file < environment < flags, each checked by its dataclass."""
    from capsule.config import CapsuleConfig
    from mailgw.config import GatewayConfig

    data = load_file(args.config)
    top_file = {k: v for k, v in data.items() if not isinstance(v, dict)}
    unknown = set(data) - set(top_file) - {"capsule", "mailgw"}
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(sorted(unknown))}; known:"
                          " [capsule], [mailgw] and top-level keys")
    top_flags, capsule_flags, mailgw_flags = _flags(args)
    names = [f.name for f in dataclasses.fields(ServeSettings)]
    settings = build(ServeSettings, "", top_file, env_overrides("", names), top_flags)
    cap_names = [f.name for f in dataclasses.fields(CapsuleConfig) if f.name != "policy"]
    gw_names = [f.name for f in dataclasses.fields(GatewayConfig)]
    capsule_cfg = build(
        CapsuleConfig, "capsule", {"state_dir": settings.state_dir / "capsule"},
        data.get("capsule", {}), env_overrides("capsule", cap_names), capsule_flags,
    )
    gateway_cfg = build(
        GatewayConfig, "mailgw", data.get("mailgw", {}), env_overrides("mailgw", gw_names),
        mailgw_flags,
    )
    if settings.tor and (capsule_cfg.port == 0 or gateway_cfg.port == 0):
        raise ConfigError("with --tor the ports must be fixed (not 0): the onion maps to them")
    for name, host in (("capsule", capsule_cfg.host), ("mailgw", gateway_cfg.host)):
        if settings.tor and host not in ("127.0.0.1", "::1", "localhost"):
            raise ConfigError(f"[{name}] host must be loopback with --tor: the services are"
                              " reachable through the onion address only")
    return settings, capsule_cfg, gateway_cfg


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    for name in PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def serve(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop, 2 on a configuration error."""
    started = time.monotonic()
    try:
        settings, capsule_cfg, gateway_cfg = load_settings(args)
    except (ConfigError, ValueError) as e:
        print(f"onionclean serve: configuration error: {e}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    from capsule.server import install_asyncio_reactor, route_twisted_logs

    reactor = install_asyncio_reactor()
    route_twisted_logs()
    from twisted.internet import defer

    import capsule.server
    import mailgw.server

    state: dict[str, Any] = {"exit": 0}

    async def start() -> None:
        nonlocal capsule_cfg, gateway_cfg
        if settings.tor:
            import onionclean_tor as tor

            tor_settings = tor.TorSettings(state_dir=settings.state_dir,
                                           control=settings.tor_control)
            running = await tor.launch_or_attach(tor_settings, reactor)
            state["tor"] = running
            onion = await tor.publish_onion(
                running,
                {ONION_GEMINI_PORT: (capsule_cfg.host, capsule_cfg.port),
                 ONION_SMTP_PORT: (gateway_cfg.host, gateway_cfg.port)},
                tor_settings.key_file,
            )
            state["onion"] = onion
            socks_host, socks_port = await tor.socks_address(running)
            capsule_cfg = dataclasses.replace(
                capsule_cfg, hostname=onion.address, public_port=ONION_GEMINI_PORT)
            gateway_cfg = dataclasses.replace(
                gateway_cfg, hostname=onion.address,
                domains=(onion.address, *[d for d in gateway_cfg.domains if d != "localhost"]),
                socks_host=socks_host, socks_port=socks_port)
        state["capsule"] = capsule.server.listen(capsule_cfg, reactor)
        state["gateway"] = await defer.Deferred.fromFuture(
            asyncio.ensure_future(mailgw.server.start(gateway_cfg)))
        host = capsule_cfg.hostname
        port = "" if capsule_cfg.url_port == 1965 else f":{capsule_cfg.url_port}"
        print(f"gemini://{host}{port}/", flush=True)
        print(f"clean@{gateway_cfg.domains[0]}", flush=True)
        if not gateway_cfg.relay_configured:
            log.warning("no mail relay configured: mail is answered 451 (the sender keeps it)")
        log.info("onionclean ready in %.1f s (gemini %s:%d, smtp %s:%d%s)",
                 time.monotonic() - started, capsule_cfg.host, capsule_cfg.port,
                 gateway_cfg.host, gateway_cfg.port, ", tor" if settings.tor else "")

    def start_failed(failure: Any) -> None:
        log.error("onionclean could not start: %s", failure.getErrorMessage())
        state["exit"] = 1
        reactor.stop()

    async def stop() -> None:
        port = state.get("capsule")
        if port is not None:
            await port.stopListening()
            server = getattr(port, "capsule_server", None)
            deadline = time.monotonic() + SHUTDOWN_DEADLINE
            while server is not None and server.connections > 0 and time.monotonic() < deadline:
                await asyncio_sleep(reactor, 0.1)
        gateway = state.get("gateway")
        if gateway is not None:
            await defer.Deferred.fromFuture(
                asyncio.ensure_future(gateway.close(deadline=SHUTDOWN_DEADLINE)))
        if "tor" in state:
            import onionclean_tor as tor

            await tor.shutdown(state["tor"], state.get("onion"))
        log.info("onionclean stopped")

    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: defer.Deferred.fromCoroutine(stop()))
    reactor.callWhenRunning(
        lambda: defer.Deferred.fromCoroutine(start()).addErrback(start_failed))
    reactor.run()
    return int(state["exit"])


def asyncio_sleep(reactor: Any, seconds: float) -> Any:
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


if __name__ == "__main__":  # pragma: no cover - `onionclean serve` is the entry point
    parser = argparse.ArgumentParser(prog="onionclean serve")
    add_arguments(parser)
    sys.exit(serve(parser.parse_args()))

