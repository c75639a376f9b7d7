"""The gateway's parts in-process: MIME reading, the reply, limits, start()/close() on a loop."""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage

import aiosmtplib
import pytest

from mailgw import GatewayConfig, mime, parse_host_port, reply, start
from mailgw.limits import SenderKeys, SlidingWindow
from mailgw.privacy import AIOSMTPD_LOGGER, silence_aiosmtpd
from tests.mailgw_support import SinkRelay, attach, mail, to_bytes


def test_rfc2231_name_nested_and_forwarded_parts_are_found() -> None:
    msg = mail()
    attach(msg, b"\xff\xd8\xffA", "Ünïcode café ☂.jpg", "image/jpeg")
    inner = mail(subject="fwd")
    attach(inner, b"inner-bytes", "../../etc/inner photo.png", "application/octet-stream")
    msg.add_attachment(inner)
    raw = to_bytes(msg)
    assert b"filename*=utf-8''" in raw
    parsed = mime.parse(raw)
    assert [a.stem for a in parsed.attachments] == ["Ünïcode café ☂", "inner photo"]
    assert parsed.attachments[0].data == b"\xff\xd8\xffA"
    assert parsed.attachments[1].data == b"inner-bytes"
    assert parsed.subject == "holiday pictures"
    assert parsed.message_id == "<orig-1234@example.org>"


def test_quoted_printable_part_is_decoded() -> None:
    raw = (b"From: a@example.org\r\nSubject: qp\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\n"
           b"Content-Type: text/plain\r\n\r\nhello\r\n--X\r\n"
           b"Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=FF=D8=FFabc\r\n--X--\r\n")
    (att,) = mime.parse(raw).attachments
    assert att.data.startswith(b"\xff\xd8\xffabc") and att.stem == "a"


@pytest.mark.parametrize("name,stem", [
    ("photo.jpg", "photo"), ("C:\\Users\\me\\IMG_1.JPG", "IMG_1"), ("a/b/../c.heic", "c"),
    ("evil\r\nBcc: x.jpg", "evil_Bcc_ x"), (".hidden", "hidden"), (None, ""),
    ("x" * 300 + ".jpg", "x" * 80),
])
def test_safe_stem(name: str | None, stem: str) -> None:
    assert mime.safe_stem(name) == stem


def test_limits_on_raw_bytes() -> None:
    flood = b"".join(b"X-A: b\r\n" for _ in range(600)) + b"\r\nbody"
    with pytest.raises(mime.MimeError, match="header fields"):
        mime.parse(flood)
    many = (b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
            + b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 300 + b"--B--\r\n")
    with pytest.raises(mime.MimeError, match="MIME parts"):
        mime.parse(many)


def test_attachment_limit_counts_the_rest() -> None:
    msg = mail()
    for i in range(5):
        attach(msg, b"data%d" % i, f"f{i}.bin")
    parsed = mime.parse(to_bytes(msg), max_attachments=3)
    assert len(parsed.attachments) == 3 and parsed.over_limit == 2


@pytest.mark.parametrize("headers,reason", [
    ({"Auto-Submitted": "no"}, None),
    ({"Auto-Submitted": "auto-replied"}, "auto-submitted"),
    ({"Precedence": "junk"}, "bulk"),
    ({"List-Unsubscribe": "<mailto:x@example.org>"}, "list"),
    ({"X-Auto-Response-Suppress": "OOF, AutoReply"}, "auto-response-suppressed"),
    ({}, None),
])
def test_no_reply_reasons(headers: dict[str, str], reason: str | None) -> None:
    assert mime.parse(to_bytes(mail(headers=headers))).no_reply_reason == reason


def test_reply_names_refused_files_and_keeps_nothing_of_the_original() -> None:
    incoming = mime.IncomingMail(subject="trip", message_id="<m1@example.org>",
                                 references=["<m0@example.org>"])
    ok = reply.Outcome(mime.Attachment(1, "beach", b"", "image/jpeg"), data=b"\xff\xd8clean",
                       media_type="image/jpeg", extension=".jpg", report_text="JPEG.\nGPS")
    dup = reply.Outcome(mime.Attachment(2, "beach", b"", "image/jpeg"), data=b"\xff\xd8two",
                        media_type="image/jpeg", extension=".jpg", report_text="JPEG.")
    bad = reply.Outcome(mime.Attachment(3, "notes", b"", "application/pdf"),
                        error="This is a PDF, not an image.", not_an_image=True)
    msg = reply.build_reply(incoming, [ok, dup, bad], from_address="clean@x.onion",
                            to_address="alice@example.org", hostname="x.onion")
    assert msg["References"] == "<m0@example.org> <m1@example.org>"
    assert msg["In-Reply-To"] == "<m1@example.org>"
    names = [p.get_filename() for p in msg.iter_attachments()]
    assert names == ["beach.jpg", "beach-2.jpg"]
    body = msg.get_body(("plain",)).get_content()
    assert "3. notes: not cleaned, not attached. This is a PDF, not an image." in body
    assert "1. beach: cleaned, attached as beach.jpg" in body
    raw = reply.serialize(msg)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert msg["Message-ID"] != reply.build_reply(
        incoming, [], from_address="clean@x.onion", to_address="a@b.c",
        hostname="x.onion")["Message-ID"]


