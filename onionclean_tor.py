"""One v3 onion service in front of onionclean's loopback services, through Tor's control port.

Built on txtorcon (the maintained Twisted Tor controller). It works on any
Twisted reactor; ``onionclean serve`` runs Twisted on the asyncio reactor
(:func:`install_asyncio_reactor`) so that aiosmtpd and Jetforce share one loop.

- :func:`launch_or_attach` attaches to a running tor (control port or control
  socket; cookie authentication, control-spec §3.5 AUTHENTICATE / §3.21
  PROTOCOLINFO) or launches a private ``tor`` whose data directory lives under
  the state directory.
- :func:`publish_onion` issues ``ADD_ONION`` (control-spec §3.27) with the
  ED25519-V3 key saved in the state directory (made with ``NEW:ED25519-V3`` on
  first use, written with mode 0600), so the address is the same after every
  restart; it waits for the first ``HS_DESC UPLOADED`` event (control-spec
  §4.1.25): before that, clients get "No more HSDir available to query".
- :func:`socks_address` is tor's SOCKS listener, for mail replies to ``.onion``
  recipients. Traffic goes through plain SOCKS5 (python-socks), not through
  txtorcon's ``stream_via`` (which stalled 20 s+ in tests recorded in issue 5).
- :func:`shutdown` removes the onion (``DEL_ONION``, §3.38) and stops a tor we
  launched; a tor we attached to keeps running.

The coroutines here await Twisted Deferreds: run them with
``Deferred.fromCoroutine(...)`` (from asyncio code under the asyncio reactor:
``Deferred.fromCoroutine(coro).asFuture(loop)``).

The services stay bound to loopback: every onion port must map to 127.0.0.1 or
::1, and nothing here opens a listening socket.

``python -m onionclean_tor --port 1965=127.0.0.1:1965 ...`` publishes an onion
for given loopback ports until SIGTERM/SIGINT (an operator's smoke test; the
tests use it too).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # txtorcon imports the global reactor: import it only when used
    import txtorcon
    from twisted.internet.interfaces import IReactorCore

log = logging.getLogger("onionclean.tor")

#: The file in the state directory holding the onion service's key, in the
#: form ADD_ONION takes and returns it: "ED25519-V3:<base64 expanded secret key>".
ONION_KEY_FILE = "onion_v3_private_key"
#: Data directory of a tor we launch, under the state directory.
TOR_DATA_DIR = "tor"
KEY_TYPE = "ED25519-V3"

#: Seconds to wait for a launched tor to reach 100 % bootstrap.
LAUNCH_TIMEOUT = 180.0
#: Seconds to wait for the first descriptor upload after ADD_ONION.
PUBLISH_TIMEOUT = 180.0
#: Seconds a launched tor gets to exit after SIGTERM before we give up on it.
STOP_TIMEOUT = 15.0


class TorError(Exception):
    """Tor could not be reached, launched or asked to publish; ``str()`` says why."""


@dataclass(frozen=True)
class TorSettings:
    """How to reach tor.

    ``control``: ``None`` launches a private tor; ``"unix:/run/tor/control"``
    attaches through a control socket; ``"9051"`` or ``"127.0.0.1:9051"``
    through a loopback control port.
    ``torrc_options``: extra options for a tor we launch (e.g. a private test
    network's ``DirAuthority`` lines); ignored when attaching.
    """

    state_dir: Path
    control: str | None = None
    tor_binary: str | None = None
    torrc_options: Mapping[str, Sequence[str]] = field(default_factory=dict)
    launch_timeout: float = LAUNCH_TIMEOUT
    publish_timeout: float = PUBLISH_TIMEOUT

    @property
    def key_file(self) -> Path:
        return Path(self.state_dir) / ONION_KEY_FILE


@dataclass
class RunningTor:
    """A tor we talk to: the txtorcon handle and whether we own its process."""

    tor: txtorcon.Tor
    launched: bool
    reactor: IReactorCore

    @property
    def pid(self) -> int | None:
        """The pid of a tor we launched (None when attached)."""
        proc = self.tor.process
        return getattr(getattr(proc, "transport", None), "pid", None) if proc else None


@dataclass(frozen=True)
class PublishedOnion:
    """An onion service tor is serving for us."""

    service_id: str  # the 56 base32 characters, without ".onion"
    ports: tuple[tuple[int, str, int], ...]  # (onion port, loopback host, loopback port)

    @property
    def address(self) -> str:
        return f"{self.service_id}.onion"


def install_asyncio_reactor() -> IReactorCore:
    """Install Twisted's asyncio reactor on the current asyncio loop (once, before any
    ``twisted.internet.reactor`` import) and return the reactor."""
    if "twisted.internet.reactor" not in sys.modules:
        import asyncio

        from twisted.internet import asyncioreactor

        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        asyncioreactor.install(loop)
    from twisted.internet import reactor

    return reactor  # type: ignore[return-value]


# -- reaching tor ---------------------------------------------------------------------


def _control_endpoint(control: str, reactor: IReactorCore) -> Any:
    from twisted.internet.endpoints import (
        TCP4ClientEndpoint,
        TCP6ClientEndpoint,
        UNIXClientEndpoint,
    )

    if control.startswith("unix:"):
        path = control[len("unix:"):]
        if not path:
            raise TorError("the tor control socket path is empty (expected unix:/path)")
        return UNIXClientEndpoint(reactor, path)
    host, _, port_text = control.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise TorError(f"the tor control port {control!r} is not host:port, a port number"
                       " or unix:/path") from None
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise TorError(f"the tor control port must be on this machine (loopback), not"
                           f" {host}: the onion maps to loopback ports and the control"
                           " protocol is not encrypted")
    if ":" in host:
        return TCP6ClientEndpoint(reactor, host, port)
    return TCP4ClientEndpoint(reactor, host, port)


def _launch_config(settings: TorSettings) -> Any:
    import txtorcon

    config = txtorcon.TorConfig()
    for key, values in settings.torrc_options.items():
        if isinstance(values, str):
            values = [values]
        for v in values:
            if "\n" in v or "\r" in v:
                raise TorError(f"the tor option {key} has a line break in its value")
        # TorConfig turns a list into one "--Key value" per element on tor's command line.
        setattr(config, key, list(values) if len(values) > 1 else values[0])
    return config


async def launch_or_attach(settings: TorSettings, reactor: IReactorCore | None = None,
                           ) -> RunningTor:
    """Attach to the tor at ``settings.control`` or launch a private one.

    A launched tor keeps its data directory in ``state_dir/tor`` (mode 0700; a
    warm directory bootstraps faster), listens for control on a unix socket
    there (cookie authentication) and for SOCKS on a free loopback port; it
    exits if this process dies (``__OwningControllerProcess`` + TAKEOWNERSHIP,
    control-spec §3.23).
    """
    import txtorcon
    from twisted.internet import defer
    from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint
    from txtorcon.util import available_tcp_port

    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor  # type: ignore[assignment]
    assert reactor is not None
    if settings.control:
        endpoint = _control_endpoint(settings.control, reactor)
        try:
            tor = await txtorcon.connect(reactor, endpoint)
        except Exception as e:
            raise TorError(f"could not attach to tor's control port {settings.control}"
                           f" ({e.__class__.__name__}: {e}); is tor running with"
                           " ControlPort/ControlSocket and CookieAuthentication 1, and"
                           " may this user read its cookie file?") from e
        log.info("tor: attached to control port")
        return RunningTor(tor=tor, launched=False, reactor=reactor)

    state = Path(settings.state_dir)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir = state / TOR_DATA_DIR
    data_dir.mkdir(exist_ok=True, mode=0o700)
    data_dir.chmod(0o700)  # tor refuses a group/world-readable DataDirectory
    last_progress = [-1]

    def progress(percent: float, tag: str, summary: str) -> None:
        if int(percent) // 25 > last_progress[0] // 25:  # a few lines, not every step
            log.info("tor: bootstrapped %d%%", int(percent))
        last_progress[0] = int(percent)

    # txtorcon connects once, when tor prints "Opening Control listener", which can
    # come before the socket exists (ENOENT; seen in 1 of ~5 test runs) and then it
    # never retries: give it a connector that retries for a few seconds.
    control_path = os.path.realpath(data_dir / "control.socket")
    if len(control_path.encode()) < 100:  # sun_path holds 108 bytes
        control_port: str | int = f"unix:{control_path}"
        endpoint = UNIXClientEndpoint(reactor, control_path)
    else:
        control_port = await available_tcp_port(reactor)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", control_port)

    def connect_control() -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(_connect_with_retry(reactor, endpoint))

    try:
        tor = await txtorcon.launch(
            reactor,
            progress_updates=progress,
            data_directory=str(data_dir),
            control_port=control_port,
            connection_creator=connect_control,
            tor_binary=settings.tor_binary,
            timeout=settings.launch_timeout,
            kill_on_stderr=True,
            # The only way to give txtorcon.launch options that tor accepts only at
            # start (e.g. a test network's TestingTorNetwork/DirAuthority lines).
            _tor_config=_launch_config(settings),
        )
    except txtorcon.TorNotFound as e:
        raise TorError("the tor program was not found; install Debian's tor package"
                       " (apt install tor) or give its path") from e
    except Exception as e:
        raise TorError(f"could not launch tor ({e.__class__.__name__}: {e})") from e
    running = RunningTor(tor=tor, launched=True, reactor=reactor)
    log.info("tor: launched (pid %s)", running.pid)
    return running


async def _connect_with_retry(reactor: IReactorCore, endpoint: Any, attempts: int = 100,
                              delay: float = 0.1) -> Any:
    """Connect a control protocol to a tor that is still opening its control listener."""
    import txtorcon
    from twisted.internet import error, task

    for attempt in range(attempts):
        try:
            return await endpoint.connect(txtorcon.TorProtocolFactory())
        except (error.ConnectError, error.ConnectionRefusedError, FileNotFoundError):
            if attempt == attempts - 1:
                raise
            await task.deferLater(reactor, delay, lambda: None)
    raise AssertionError("unreachable")


# -- the onion service ----------------------------------------------------------------


def _check_ports(ports: Mapping[int, tuple[str, int]]) -> tuple[tuple[int, str, int], ...]:
    if not ports:
        raise TorError("an onion service needs at least one port")
    checked = []
    for virt, (host, port) in sorted(ports.items()):
        if not (0 < int(virt) < 65536 and 0 < int(port) < 65536):
            raise TorError(f"onion port {virt} -> {host}:{port} is not a valid port pair")
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise TorError(f"onion port {virt} must map to a loopback address (127.0.0.1"
                           f" or ::1), not {host!r}: the services listen on loopback only")
        checked.append((int(virt), host, int(port)))
    return tuple(checked)


def read_key(key_file: Path) -> str | None:
    """The saved key ("ED25519-V3:..."), None when there is none yet; a clear error when
    the file is not a key. A key readable by others is tightened to 0600."""
    try:
        text = Path(key_file).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise TorError(f"cannot read the onion key {key_file}: {e}") from e
    kind, _, blob = text.partition(":")
    if kind != KEY_TYPE or not blob or any(c in blob for c in " \r\n\t"):
        raise TorError(f"{key_file} is not an onion key saved by onionclean (expected one"
                       f" line '{KEY_TYPE}:<base64>'); move it away to make a new address")
    if os.stat(key_file).st_mode & 0o077:
        os.chmod(key_file, 0o600)
        log.info("tor: onion key permissions tightened to 0600")
    return text


def save_key(key_file: Path, key: str) -> None:
    """Write the key with mode 0600, atomically (a crash leaves the old file or none)."""
    key_file = Path(key_file)
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, key_file)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _keywords(reply: str) -> dict[str, str]:
    out = {}
    for line in reply.splitlines():
        k, sep, v = line.strip().partition("=")
        if sep:
            out[k] = v
    return out


async def publish_onion(running: RunningTor, ports: Mapping[int, tuple[str, int]],
                        key_file: Path, timeout: float = PUBLISH_TIMEOUT) -> PublishedOnion:
    """Publish one v3 onion for ``ports`` ({onion port: (loopback host, port)}) with the key
    in ``key_file`` (made on first use); return once a descriptor reached an HSDir.

    ADD_ONION (control-spec §3.27): "KeyType ':' KeyBlob" with KeyType
    "ED25519-V3" reuses a key; "NEW:ED25519-V3" makes one and the reply carries
    "PrivateKey=ED25519-V3:...". Without the Detach flag the service belongs to
    this control connection: tor removes it when the connection closes.
    """
    from twisted.internet import defer

    checked = _check_ports(ports)
    key = read_key(key_file)
    proto = running.tor.protocol
    uploaded: defer.Deferred[str] = defer.Deferred()
    service: list[str] = []
    failures = [0]

    def hs_desc(event: str) -> None:
        # "650 HS_DESC Action HSAddress AuthType HsDir ..." (control-spec §4.1.25)
        args = event.split()
        if len(args) < 2 or not service or args[1] != service[0] or uploaded.called:
            return
        if args[0] == "UPLOADED":
            uploaded.callback(args[1])
        elif args[0] == "FAILED":
            failures[0] += 1

    await proto.add_event_listener("HS_DESC", hs_desc)
    try:
        targets = " ".join(
            f"Port={v},[{h}]:{p}" if ":" in h else f"Port={v},{h}:{p}" for v, h, p in checked)
        command = f"ADD_ONION {key or 'NEW:' + KEY_TYPE} {targets}"
        try:
            reply = await proto.queue_command(command)
        except Exception as e:
            raise TorError(f"tor refused to add the onion service ({e})") from e
        words = _keywords(reply)
        service_id = words.get("ServiceID", "")
        if len(service_id) != 56:
            raise TorError(f"tor's ADD_ONION reply has no v3 ServiceID: {reply!r}")
        service.append(service_id)
        onion = PublishedOnion(service_id=service_id, ports=checked)
        if key is None:
            new_key = words.get("PrivateKey", "")
            if not new_key.startswith(KEY_TYPE + ":"):
                await _del_onion(running, onion)
                raise TorError("tor did not return the new onion key; nothing was saved")
            save_key(key_file, new_key)
            log.info("tor: new onion key saved")
        log.info("tor: onion added, waiting for the descriptor upload")
        uploaded.addTimeout(timeout, running.reactor)
        try:
            await uploaded
        except defer.TimeoutError:
            await _del_onion(running, onion)
            raise TorError(f"the onion descriptor was not uploaded within {timeout:.0f} s"
                           f" ({failures[0]} failed uploads); is tor connected to the"
                           " network?") from None
    finally:
        with contextlib.suppress(Exception):
            await proto.remove_event_listener("HS_DESC", hs_desc)
    log.info("tor: onion published")
    return onion


async def _del_onion(running: RunningTor, onion: PublishedOnion) -> None:
    with contextlib.suppress(Exception):
        await running.tor.protocol.queue_command(f"DEL_ONION {onion.service_id}")


async def socks_address(running: RunningTor) -> tuple[str, int]:
    """Tor's first TCP SOCKS listener (GETINFO net/listeners/socks, control-spec §3.9)."""
    info = await running.tor.protocol.get_info("net/listeners/socks")
    for item in str(info.get("net/listeners/socks", "")).split():
        item = item.strip('"')
        if item.startswith("unix:"):
            continue
        host, _, port = item.rpartition(":")
        with contextlib.suppress(ValueError):
            return host.strip("[]"), int(port)
    raise TorError("this tor has no TCP SocksPort; mail to .onion addresses needs one"
                   " (add 'SocksPort 9050' to its torrc)")


