"""The mail gateway end to end: swaks -> ``onionclean mailgw`` (child process) -> relay.

Real parts: swaks sends real MIME built from corpus photos; the gateway is the
real CLI in its own process; the relay is a second aiosmtpd (the Postfix relay
is in test_mailgw_postfix.py); ExifTool checks what comes back.
"""

from __future__ import annotations

import io
import re
import smtplib
import socket
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from PIL import Image

import core
from tests.conftest import corpus_dir
from tests.mailgw_support import (
    GatewayProcess,
    SinkRelay,
    attach,
    mail,
    parse,
    reply_attachments,
    self_signed_tls,
    swaks,
    to_bytes,
    with_inline_image,
)
from tests.oracle import exiftool_tags, leaks

MINIMAL_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
               b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def photo(rel: str) -> bytes:
    return (corpus_dir() / rel).read_bytes()


@pytest.fixture(scope="module")
def relay() -> SinkRelay:
    sink = SinkRelay().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, relay: SinkRelay) -> GatewayProcess:
    gw = GatewayProcess(tmp_path_factory.mktemp("gw"), "--per-sender-per-hour", "1000",
                        relay_port=relay.port)
    yield gw
    gw.stop()


@pytest.fixture()
def sink(relay: SinkRelay) -> SinkRelay:
    relay.received.clear()
    relay.refuse = None
    return relay


def _many_attachments_mail() -> tuple[EmailMessage, dict[str, bytes]]:
    """Several attachments in every shape the issue lists; returns the inputs by label."""
    inputs = {
        "DSCN0010": photo("exif-samples/gps/DSCN0010.jpg"),
        "unnamed attachment 1": photo("exif-samples/cameras/Canon_40D.jpg"),
        "dirty": photo("mat2-dirty/dirty.heic"),  # a phone HEIC with its metadata
        "broken": photo("exif-samples/gps/DSCN0012.jpg")[:6000],
        "invoice": MINIMAL_PDF,
        "Ünïcode café ☂ 2024": photo("exif-samples/orientation/portrait_5.jpg"),
        "forwarded": photo("exif-samples/cameras/Nikon_D70.jpg"),
    }
    msg = mail()
    with_inline_image(msg, inputs["unnamed attachment 1"], "<photo1@example.org>")
    # declared as something else, with a misleading name: core decides from the bytes
    attach(msg, inputs["DSCN0010"], "DSCN0010.jpg", "application/octet-stream")
    attach(msg, inputs["dirty"], "dirty.HEIC", "image/heic")
    attach(msg, inputs["broken"], "broken.jpg", "image/jpeg")
    attach(msg, inputs["invoice"], "invoice.pdf", "application/pdf")
    attach(msg, inputs["Ünïcode café ☂ 2024"], "Ünïcode café ☂ 2024.jpg", "image/jpeg")
    inner = mail(subject="fwd")
    attach(inner, inputs["forwarded"], "forwarded.jpg", "image/jpeg")
    msg.add_attachment(inner)  # message/rfc822
    return msg, inputs


def _check_reply_headers(reply: EmailMessage, raw: bytes) -> None:
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["To"] == "alice@example.org"
    assert reply["Subject"] == "Cleaned: holiday pictures"
    assert reply["In-Reply-To"] == "<orig-1234@example.org>"
    assert "<orig-1234@example.org>" in reply["References"]
    assert reply["Message-ID"].endswith("@test.onion>")
    assert reply["Date"].endswith("+0000")
    for header in ("Received", "User-Agent", "X-Mailer", "X-Originating-IP"):
        assert reply[header] is None
    for secret in (b"203.0.113.77", b"SecretMailer", b"kitchen", b"Please clean these"):
        assert secret not in raw


