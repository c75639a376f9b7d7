"""The package layout and the core's public contract."""

from __future__ import annotations

import subprocess
import sys

import core


def test_public_api_names() -> None:
    for name in ("clean", "inspect", "Policy", "Cleaned", "Report", "CleanError",
                 "UnsupportedFormat", "MalformedImage", "TooLarge"):
        assert hasattr(core, name), name
    assert issubclass(core.UnsupportedFormat, core.CleanError)
    assert issubclass(core.MalformedImage, core.CleanError)
    assert issubclass(core.TooLarge, core.CleanError)


def test_core_imports_no_protocol() -> None:
    """core must stay usable alone: no Twisted, Jetforce, aiosmtpd, capsule or mailgw."""
    code = (
        "import sys, core; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('twisted', 'jetforce', 'aiosmtpd', 'aiosmtplib', 'capsule', 'mailgw', 'txtorcon')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_not_an_image_is_named() -> None:
    try:
        core.clean(b"%PDF-1.7\n...")
    except core.UnsupportedFormat as e:
        assert "PDF" in str(e)
    else:
        raise AssertionError("a PDF was accepted")
