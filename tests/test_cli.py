"""The command line: `onionclean clean` and `onionclean inspect`, run as a real process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import corpus_dir
from tests.oracle import exiftool_tags, leaks

ROOT = Path(__file__).resolve().parent.parent


def onionclean(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "onionclean_cli", *map(str, args)],
        capture_output=True, text=True, cwd=cwd or ROOT, timeout=120,
    )


def gps_photo() -> Path:
    return corpus_dir() / "exif-samples" / "gps" / "DSCN0010.jpg"


def test_clean_into_directory(tmp_path: Path) -> None:
    a = tmp_path / "a.jpg"
    b = tmp_path / "b.png"
    shutil.copy(gps_photo(), a)
    shutil.copy(corpus_dir() / "mat2-dirty" / "dirty.png", b)
    out = tmp_path / "out"
    proc = onionclean("clean", a, b, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.png"]
    for tags in exiftool_tags([(out / "a.jpg").read_bytes(), (out / "b.png").read_bytes()]):
        assert leaks(tags) == []
    assert a.read_bytes() == gps_photo().read_bytes(), "the source must stay untouched"


def test_batch_with_a_bad_file_exits_nonzero_and_cleans_the_rest(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    bad = tmp_path / "bad.jpg"
    shutil.copy(gps_photo(), good)
    bad.write_bytes(b"%PDF-1.4 not a photo")
    out = tmp_path / "out"
    proc = onionclean("clean", good, bad, "-o", out)
    assert proc.returncode == 1
    assert "PDF" in proc.stderr
    assert [p.name for p in out.iterdir()] == ["good.jpg"]


def test_in_place_is_atomic_and_leaves_failures_untouched(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    broken = tmp_path / "broken.jpg"
    shutil.copy(gps_photo(), good)
    data = gps_photo().read_bytes()
    broken.write_bytes(data[: len(data) // 3])  # ends in the middle of the scan
    before = broken.read_bytes()
    proc = onionclean("clean", "--in-place", good, broken)
    assert leaks(exiftool_tags([good.read_bytes()])[0]) == []
    if proc.returncode != 0:
        assert broken.read_bytes() == before, "a failed in-place clean must not touch the file"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "temp file left"


def test_default_output_never_overwrites(tmp_path: Path) -> None:
    src = tmp_path / "p.jpg"
    shutil.copy(gps_photo(), src)
    first = onionclean("clean", src)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "p.clean.jpg").is_file()
    second = onionclean("clean", src)
    assert second.returncode == 1
    assert "exists" in second.stderr


def test_inspect_json_tells_where(tmp_path: Path) -> None:
    proc = onionclean("inspect", "--json", gps_photo())
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    findings = rows[0]["report"]["findings"]
    location = [f for f in findings if f["category"] == "location"]
    assert location, findings
    text = onionclean("inspect", gps_photo())
    assert text.returncode == 0
    assert "openstreetmap.org" in text.stdout


def test_inspect_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = onionclean("inspect", tmp_path / "nope.jpg")
    assert proc.returncode == 1
    assert "nope.jpg" in proc.stderr


def test_time_limit_per_file(tmp_path: Path) -> None:
    """A file that takes longer than --timeout fails with a clear message; the rest goes on."""
    heic = corpus_dir() / "exif-samples" / "heif" / "IMG_5195.HEIC"  # re-encoding takes seconds
    small = tmp_path / "small.jpg"
    shutil.copy(gps_photo(), small)
    out = tmp_path / "out"
    proc = onionclean("clean", "--timeout", "0.05", heic, "-o", out)
    assert proc.returncode == 1
    assert "gave up after 0.05 s" in proc.stderr
    assert not out.exists() or not list(out.iterdir())
    proc = onionclean("clean", "--timeout", "60", small, "-o", out)
    assert proc.returncode == 0, proc.stderr