def test_reply_follows_core_for_every_attachment(gateway: GatewayProcess, sink: SinkRelay,
                                                 tmp_path: Path) -> None:
    """Each attachment is attached cleaned when core cleans it, else named with core's reason."""
    msg, inputs = _many_attachments_mail()
    raw_in = to_bytes(msg)
    assert b"filename*=" in raw_in  # the RFC 2231 form really is on the wire
    result = swaks(gateway.port, data=raw_in, tmp=tmp_path)
    assert result.data_reply.startswith("250 2.0.0"), result.output[-2000:]
    assert len(sink.received) == 1  # 250 came after the relay had it
    got = sink.received[0]
    assert got.mail_from == "<>" and got.rcpt_tos == ["alice@example.org"]
    reply = parse(got.data)
    _check_reply_headers(reply, got.data)
    body = reply.get_body(("plain",)).get_content()
    attached = reply_attachments(reply)
    cleaned_blobs = []
    for label, data in inputs.items():
        try:
            expected = core.clean(data)
        except core.CleanError as e:
            line = next(x for x in body.splitlines() if x.split(". ", 1)[-1].startswith(label))
            assert "not cleaned" in line and str(e).rstrip(".")[1:] in line
            assert not any(n.startswith(label + ".") for n in attached)
            continue
        name = ("photo-1" if label.startswith("unnamed") else label) + expected.extension
        assert name in attached, (name, list(attached))
        assert attached[name] == expected.data  # deterministic cleaning, same bytes
        cleaned_blobs.append(attached[name])
        with Image.open(io.BytesIO(data)) as a, Image.open(io.BytesIO(attached[name])) as b:
            assert a.size == b.size
            if expected.lossless:
                assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
    assert len(attached) == len(cleaned_blobs)  # nothing attached that core refused
    # what that means with today's core: every photo back, the PDF and the broken JPEG named
    assert set(attached) == {"DSCN0010.jpg", "photo-1.jpg", "Ünïcode café ☂ 2024.jpg",
                             "forwarded.jpg", "dirty.heic"}
    assert "invoice: not cleaned, not attached." in body
    assert "broken: not cleaned, not attached." in body
    for tags in exiftool_tags(cleaned_blobs):
        assert leaks(tags) == []


def test_gps_photo_comes_back_clean(gateway: GatewayProcess, sink: SinkRelay,
                                    tmp_path: Path) -> None:
    original = photo("exif-samples/gps/DSCN0010.jpg")
    msg = mail()
    attach(msg, original, "DSCN0010.jpg", "image/jpeg")
    result = swaks(gateway.port, data=to_bytes(msg), tmp=tmp_path)
    assert result.data_reply.startswith("250 2.0.0"), result.output[-2000:]
    reply = parse(sink.received[0].data)
    cleaned = reply_attachments(reply)["DSCN0010.jpg"]
    assert leaks(exiftool_tags([cleaned])[0]) == []
    assert "GPS" in [t for t in exiftool_tags([original])[0] if "GPS" in t][0]
    with Image.open(io.BytesIO(original)) as a, Image.open(io.BytesIO(cleaned)) as b:
        assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
    body = reply.get_body(("plain",)).get_content()
    assert "DSCN0010: cleaned, attached as DSCN0010.jpg" in body


def test_mail_without_attachment_gets_explanation(gateway: GatewayProcess, sink: SinkRelay,
                                                  tmp_path: Path) -> None:
    result = swaks(gateway.port, data=to_bytes(mail()), tmp=tmp_path)
    assert result.data_reply.startswith("250 2.0.0")
    reply = parse(sink.received[0].data)
    assert list(reply.iter_attachments()) == []
    assert "carried no attachment" in reply.get_body(("plain",)).get_content()


def test_greeting_and_ehlo_name_the_service_not_the_machine(gateway: GatewayProcess) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.port, local_hostname="client.example") as s:
        code, banner = s.ehlo()
        assert code == 250
        assert banner.split(b"\n")[0] == b"test.onion"
        assert b"SIZE 25000000" in banner
    with socket.create_connection(("127.0.0.1", gateway.port)) as c:
        greeting = c.recv(512)
    assert greeting.startswith(b"220 test.onion ESMTP")
    assert socket.gethostname().encode() not in greeting
    assert b"Python" not in greeting


@pytest.mark.parametrize("to", ["bob@example.net", "clean@example.net", "postmaster@test.onion",
                                "clean@test.onion@evil.example"])
def test_not_an_open_relay(gateway: GatewayProcess, sink: SinkRelay, to: str) -> None:
    result = swaks(gateway.port, to=to)
    rcpt = [r for r in result.replies if r[0] in "45"]
    assert rcpt and rcpt[0].startswith(("550 5.1.1", "553")), result.output[-1500:]
    assert sink.received == []


@pytest.mark.parametrize("sender,headers", [
    ("<>", {}),
    ("MAILER-DAEMON@example.org", {}),
    ("clean@test.onion", {}),
    ("alice@example.org", {"Auto-Submitted": "auto-replied"}),
    ("alice@example.org", {"Auto-Submitted": "auto-generated; reason=vacation"}),
    ("alice@example.org", {"Precedence": "bulk"}),
    ("alice@example.org", {"Precedence": "list"}),
    ("alice@example.org", {"List-Id": "<photos.lists.example.org>"}),
    ("alice@example.org", {"X-Auto-Response-Suppress": "All"}),
], ids=["null-sender", "mailer-daemon", "ourselves", "auto-replied", "auto-generated",
        "bulk", "precedence-list", "list-id", "suppress"])
