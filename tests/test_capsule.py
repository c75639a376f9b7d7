"""The Gemini capsule over real TLS: `onionclean capsule` runs as a process on loopback.

Clients are the exact request bytes of Lagrange, gmid's titan, Phoebe's titan
and gplaces (tests/titan_clients.py) and, for plain Gemini, Agunua from PyPI.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import Agunua
import pytest
from PIL import Image

import core
from tests.capsule_proc import ROOT, CapsuleProcess
from tests.conftest import corpus_dir, corpus_files
from tests.oracle import exiftool_tags, leaks
from tests.titan_clients import (
    connect,
    exchange,
    gemini_get,
    gmid_titan,
    gplaces_titan,
    lagrange_upload,
    parse_reply,
    phoebe_titan,
    read_until_closed,
)

TEST_LIMITS = ("--request-timeout", "3", "--body-idle-timeout", "3", "--body-deadline", "6")
TOKEN = "s3cret-Token-4b1d"


def gps_photo() -> bytes:
    return (corpus_dir() / "exif-samples" / "gps" / "DSCN0010.jpg").read_bytes()


def pixels(data: bytes) -> tuple[tuple[int, int], str, bytes]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size, im.mode, im.tobytes()


@pytest.fixture(scope="module")
def capsule(tmp_path_factory: pytest.TempPathFactory):
    with CapsuleProcess(tmp_path_factory.mktemp("capsule"), *TEST_LIMITS) as c:
        yield c


@pytest.fixture(scope="module")
def token_capsule(tmp_path_factory: pytest.TempPathFactory):
    c = CapsuleProcess(tmp_path_factory.mktemp("token-capsule"), *TEST_LIMITS,
                       env={"ONIONCLEAN_CAPSULE_TOKEN": TOKEN})
    with c:
        yield c


def url(c: CapsuleProcess, path: str, scheme: str = "titan") -> str:
    return f"{scheme}://localhost:{c.port}{path}"


def assert_still_serving(c: CapsuleProcess) -> None:
    reply = gemini_get(c.port, url(c, "/", "gemini"))
    assert reply.status == 20 and b"titan://" in reply.body


# --- pages, with a real third-party client ---------------------------------------------


def test_home_page_with_agunua(capsule: CapsuleProcess, tmp_path: Path) -> None:
    page = Agunua.GeminiUri(url(capsule, "/", "gemini"), insecure=True, get_content=True,
                            parse_content=True, force_ipv4=True, tofu=str(tmp_path / "tofu"))
    assert page.network_success, page.error
    assert page.status_code == "20"
    assert page.meta.startswith("text/gemini")
    assert f"gemini://localhost:{capsule.port}/about" in page.links
    # Agunua lists gemini:// links only; the titan:// ones are in the page itself.
    assert f"=> titan://localhost:{capsule.port}/clean " in page.payload
    assert f"=> titan://localhost:{capsule.port}/inspect " in page.payload
    about = Agunua.GeminiUri(url(capsule, "/about", "gemini"), insecure=True, get_content=True,
                             force_ipv4=True)
    assert about.status_code == "20"
    assert "Never stored" in about.payload and "orientation" in about.payload


def test_wrong_host_unknown_path_and_other_schemes(capsule: CapsuleProcess) -> None:
    assert gemini_get(capsule.port, f"gemini://example.org:{capsule.port}/").status == 53
    assert gemini_get(capsule.port, url(capsule, "/nothing", "gemini")).status == 51
    assert gemini_get(capsule.port, url(capsule, "/clean", "gemini")).status == 51
    assert lagrange_upload(capsule.port, url(capsule, "/elsewhere"), b"abc").status == 51
    assert lagrange_upload(capsule.port, f"titan://example.org:{capsule.port}/clean",
                           b"abc").status == 53
    assert gemini_get(capsule.port, f"https://localhost:{capsule.port}/").status == 53
    assert gemini_get(capsule.port, "/just/a/path").status == 59


def test_one_request_per_connection(capsule: CapsuleProcess) -> None:
    home = url(capsule, "/", "gemini").encode() + b"\r\n"
    with connect(capsule.port) as s:
        s.sendall(home)
        try:
            s.sendall(home + b"x\r\n" * 5000)  # a second request, in a later read
        except OSError:
            pass  # closed already: fine
        raw, reset = read_until_closed(s)
    reply = parse_reply(raw, reset)
    assert reply.status == 20 and reply.body.count(b"# onionclean") == 1
    assert b"\r\n20 " not in reply.body


# --- the real clients' bytes ------------------------------------------------------------


def check_cleaned(photo: bytes, reply_body: bytes) -> None:
    expected = core.clean(photo)
    assert reply_body == expected.data
    assert pixels(reply_body) == pixels(photo), "the pixels must be untouched"
    assert leaks(exiftool_tags([reply_body])[0]) == []


def test_lagrange_upload_gets_the_cleaned_photo(capsule: CapsuleProcess) -> None:
    photo = gps_photo()
    reply = lagrange_upload(capsule.port, url(capsule, "/clean"), photo)
    assert (reply.status, reply.meta) == (20, "image/jpeg")
    assert not reply.reset
    check_cleaned(photo, reply.body)


def test_phoebe_and_gplaces_uploads(capsule: CapsuleProcess) -> None:
    photo = gps_photo()
    # Phoebe sends an empty token= when there is none; the mime is only a hint.
    reply = phoebe_titan(capsule.port, url(capsule, "/clean"), photo, mime="text/plain")
    assert (reply.status, reply.meta) == (20, "image/jpeg")
    check_cleaned(photo, reply.body)
    reply = gplaces_titan(capsule.port, url(capsule, "/clean"), photo)
    assert (reply.status, reply.meta) == (20, "image/jpeg")
    assert reply.body == core.clean(photo).data


def test_gmid_titan_drops_the_port_and_sends_8k_chunks(capsule: CapsuleProcess) -> None:
    photo = gps_photo()
    code, reply = gmid_titan(capsule.port, "localhost", "/clean", photo, mime="image/jpeg")
    assert code == 0 and (reply.status, reply.meta) == (20, "image/jpeg")
    # gmid's titan reads only the header, then closes: the capsule copes.
    assert_still_serving(capsule)


def test_inspect_returns_a_report_and_none_of_the_image(capsule: CapsuleProcess) -> None:
    photo = gps_photo()
    reply = lagrange_upload(capsule.port, url(capsule, "/inspect"), photo)
    assert (reply.status, reply.meta) == (20, "text/gemini")
    page = reply.body.decode("utf-8")
    assert page.startswith("# What this photo gives away")
    assert "## Where the photo was taken" in page and "GPS position" in page
    assert f"=> titan://localhost:{capsule.port}/clean " in page
    assert photo[100:140] not in reply.body


# --- bad requests: each answered, the next client served --------------------------------


def jpeg_bomb() -> bytes:
    """A small real JPEG whose frame header claims 60000 x 60000 pixels."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") * 2
    return bytes(data)