async def shutdown(running: RunningTor, onion: PublishedOnion | None = None) -> None:
    """Remove the onion and close the control connection; stop a tor we launched (SIGTERM,
    then wait for it to exit)."""
    from twisted.internet import defer

    if onion is not None:
        await _del_onion(running, onion)
    if running.launched:
        done = defer.Deferred.fromCoroutine(_quit(running))
        done.addTimeout(STOP_TIMEOUT, running.reactor)
        try:
            await done
        except defer.TimeoutError:
            proc = running.tor.process
            with contextlib.suppress(Exception):
                proc.transport.signalProcess("KILL")  # type: ignore[union-attr]
            log.info("tor: launched tor did not stop in time, killed")
    else:
        with contextlib.suppress(Exception):
            await running.tor.protocol.quit()
    log.info("tor: stopped")


async def _quit(running: RunningTor) -> None:
    await running.tor.quit()


# -- python -m onionclean_tor ---------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m onionclean_tor",
        description="Publish one v3 onion service for loopback ports until SIGTERM/SIGINT;"
                    " prints one JSON line when it is reachable and one when stopped.")
    p.add_argument("--state-dir", type=Path, required=True,
                   help=f"holds {ONION_KEY_FILE} and a launched tor's data directory")
    p.add_argument("--control", default=None,
                   help="attach to this tor (unix:/path, port or 127.0.0.1:port);"
                        " default: launch a private tor")
    p.add_argument("--port", action="append", default=[], metavar="ONION=HOST:PORT",
                   help="map an onion port to a loopback service, e.g. 1965=127.0.0.1:1965")
    p.add_argument("--tor-option", action="append", default=[], metavar="'Key Value'",
                   help="extra option for a launched tor (repeatable)")
    p.add_argument("--timeout", type=float, default=PUBLISH_TIMEOUT)
    return p.parse_args(argv)


