"""`onionclean serve`: time from start to ready, and memory at idle.

    .venv/bin/python -m bench.bench_serve [--runs 5]

Starts the real command (fresh state directory each run, so the TLS
certificate is made every time), measures until both loopback ports accept a
connection, waits, reads the process's resident memory (VmRSS/VmHWM), and stops
it with SIGTERM. The Tor figures are printed by tests/test_tor_serve.py
(network start to onion reachable; a 12-MP Titan upload through the onion
versus loopback) and bench/bench_tor.py.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.loopback import accepts, free_port

ROOT = Path(__file__).resolve().parent.parent


def memory_kb(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def one_run(idle_seconds: float) -> tuple[float, dict[str, int], int]:
    gemini, smtp = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="onionclean-bench-") as state:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "onionclean_cli", "serve", "--state-dir", state,
             "--gemini-port", str(gemini), "--smtp-port", str(smtp)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            while not (accepts(gemini, 0.2) and accepts(smtp, 0.2)):
                if proc.poll() is not None or time.monotonic() - t0 > 60:
                    raise RuntimeError("serve did not start")
                time.sleep(0.01)
            ready = time.monotonic() - t0
            time.sleep(idle_seconds)
            mem = memory_kb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    return ready, mem, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=2.0,
                        help="seconds idle before reading memory")
    args = parser.parse_args()
    readies, rss = [], []
    for i in range(args.runs):
        ready, mem, code = one_run(args.idle)
        readies.append(ready)
        rss.append(mem["VmRSS"] / 1024)
        print(f"run {i + 1}: ready in {ready:.2f} s, idle RSS {mem['VmRSS'] / 1024:.1f} MB,"
              f" peak {mem['VmHWM'] / 1024:.1f} MB, exit {code}")
    print(f"serve -> ready: median {statistics.median(readies):.2f} s"
          f" (min {min(readies):.2f}, max {max(readies):.2f}) over {args.runs} runs;"
          f" idle RSS median {statistics.median(rss):.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