BROKEN_JPEG = b"\xff\xd8\xff\xe1\xff\xf0Exif\x00\x00" + bytes(range(50))


@pytest.mark.parametrize(
    "payload, status, words",
    [
        (b"titan://localhost:{port}/clean;mime=image/jpeg\r\nabc", 59, "no size"),
        (b"titan://localhost:{port}/clean;size=-5\r\nabc", 59, "not a number"),
        (b"titan://localhost:{port}/clean;size=12kB\r\nabc", 59, "not a number"),
        (b"titan://localhost:{port}/clean;size=3;size=4\r\nabc", 59, "twice"),
        (b"titan://localhost:{port}/clean;size=3;\xff\xfe\r\nabc", 59, "UTF-8"),
        (b"titan://localhost:{port}/clean;size=3" + b"x" * 1100 + b"\r\nabc", 59, "1024"),
        (b"titan://localhost:{port}/clean;size=0\r\n", 59, "empty"),
        (b"titan://localhost:{port}/clean;size=11\r\nhello world", 59, "not an image"),
        (b"\r\n", 59, "empty"),
    ],
    ids=["no-size", "negative", "non-numeric", "size-twice", "not-utf8", "over-1024",
         "zero-bytes", "text-body", "empty-line"],
)
def test_bad_requests(capsule: CapsuleProcess, payload: bytes, status: int, words: str) -> None:
    reply = exchange(capsule.port, payload.replace(b"{port}", str(capsule.port).encode()))
    assert reply.status == status and words.lower() in reply.meta.lower(), reply.header
    assert reply.body == b""
    assert_still_serving(capsule)


