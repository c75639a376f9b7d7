"""`onionclean serve`: both services from one command, configured by file, env and flags.

Real parts: the serve process itself, the `onionclean upload` Titan client over
TLS, swaks as the mail client, an aiosmtpd sink as the relay; ExifTool checks
what comes back. The process is stopped with SIGTERM by pid and must exit 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import corpus_dir
from tests.mailgw_support import (
    SinkRelay,
    attach,
    free_port,
    mail,
    parse,
    reply_attachments,
    swaks,
    to_bytes,
    wait_port,
)
from tests.oracle import exiftool_tags, leaks

ROOT = Path(__file__).resolve().parent.parent
SECRET_SUBJECT = "meet me at the old mill"
SECRET_SENDER = "whistleblower@example.org"
SECRET_NAME = "my-street-42.jpg"


class Serve:
    """`onionclean serve` as a child process with an empty HOME; log = stderr."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.home = tmp / "home"
        self.home.mkdir(exist_ok=True)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ONIONCLEAN_")}
        full_env.update({"HOME": str(self.home), "XDG_STATE_HOME": str(self.home / "state"),
                         "PYTHONUNBUFFERED": "1", **(env or {})})
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "onionclean_cli", "serve", *args],
            cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def ready(self, port: int) -> float:
        wait_port(port, timeout=60)
        return time.monotonic() - self.started

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def upload(path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "onionclean_cli", "upload", str(path), url, *extra],
        cwd=ROOT, capture_output=True, timeout=120,
    )


def test_serve_runs_both_services_and_stops_cleanly(tmp_path: Path) -> None:
    relay = SinkRelay().start()
    gemini, smtp = free_port(), free_port()
    config = tmp_path / "onionclean.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "[capsule]\n"
        f"port = {gemini}\n"
        'hostname = "localhost"\n'
        "[mailgw]\n"
        f'relay_host = "127.0.0.1"\nrelay_port = {relay.port}\n'
        'domains = ["localhost"]\n'
    )
    serve = Serve(tmp_path, "--config", str(config), env={"ONIONCLEAN_MAILGW_PORT": str(smtp)})
    try:
        took = serve.ready(gemini)
        wait_port(smtp)
        print(f"serve ready in {took:.2f} s")
        photo = tmp_path / SECRET_NAME
        photo.write_bytes((corpus_dir() / "exif-samples" / "gps" / "DSCN0010.jpg").read_bytes())

        got = upload(photo, f"gemini://localhost:{gemini}/", "-o", str(tmp_path / "out.jpg"))
        assert got.returncode == 0, got.stderr
        cleaned = (tmp_path / "out.jpg").read_bytes()

        msg = mail(subject=SECRET_SUBJECT, sender=SECRET_SENDER, to="clean@localhost")
        attach(msg, photo.read_bytes(), SECRET_NAME, "image/jpeg")
        sent = swaks(smtp, sender=SECRET_SENDER, to="clean@localhost", data=to_bytes(msg),
                     tmp=tmp_path)
        assert sent.data_reply.startswith("250"), sent.output
        (reply,) = relay.wait_for(1)
        assert reply.rcpt_tos == [SECRET_SENDER]
        attached = reply_attachments(parse(reply.data))
        assert list(attached) == [SECRET_NAME]
        for tags in exiftool_tags([cleaned, attached[SECRET_NAME]]):
            assert leaks(tags) == []
    finally:
        code, out, err = serve.stop()
        relay.stop()
    assert code == 0, err
    assert f"gemini://localhost:{gemini}/" in out
    assert "clean@localhost" in out
    assert "onionclean stopped" in err
    for secret in (SECRET_SUBJECT, SECRET_SENDER, SECRET_NAME, "whistleblower", "COOLPIX"):
        assert secret not in err and secret not in out, f"{secret!r} reached the log"
    state_files = sorted(p.name for p in (tmp_path / "state").rglob("*") if p.is_file())
    assert state_files == ["capsule-cert.pem", "capsule-key.pem"], state_files


def test_serve_without_any_config_starts_and_answers_mail_451(tmp_path: Path) -> None:
    """No file, no flags: embedded defaults (ports moved by env only to avoid clashes)."""
    gemini, smtp = free_port(), free_port()
    serve = Serve(tmp_path, env={"ONIONCLEAN_CAPSULE_PORT": str(gemini),
                                 "ONIONCLEAN_MAILGW_PORT": str(smtp)})
    try:
        serve.ready(gemini)
        wait_port(smtp)
        msg = mail(to="clean@localhost")
        attach(msg, b"\xff\xd8\xff" + b"0" * 100, "x.jpg", "image/jpeg")
        sent = swaks(smtp, to="clean@localhost", data=to_bytes(msg), tmp=tmp_path)
        assert sent.data_reply.startswith("451"), sent.output
    finally:
        code, out, err = serve.stop()
    assert code == 0, err
    assert "no mail relay configured" in err
    # the default state directory is the user's state dir
    assert (tmp_path / "home" / "state" / "onionclean" / "capsule" / "capsule-cert.pem").is_file()


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ("[capsule]\nprot = 1965\n", {}, "prot"),
        ("[capsule]\nport = 'one'\n", {}, "'one' is not a valid int"),
        ("[smtp]\nport = 25\n", {}, "unknown section"),
        ("this is = not toml [", {}, "not valid TOML"),
        ("", {"ONIONCLEAN_MAILGW_PORT": "many"}, "'many' is not a valid int"),
        ("[capsule]\nhostname = 'a b'\n", {}, "hostname"),
    ],
)
def test_bad_configuration_stops_with_a_clear_error(
    tmp_path: Path, content: str, env: dict[str, str], message: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    serve = Serve(tmp_path, "--config", str(config), env=env)
    serve.proc.wait(timeout=60)
    code, _, err = serve.stop()
    assert code == 2, err
    assert "configuration error" in err and message in err, err


def test_every_documented_variable_is_a_real_setting() -> None:
    """The ONIONCLEAN_* names in the README and deploy/ must mean something to serve."""
    import dataclasses
    import re

    from capsule.config import CapsuleConfig
    from mailgw.config import GatewayConfig
    from onionclean_serve import ServeSettings

    known = {"ONIONCLEAN_CONFIG", "ONIONCLEAN_RELAY_PASSWORD", "ONIONCLEAN_TORNET_KEEP"}
    known |= {f"ONIONCLEAN_{f.name.upper()}" for f in dataclasses.fields(ServeSettings)}
    for section, cls in (("CAPSULE", CapsuleConfig), ("MAILGW", GatewayConfig)):
        known |= {f"ONIONCLEAN_{section}_{f.name.upper()}" for f in dataclasses.fields(cls)}
    docs = [ROOT / "README.md", *sorted((ROOT / "deploy").rglob("*")),
            *sorted(ROOT.glob("*/README.md"))]
    used = {m for p in docs if p.is_file()
            for m in re.findall(r"ONIONCLEAN_[A-Z_]+[A-Z]", p.read_text(errors="replace"))}
    assert used, "no variables found: the search is broken"
    assert used <= known, f"documented but unknown: {sorted(used - known)}"
