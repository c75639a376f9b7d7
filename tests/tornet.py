"""A private Tor network on loopback, made from Debian's ``tor`` package.

The approach of Tor's own test tool chutney, cut down to what an onion service
needs (findings recorded in issue 5):

- four directory authorities, keys made at test time with ``tor-gencert``; they
  are also the only relays (an onion circuit needs four distinct relays: client
  guard, middle, rendezvous/intro point, service side; with three, path selection
  finds no node);
- one client tor with a ``SocksPort`` and a ``ControlPort`` (cookie
  authentication) that onionclean can attach to; or onionclean launches its own
  tor with :meth:`TorNetwork.torrc_options` (the network's ``DirAuthority``
  lines and the testing options);
- ``TestingTorNetwork 1`` with a voting schedule compressed to 10 s and a start
  offset computed at launch so that the first consensus is made ~7 s after start.

Every port is a free loopback port picked at run time; every tor is stopped by
the pid it was started with (never by name) and the temporary directory is
removed.

Use :func:`tor_network` as a context manager or the ``tor_network`` pytest
fixture (session scope) from ``tests/conftest.py``-free modules by importing it.
"""

from __future__ import annotations

import binascii
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TOR = shutil.which("tor") or "/usr/bin/tor"
TOR_GENCERT = shutil.which("tor-gencert") or "/usr/bin/tor-gencert"

#: Directory authorities (which are also the relays). Four is the minimum for
#: onion circuits (see the module docstring).
AUTHORITIES = 4
#: Seconds from launch to the first consensus. The authorities need a moment to
#: upload their descriptors to each other before the first vote (vote and dist
#: delays of 2 s each come before the consensus' valid-after time).
FIRST_CONSENSUS_AFTER = 7
VOTING_INTERVAL = 10  # tor's floor for V3AuthVotingInterval with TestingTorNetwork

#: Options every tor in the network shares (and a tor that onionclean launches
#: needs, besides the DirAuthority lines).
COMMON_OPTIONS: dict[str, str] = {
    "TestingTorNetwork": "1",
    "PathsNeededToBuildCircuits": "0.67",
    # GeoIP tables cost ~35-90 MB of memory per tor and mean nothing here.
    "GeoIPFile": "/nonexistent",
    "GeoIPv6File": "/nonexistent",
    "SafeLogging": "0",
    "ShutdownWaitLength": "0",
    # In the first consensus the relays' weights are their first self-reported
    # bandwidths, often 0 for all but one. Clients then take that one as their only
    # guard AND as the last hop of internal circuits, the middle refuses to extend
    # back to the previous hop (DESTROY), and bootstrap stalls ~20 s until the next
    # consensus (5 of 14 fresh runs took 25-35 s). Without entry guards the first hop
    # is drawn excluding the last hop: 8 of 8 runs ready in 8-11 s. (A bandwidth file
    # does not help: authorities are never given measured weights.)
    "UseEntryGuards": "0",
}


class TorNetworkError(RuntimeError):
    """The private network did not come up; the message names the stage and logs."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open until all are picked)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _torrc(options: list[tuple[str, str]]) -> str:
    return "".join(f"{k} {v}\n" for k, v in options)


@dataclass
class Node:
    """One tor process of the network."""

    name: str
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.directory / "notice.log"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@dataclass
class TorNetwork:
    """A running private network: what a test needs to use it."""

    base: Path
    dir_authority_lines: list[str]
    socks_port: int
    control_port: int
    cookie_file: Path
    control_socket: Path
    started_at: float  # time.monotonic() when the first tor was started
    nodes: list[Node] = field(default_factory=list)

    @property
    def client(self) -> Node:
        return self.nodes[-1]

    def torrc_options(self) -> dict[str, list[str]]:
        """Options a further tor needs to join this network (for ``txtorcon.launch``)."""
        opts: dict[str, list[str]] = {k: [v] for k, v in COMMON_OPTIONS.items()}
        opts["DirAuthority"] = list(self.dir_authority_lines)
        return opts

    def control(self) -> ControlConnection:
        """A synchronous, cookie-authenticated control connection to the client tor."""
        return ControlConnection(self.control_port, self.cookie_file)

    def pids(self) -> list[int]:
        return [n.process.pid for n in self.nodes if n.process is not None]

    def logs(self) -> str:
        """The tail of every node's log, for failure messages."""
        out = []
        for n in self.nodes:
            tail = "\n".join(n.log_text().splitlines()[-15:])
            out.append(f"--- {n.name} ---\n{tail}")
        return "\n".join(out)


