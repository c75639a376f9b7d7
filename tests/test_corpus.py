"""Every photo of the real corpus, through core.clean, read back by ExifTool.

The oracle is outside our code: ExifTool must find no tag beyond the structural
allow-list of tests/oracle.py, and none of the identifying strings ExifTool read
from the INPUT (camera make, model, serial numbers, software, owner, GPS text)
may appear anywhere in the output bytes.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageOps

import core
from tests.conftest import corpus_dir, corpus_files
from tests.oracle import exiftool_tags, leaks

#: Tags whose values identify a person, a place or a device.
IDENTIFYING = (
    "Make", "Model", "SerialNumber", "InternalSerialNumber", "BodySerialNumber",
    "LensSerialNumber", "OwnerName", "CameraOwnerName", "Artist", "Copyright", "Software",
    "HostComputer", "LensModel", "ImageUniqueID", "GPSLatitude", "GPSLongitude", "Creator",
    "By-line", "City", "Country", "CreatorTool", "UserComment", "ImageDescription",
)


def _identifying_strings(tags: dict) -> set[bytes]:
    found: set[bytes] = set()
    for key, value in tags.items():
        tag = key.partition(":")[2]
        if tag in IDENTIFYING and isinstance(value, str):
            text = value.strip()
            if len(text) >= 5 and not text.isdigit():
                found.add(text.encode("utf-8", "ignore"))
    return found


@pytest.fixture(scope="module")
def cleaned_corpus() -> list[tuple[Path, bytes, core.Cleaned | core.CleanError]]:
    corpus_dir()
    rows = []
    for path in corpus_files():
        data = path.read_bytes()
        try:
            rows.append((path, data, core.clean(data)))
        except core.CleanError as e:
            rows.append((path, data, e))
    assert len(rows) >= 60, "the corpus looks incomplete"
    return rows


def test_valid_photos_all_clean(cleaned_corpus) -> None:
    failed = [
        f"{p.relative_to(corpus_dir())}: {r}"
        for p, _, r in cleaned_corpus
        if isinstance(r, core.CleanError) and "invalid" not in p.parts
    ]
    assert not failed, "\n".join(failed)


def test_invalid_photos_clean_or_refuse(cleaned_corpus) -> None:
    invalid = [(p, r) for p, _, r in cleaned_corpus if "invalid" in p.parts]
    assert len(invalid) >= 5
    for path, result in invalid:
        assert isinstance(result, core.Cleaned | core.CleanError), path
        if isinstance(result, core.CleanError):
            assert str(result), f"{path}: an error needs a message a person can read"


def test_exiftool_finds_nothing_left(cleaned_corpus) -> None:
    done = [(p, d, r) for p, d, r in cleaned_corpus if isinstance(r, core.Cleaned)]
    out_tags = exiftool_tags([r.data for _, _, r in done])
    in_tags = exiftool_tags([d for _, d, _ in done])
    problems = []
    for (path, _, result), after, before in zip(done, out_tags, in_tags, strict=True):
        name = path.relative_to(corpus_dir())
        left = leaks(after)
        if left:
            problems.append(f"{name}: ExifTool still reads {left}")
        for needle in _identifying_strings(before):
            if needle in result.data:
                problems.append(f"{name}: the output still contains {needle!r}")
    assert not problems, "\n".join(problems)


def test_output_opens_and_looks_the_same(cleaned_corpus) -> None:
    """Same displayed size as the input; lossless outputs decode to identical pixels."""
    problems = []
    for path, data, result in cleaned_corpus:
        if not isinstance(result, core.Cleaned):
            continue
        with Image.open(io.BytesIO(data)) as src, Image.open(io.BytesIO(result.data)) as out:
            src_shown = ImageOps.exif_transpose(src)
            out_shown = ImageOps.exif_transpose(out)
            if src_shown.size != out_shown.size:
                problems.append(f"{path.name}: {src_shown.size} -> {out_shown.size}")
                continue
            if result.lossless and src_shown.tobytes() != out_shown.tobytes():
                problems.append(f"{path.name}: pixels changed on the lossless path")
    assert not problems, "\n".join(problems)


def test_report_says_what_was_removed(cleaned_corpus) -> None:
    gps = [(p, r) for p, _, r in cleaned_corpus if "gps" in p.parts]
    assert gps
    for path, result in gps:
        assert isinstance(result, core.Cleaned), path
        assert result.report.removed, f"{path.name}: nothing reported as removed"
        assert any(f.category == core.Category.LOCATION for f in result.report.findings), path
