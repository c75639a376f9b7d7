"""onionclean_tor against a real private Tor network on loopback (tests/tornet.py).

The onion service is published by ``python -m onionclean_tor`` (Twisted on the
asyncio reactor, as ``onionclean serve`` runs it) in front of two loopback echo
servers standing in for the capsule (1965) and the mail gateway (25); every byte
goes through the client tor's SOCKS5 port with remote DNS, to the ``.onion``
address only.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socketserver
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_socks.sync import Proxy

import onionclean_tor
from tests.tornet import TorNetwork, stop_process, tor_net  # noqa: F401

pytestmark = pytest.mark.tor

ROOT = Path(__file__).resolve().parent.parent
GEMINI_BANNER = b"capsule-echo\n"
SMTP_BANNER = b"smtp-echo\n"
PUBLISH_TIMEOUT = 90.0


class _BannerEcho(socketserver.BaseRequestHandler):
    """Say which service this is, then echo every byte back until the peer closes."""

    def handle(self) -> None:
        self.request.settimeout(30)
        self.request.sendall(self.server.banner)  # type: ignore[attr-defined]
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, banner: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _BannerEcho)
        self.banner = banner


@pytest.fixture(scope="module")
def echo_ports() -> Iterator[dict[int, tuple[str, int]]]:
    """Two loopback echo servers: onion port 1965 -> one, 25 -> the other."""
    servers = [_EchoServer(GEMINI_BANNER), _EchoServer(SMTP_BANNER)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield {1965: ("127.0.0.1", servers[0].server_address[1]),
           25: ("127.0.0.1", servers[1].server_address[1])}
    for s in servers:
        s.shutdown()
        s.server_close()


class OnionProcess:
    """``python -m onionclean_tor`` as a child process, read through its JSON lines."""

    def __init__(self, state_dir: Path, ports: dict[int, tuple[str, int]], *,
                 control: str | None = None, tor_options: dict[str, list[str]] | None = None,
                 ) -> None:
        args = [sys.executable, "-m", "onionclean_tor", "--state-dir", str(state_dir),
                "--timeout", str(PUBLISH_TIMEOUT)]
        for virt, (host, port) in ports.items():
            args += ["--port", f"{virt}={host}:{port}"]
        if control:
            args += ["--control", control]
        for key, values in (tor_options or {}).items():
            for v in values:
                args += ["--tor-option", f"{key} {v}"]
        self.stderr_file = state_dir.parent / f"{state_dir.name}-{time.monotonic_ns()}.log"
        self._stderr = self.stderr_file.open("wb")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True)
        self.events: queue.Queue[dict[str, object]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put({"event": "eof"})

    def wait_event(self, name: str, timeout: float) -> dict[str, object]:
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            event = {"event": "timeout"}
        assert event["event"] == name, (
            f"expected {name!r}, got {event}; onionclean_tor said:\n{self.stderr()}")
        return event

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_file.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM (as systemd does) and wait; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self._stderr.close()

    def kill(self) -> None:
        stop_process(self.proc)  # type: ignore[arg-type]
        self._stderr.close()


def exchange(net: TorNetwork, address: str, port: int, payload: bytes, timeout: float = 60,
             ) -> tuple[bytes, bytes]:
    """Connect through the client's SOCKS5 port (remote DNS: the onion name goes to tor),
    read the banner line, send ``payload``, read it back. Returns (banner, echo)."""
    proxy = Proxy.from_url(f"socks5://127.0.0.1:{net.socks_port}", rdns=True)
    sock = proxy.connect(dest_host=address, dest_port=port, timeout=timeout)
    try:
        sock.settimeout(timeout)
        banner = b""
        while not banner.endswith(b"\n") and len(banner) < 100:
            chunk = sock.recv(1)
            if not chunk:
                break
            banner += chunk
        sock.sendall(payload)
        echo = b""
        while len(echo) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            echo += chunk
        return banner, echo
    finally:
        sock.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); /proc says whether it is really running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _assert_both_ports(net: TorNetwork, address: str) -> None:
    payload_a = os.urandom(4096)
    payload_b = os.urandom(4096)
    assert exchange(net, address, 1965, payload_a) == (GEMINI_BANNER, payload_a)
    assert exchange(net, address, 25, payload_b) == (SMTP_BANNER, payload_b)


def test_launched_tor_publishes_onion_reachable_on_both_ports_and_same_after_restart(
        tor_net: TorNetwork, echo_ports: dict[int, tuple[str, int]], tmp_path: Path) -> None:  # noqa: F811
    state = tmp_path / "state"
    first = OnionProcess(state, echo_ports, tor_options=tor_net.torrc_options())
    try:
        published = first.wait_event("published", PUBLISH_TIMEOUT + 60)
        address = str(published["address"])
        assert address.endswith(".onion") and len(address) == 62
        _assert_both_ports(tor_net, address)
        reachable = time.monotonic() - tor_net.started_at
        print(f"\nonion reachable {reachable:.1f} s after the private network started"
              f" (publish took {published['seconds']} s; target < 30 s)")
    except BaseException:
        first.kill()
        raise

    key_file = state / onionclean_tor.ONION_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("ED25519-V3:")
    assert stat.S_IMODE((state / onionclean_tor.TOR_DATA_DIR).stat().st_mode) == 0o700
    tor_pid = published["tor_pid"]
    assert isinstance(tor_pid, int) and _alive(tor_pid)
    socks = str(published["socks"])
    assert socks.startswith("127.0.0.1:"), socks

    # Clean shutdown: the onion is removed and the launched tor is stopped.
    assert first.stop() == 0, first.stderr()
    assert first.events.get(timeout=5)["event"] == "stopped"
    assert not _alive(tor_pid)
    assert "Traceback" not in first.stderr() and "Unhandled" not in first.stderr()

    # A new tor process with the same key file serves the same address.
    key_before = key_file.read_bytes()
    t0 = time.monotonic()
    second = OnionProcess(state, echo_ports, tor_options=tor_net.torrc_options())
    try:
        again = second.wait_event("published", PUBLISH_TIMEOUT + 60)
        assert again["address"] == address
        assert again["tor_pid"] != tor_pid
        assert key_file.read_bytes() == key_before
        # The client still caches the old descriptor (dead intro points); NEWNYM
        # drops tor's client-side onion state (control-spec §3.7 SIGNAL NEWNYM).
        with tor_net.control() as c:
            c.command("SIGNAL NEWNYM")
        _assert_both_ports(tor_net, address)
        print(f"restart: same address reachable again {time.monotonic() - t0:.1f} s after"
              " the new tor was launched")
    finally:
        code = second.stop()
    assert code == 0, second.stderr()


def test_attach_by_control_port_and_socket_keeps_users_tor_running(
        tor_net: TorNetwork, echo_ports: dict[int, tuple[str, int]], tmp_path: Path) -> None:  # noqa: F811
    client_pid = tor_net.client.process.pid  # type: ignore[union-attr]
    state = tmp_path / "attached"
    by_port = OnionProcess(state, echo_ports, control=f"127.0.0.1:{tor_net.control_port}")
    try:
        published = by_port.wait_event("published", PUBLISH_TIMEOUT + 30)
        address = str(published["address"])
        assert published["tor_pid"] is None  # not ours
        assert published["socks"] == f"127.0.0.1:{tor_net.socks_port}"
        _assert_both_ports(tor_net, address)
    finally:
        code = by_port.stop()
    assert code == 0, by_port.stderr()
    assert _alive(client_pid)  # the tor we attached to keeps running
    with tor_net.control() as c:
        assert c.getinfo("status/circuit-established") == "1"

    by_socket = OnionProcess(state, echo_ports, control=f"unix:{tor_net.control_socket}")
    try:
        assert by_socket.wait_event("published", PUBLISH_TIMEOUT + 30)["address"] == address
    finally:
        code = by_socket.stop()
    assert code == 0, by_socket.stderr()
    assert _alive(client_pid)


def test_garbage_key_file_is_refused_and_left_untouched(
        tor_net: TorNetwork, echo_ports: dict[int, tuple[str, int]], tmp_path: Path) -> None:  # noqa: F811
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    key_file = state / onionclean_tor.ONION_KEY_FILE
    key_file.write_bytes(b"not a key\n")
    proc = OnionProcess(state, echo_ports, control=f"127.0.0.1:{tor_net.control_port}")
    try:
        assert proc.proc.wait(timeout=30) == 1
    finally:
        proc.kill()
    assert "is not an onion key saved by onionclean" in proc.stderr()
    assert key_file.read_bytes() == b"not a key\n"


# -- without a network ------------------------------------------------------------------


def test_key_is_saved_0600_and_loose_permissions_are_tightened(tmp_path: Path) -> None:
    key_file = tmp_path / "s" / onionclean_tor.ONION_KEY_FILE
    onionclean_tor.save_key(key_file, "ED25519-V3:" + "A" * 86)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    os.chmod(key_file, 0o644)
    assert onionclean_tor.read_key(key_file) == "ED25519-V3:" + "A" * 86
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert onionclean_tor.read_key(tmp_path / "missing") is None
    assert list(key_file.parent.iterdir()) == [key_file]  # no temporary file left


@pytest.mark.parametrize("content", [b"", b"RSA1024:abc", b"ED25519-V3:", b"ED25519-V3:a b",
                                     b"\xff\xfe", b"ED25519-V3:x\nED25519-V3:y"])
def test_garbage_keys_get_a_clear_error(tmp_path: Path, content: bytes) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(content)
    with pytest.raises(onionclean_tor.TorError) as err:
        onionclean_tor.read_key(key_file)
    assert str(key_file) in str(err.value)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.2", "example.org", "::"])
def test_onion_ports_must_map_to_loopback(host: str) -> None:
    with pytest.raises(onionclean_tor.TorError, match="loopback"):
        onionclean_tor._check_ports({1965: (host, 1965)})
    assert onionclean_tor._check_ports({1965: ("127.0.0.1", 1), 25: ("::1", 2)}) == (
        (25, "::1", 2), (1965, "127.0.0.1", 1))


@pytest.mark.parametrize("control", ["10.0.0.1:9051", "tor.example:9051", "127.0.0.1:x",
                                     "127.0.0.1:70000", "unix:"])
def test_control_must_be_local_and_well_formed(control: str) -> None:
    with pytest.raises(onionclean_tor.TorError):
        onionclean_tor._control_endpoint(control, reactor=None)  # type: ignore[arg-type]


def test_command_line_refuses_public_ports_before_starting_tor(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "onionclean_tor", "--state-dir", str(tmp_path / "s"),
         "--port", "1965=0.0.0.0:1965"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "loopback" in out.stderr
    assert not (tmp_path / "s").exists()
