"""Run ``onionclean capsule`` as a real process on loopback; stop it by pid."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"capsule listening on 127\.0\.0\.1:(\d+)")


class CapsuleProcess:
    """``onionclean capsule --port 0 ...`` with its log in ``log_path`` and its own TMPDIR."""

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None,
                 state_dir: Path | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = state_dir or workdir / "state"
        self.log_path = workdir / f"capsule-{time.monotonic_ns()}.log"
        self.tmpdir = workdir / "tmp"
        self.tmpdir.mkdir(exist_ok=True)
        self.args = args
        self.env = {**os.environ, "TMPDIR": str(self.tmpdir), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 30.0) -> CapsuleProcess:
        cmd = [
            sys.executable, "-m", "onionclean_cli", "capsule", "--host", "127.0.0.1",
            "--port", "0", "--hostname", "localhost", "--state-dir", str(self.state_dir),
            *self.args,
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = _LISTENING.search(self.log())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"the capsule exited early:\n{self.log()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the capsule did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Send ``sig`` to our own process (by pid); return its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def __enter__(self) -> CapsuleProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
