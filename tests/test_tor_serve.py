"""End to end through a real (private) Tor network: `onionclean serve --tor`.

A private Tor network runs on loopback (tests/tornet.py: four directory
authorities that are also the relays, one client tor with SOCKS and control
ports). `onionclean serve --tor --tor-control PORT` attaches to the client tor
and publishes its onion service there; then, through the client's SOCKS port
and the .onion address only, a photo is uploaded with Titan (the real
`onionclean upload` client) and a mail with a photo is sent with swaks over a
SOCKS5 `nc` pipe. Every process is stopped by its pid.
"""

from __future__ import annotations

import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.photo import SECRETS, make_phone_jpeg
from capsule.client import upload
from tests.conftest import corpus_dir
from tests.mailgw_support import SinkRelay, attach, free_port, mail, parse, to_bytes, wait_port
from tests.oracle import exiftool_tags, leaks
from tests.test_serve import Serve
from tests.tornet import tor_network

pytestmark = pytest.mark.tor


@pytest.fixture(scope="module")
def net():  # type: ignore[no-untyped-def]
    """One private Tor network for this module's tests (started in ~15 s)."""
    with tor_network() as network:
        yield network

ONION_LINE = re.compile(rb"gemini://([a-z2-7]{56}\.onion)/")


def _read_onion(serve: Serve, timeout: float) -> str:
    """The onion address serve prints once the service is published and listening."""
    assert serve.proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(serve.proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if serve.proc.poll() is not None:
            break
        if sel.select(timeout=0.5):
            line = serve.proc.stdout.readline()
            buf += line
            m = ONION_LINE.search(line)
            if m:
                return m.group(1).decode()
    code, out, err = serve.stop()
    raise AssertionError(f"serve printed no onion address (exit {code}):\n{buf!r}\n{err}")


def _swaks_via_socks(onion: str, socks_port: int, sender: str, data: Path) -> str:
    """swaks through Tor: `nc -X 5 -x` speaks SOCKS5 and lets Tor resolve the onion."""
    proc = subprocess.run(
        ["swaks", "--pipe", f"nc -X 5 -x 127.0.0.1:{socks_port} {onion} 25",
         "--from", sender, "--to", f"clean@{onion}", "--helo", "client.example",
         "--data", f"@{data}", "--timeout", "120"],
        capture_output=True, timeout=300,
    )
    return proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


def test_serve_through_a_real_tor_network(tmp_path: Path, net) -> None:  # type: ignore[no-untyped-def]
    photo = (corpus_dir() / "exif-samples" / "gps" / "DSCN0012.jpg").read_bytes()
    relay = SinkRelay().start()
    gemini, smtp = free_port(), free_port()
    t0 = time.monotonic()
    serve = Serve(tmp_path, "--tor", "--tor-control", str(net.control_port),
                  "--state-dir", str(tmp_path / "state"), "--gemini-port", str(gemini),
                  "--smtp-port", str(smtp), "--relay", f"127.0.0.1:{relay.port}")
    try:
        onion = _read_onion(serve, timeout=240)
        published = time.monotonic() - t0
        wait_port(gemini)

        # Titan through the onion address only (SOCKS5, remote name resolution)
        t1 = time.monotonic()
        answer = upload(f"gemini://{onion}/", photo, mime="image/jpeg",
                        socks=("127.0.0.1", net.socks_port), timeout=180)
        via_tor = time.monotonic() - t1
        since_network = time.monotonic() - net.started_at
        assert answer.status == 20, (answer.status, answer.meta)
        assert answer.meta.startswith("image/jpeg")
        t2 = time.monotonic()
        direct = upload(f"gemini://{onion}/", photo, mime="image/jpeg",
                        connect=("127.0.0.1", gemini))
        on_loopback = time.monotonic() - t2
        assert direct.status == 20
        assert answer.body == direct.body

        # The benchmark figure of issue 5: the 12-megapixel phone photo (6.4 MB)
        # through the onion versus the same upload on loopback directly.
        big = make_phone_jpeg()
        t3 = time.monotonic()
        big_tor = upload(f"gemini://{onion}/", big, mime="image/jpeg",
                         socks=("127.0.0.1", net.socks_port), timeout=300)
        big_via_tor = time.monotonic() - t3
        t4 = time.monotonic()
        big_direct = upload(f"gemini://{onion}/", big, mime="image/jpeg",
                            connect=("127.0.0.1", gemini))
        big_on_loopback = time.monotonic() - t4
        assert big_tor.status == 20 and big_direct.status == 20
        assert big_tor.body == big_direct.body
        for secret in SECRETS.values():
            assert secret.encode() not in big_tor.body

        # Mail through the onion's port 25
        msg = mail(sender="alice@example.org", to=f"clean@{onion}")
        attach(msg, photo, "garden.jpg", "image/jpeg")
        eml = tmp_path / "mail.eml"
        eml.write_bytes(to_bytes(msg))
        out = _swaks_via_socks(onion, net.socks_port, "alice@example.org", eml)
        assert re.search(r"<[~-]\s+250 ", out.split("354", 1)[-1]), out
        (reply,) = relay.wait_for(1, timeout=60)
        cleaned_mail = {p.get_filename(): p.get_payload(decode=True)
                        for p in parse(reply.data).iter_attachments()}
        assert list(cleaned_mail) == ["garden.jpg"]
        for tags in exiftool_tags([answer.body, cleaned_mail["garden.jpg"]]):
            assert leaks(tags) == []
    finally:
        code, _, err = serve.stop()
        relay.stop()
    assert code == 0, err
    print(f"\nonion published {published:.1f} s after serve started, first upload done"
          f" {since_network:.1f} s after the private Tor network started;"
          f" Titan upload of {len(photo)} bytes: {via_tor:.2f} s through Tor,"
          f" {on_loopback:.3f} s on loopback; 12-MP photo ({len(big) / 1e6:.1f} MB):"
          f" {big_via_tor:.2f} s through Tor, {big_on_loopback:.3f} s on loopback")


def test_onion_address_survives_a_restart(tmp_path: Path, net) -> None:  # type: ignore[no-untyped-def]
    """The key is kept in the state directory: the same address after a restart."""
    gemini, smtp = free_port(), free_port()
    addresses = []
    for _ in range(2):
        serve = Serve(tmp_path, "--tor", "--tor-control", str(net.control_port),
                      "--state-dir", str(tmp_path / "state"), "--gemini-port",
                      str(gemini), "--smtp-port", str(smtp))
        try:
            addresses.append(_read_onion(serve, timeout=240))
        finally:
            code, _, err = serve.stop()
        assert code == 0, err
    assert addresses[0] == addresses[1]
    key = tmp_path / "state" / "onion_v3_private_key"
    assert key.stat().st_mode & 0o077 == 0, "the onion key must be private to its owner"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-s"]))


def _wait_onion_reachable(onion: str, port: int, socks_port: int, timeout: float) -> None:
    """Retry a SOCKS5 connection until the onion's descriptor is published and it answers."""
    from python_socks.sync import Proxy

    proxy = Proxy.from_url(f"socks5://127.0.0.1:{socks_port}", rdns=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = proxy.connect(dest_host=onion, dest_port=port, timeout=30)
            sock.close()
            return
        except Exception:  # noqa: BLE001 - not yet published; retry until the deadline
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_reply_to_an_onion_sender_goes_through_tor(tmp_path: Path, net) -> None:  # type: ignore[no-untyped-def]
    """A sender on a .onion domain gets the reply at that onion's port 25, through Tor's
    SOCKS port: here a second real onion service in front of a sink MTA."""
    photo = (corpus_dir() / "exif-samples" / "gps" / "DSCN0021.jpg").read_bytes()
    relay = SinkRelay().start()  # the smarthost: must NOT see the onion reply
    onion_mx = SinkRelay().start()  # the sender's own mail server, behind its onion
    gemini, smtp = free_port(), free_port()
    control = net.control()
    try:
        (line,) = [x for x in control.command(
            f"ADD_ONION NEW:ED25519-V3 Flags=DiscardPK Port=25,127.0.0.1:{onion_mx.port}")
            if x.startswith("ServiceID=")]
        sender_onion = line.split("=", 1)[1] + ".onion"
        serve = Serve(tmp_path, "--tor", "--tor-control", str(net.control_port),
                      "--state-dir", str(tmp_path / "state"), "--gemini-port", str(gemini),
                      "--smtp-port", str(smtp), "--relay", f"127.0.0.1:{relay.port}")
        try:
            onion = _read_onion(serve, timeout=240)
            _wait_onion_reachable(sender_onion, 25, net.socks_port, timeout=120)
            sender = f"bob@{sender_onion}"
            msg = mail(sender=sender, to=f"clean@{onion}")
            attach(msg, photo, "balcony.jpg", "image/jpeg")
            eml = tmp_path / "mail.eml"
            eml.write_bytes(to_bytes(msg))
            out = _swaks_via_socks(onion, net.socks_port, sender, eml)
            assert re.search(r"<[~-]\s+250 ", out.split("354", 1)[-1]), out
            (reply,) = onion_mx.wait_for(1, timeout=60)
            assert reply.rcpt_tos == [sender]
            attached = {p.get_filename(): p.get_payload(decode=True)
                        for p in parse(reply.data).iter_attachments()}
            assert list(attached) == ["balcony.jpg"]
            assert leaks(exiftool_tags([attached["balcony.jpg"]])[0]) == []
            assert relay.received == [], "an onion reply must not leave through the relay"
        finally:
            code, _, err = serve.stop()
    finally:
        control.close()
        relay.stop()
        onion_mx.stop()
    assert code == 0, err