def test_automatic_mail_gets_no_reply(gateway: GatewayProcess, sink: SinkRelay, tmp_path: Path,
                                      sender: str, headers: dict[str, str]) -> None:
    msg = mail(headers=headers)
    attach(msg, MINIMAL_PDF, "x.pdf", "application/pdf")
    result = swaks(gateway.port, sender=sender, data=to_bytes(msg), tmp=tmp_path)
    assert result.data_reply.startswith("250 2.0.0 Accepted; automatic mail"), result.output
    assert sink.received == []  # a reply would be at the relay before the 250
    # and the same mail from a person does get its reply (the test can fail)
    result = swaks(gateway.port, data=to_bytes(mail()), tmp=tmp_path)
    assert result.data_reply.startswith("250 2.0.0 Cleaned")
    assert len(sink.received) == 1


def test_relay_down_451_then_retry_succeeds(gateway: GatewayProcess, sink: SinkRelay,
                                            tmp_path: Path) -> None:
    msg = mail()
    attach(msg, MINIMAL_PDF, "x.pdf", "application/pdf")
    data = to_bytes(msg)
    sink.stop()
    try:
        first = swaks(gateway.port, data=data, tmp=tmp_path)
    finally:
        sink.start()
    assert first.data_reply.startswith("451 4.4.1"), first.output[-1500:]
    assert sink.received == []
    second = swaks(gateway.port, data=data, tmp=tmp_path)  # the sender's MTA retrying
    assert second.data_reply.startswith("250 2.0.0")
    assert len(sink.received) == 1
    assert parse(sink.received[0].data)["Subject"] == "Cleaned: holiday pictures"


def test_relay_refusing_gives_451(gateway: GatewayProcess, sink: SinkRelay,
                                  tmp_path: Path) -> None:
    sink.refuse = "554 5.7.1 no thanks"
    result = swaks(gateway.port, data=to_bytes(mail()), tmp=tmp_path)
    assert result.data_reply.startswith("451 4.4.0"), result.output[-1500:]


def _ten_thousand_parts() -> bytes:
    parts = b"".join(b"--B\r\nContent-Type: application/octet-stream\r\n\r\nAAAA\r\n"
                     for _ in range(10_000))
    return (b"From: a@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n" + parts + b"--B--\r\n")


def _header_flood() -> bytes:
    return (b"From: a@example.org\r\n"
            + b"".join(b"X-Flood-%d: %s\r\n" % (i, b"v" * 50) for i in range(20_000))
            + b"Subject: flood\r\n\r\nhi\r\n")


def _deep_nesting() -> bytes:
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                    for i in range(60))
    return b"From: a@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + head + b"\r\nx\r\n"


def _broken_mime() -> bytes:
    return (b"From: a@example.org\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"never-closed\"\r\n\r\n"
            b"--never-closed\r\nContent-Type: image/jpeg; name*0*=''%ff%fe\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64@@@\r\n"
            b"--never-closed\r\nContent-Type: message/rfc822\r\n\r\nnot a message\r\n")


def _binary_garbage() -> bytes:
    import random

    rnd = random.Random(1234)
    junk = bytes(rnd.randrange(256) for _ in range(300_000))
    return b"Subject: junk\r\nContent-Type: multipart/mixed; boundary=\x00\r\n\r\n" + junk


def _bare_newlines() -> bytes:
    return to_bytes(mail()).replace(b"\r\n", b"\n")


def _long_line() -> bytes:
    return b"From: a@example.org\r\nSubject: long\r\n\r\n" + b"x" * 5000 + b"\r\n"


@pytest.mark.parametrize("make,allowed", [
    (_ten_thousand_parts, ("554 5.6.0",)),
    (_header_flood, ("554 5.6.0",)),
    (_deep_nesting, ("554 5.6.0",)),
    (_broken_mime, ("250 2.0.0",)),
    (_long_line, ("250 2.0.0",)),
    (_binary_garbage, ("250 2.0.0", "554 5.6.0")),
    (_bare_newlines, ("250 2.0.0",)),
], ids=["10000-parts", "header-flood", "deep-nesting", "broken-mime", "long-line",
        "binary-garbage", "bare-newlines"])
