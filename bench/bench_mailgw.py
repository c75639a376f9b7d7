"""End-to-end benchmark of the mail gateway: N senders, one 3-5 MB phone photo per mail.

    .venv/bin/python -m bench.bench_mailgw [--senders 8] [--messages 32] [--workers N]

Runs ``onionclean mailgw`` (the real CLI, its own process) with an aiosmtpd sink
as the relay, on loopback. N concurrent aiosmtplib senders each send their
share of the messages. Reported:

- messages/s, p50/p99 time from the DATA command to the 250 (includes sending
  the ~5.5 MB of base64);
- the gateway's peak memory (VmHWM) and its growth over the idle process;
- the ratio to ``core.clean`` alone on the same photo: the same number of
  messages cleaned by a pool with as many threads as the gateway's workers.
  Target: the gateway adds < 25 % over the core's own time per message at 8
  concurrent senders.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

import aiosmtplib

import core
from bench.loopback import accepts, free_port

ROOT = Path(__file__).resolve().parent.parent


def make_photo() -> bytes:
    """A 12 MP phone-like JPEG (3-5 MB) with camera EXIF and GPS."""
    try:
        from bench.photo import make_phone_jpeg  # type: ignore[import-not-found]

        return make_phone_jpeg()
    except ImportError:
        pass
    from PIL import Image

    w, h = 4000, 3000
    coarse = Image.effect_noise((w // 4, h // 4), 60).resize((w, h), Image.Resampling.BICUBIC)
    fine = Image.effect_noise((w, h), 12)
    grad = Image.linear_gradient("L").resize((w, h))
    im = Image.merge("RGB", (Image.blend(coarse, fine, 0.4), Image.blend(grad, fine, 0.3),
                             Image.blend(coarse.transpose(Image.Transpose.ROTATE_180), grad, 0.5)))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "Phonemaker", "Phone 12 Pro", "PhoneOS 17.1"
    exif[0x0132] = "2024:06:01 12:34:56"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.6), 3: "E", 4: (2.0, 17.0, 40.2)}
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


class _Sink:
    """The relay: accepts and counts, keeps nothing."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.count += 1
        return "250 2.0.0 OK"