@pytest.mark.parametrize("body", [BROKEN_JPEG, jpeg_bomb()], ids=["corrupt-jpeg", "bomb"])
def test_broken_images_are_refused_with_nothing_back(capsule: CapsuleProcess,
                                                     body: bytes) -> None:
    reply = lagrange_upload(capsule.port, url(capsule, "/clean"), body)
    assert reply.status == 59 and "nothing was kept" in reply.meta.lower(), reply.header
    assert reply.body == b""
    assert_still_serving(capsule)


def test_body_longer_than_size_uses_exactly_size_bytes(capsule: CapsuleProcess) -> None:
    photo = gps_photo()
    head = f"{url(capsule, '/clean')};size={len(photo)};mime=image/jpeg\r\n".encode()
    reply = exchange(capsule.port, head + photo + b"TRAILING GARBAGE" * 64)
    assert (reply.status, reply.meta) == (20, "image/jpeg")
    assert reply.body == core.clean(photo).data


def test_size_over_the_limit_is_answered_before_the_body(capsule: CapsuleProcess) -> None:
    size = 31_000_000
    with connect(capsule.port) as s:
        s.sendall(f"{url(capsule, '/clean')};mime=image/jpeg;size={size}\r\n".encode())
        raw = s.recv(2048)  # the answer comes without a single body byte sent
    reply = parse_reply(raw)
    assert reply.status == 59
    assert "at most 25 MB" in reply.meta and "31 MB" in reply.meta


def test_over_the_limit_client_that_keeps_sending_still_reads_the_answer(
    capsule: CapsuleProcess,
) -> None:
    """Lagrange writes the whole body before reading (Lagrange issue 523): the capsule
    drains it instead of resetting the connection under the client's feet."""
    body = os.urandom(26_000_000)
    reply = lagrange_upload(capsule.port, url(capsule, "/clean"), body)
    assert reply.status == 59 and "at most 25 MB" in reply.meta
    assert not reply.reset
    assert_still_serving(capsule)


def test_short_body_then_silence_times_out(capsule: CapsuleProcess) -> None:
    with connect(capsule.port) as s:
        s.sendall(f"{url(capsule, '/clean')};size=5000\r\n".encode() + b"x" * 100)
        raw, _ = read_until_closed(s)
    reply = parse_reply(raw)
    assert reply.status == 40 and "nothing arrived" in reply.meta, reply.header
    assert_still_serving(capsule)


def test_silent_connection_gets_an_answer_after_the_request_timeout(
    capsule: CapsuleProcess,
) -> None:
    with connect(capsule.port) as s:
        raw, _ = read_until_closed(s)
    assert parse_reply(raw).status == 59


# --- many people at once -----------------------------------------------------------------


def test_32_concurrent_uploads_of_corpus_photos(capsule: CapsuleProcess) -> None:
    photos = [p for p in corpus_files("exif-samples/gps", "exif-samples/orientation",
                                      "exif-samples/cameras", "exif-samples/mobile")
              if p.suffix.lower() in (".jpg", ".jpeg")][:32]
    assert len(photos) == 32
    blobs = [p.read_bytes() for p in photos]
    with ThreadPoolExecutor(32) as ex:
        replies = list(ex.map(lambda b: lagrange_upload(capsule.port, url(capsule, "/clean"),
                                                        b), blobs))
    for blob, reply in zip(blobs, replies, strict=True):
        assert (reply.status, reply.meta) == (20, "image/jpeg"), reply.header
        assert reply.body == core.clean(blob).data
    for tags in exiftool_tags([r.body for r in replies]):
        assert leaks(tags) == []


def test_a_trickling_client_does_not_delay_the_others(capsule: CapsuleProcess) -> None:
    done = threading.Event()
    trickle_reply = {}

    def trickle() -> None:
        with connect(capsule.port) as s:
            s.sendall(f"{url(capsule, '/clean')};size=100000\r\n".encode())
            s.settimeout(0.5)
            while not done.is_set():
                try:
                    s.sendall(b"x")
                    data = s.recv(4096)
                except (TimeoutError, ssl.SSLWantReadError):
                    continue
                except OSError:
                    break
                if data:
                    s.settimeout(30)
                    raw, _ = read_until_closed(s)
                    trickle_reply["reply"] = parse_reply(data + raw)
                    return

    t = threading.Thread(target=trickle)
    t.start()
    time.sleep(0.5)
    photo = gps_photo()
    with ThreadPoolExecutor(4) as ex:
        replies = list(ex.map(lambda _: lagrange_upload(capsule.port, url(capsule, "/clean"),
                                                        photo), range(8)))
    others_done_first = "reply" not in trickle_reply and t.is_alive()
    t.join(30)
    done.set()
    assert all(r.status == 20 for r in replies)
    assert others_done_first, "the others had to wait for the trickling client"
    reply = trickle_reply["reply"]
    assert reply.status == 40 and "longer than 6 seconds" in reply.meta, reply.header


