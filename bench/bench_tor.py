"""Benchmark: a private Tor network on loopback (tests/tornet.py) and onionclean's onion.

Measures, per fresh network:
- network start -> the client tor has built a circuit ("client ready");
- network start -> the onion (published by ``python -m onionclean_tor``, which
  launches its own tor) answers through the client's SOCKS5 port ("onion reachable";
  target < 30 s);
- sending ``--megabytes`` MB to a loopback sink and getting its SHA-256 back,
  directly on loopback vs through the onion (median of ``--transfers``), and the ratio.

    .venv/bin/python bench/bench_tor.py [--runs 3] [--megabytes 5] [--transfers 3]

The transfer helper :func:`timed_transfer` takes any ``connect`` callable, so the
Titan upload of the 12-megapixel photo can be plugged in the same way later.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from python_socks.sync import Proxy  # noqa: E402

from tests.tornet import TorNetwork, stop_process, tor_network  # noqa: E402

SINK_PORT = 4444  # the onion port mapped to the sink


class _Sink(socketserver.BaseRequestHandler):
    """Read an 8-byte big-endian length and that many bytes; answer their SHA-256."""

    def handle(self) -> None:
        self.request.settimeout(120)
        header = _recv_exact(self.request, 8)
        remaining = int.from_bytes(header, "big")
        digest = hashlib.sha256()
        while remaining:
            chunk = self.request.recv(min(remaining, 1 << 16))
            if not chunk:
                return
            digest.update(chunk)
            remaining -= len(chunk)
        self.request.sendall(digest.digest())


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed early")
        data += chunk
    return data


def timed_transfer(connect: Callable[[], socket.socket], payload: bytes) -> float:
    """Seconds to connect, send ``payload`` to the sink and get the right digest back."""
    t0 = time.perf_counter()
    sock = connect()
    try:
        sock.settimeout(300)
        sock.sendall(len(payload).to_bytes(8, "big") + payload)
        if _recv_exact(sock, 32) != hashlib.sha256(payload).digest():
            raise AssertionError("the sink got different bytes")
    finally:
        sock.close()
    return time.perf_counter() - t0


def _via_socks(net: TorNetwork, host: str, port: int) -> Callable[[], socket.socket]:
    proxy = Proxy.from_url(f"socks5://127.0.0.1:{net.socks_port}", rdns=True)
    return lambda: proxy.connect(dest_host=host, dest_port=port, timeout=120)


def one_run(megabytes: float, transfers: int) -> dict[str, float]:
    sink = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Sink)
    sink.daemon_threads = True
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_port = sink.server_address[1]
    payload = os.urandom(int(megabytes * 1_000_000))
    result: dict[str, float] = {}
    try:
        with tor_network() as net:
            result["client_ready_s"] = time.monotonic() - net.started_at
            with tempfile.TemporaryDirectory(prefix="onionclean-bench-") as state:
                args = [sys.executable, "-m", "onionclean_tor", "--state-dir", state,
                        "--port", f"{SINK_PORT}=127.0.0.1:{sink_port}"]
                for key, values in net.torrc_options().items():
                    args += [a for v in values for a in ("--tor-option", f"{key} {v}")]
                proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
                try:
                    assert proc.stdout is not None
                    event = json.loads(proc.stdout.readline() or '{"event": "eof"}')
                    if event.get("event") != "published":
                        raise RuntimeError(f"onionclean_tor did not publish: {event}")
                    result["published_s"] = time.monotonic() - net.started_at
                    onion = _via_socks(net, str(event["address"]), SINK_PORT)
                    timed_transfer(onion, b"x")  # first contact: descriptor, circuits
                    result["onion_reachable_s"] = time.monotonic() - net.started_at
                    direct = [timed_transfer(
                        lambda: socket.create_connection(("127.0.0.1", sink_port)), payload)
                        for _ in range(transfers)]
                    through = [timed_transfer(onion, payload) for _ in range(transfers)]
                    result["direct_s"] = statistics.median(direct)
                    result["onion_s"] = statistics.median(through)
                    result["onion_over_direct"] = result["onion_s"] / result["direct_s"]
                    result["onion_MB_per_s"] = megabytes / result["onion_s"]
                finally:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        stop_process(proc)  # type: ignore[arg-type]
    finally:
        sink.shutdown()
        sink.server_close()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=1, help="fresh networks, one after another")
    p.add_argument("--megabytes", type=float, default=5.0)
    p.add_argument("--transfers", type=int, default=3)
    args = p.parse_args()
    results = []
    for i in range(args.runs):
        r = one_run(args.megabytes, args.transfers)
        results.append(r)
        print(f"run {i + 1}: client ready {r['client_ready_s']:.1f} s, onion published"
              f" {r['published_s']:.1f} s, onion reachable {r['onion_reachable_s']:.1f} s"
              f" after start; {args.megabytes:g} MB direct {r['direct_s']:.3f} s, through"
              f" the onion {r['onion_s']:.2f} s ({r['onion_MB_per_s']:.1f} MB/s,"
              f" x{r['onion_over_direct']:.0f})", flush=True)
    if args.runs > 1:
        reach = [r["onion_reachable_s"] for r in results]
        print(f"onion reachable: min {min(reach):.1f} s, median"
              f" {statistics.median(reach):.1f} s, max {max(reach):.1f} s;"
              f" {sum(x < 30 for x in reach)}/{len(reach)} under 30 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
