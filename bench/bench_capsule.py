"""Capsule benchmark: Titan uploads over TLS on loopback vs Jetforce serving a file.

    .venv/bin/python -m bench.bench_capsule [--clients 16] [--rounds 4] [--big 64]

1. ``--clients`` concurrent clients each upload the 12-megapixel phone photo
   ``--rounds`` times to ``titan://.../clean`` (Lagrange's request bytes) and
   read the cleaned photo back: uploads/s, p50/p99 latency, the capsule's peak
   memory (VmHWM).
2. The same clients download a file of the same size from Jetforce's own
   static file server (``jetforce --dir``), the floor of this stack: the ratio
   capsule/static is the figure to watch (target >= 0.5).
3. ``--big`` concurrent 25 MB uploads (the photo plus trailing data up to the
   limit) against a fresh capsule with default limits: clients that get
   ``44 SLOW DOWN`` wait and retry, as the status asks. Reports the capsule's
   peak memory: it must stay bounded by the in-flight budget, not grow with
   the number of clients.

Both servers run as separate processes, stopped by pid at the end.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.photo import make_phone_jpeg
from tests.capsule_proc import ROOT, CapsuleProcess
from tests.titan_clients import gemini_get, lagrange_upload


def phone_photo() -> bytes:
    """The core benchmark's 12-megapixel phone photo (EXIF, GPS, XMP, ICC, motion video)."""
    return make_phone_jpeg()


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_clients(clients: int, jobs: int, one: callable) -> tuple[float, list[float], list]:
    """``jobs`` calls of ``one()`` by ``clients`` threads; (wall seconds, latencies, results)."""
    latencies: list[float] = []
    results: list = []
    lock = threading.Lock()

    def timed(_: int) -> None:
        start = time.perf_counter()
        result = one()
        with lock:
            latencies.append(time.perf_counter() - start)
            results.append(result)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as ex:
        list(ex.map(timed, range(jobs)))
    return time.perf_counter() - start, latencies, results


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def start_jetforce(root: Path, cert: Path, key: Path, log_path: Path) -> tuple[subprocess.Popen,
                                                                             int]:
    cmd = [str(ROOT / ".venv" / "bin" / "jetforce"), "--host", "127.0.0.1", "--port", "0",
           "--hostname", "localhost", "--dir", str(root), "--tls-certfile", str(cert),
           "--tls-keyfile", str(key)]
    if not Path(cmd[0]).exists():
        cmd[0:1] = [sys.executable, "-m", "jetforce"]
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"Listening on 127\.0\.0\.1:(\d+)", log_path.read_text(errors="replace"))
        if m:
            return proc, int(m.group(1))
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("jetforce did not start")


def upload_with_retry(port: int, url: str, body: bytes, counters: dict) -> float:
    """Upload; on 44 wait the seconds asked (capped at 1 s to keep the bench short)."""
    while True:
        reply = lagrange_upload(port, url, body)
        if reply.status == 44:
            counters["slow_down"] += 1
            time.sleep(min(int(reply.meta), 1))
            continue
        if reply.status != 20:
            raise RuntimeError(f"upload failed: {reply.header}")
        return len(reply.body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--big", default="16,64",
                    help="numbers of concurrent 25 MB uploads to try, e.g. 16,64 ('' to skip)")
    args = ap.parse_args(argv)

    photo = phone_photo()
    jobs = args.clients * args.rounds
    print(f"photo: {len(photo) / 1e6:.1f} MB, {args.clients} clients x {args.rounds} rounds,"
          f" CPU cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="bench-capsule-") as tmp_s:
        tmp = Path(tmp_s)
        # 1. the capsule
        with CapsuleProcess(tmp / "capsule") as cap:
            url = f"titan://localhost:{cap.port}/clean"
            lagrange_upload(cap.port, url, photo)  # warm-up
            cpu0 = cpu_seconds(cap.proc.pid)
            wall, lat, results = run_clients(
                args.clients, jobs, lambda: lagrange_upload(cap.port, url, photo))
            up_cpu = (cpu_seconds(cap.proc.pid) - cpu0) / jobs
            bad = [r.header for r in results if r.status != 20]
            if bad:
                raise SystemExit(f"capsule answered {bad[:3]}")
            up_rate = jobs / wall
            up_mem = peak_rss_mb(cap.proc.pid)
            out_size = len(results[0].body)
            cert, key = cap.state_dir / "capsule-cert.pem", cap.state_dir / "capsule-key.pem"
            mb_in = jobs * len(photo) / wall / 1e6
            print(f"capsule upload+clean: {up_rate:.2f} uploads/s ({mb_in:.0f} MB/s in),"
                  f" p50 {pct(lat, .5) * 1000:.0f} ms, p99 {pct(lat, .99) * 1000:.0f} ms,"
                  f" peak RSS {up_mem:.0f} MB, server CPU {up_cpu * 1000:.0f} ms/upload,"
                  f" cleaned photo {out_size / 1e6:.1f} MB")
            # 2. Jetforce serving a static file of the same size
            site = tmp / "site"
            site.mkdir()
            (site / "photo.bin").write_bytes(photo)
            jf, jport = start_jetforce(site, cert, key, tmp / "jetforce.log")
            try:
                # Jetforce started with --port 0 compares URL ports with 0: omit the port.
                surl = "gemini://localhost/photo.bin"
                gemini_get(jport, surl)
                cpu0 = cpu_seconds(jf.pid)
                wall_s, lat_s, res_s = run_clients(
                    args.clients, jobs, lambda: gemini_get(jport, surl))
                st_cpu = (cpu_seconds(jf.pid) - cpu0) / jobs
                assert all(len(r.body) == len(photo) for r in res_s)
                st_mem = peak_rss_mb(jf.pid)
            finally:
                jf.terminate()
                jf.wait(20)
            st_rate = jobs / wall_s
            print(f"jetforce static file: {st_rate:.2f} downloads/s, p50"
                  f" {pct(lat_s, .5) * 1000:.0f} ms, p99 {pct(lat_s, .99) * 1000:.0f} ms,"
                  f" peak RSS {st_mem:.0f} MB, server CPU {st_cpu * 1000:.0f} ms/download")
            print(f"ratio capsule/static throughput: {up_rate / st_rate:.2f} (target >= 0.5);"
                  f" server CPU per request static/capsule: {st_cpu / up_cpu:.2f} (the same"
                  " ratio without the noise of other load on the machine)")
        # 3. memory under many concurrent 25 MB uploads: it must not grow with the clients
        big = photo + os.urandom(25_000_000 - len(photo))  # trailing data up to the limit
        for n in [int(x) for x in args.big.split(",") if x.strip()]:
            with CapsuleProcess(tmp / f"big{n}") as cap:
                url = f"titan://localhost:{cap.port}/clean"
                counters = {"slow_down": 0}
                base = peak_rss_mb(cap.proc.pid)
                wall_b, _, _ = run_clients(
                    n, n, functools.partial(upload_with_retry, cap.port, url, big, counters))
                print(f"{n} concurrent 25 MB uploads: all cleaned in {wall_b:.1f} s,"
                      f" {counters['slow_down']} x 44 SLOW DOWN (retried), capsule peak RSS"
                      f" {peak_rss_mb(cap.proc.pid):.0f} MB (idle {base:.0f} MB; in-flight"
                      f" budget 200 MB; {n * 25} MB offered)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