def test_a_client_that_never_reads_its_answer_is_cut_off(capsule: CapsuleProcess) -> None:
    """An 18.8 MB PNG comes back 18.8 MB: far more than the socket buffers hold when
    the client never reads. The capsule aborts the connection after its deadline
    (6 s here) instead of holding the answer, and the upload's budget, forever."""
    im = Image.frombytes("RGB", (2500, 2500), os.urandom(2500 * 2500 * 3))
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=0)
    png = buf.getvalue()
    with connect(capsule.port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(f"{url(capsule, '/clean')};mime=image/png;size={len(png)}\r\n".encode()
                  + png)
        assert_still_serving(capsule)  # others are served meanwhile
        time.sleep(9)  # not reading: the capsule's 6 s deadline passes
        raw, reset = read_until_closed(s)
    assert raw.startswith(b"20 image/png\r\n")
    assert reset or len(raw) < len(png), "the connection should have been aborted"
    assert_still_serving(capsule)


# --- limits: busy and connection caps ----------------------------------------------------


def test_busy_capsule_answers_44_with_seconds(tmp_path: Path) -> None:
    args = ("--max-upload-mb", "1", "--max-inflight-mb", "1", "--max-connections", "3",
            *TEST_LIMITS)
    with CapsuleProcess(tmp_path, *args) as c:
        holder = connect(c.port)
        holder.sendall(f"{url(c, '/clean')};size=1000000\r\n".encode() + b"x" * 10)
        time.sleep(0.3)
        reply = lagrange_upload(c.port, url(c, "/clean"), b"y" * 500_000)
        assert reply.status == 44 and re.fullmatch(r"\d+", reply.meta), reply.header
        assert int(reply.meta) >= 1
        idle = [connect(c.port), connect(c.port)]  # with the holder: 3 connections
        time.sleep(0.3)
        reply = gemini_get(c.port, url(c, "/", "gemini"))
        assert reply.status == 44 and re.fullmatch(r"\d+", reply.meta)
        for s in (holder, *idle):
            s.close()
        time.sleep(0.5)
        assert_still_serving(c)
        reply = lagrange_upload(c.port, url(c, "/clean"), b"hello world")
        assert reply.status == 59, "the budget must be free again once the holder left"


# --- token, privacy, TLS identity ---------------------------------------------------------


def test_token_is_required_when_configured(token_capsule: CapsuleProcess) -> None:
    c = token_capsule
    photo = gps_photo()
    for reply in (
        lagrange_upload(c.port, url(c, "/clean"), photo),
        lagrange_upload(c.port, url(c, "/clean"), photo, token="wrong"),
        phoebe_titan(c.port, url(c, "/clean"), photo),  # Phoebe's empty token=
    ):
        assert reply.status == 59 and "token" in reply.meta and reply.body == b""
    reply = lagrange_upload(c.port, url(c, "/clean"), photo, token=TOKEN)
    assert (reply.status, reply.meta) == (20, "image/jpeg")
    code, reply = gmid_titan(c.port, "localhost", "clean", photo, token=TOKEN)
    assert code == 0 and reply.status == 20


def test_nothing_a_user_sends_is_logged_or_stored(tmp_path: Path) -> None:
    marker = b"BODY-MARKER-7f3a9c"
    secret_name = "holiday-at-grandmas-house.jpg"
    c = CapsuleProcess(tmp_path, *TEST_LIMITS, env={"ONIONCLEAN_CAPSULE_TOKEN": TOKEN})
    with c:
        source = "127.0.0.2"  # the client's address, distinct from the capsule's own
        photo = gps_photo()
        lagrange_upload(c.port, url(c, "/clean"), photo, token=TOKEN, source=source)
        lagrange_upload(c.port, url(c, "/inspect"), photo, token=TOKEN, source=source)
        lagrange_upload(c.port, url(c, "/clean"), marker * 10, token=TOKEN, source=source)
        lagrange_upload(c.port, url(c, f"/clean/{secret_name}"), marker, token=TOKEN,
                        source=source)
        lagrange_upload(c.port, url(c, "/clean"), marker, token="wrong-" + TOKEN,
                        source=source)
        gemini_get(c.port, url(c, f"/{secret_name}?{marker.decode()}", "gemini"),
                   source=source)
        exchange(c.port, b"titan://localhost/clean;size=5;token=" + TOKEN.encode()
                 + b"\xff\r\n" + marker, source=source)
        assert c.stop() == 0
    log = c.log()
    assert "titan /clean 59" in log and "titan /inspect" in log, log  # it did log
    assert "Traceback" not in log and "error" not in log.lower()
    for secret in (TOKEN, marker.decode(), secret_name, source, "GPS", "NIKON"):
        assert secret not in log, f"{secret!r} leaked into the capsule's log"
    assert sorted(p.name for p in c.state_dir.iterdir()) == [
        "capsule-cert.pem", "capsule-key.pem"]
    assert list(c.tmpdir.iterdir()) == [], "nothing may be written to TMPDIR"


def peer_cert(port: int) -> bytes:
    with connect(port) as s:
        return s.getpeercert(binary_form=True)


def test_certificate_is_made_once_and_pinned_by_agunua(tmp_path: Path) -> None:
    state = tmp_path / "state"
    tofu = tmp_path / "agunua-tofu"

    def fetch(c: CapsuleProcess) -> Agunua.GeminiUri:
        return Agunua.GeminiUri(url(c, "/", "gemini"), insecure=True, get_content=True,
                                force_ipv4=True, tofu=str(tofu))

    with CapsuleProcess(tmp_path / "one", state_dir=state) as first:
        cert = peer_cert(first.port)
        assert fetch(first).status_code == "20"
        port = first.port
    key = state / "capsule-key.pem"
    assert key.stat().st_mode & 0o077 == 0, "the private key must be readable by its owner only"
    with CapsuleProcess(tmp_path / "two", state_dir=state) as second:
        assert peer_cert(second.port) == cert, "a restart must keep the certificate"
        (tofu / f"localhost:{second.port}").write_text(
            (tofu / f"localhost:{port}").read_text())  # same pin, new test port
        assert fetch(second).network_success
    with CapsuleProcess(tmp_path / "three", state_dir=tmp_path / "other") as third:
        assert peer_cert(third.port) != cert
        (tofu / f"localhost:{third.port}").write_text(
            (tofu / f"localhost:{port}").read_text())
        assert not fetch(third).network_success, "Agunua must refuse a changed key"


# --- the reactor: asyncio, shared loop, signals -------------------------------------------

SHARED_LOOP = """
import asyncio, sys
from capsule import CapsuleConfig, install_asyncio_reactor, listen
reactor = install_asyncio_reactor()
port = listen(CapsuleConfig(port=0, state_dir=sys.argv[1]), reactor)

async def answer(reader, writer):   # an asyncio service on the same loop, as serve runs mailgw
    writer.write(b"asyncio says hi\\n"); await writer.drain(); writer.close()

async def main():
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    print(type(reactor).__name__, port.getHost().port, server.sockets[0].getsockname()[1],
          flush=True)

reactor.callWhenRunning(lambda: asyncio.ensure_future(main()))
reactor.run()
"""


def test_listen_on_an_installed_asyncio_reactor_next_to_asyncio_code(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SHARED_LOOP, str(tmp_path / "state")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode().split()
        assert line[0] == "AsyncioSelectorReactor", line
        capsule_port, asyncio_port = int(line[1]), int(line[2])
        reply = gemini_get(capsule_port, f"gemini://localhost:{capsule_port}/")
        assert reply.status == 20
        with socket.create_connection(("127.0.0.1", asyncio_port), timeout=10) as s:
            assert s.recv(100) == b"asyncio says hi\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_sigint_and_sigterm_stop_the_capsule_cleanly(tmp_path: Path) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        c = CapsuleProcess(tmp_path / sig.name).start()
        assert_still_serving(c)
        assert c.stop(sig) == 0
        assert "running on Twisted's AsyncioSelectorReactor" in c.log()
        assert "capsule stopped" in c.log()
        assert "Traceback" not in c.log()