def run_sink(port: int) -> None:
    """The sink relay in its own process (an aiosmtpd server with the gateway's chunked
    DATA reader), so that it competes with neither the senders nor the gateway's loop."""
    from mailgw.server import ChunkedDataSMTP

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        sink = _Sink()
        server = await loop.create_server(
            lambda: ChunkedDataSMTP(sink, data_size_limit=100_000_000, hostname="sink",
                                    loop=loop), "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def _mem_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_cpu(photo: bytes, runs: int = 5) -> float:
    """CPU seconds of one core.clean (median), immune to other processes' load."""
    times = []
    for _ in range(runs):
        t = time.process_time()
        try:
            core.clean(photo)
        except core.CleanError:
            pass
        times.append(time.process_time() - t)
    return statistics.median(times)


def core_alone(photo: bytes, messages: int, workers: int) -> tuple[float, float, str]:
    """(single-call median s, pool wall time s for ``messages`` cleans, note)."""
    try:
        core.clean(photo)
        note = ""
    except core.CleanError as e:
        note = f"core refuses this photo ({e}); figures measure the refusal path"
    times = []
    for _ in range(5):
        t = time.perf_counter()
        try:
            core.clean(photo)
        except core.CleanError:
            pass
        times.append(time.perf_counter() - t)

    def one(_: int) -> None:
        try:
            core.clean(photo)
        except core.CleanError:
            pass

    with ThreadPoolExecutor(workers) as pool:
        t = time.perf_counter()
        list(pool.map(one, range(messages)))
        wall = time.perf_counter() - t
    return statistics.median(times), wall, note


async def senders(port: int, message: bytes, n_senders: int, messages: int
                  ) -> tuple[float, list[float], list[str]]:
    latencies: list[float] = []
    answers: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(messages):
        queue.put_nowait(i)

    async def sender(k: int) -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                                     timeout=300, local_hostname="bench.example")
            await client.connect()
            await client.ehlo()
            await client.mail(f"sender{k}@example.org")
            await client.rcpt("clean@bench.onion")
            t = time.perf_counter()
            try:
                response = await client.data(message)
                answers.append(f"{response.code} {response.message[:40]}")
            except aiosmtplib.SMTPResponseException as e:
                answers.append(f"{e.code} {e.message[:60]}")
            latencies.append(time.perf_counter() - t)
            await client.quit()

    t0 = time.perf_counter()
    await asyncio.gather(*(sender(k) for k in range(n_senders)))
    return time.perf_counter() - t0, latencies, answers


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--senders", type=int, default=8)
    ap.add_argument("--messages", type=int, default=32)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-inflight", type=int, default=4)
    ap.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.sink:
        run_sink(args.sink)
        return 0

    photo = make_photo()
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "clean@bench.onion", "photo"
    msg["Message-ID"] = "<bench@example.org>"
    msg.set_content("please clean")
    msg.add_attachment(photo, maintype="image", subtype="jpeg", filename="IMG_0001.jpg")
    message = msg.as_bytes(policy=SMTP_POLICY)

    core_single, core_wall, note = core_alone(photo, args.messages, args.workers)

    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "bench.bench_mailgw", "--sink",
                             str(sink_port)], cwd=ROOT)
    port = free_port()
    gw = subprocess.Popen(
        [sys.executable, "-m", "onionclean_cli", "mailgw", "--port", str(port),
         "--domain", "bench.onion", "--relay", f"127.0.0.1:{sink_port}",
         "--workers", str(args.workers), "--max-inflight", str(args.max_inflight),
         "--max-connections", str(max(64, args.senders * 2)),
         "--per-sender-per-hour", "1000000", "--global-per-minute", "1000000",
         "--log-level", os.environ.get("BENCH_GW_LOG", "warning")],
        cwd=ROOT)
    try:
        for p in (sink_port, port):
            for _ in range(400):
                if accepts(p):
                    break
                time.sleep(0.05)
        idle_rss = _mem_kb(gw.pid, "VmRSS")
        cpu0 = _cpu_s(gw.pid)
        wall, lat, answers = asyncio.run(senders(port, message, args.senders, args.messages))
        gw_cpu = (_cpu_s(gw.pid) - cpu0) / args.messages
        peak = _mem_kb(gw.pid, "VmHWM")
        # transport alone: the same mails straight into the sink (no gateway)
        direct_wall, _, _ = asyncio.run(senders(sink_port, message, args.senders,
                                                args.messages))
    finally:
        gw.terminate()
        gw.wait(timeout=30)
        sink.terminate()
        sink.wait(timeout=30)

    ok = sum(a.startswith("250") for a in answers)
    lat.sort()
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    per_msg_gw = wall / args.messages
    per_msg_core = core_wall / args.messages
    print(f"photo: {len(photo) / 1e6:.1f} MB JPEG; mail: {len(message) / 1e6:.1f} MB; "
          f"{args.messages} mails, {args.senders} concurrent senders, {args.workers} workers,"
          f" max-inflight {args.max_inflight}, {os.cpu_count()} CPUs")
    if note:
        print(f"NOTE: {note}")
    print(f"answers: {ok}/{len(answers)} x 250 (each only after the sink relay took the reply)")
    if ok != len(answers):
        print("  other answers:", sorted({a for a in answers if not a.startswith('250')}))
    print(f"gateway: {args.messages / wall:.2f} messages/s; DATA->250 p50 {p50 * 1000:.0f} ms,"
          f" p99 {p99 * 1000:.0f} ms")
    print(f"gateway peak memory: {peak / 1000:.0f} MB (idle {idle_rss / 1000:.0f} MB,"
          f" +{(peak - idle_rss) / 1000:.0f} MB under load)")
    print(f"core.clean alone: {core_single * 1000:.0f} ms per photo single-threaded;"
          f" {per_msg_core * 1000:.0f} ms per photo with {args.workers} threads")
    one_core_cpu = core_cpu(photo)
    print(f"gateway CPU per message {gw_cpu * 1000:.0f} ms (all of it: SMTP in, MIME, clean,"
          f" reply, SMTP out); core.clean CPU {one_core_cpu * 1000:.0f} ms"
          f" -> gateway adds {gw_cpu - one_core_cpu:.3f} s CPU per message")
    per_msg_direct = direct_wall / args.messages
    print(f"transport alone (same mails straight to the sink): {per_msg_direct * 1000:.0f}"
          f" ms per message; gateway: {per_msg_gw * 1000:.0f} ms"
          f" ({per_msg_gw / per_msg_direct:.2f} x one plain SMTP hop; the gateway makes two)")
    print(f"gateway time per message {per_msg_gw * 1000:.0f} ms = "
          f"{per_msg_gw / per_msg_core:.2f} x core alone "
          f"(overhead {100 * (per_msg_gw / per_msg_core - 1):+.0f} %, target < +25 %)")
    return 0 if ok == len(answers) else 1


if __name__ == "__main__":
    sys.exit(main())