class ControlConnection:
    """The few control-port commands the tests need (control-spec §3), cookie auth."""

    def __init__(self, port: int, cookie_file: Path, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader = self.sock.makefile("rb")
        cookie = binascii.hexlify(cookie_file.read_bytes()).decode()
        self.command(f"AUTHENTICATE {cookie}")

    def command(self, line: str) -> list[str]:
        """Send one command; return the reply lines (without status codes). Raises on 4xx/5xx."""
        self.sock.sendall(line.encode() + b"\r\n")
        lines: list[str] = []
        while True:
            raw = self.reader.readline()
            if not raw:
                raise TorNetworkError(f"control connection closed during {line.split()[0]}")
            text = raw.decode(errors="replace").rstrip("\r\n")
            code, sep, rest = text[:3], text[3:4], text[4:]
            if not code.startswith("2"):
                raise TorNetworkError(f"tor refused {line.split()[0]}: {text}")
            if sep == "+":  # data reply: read until a lone "."
                lines.append(rest)
                while True:
                    data = self.reader.readline().decode(errors="replace").rstrip("\r\n")
                    if data == ".":
                        break
                    lines.append(data)
            else:
                lines.append(rest)
            if sep == " ":
                return lines

    def getinfo(self, key: str) -> str:
        lines = self.command(f"GETINFO {key}")
        first = lines[0]
        value = first.split("=", 1)[1] if "=" in first else ""
        return "\n".join([value, *lines[1:-1]]).strip()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"QUIT\r\n")
        self.reader.close()
        self.sock.close()

    def __enter__(self) -> ControlConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_authority_keys(directory: Path, dirport: int) -> tuple[str, str]:
    """Make an authority's keys; return (v3 identity fingerprint, relay fingerprint)."""
    keys = directory / "keys"
    keys.mkdir(parents=True, mode=0o700)
    directory.chmod(0o700)
    subprocess.run(
        [TOR_GENCERT, "--create-identity-key", "-m", "12", "-a", f"127.0.0.1:{dirport}",
         "-i", str(keys / "authority_identity_key"), "-s", str(keys / "authority_signing_key"),
         "-c", str(keys / "authority_certificate"), "--passphrase-fd", "0"],
        input=b"\n", check=True, capture_output=True, timeout=30,
    )
    v3ident = ""
    for line in (keys / "authority_certificate").read_text().splitlines():
        if line.startswith("fingerprint "):
            v3ident = line.split()[1]
    # Generates the relay keys in the data directory and prints "nick FINGERPRINT".
    out = subprocess.run(
        [TOR, "--ignore-missing-torrc", "-f", os.devnull, "--quiet", "--list-fingerprint",
         "--orport", "1", "--datadirectory", str(directory),
         "--dirserver", "xyzzy 127.0.0.1:1 ffffffffffffffffffffffffffffffffffffffff"],
        check=True, capture_output=True, timeout=30, text=True,
    ).stdout.split()
    relay_fp = "".join(out[1:])
    if len(v3ident) != 40 or len(relay_fp) != 40:
        raise TorNetworkError(f"could not read authority fingerprints in {directory}")
    return v3ident, relay_fp