def test_hostile_mail_gets_clean_answer_and_server_keeps_serving(
        gateway: GatewayProcess, sink: SinkRelay, tmp_path: Path, make, allowed) -> None:
    result = swaks(gateway.port, data=make(), tmp=tmp_path)
    assert result.data_reply.startswith(allowed), result.replies
    assert gateway.alive()
    after = swaks(gateway.port, data=to_bytes(mail()), tmp=tmp_path)
    assert after.data_reply.startswith("250 2.0.0 Cleaned")
    assert "Traceback" not in gateway.log()


def test_oversize_552_without_holding_it(gateway: GatewayProcess, sink: SinkRelay,
                                         tmp_path: Path) -> None:
    # Declared size (RFC 1870): refused at MAIL, before any data.
    with smtplib.SMTP("127.0.0.1", gateway.port, local_hostname="client.example") as s:
        s.ehlo()
        code, text = s.mail("alice@example.org", ["SIZE=30000000"])
        assert code == 552
    # Undeclared: 60 MB streamed. The gateway keeps at most the 25 MB limit in one
    # buffer, then discards what arrives and answers 552: peak memory is bounded by the
    # limit, not by what the client sends (aiosmtpd's own line reader: ~1.8x the limit).
    before = _peak_rss_kb(gateway)
    big = to_bytes(mail()) + b"\r\n".join([b"A" * 76] * 800_000) + b"\r\n"
    assert len(big) > 60_000_000
    result = swaks(gateway.port, data=big, tmp=tmp_path)
    assert result.data_reply.startswith("552"), result.replies
    assert sink.received == []
    grown_mb = (_peak_rss_kb(gateway) - before) / 1000
    assert grown_mb < 35, f"peak memory grew by {grown_mb:.0f} MB for a refused 60 MB mail"
    assert gateway.alive()


def _peak_rss_kb(gw: GatewayProcess) -> int:
    for line in Path(f"/proc/{gw.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_privacy_nothing_in_logs_nothing_on_disk(gateway: GatewayProcess, sink: SinkRelay,
                                                 tmp_path: Path) -> None:
    msg = mail(subject="Secret trip to Zanzibar", sender="wanda.whistle@example.org")
    attach(msg, photo("exif-samples/gps/DSCN0021.jpg"), "zanzibar-beach-house.jpg",
           "image/jpeg")
    attach(msg, MINIMAL_PDF, "passport-scan.pdf", "application/pdf")
    result = swaks(gateway.port, sender="wanda.whistle@example.org", data=to_bytes(msg),
                   tmp=tmp_path)
    assert result.data_reply.startswith("250 2.0.0")
    swaks(gateway.port, sender="wanda.whistle@example.org", to="someone@elsewhere.example")
    log = gateway.log()
    assert "message done" in log  # the log is really captured, at DEBUG level
    for secret in ("wanda", "whistle", "Zanzibar", "zanzibar", "beach-house", "passport",
                   "elsewhere.example", "someone@", "alice@", "example.org", "client.example",
                   "holiday"):
        assert secret not in log, secret
    assert gateway.files_written() == []