def _ports_from_args(specs: Sequence[str]) -> dict[int, tuple[str, int]]:
    ports: dict[int, tuple[str, int]] = {}
    for spec in specs:
        virt, sep, target = spec.partition("=")
        host, _, port = target.rpartition(":")
        try:
            ports[int(virt)] = (host.strip("[]"), int(port))
        except ValueError:
            raise TorError(f"--port {spec!r} is not ONION=HOST:PORT") from None
        if not sep:
            raise TorError(f"--port {spec!r} is not ONION=HOST:PORT")
    return ports


class _DropCleanTorExit(logging.Filter):
    """txtorcon logs a launched tor's normal exit (code 0) as an error; it is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tor exited with error-code 0" not in record.getMessage()


def _route_twisted_logs() -> None:
    """Send Twisted's log (and txtorcon's) to Python logging, warnings and errors only."""
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    twisted_log = logging.getLogger("twisted")
    twisted_log.setLevel(logging.WARNING)
    twisted_log.addFilter(_DropCleanTorExit())
    globalLogBeginner.beginLoggingTo([STDLibLogObserver(name="twisted")],
                                     redirectStandardIO=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    _route_twisted_logs()
    options: dict[str, list[str]] = {}
    for line in args.tor_option:
        k, _, v = line.strip().partition(" ")
        options.setdefault(k, []).append(v.strip())
    try:
        ports = _ports_from_args(args.port)
        _check_ports(ports)
    except TorError as e:
        print(f"onionclean_tor: {e}", file=sys.stderr)
        return 2
    settings = TorSettings(state_dir=args.state_dir, control=args.control,
                           torrc_options=options, publish_timeout=args.timeout)
    reactor = install_asyncio_reactor()
    from twisted.internet import defer

    exit_code = [0]
    handles: dict[str, Any] = {}

    def emit(**fields: object) -> None:
        print(json.dumps(fields), flush=True)

    async def start() -> None:
        t0 = time.monotonic()
        running = await launch_or_attach(settings, reactor)
        handles["tor"] = running
        onion = await publish_onion(running, ports, settings.key_file, settings.publish_timeout)
        handles["onion"] = onion
        socks: tuple[str, int] | None
        try:
            socks = await socks_address(running)
        except TorError:
            socks = None
        emit(event="published", address=onion.address, tor_pid=running.pid,
             socks=f"{socks[0]}:{socks[1]}" if socks else None,
             seconds=round(time.monotonic() - t0, 2))

    def failed(failure: Any) -> None:
        err = failure.value
        print(f"onionclean_tor: {err}", file=sys.stderr)
        exit_code[0] = 1
        reactor.stop()  # type: ignore[attr-defined]

    async def stop() -> None:
        running = handles.get("tor")
        if running is not None:
            await shutdown(running, handles.get("onion"))
        emit(event="stopped")

    # SIGTERM/SIGINT stop the reactor; "before shutdown" triggers may return a Deferred
    # that the reactor waits for, so the onion is removed and tor stopped first.
    reactor.addSystemEventTrigger(  # type: ignore[attr-defined]
        "before", "shutdown", lambda: defer.Deferred.fromCoroutine(stop()))
    reactor.callWhenRunning(  # type: ignore[attr-defined]
        lambda: defer.Deferred.fromCoroutine(start()).addErrback(failed))
    reactor.run()  # type: ignore[attr-defined]
    return exit_code[0]


if __name__ == "__main__":
    sys.exit(main())