def test_sliding_window_and_sender_keys() -> None:
    now = [0.0]
    w = SlidingWindow(2, 10.0, clock=lambda: now[0])
    keys = SenderKeys()
    a, b = keys("Alice@example.org"), keys("bob@example.org")
    assert a == keys("alice@example.org") and a != b and b"alice" not in a
    assert w.allow(a) and w.allow(a) and not w.allow(a) and w.allow(b)
    now[0] = 10.5
    assert w.allow(a)


def test_host_port_parsing() -> None:
    assert parse_host_port("relay.example:587", 25) == ("relay.example", 587)
    assert parse_host_port("relay.example", 25) == ("relay.example", 25)
    assert parse_host_port("[::1]:2525", 25) == ("::1", 2525)
    for bad in ("", "host:0", "host:x", ":25"):
        with pytest.raises(ValueError):
            parse_host_port(bad, 25)


def test_aiosmtpd_logs_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    silence_aiosmtpd()
    logger = logging.getLogger(AIOSMTPD_LOGGER)
    with caplog.at_level(logging.DEBUG):
        logger.info("%r sender: %s", ("127.0.0.1", 5), "alice@example.org")
        logger.warning("%r unrecognised: %s", ("127.0.0.1", 5), "alice@example.org")
        try:
            raise ValueError("alice@example.org")
        except ValueError:
            logger.exception("boom %s", "alice@example.org")
    assert "alice" not in caplog.text
    assert "aiosmtpd warning event" in caplog.text and "ValueError" in caplog.text


def test_start_and_close_on_the_running_loop() -> None:
    """The API ``onionclean serve`` uses: start() on its loop, close() finishes in-flight work."""
    relay = SinkRelay().start()

    async def scenario() -> None:
        config = GatewayConfig(host="127.0.0.1", port=0, domains=("x.onion",),
                               relay_host="127.0.0.1", relay_port=relay.port)
        gateway = await start(config)
        (host, port), = gateway.sockets
        msg: EmailMessage = mail(to="clean@x.onion")
        send = asyncio.create_task(aiosmtplib.send(
            msg, sender="alice@example.org", recipients=["clean@x.onion"], hostname=host,
            port=port, start_tls=False))
        while gateway.handler.counters.messages == 0 and not send.done():
            await asyncio.sleep(0.01)
        await gateway.close(deadline=30)
        refused, answer = await send  # the in-flight message finished with its 250
        assert refused == {} and answer.startswith("2.0.0 Cleaned")
        with pytest.raises((OSError, aiosmtplib.SMTPConnectError)):
            await aiosmtplib.SMTP(hostname=host, port=port, timeout=2).connect()

    try:
        asyncio.run(scenario())
        assert len(relay.received) == 1
    finally:
        relay.stop()


def test_skeleton_parse_gives_the_same_bytes_as_the_email_package() -> None:
    """Setting base64 runs aside must not change a single decoded byte."""
    import os
    from email import policy as email_policy
    from email.parser import BytesParser

    blobs = [os.urandom(200_000), os.urandom(57 * 64), os.urandom(57 * 63 + 5), b"\x00" * 9000]
    msg = mail()
    for i, blob in enumerate(blobs):
        attach(msg, blob, f"b{i}.bin")
    msg.add_attachment(b"=\xff\r\n" * 3000, maintype="application", subtype="x-qp",
                       cte="quoted-printable", filename="q.bin")
    inner = mail(subject="fwd")
    attach(inner, blobs[0], "inner.bin")
    msg.add_attachment(inner)
    raw = to_bytes(msg)
    ours = [a.data for a in mime.parse(raw).attachments]
    reference = BytesParser(policy=email_policy.default).parsebytes(raw)
    theirs = [p.get_payload(decode=True) for p in reference.walk()
              if not p.is_multipart() and p.get_content_maintype() != "text"]
    assert ours == theirs
    assert ours[:4] == blobs and ours[5] == blobs[0]
