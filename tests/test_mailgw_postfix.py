"""Debian's Postfix as the smarthost: swaks -> gateway -> Postfix -> Maildir.

Postfix runs from a throwaway config dir on a loopback port (one instance for
the module), delivers ``example.org`` into a Maildir under the test's tmp dir,
and is stopped by the test (``postfix stop``, then SIGKILL by pid as fallback).
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image

import core
from tests.conftest import corpus_dir
from tests.mailgw_support import (
    GatewayProcess,
    Postfix,
    SinkRelay,
    attach,
    free_port,
    mail,
    parse,
    reply_attachments,
    swaks,
    to_bytes,
)
from tests.oracle import exiftool_tags, leaks

RETRY_GATEWAY_PORT = free_port()


@pytest.fixture(scope="module")
def postfix(tmp_path_factory: pytest.TempPathFactory) -> Postfix:
    # pytest's tmp dirs are private to root (0700); Postfix's own user must reach its
    # data and mail dirs, so the instance lives in a 0755 dir of its own under /tmp.
    base = Path(tempfile.mkdtemp(prefix="onionclean-postfix-"))
    base.chmod(0o755)
    # Postfix is also the sender's MTA for mail to the second gateway's domain.
    pf = Postfix(base, transports={"retry.onion": RETRY_GATEWAY_PORT})
    try:
        yield pf.start()
    finally:
        pf.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, postfix: Postfix) -> GatewayProcess:
    gw = GatewayProcess(tmp_path_factory.mktemp("gw-pf"), relay_port=postfix.port)
    yield gw
    gw.stop()


def test_reply_reaches_maildir_through_postfix(gateway: GatewayProcess, postfix: Postfix,
                                               tmp_path: Path) -> None:
    photos = {
        "DSCN0025": (corpus_dir() / "exif-samples/gps/DSCN0025.jpg").read_bytes(),
        "jolla": (corpus_dir() / "exif-samples/mobile/jolla.jpg").read_bytes(),
    }
    msg = mail(subject="two photos")
    for stem, data in photos.items():
        attach(msg, data, f"{stem}.jpg", "image/jpeg")
    before = len(postfix.messages())
    result = swaks(gateway.port, data=to_bytes(msg), tmp=tmp_path)
    assert result.data_reply.startswith("250 2.0.0"), result.output[-2000:]
    raw = postfix.wait_for(before + 1)[-1]
    reply = parse(raw)
    assert reply["Subject"] == "Cleaned: two photos"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["Return-Path"] == "<>"  # null reverse-path (RFC 3834 section 3.3)
    # Postfix's own Received line names the gateway's loopback hop; the sender's are gone
    assert b"203.0.113.77" not in raw and b"SecretMailer" not in raw
    attached = reply_attachments(reply)
    body = reply.get_body(("plain",)).get_content()
    blobs = []
    for stem, data in photos.items():
        try:
            expected = core.clean(data)
        except core.CleanError as e:
            assert f"{stem}: not cleaned, not attached. {str(e)[0].upper()}{str(e)[1:20]}" in body
            continue
        got = attached[stem + expected.extension]
        blobs.append(got)
        with Image.open(io.BytesIO(data)) as a, Image.open(io.BytesIO(got)) as b:
            assert a.size == b.size
            if expected.lossless:
                assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
    assert len(attached) == len(blobs)
    for tags in exiftool_tags(blobs):
        assert leaks(tags) == []
    assert len(blobs) == 2  # both phone photos come back cleaned


def test_postfix_down_451_then_retry_delivers(gateway: GatewayProcess, postfix: Postfix,
                                              tmp_path: Path) -> None:
    data = to_bytes(mail(subject="retry me"))
    before = len(postfix.messages())
    postfix.stop()
    try:
        first = swaks(gateway.port, data=data, tmp=tmp_path)
    finally:
        postfix.start()
    assert first.data_reply.startswith("451 4.4.1"), first.replies
    second = swaks(gateway.port, data=data, tmp=tmp_path)
    assert second.data_reply.startswith("250 2.0.0"), second.replies
    msgs = postfix.wait_for(before + 1)
    assert len(msgs) == before + 1
    assert parse(msgs[-1])["Subject"] == "Cleaned: retry me"


def test_postfix_as_senders_mta_retries_after_451(postfix: Postfix, tmp_path: Path) -> None:
    """A real MTA keeps the message on 451 and delivers it when retried: nothing lost."""
    relay = SinkRelay()  # the gateway's relay, down at first
    gw = GatewayProcess(tmp_path / "gw", domain="retry.onion", port=RETRY_GATEWAY_PORT,
                        relay_port=relay.port)
    try:
        msg = mail(subject="via my provider", to="clean@retry.onion")
        attach(msg, (corpus_dir() / "exif-samples/gps/DSCN0027.jpg").read_bytes(),
               "DSCN0027.jpg", "image/jpeg")
        sent = swaks(postfix.port, to="clean@retry.onion", data=to_bytes(msg), tmp=tmp_path)
        assert sent.data_reply.startswith("250"), sent.replies  # Postfix queued it
        deadline = time.monotonic() + 30
        while "451 4.4.1" not in postfix.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "status=deferred" in postfix.log() and "451 4.4.1" in postfix.log()
        assert relay.received == []
        relay.start()  # Postfix retries on its own (backoff set to seconds for the test)
        received = relay.wait_for(1, timeout=60)
        assert len(received) == 1, postfix.log()[-2000:]
        reply = parse(received[0].data)
        assert reply["Subject"] == "Cleaned: via my provider"
        assert "DSCN0027.jpg" in reply_attachments(reply)
        # Postfix's Received line (client name and address) did not travel into the reply
        assert b"client.example" not in received[0].data
        assert b"127.0.0.1" not in received[0].data
    finally:
        gw.stop()
        relay.stop()
