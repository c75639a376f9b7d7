"""deploy/: the files operators copy are accepted by the real programs that read them.

tor checks the torrc snippet (``tor --verify-config``); Postfix's own tools read
the main.cf/master.cf snippets and look up the maps (postconf, postmap).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ONION = "a" * 52 + "2345"  # 56 base32 characters, like a v3 address


def test_torrc_snippet_is_valid_for_tor(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    hs = tmp_path / "hs"
    torrc = tmp_path / "torrc"
    text = (DEPLOY / "torrc.onionclean").read_text()
    assert "HiddenServicePort 1965 127.0.0.1:1965" in text
    assert "HiddenServicePort 25 127.0.0.1:25" in text
    torrc.write_text(text.replace("/var/lib/tor/onionclean/", f"{hs}/"))
    out = subprocess.run(
        [shutil.which("tor") or "tor", "--verify-config", "-f", str(torrc),
         "--DataDirectory", str(data), "--SocksPort", "0", "--GeoIPFile", "/nonexistent",
         "--GeoIPv6File", "/nonexistent"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Configuration was valid" in out.stdout


@pytest.fixture
def postfix_conf(tmp_path: Path) -> Path:
    """Debian's Postfix defaults with the onionclean snippets merged in, as the guide says."""
    conf = tmp_path / "postfix"
    conf.mkdir()
    postfix = DEPLOY / "postfix"

    def fill(name: str) -> str:
        return ((postfix / name).read_text().replace("EXAMPLEONIONADDRESS", ONION)
                .replace("/etc/postfix/", f"{conf}/"))

    (conf / "main.cf").write_text("compatibility_level = 3.6\n" + fill("main.cf"))
    (conf / "master.cf").write_text(
        Path("/etc/postfix/master.cf").read_text().replace("\nsmtp      inet", "\n#smtp inet")
        + fill("master.cf"))
    for name in ("onionclean_transport", "onionclean_header_checks"):
        (conf / name).write_text(fill(name))
    subprocess.run(["postmap", "-c", str(conf), f"hash:{conf}/onionclean_transport"],
                   check=True, capture_output=True, timeout=30)
    return conf


def _postconf(conf: Path, *args: str) -> str:
    out = subprocess.run(["postconf", "-c", str(conf), *args], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "warning" not in out.stderr, out.stderr
    return out.stdout


def test_postfix_snippets_parse_and_route_mail_to_the_gateway(postfix_conf: Path) -> None:
    main = _postconf(postfix_conf, "-n")
    assert "inet_interfaces = loopback-only" in main
    assert f"relay_domains = {ONION}.onion" in main
    # Loopback (= every Tor client) must not be exempt from the rate limits.
    assert "smtpd_client_event_limit_exceptions =\n" in main
    master = _postconf(postfix_conf, "-M")
    onion_side = next(ln for ln in master.splitlines() if ln.startswith("127.0.0.1:smtp "))
    assert "permit_mynetworks" not in onion_side  # Tor clients come from 127.0.0.1
    assert any(ln.startswith("127.0.0.1:10587 ") for ln in master.splitlines())
    route = subprocess.run(
        ["postmap", "-c", str(postfix_conf), "-q", f"{ONION}.onion",
         f"hash:{postfix_conf}/onionclean_transport"],
        capture_output=True, text=True, timeout=30).stdout.strip()
    assert route == "onionclean:[127.0.0.1]:2525"
    dropped = subprocess.run(
        ["postmap", "-c", str(postfix_conf), "-q",
         f"Received: from bob-laptop (localhost [127.0.0.1]) by {ONION}.onion (Postfix)",
         f"regexp:{postfix_conf}/onionclean_header_checks"],
        capture_output=True, text=True, timeout=30).stdout.strip()
    assert dropped == "IGNORE"