def _start(node: Node, options: list[tuple[str, str]]) -> None:
    torrc = node.directory / "torrc"
    torrc.write_text(_torrc(options))
    node.process = subprocess.Popen(
        [TOR, "-f", str(torrc), "--ignore-missing-torrc"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # a ^C in pytest must not reach tor before we stop it
    )


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM one process we started, SIGKILL after ``grace`` seconds; always reaped."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=grace)


def wait_for(predicate, timeout: float, what: str, net: TorNetwork | None = None,  # type: ignore[no-untyped-def]
             interval: float = 0.25) -> float:
    """Poll ``predicate()`` until true; return the seconds waited or raise with the logs."""
    start = time.monotonic()
    last_error: Exception | None = None
    while time.monotonic() - start < timeout:
        try:
            if predicate():
                return time.monotonic() - start
        except (OSError, TorNetworkError) as e:  # not up yet
            last_error = e
        if net is not None:
            for n in net.nodes:
                if n.process is not None and n.process.poll() is not None:
                    raise TorNetworkError(
                        f"{n.name} exited with {n.process.returncode} while waiting for "
                        f"{what}\n{net.logs()}")
        time.sleep(interval)
    logs = net.logs() if net is not None else ""
    raise TorNetworkError(f"timed out after {timeout:.0f} s waiting for {what}"
                          f" (last error: {last_error})\n{logs}")


def _client_ready(net: TorNetwork) -> bool:
    """The client has a consensus and has built a circuit (control-spec GETINFO status/)."""
    with net.control() as c:
        phase = c.getinfo("status/bootstrap-phase")
        established = c.getinfo("status/circuit-established")
    return "PROGRESS=100" in phase and established == "1"


@contextlib.contextmanager
def tor_network(ready_timeout: float = 90.0) -> Iterator[TorNetwork]:
    """Start the network, wait until the client can build circuits, yield it, stop it."""
    base = Path(tempfile.mkdtemp(prefix="onionclean-tornet-"))
    base.chmod(0o700)
    ports = free_ports(2 * AUTHORITIES + 2)
    or_ports, dir_ports = ports[:AUTHORITIES], ports[AUTHORITIES:2 * AUTHORITIES]
    socks_port, control_port = ports[-2:]
    nodes: list[Node] = []
    net: TorNetwork | None = None
    try:
        lines = []
        for i in range(AUTHORITIES):
            node = Node(f"auth{i}", base / f"auth{i}")
            v3ident, fp = _make_authority_keys(node.directory, dir_ports[i])
            lines.append(f"auth{i} orport={or_ports[i]} no-v2 v3ident={v3ident} "
                         f"127.0.0.1:{dir_ports[i]} {fp}")
            nodes.append(node)
        client = Node("client", base / "client")
        client.directory.mkdir(mode=0o700)
        nodes.append(client)

        started = time.monotonic()
        # Voting rounds start at midnight + k*interval + offset (dirvote.c); put the
        # first valid-after FIRST_CONSENSUS_AFTER seconds from now.
        offset = int(time.time() + FIRST_CONSENSUS_AFTER) % VOTING_INTERVAL
        # ONIONCLEAN_TORNET_KEEP=1 keeps the directory and an info-level client log.
        debug_log = ([("Log", f"info file {client.directory / 'info.log'}")]
                     if os.environ.get("ONIONCLEAN_TORNET_KEEP") else [])
        common = list(COMMON_OPTIONS.items()) + [("DirAuthority", ln) for ln in lines]
        for i, node in enumerate(nodes[:-1]):
            _start(node, [
                ("DataDirectory", str(node.directory)),
                ("Nickname", node.name),
                ("Log", f"notice file {node.log}"),
                *common,
                ("SocksPort", "0"),
                ("Address", "127.0.0.1"),
                ("ORPort", f"127.0.0.1:{or_ports[i]}"),
                ("DirPort", f"127.0.0.1:{dir_ports[i]}"),
                ("AuthoritativeDirectory", "1"),
                ("V3AuthoritativeDirectory", "1"),
                ("ContactInfo", f"{node.name}@test.invalid"),
                ("AssumeReachable", "1"),
                # Relays that may exit to loopback only; exits are not needed for
                # onion services but keep tor's path bookkeeping simple.
                ("ExitPolicy", "accept 127.0.0.1:*,reject *:*"),
                ("ExitPolicyRejectPrivate", "0"),
                ("TestingDirAuthVoteGuard", "*"),
                ("TestingDirAuthVoteHSDir", "*"),
                ("TestingDirAuthVoteExit", "*"),
                ("TestingMinExitFlagThreshold", "0"),
                ("AuthDirFastGuarantee", "1"),  # Fast flag even at ~0 KB/s observed
                ("V3AuthVotingInterval", str(VOTING_INTERVAL)),
                ("V3AuthVoteDelay", "2"),
                ("V3AuthDistDelay", "2"),
                ("TestingV3AuthInitialVotingInterval", str(VOTING_INTERVAL)),
                ("TestingV3AuthInitialVoteDelay", "2"),
                ("TestingV3AuthInitialDistDelay", "2"),
                ("TestingV3AuthVotingStartOffset", str(offset)),
            ])
        _start(client, [
            ("DataDirectory", str(client.directory)),
            ("Nickname", "client"),
            ("Log", f"notice file {client.log}"),
            *debug_log,
            *common,
            ("SocksPort", f"127.0.0.1:{socks_port}"),
            ("ControlPort", f"127.0.0.1:{control_port}"),
            ("ControlSocket", str(client.directory / "control.sock")),
            ("CookieAuthentication", "1"),
        ])
        net = TorNetwork(
            base=base, dir_authority_lines=lines, socks_port=socks_port,
            control_port=control_port, cookie_file=client.directory / "control_auth_cookie",
            control_socket=client.directory / "control.sock",
            started_at=started, nodes=nodes,
        )
        wait_for(lambda: _client_ready(net), ready_timeout, "the client's first circuit", net)
        yield net
    finally:
        for node in reversed(nodes):
            if node.process is not None:
                stop_process(node.process)
        if os.environ.get("ONIONCLEAN_TORNET_KEEP"):  # debugging: keep keys, torrcs, logs
            print(f"tornet: kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def tor_net() -> Iterator[TorNetwork]:
    """A fresh private network for one test module (import this fixture into the
    module: ``from tests.tornet import tor_net  # noqa: F401``)."""
    with tor_network() as net:
        yield net


if __name__ == "__main__":  # manual check: python tests/tornet.py
    t0 = time.monotonic()
    with tor_network() as network:
        print(f"client ready {time.monotonic() - network.started_at:.1f} s after start;"
              f" socks 127.0.0.1:{network.socks_port}, pids {network.pids()}")
    print(f"stopped; total {time.monotonic() - t0:.1f} s")