class _Socks5Server:
    """A minimal SOCKS5 CONNECT server (RFC 1928), no auth, that records the name asked for.

    Stand-in for Tor's SocksPort: no Tor network can run in the tests, so the
    ``.onion`` name is "resolved" by forwarding every CONNECT to the sink relay.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.requested: list[tuple[int, str, int]] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, c: socket.socket) -> None:
        def read(n: int) -> bytes:
            buf = b""
            while len(buf) < n:
                chunk = c.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError
                buf += chunk
            return buf

        try:
            ver, nmethods = read(2)
            read(nmethods)
            c.sendall(b"\x05\x00")
            _ver, _cmd, _rsv, atyp = read(4)
            name = read(read(1)[0]).decode() if atyp == 3 else socket.inet_ntoa(read(4))
            port = int.from_bytes(read(2), "big")
            self.requested.append((atyp, name, port))
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            c.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + b"\x00\x19")
        except (ConnectionError, OSError, ValueError):
            c.close()
            return

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                b.close()

        threading.Thread(target=pipe, args=(upstream, c), daemon=True).start()
        pipe(c, upstream)

    def close(self) -> None:
        self.sock.close()


def test_onion_sender_gets_reply_through_socks(tmp_path: Path, sink: SinkRelay) -> None:
    onion = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion"
    socks = _Socks5Server(sink.port)
    # the relay is configured but points at a closed port: the onion route must not use it
    gw = GatewayProcess(tmp_path / "gw", "--socks", f"127.0.0.1:{socks.port}",
                        relay_port=1)
    try:
        result = swaks(gw.port, sender=f"bob@{onion}", data=to_bytes(mail()), tmp=tmp_path)
        assert result.data_reply.startswith("250 2.0.0 Cleaned"), result.output[-1500:]
        assert socks.requested == [(3, onion, 25)]  # name resolved by the proxy (Tor)
        assert sink.received[0].rcpt_tos == [f"bob@{onion}"]
        assert onion not in gw.log()
    finally:
        gw.stop()
        socks.close()


def test_relay_not_configured_answers_451(tmp_path: Path) -> None:
    gw = GatewayProcess(tmp_path / "gw")
    try:
        result = swaks(gw.port, data=to_bytes(mail()), tmp=tmp_path)
        assert result.data_reply.startswith("451 4.3.5"), result.replies
        assert "no relay configured" in result.data_reply
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory, relay: SinkRelay) -> GatewayProcess:
    gw = GatewayProcess(tmp_path_factory.mktemp("tight"), "--domain", "second.onion",
                        "--per-sender-per-hour", "2", "--max-recipients", "1",
                        "--max-connections", "2", "--idle-timeout", "1.5",
                        relay_port=relay.port)
    yield gw
    gw.stop()


def test_per_sender_rate_limit(tight: GatewayProcess, sink: SinkRelay, tmp_path: Path) -> None:
    codes = [swaks(tight.port, sender="rate@example.org", data=to_bytes(mail()),
                   tmp=tmp_path) for _ in range(3)]
    assert [c.data_reply[:3] for c in codes[:2]] == ["250", "250"]
    assert any(r.startswith("450 4.7.1") for r in codes[2].replies), codes[2].replies
    # another sender is not affected
    other = swaks(tight.port, sender="other@example.org", data=to_bytes(mail()), tmp=tmp_path)
    assert other.data_reply.startswith("250")


def test_recipient_limit(tight: GatewayProcess) -> None:
    with smtplib.SMTP("127.0.0.1", tight.port, local_hostname="client.example") as s:
        s.ehlo()
        assert s.mail("limit@example.org")[0] == 250
        assert s.rcpt("clean@test.onion")[0] == 250
        assert s.rcpt("clean@test.onion")[0] == 250  # the same address again is no extra
        code, text = s.rcpt("clean@second.onion")
        assert code == 452 and text.startswith(b"4.5.3")


def _greeted(port: int) -> socket.socket:
    """A connection that got its 220 (earlier clients may take a moment to be let go)."""
    for _ in range(100):
        c = socket.create_connection(("127.0.0.1", port))
        if c.recv(512).startswith(b"220"):
            return c
        c.close()
        time.sleep(0.05)
    raise AssertionError("never greeted")


def test_connection_limit(tight: GatewayProcess) -> None:
    held = [_greeted(tight.port) for _ in range(2)]
    try:
        with socket.create_connection(("127.0.0.1", tight.port)) as third:
            assert third.recv(512).startswith(b"421 4.7.0")
    finally:
        for c in held:
            c.close()
    # once they are gone the next client is served
    _greeted(tight.port).close()


def test_idle_client_is_dropped(tight: GatewayProcess) -> None:
    with socket.create_connection(("127.0.0.1", tight.port), timeout=10) as c:
        assert c.recv(512).startswith(b"220")
        c.sendall(b"EHLO client.example\r\n")
        answer = b""
        while b"250 " not in answer:  # the multi-line EHLO answer, to its last line
            answer += c.recv(512)
        # then silence: the gateway hangs up after its idle timeout (1.5 s here)
        assert c.recv(512) == b""


def test_slow_data_is_cut_off(tight: GatewayProcess, sink: SinkRelay) -> None:
    """The idle timer is not reset while DATA trickles in: a slow sender is cut off."""
    with socket.create_connection(("127.0.0.1", tight.port), timeout=10) as c:
        c.recv(512)
        for cmd in (b"EHLO client.example", b"MAIL FROM:<slow@example.org>",
                    b"RCPT TO:<clean@test.onion>", b"DATA"):
            c.sendall(cmd + b"\r\n")
            answer = b""
            while not re.search(rb"(^|\n)\d{3} [^\n]*\r\n$", answer):
                answer += c.recv(4096)
        closed = False
        for _ in range(40):
            try:
                c.sendall(b"Subject: x\r\n")
            except OSError:
                closed = True
                break
            c.settimeout(0.1)
            try:
                if c.recv(512) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed
    assert sink.received == []


def test_relay_starttls_required_and_verified(tmp_path: Path) -> None:
    ctx, ca = self_signed_tls(tmp_path)
    tls_relay = SinkRelay(tls_context=ctx).start()
    gw = GatewayProcess(tmp_path / "gw", "--relay-starttls", "require", "--relay-ca", str(ca),
                        relay_port=tls_relay.port)
    try:
        result = swaks(gw.port, data=to_bytes(mail()), tmp=tmp_path)
        assert result.data_reply.startswith("250 2.0.0"), result.replies
        assert len(tls_relay.received) == 1 and tls_relay.received[0].tls
    finally:
        gw.stop()
        tls_relay.stop()


def test_relay_starttls_required_but_not_offered_gives_451(tmp_path: Path,
                                                           sink: SinkRelay) -> None:
    gw = GatewayProcess(tmp_path / "gw", "--relay-starttls", "require", relay_port=sink.port)
    try:
        result = swaks(gw.port, data=to_bytes(mail()), tmp=tmp_path)
        assert result.data_reply.startswith("451 4.4."), result.replies
        assert sink.received == []
    finally:
        gw.stop()


def test_relay_certificate_not_trusted_gives_451(tmp_path: Path) -> None:
    ctx, _ca = self_signed_tls(tmp_path)
    tls_relay = SinkRelay(tls_context=ctx).start()
    gw = GatewayProcess(tmp_path / "gw", "--relay-starttls", "require",
                        relay_port=tls_relay.port)
    try:
        result = swaks(gw.port, data=to_bytes(mail()), tmp=tmp_path)
        assert result.data_reply.startswith("451 4.4.2 TLS"), result.replies
        assert tls_relay.received == []
    finally:
        gw.stop()
        tls_relay.stop()


def test_relay_auth_after_starttls(tmp_path: Path) -> None:
    ctx, ca = self_signed_tls(tmp_path)
    relay = SinkRelay(tls_context=ctx, login=("gateway", "s3cret-pass")).start()
    gw = GatewayProcess(tmp_path / "gw", "--relay-starttls", "require", "--relay-ca", str(ca),
                        "--relay-user", "gateway", relay_port=relay.port,
                        env={"ONIONCLEAN_RELAY_PASSWORD": "s3cret-pass"})
    wrong = GatewayProcess(tmp_path / "gw2", "--relay-starttls", "require", "--relay-ca",
                           str(ca), "--relay-user", "gateway", relay_port=relay.port,
                           env={"ONIONCLEAN_RELAY_PASSWORD": "wrong"})
    try:
        result = swaks(gw.port, data=to_bytes(mail()), tmp=tmp_path)
        assert result.data_reply.startswith("250 2.0.0"), result.replies
        assert relay.logins and len(relay.received) == 1
        refused = swaks(wrong.port, data=to_bytes(mail()), tmp=tmp_path)
        assert refused.data_reply.startswith("451 4.4.0"), refused.replies
        assert len(relay.received) == 1
        assert "s3cret" not in gw.log()
    finally:
        gw.stop()
        wrong.stop()
        relay.stop()


def test_global_rate_limit(tmp_path: Path, sink: SinkRelay) -> None:
    gw = GatewayProcess(tmp_path / "gw", "--global-per-minute", "2", relay_port=sink.port)
    try:
        answers = [swaks(gw.port, sender=f"s{i}@example.org", data=to_bytes(mail()),
                         tmp=tmp_path) for i in range(3)]
        assert [a.data_reply[:3] for a in answers[:2]] == ["250", "250"]
        assert any(r.startswith("450 4.7.1 The gateway is busy") for r in answers[2].replies)
    finally:
        gw.stop()


def test_non_ascii_sender_refused_at_mail(gateway: GatewayProcess, sink: SinkRelay) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as c:
        c.recv(512)
        c.sendall("EHLO client.example\r\nMAIL FROM:<jörg@example.org>\r\n".encode())
        answer = b""
        while not re.search(rb"\r\n5\d\d [^\n]*\r\n$", answer):
            answer += c.recv(4096)
        assert b"SMTPUTF8" not in answer
    assert sink.received == []
