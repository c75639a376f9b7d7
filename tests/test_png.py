"""PNG/APNG: chunk-level cleaning, checked by ExifTool and by decoding every frame."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageCms

import core
from core import png as png_module
from core.png import PNG
from tests.chunk_helpers import (
    FUZZ,
    XMP_PACKET,
    assert_exiftool_clean,
    assert_no_secrets,
    assert_pixel_exact,
    clean_or_refuse,
    displayed,
    exif_tiff,
    flip,
    frames,
    fuzz_corruptions,
    outside_image_data,
    spy_on_describers,
    truncate,
    truncations,
)
from tests.conftest import corpus_dir
from tests.oracle import exiftool_tags


def chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(
        ">I", zlib.crc32(ctype + body))


def with_chunks(png: bytes, after_ihdr: list[bytes], before_iend: list[bytes] = (),
                trailing: bytes = b"") -> bytes:
    """``png`` with extra chunks after IHDR and before IEND, and bytes after IEND."""
    ihdr_end = 8 + 25
    iend = png.rindex(b"IEND") - 4
    return (png[:ihdr_end] + b"".join(after_ihdr) + png[ihdr_end:iend] + b"".join(before_iend)
            + png[iend:] + trailing)


def metadata_chunks(orientation: int = 1) -> list[bytes]:
    itxt = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + XMP_PACKET
    return [
        chunk(b"tEXt", b"Author\x00Jane Secret"),
        chunk(b"tEXt", b"Software\x00SecretSoftware 2.1"),
        chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"Hidden comment, Rue du Secret 12")),
        chunk(b"iTXt", itxt),
        chunk(b"eXIf", exif_tiff(orientation)),
        chunk(b"tIME", struct.pack(">HBBBBB", 2024, 5, 17, 13, 45, 2)),
        chunk(b"pHYs", struct.pack(">IIB", 3780, 3780, 1)),
        chunk(b"prVt", b"PRIVATEPAYLOAD"),
        chunk(b"bKGD", b"\x00\x10\x00\x20\x00\x30"),
    ]


def plain_png(size: tuple[int, int] = (40, 24), mode: str = "RGB") -> bytes:
    im = Image.new(mode, size)
    im.putdata([(x * 5 % 256, y * 9 % 256, (x * y) % 256, 200)[: len(mode)]
                for y in range(size[1]) for x in range(size[0])])
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def dirty_png(orientation: int = 1) -> bytes:
    return with_chunks(plain_png(), metadata_chunks(orientation),
                       [chunk(b"tEXt", b"Comment\x00Hidden comment after IDAT")],
                       trailing=b"TRAILINGSECRET" * 10)


def dirty_apng() -> bytes:
    images = [Image.new("RGBA", (32, 20), (40 * i, 255 - 40 * i, 7, 100 + 50 * i))
              for i in range(3)]
    for i, im in enumerate(images):
        im.putpixel((i, i), (1, 2, 3, 4))
    out = io.BytesIO()
    images[0].save(out, "PNG", save_all=True, append_images=images[1:], duration=[50, 80, 120],
                   loop=2)
    return with_chunks(out.getvalue(), metadata_chunks(),
                       [chunk(b"tEXt", b"Comment\x00Hidden comment after IDAT")],
                       trailing=b"TRAILINGSECRET")


def chunk_types(data: bytes) -> list[bytes]:
    return [c.type for c in png_module.walk(data, core.Policy()).chunks]


def test_corpus_dirty_png_cleans_without_leaks() -> None:
    data = (corpus_dir() / "mat2-dirty" / "dirty.png").read_bytes()
    result = core.clean(data)
    assert result.format == "png" and result.lossless
    assert_exiftool_clean([result.data])
    assert_pixel_exact(data, result.data)
    assert b"This is a comment" not in result.data
    assert any(f.category == core.Category.COMMENT and "be careful" in f.value
               for f in result.report.findings)
    assert any(f.category == core.Category.TIME for f in result.report.findings)
    removed = {r.what for r in result.report.removed}
    assert {"PNG iTXt chunk", "PNG tIME chunk", "PNG pHYs chunk"} <= removed


def test_dirty_png_and_apng_clean_pixel_exact() -> None:
    outputs = []
    for data in (dirty_png(), dirty_apng()):
        result = core.clean(data)
        assert_pixel_exact(data, result.data)
        assert_no_secrets(result.data)
        assert set(chunk_types(result.data)) <= png_module.KEEP
        outputs.append(result.data)
    with Image.open(io.BytesIO(outputs[1])) as im:
        assert im.n_frames == 3 and im.info["loop"] == 2
    assert_exiftool_clean(outputs, allow_orientation=False)


def test_report_names_what_the_png_gave_away() -> None:
    report = core.inspect(dirty_png())
    found = {(f.category, f.label): f.value for f in report.findings}
    every = {(f.category, f.label, f.value) for f in report.findings}
    assert (core.Category.PEOPLE, "Author", "Jane Secret") in every
    assert (core.Category.SOFTWARE, "Software", "SecretSoftware 2.1") in every
    comments = [f.value for f in report.by_category(core.Category.COMMENT)]
    assert comments == ["Hidden comment, Rue du Secret 12", "Hidden comment after IDAT"]
    assert found[(core.Category.TIME, "Last modified")] == "2024-05-17 13:45:02 UTC"
    assert "dpi" in found[(core.Category.OTHER, "Pixel density")]
    assert "prVt" in found[(core.Category.OTHER, "Private chunk")]
    assert "140 bytes" in found[(core.Category.TRAILING_DATA, "Data hidden after the picture")]
    assert report.width == 40 and report.height == 24


def test_xmp_and_exif_blocks_reach_the_describers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spies record what the plugin hands over, then call the real describers."""
    seen = spy_on_describers(monkeypatch, png_module)
    core.inspect(dirty_png())
    assert seen == {"xmp": XMP_PACKET, "exif": exif_tiff()}


def test_orientation_kept_displays_like_the_original() -> None:
    inputs = [dirty_png(o) for o in range(1, 9)]
    outputs = [core.clean(d).data for d in inputs]
    for o, (before, after) in enumerate(zip(inputs, outputs, strict=True), start=1):
        assert displayed(before) == displayed(after), f"orientation {o}"
        assert_pixel_exact(before, after)
        assert (b"eXIf" in after) == (o != 1)
    for o, tags in enumerate(exiftool_tags(outputs), start=1):
        exif_tags = {k: v for k, v in tags.items()
                     if k.split(":")[0] in ("IFD0", "ExifIFD", "GPS", "IFD1")}
        assert exif_tags == ({} if o == 1 else {"IFD0:Orientation": exif_tags.get(
            "IFD0:Orientation")}), exif_tags
        assert (o == 1) == ("IFD0:Orientation" not in tags)
    assert_exiftool_clean(outputs)
    assert any("turned 90° clockwise" in k for k in core.clean(inputs[5]).report.kept)


def test_orientation_dropped_on_request() -> None:
    data = dirty_png(6)
    result = core.clean(data, core.Policy(orientation=core.Orientation.DROP))
    assert b"eXIf" not in result.data
    assert any("dropped" in n for n in result.report.notes)
    assert_pixel_exact(data, result.data)
    assert_exiftool_clean([result.data], allow_orientation=False)


def test_orientation_baked_on_request() -> None:
    data = dirty_png(6)
    result = core.clean(data, core.Policy(orientation=core.Orientation.BAKE))
    assert not result.lossless
    assert displayed(result.data) == displayed(data)
    assert_no_secrets(result.data)
    assert_exiftool_clean([result.data], allow_orientation=False)


def test_colour_profile_dropped_unless_kept() -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(out, "PNG", icc_profile=profile)
    data = out.getvalue()
    assert b"iCCP" in data
    assert b"iCCP" not in core.clean(data).data
    kept = core.clean(data, core.Policy(keep_icc=True))
    assert b"iCCP" in kept.data
    with Image.open(io.BytesIO(kept.data)) as im:
        assert im.info["icc_profile"] == profile


def test_bad_crc_is_refused_with_a_clear_message() -> None:
    data = dirty_png()
    pos = data.index(b"Jane Secret")
    with pytest.raises(core.MalformedImage, match="tEXt chunk has a bad checksum"):
        core.clean(flip(data, pos, 0x20))


def test_truncated_png_says_so() -> None:
    data = plain_png()
    with pytest.raises(core.MalformedImage, match="ends in the middle of a chunk"):
        core.clean(data[:60])
    with pytest.raises(core.MalformedImage, match="ends before its IEND"):
        core.clean(data[:-12])


def test_leftovers_name_the_dirty_chunks() -> None:
    data = dirty_png(3)
    left = PNG().leftovers(data, core.Policy())
    for name in ("tEXt", "zTXt", "iTXt", "eXIf", "tIME", "pHYs", "prVt"):
        assert f"PNG {name} chunk" in left
    assert "140 bytes after IEND" in left
    assert PNG().leftovers(core.clean(data).data, core.Policy()) == []


def test_pixel_limit_checked_from_ihdr_first() -> None:
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    bomb = png_module.SIGNATURE + ihdr + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    with pytest.raises(core.TooLarge, match="megapixels"):
        core.clean(bomb)
    with pytest.raises(core.TooLarge):
        core.inspect(bomb)


def test_chunk_count_limit() -> None:
    many = with_chunks(plain_png(), [chunk(b"tEXt", b"k\x00v")] * 30)
    with pytest.raises(core.TooLarge, match="more than 20 chunks"):
        core.clean(many, core.Policy(max_segments=20))


def test_ztxt_bomb_is_not_inflated() -> None:
    """100 MB of zeros in a 100 KB zTXt: the report refuses to inflate past its cap."""
    deflater = zlib.compressobj(9)
    zeros = bytes(1 << 20)
    bomb = b"".join(deflater.compress(zeros) for _ in range(100)) + deflater.flush()
    data = with_chunks(plain_png(), [chunk(b"zTXt", b"Comment\x00\x00" + bomb)] * 5)
    tracemalloc.start()
    try:
        result = core.clean(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, f"peak {peak / 1e6:.1f} MB"
    assert any("too large" in f.value for f in result.report.findings)
    assert b"zTXt" not in result.data


def test_truncations_clean_or_refuse() -> None:
    for data in (dirty_png(6), dirty_apng()):
        outputs = truncations(data)
        # Cuts inside the trailing data still clean; every other cut must be refused.
        assert outputs and all(b"TRAILING" not in o for o in outputs)
        assert_exiftool_clean(outputs)


def test_byte_flips_clean_or_refuse() -> None:
    outputs = fuzz_corruptions(dirty_apng(), flip)
    outputs += fuzz_corruptions(dirty_png(8), truncate)
    assert_exiftool_clean(outputs)


def test_flips_behind_a_valid_crc_clean_or_refuse() -> None:
    """Damage inside chunks whose CRC is fixed up, so the parsers past the CRC check run."""
    original = dirty_apng()
    walked = png_module.walk(original, core.Policy()).chunks
    outputs: list[bytes] = []

    @FUZZ
    @given(st.integers(0, len(walked) - 1), st.integers(0, 1 << 16), st.integers(1, 255))
    def run(index: int, where: int, value: int) -> None:
        c = walked[index]
        if c.length == 0:
            return
        body = bytearray(original[c.data_start : c.data_start + c.length])
        body[where % len(body)] ^= value
        damaged = original[: c.start] + chunk(c.type, bytes(body)) + original[c.end :]
        clean_or_refuse(damaged, outputs)

    run()
    assert_exiftool_clean(outputs)


def test_frames_helper_sees_every_apng_frame() -> None:
    assert len(frames(dirty_apng())) == 3


def test_corruption_check_sees_the_metadata_blocks() -> None:
    """The helper that spares image data must still see every metadata block of the input."""
    rest = outside_image_data(dirty_apng())
    for needle in (b"Jane Secret", b"PRIVATEPAYLOAD", b"TRAILINGSECRET"):
        assert needle in rest


def test_imagemagick_raw_profiles_and_icc_reach_the_describers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ImageMagick hides EXIF as hex in a "Raw profile type exif" text; iCCP is compressed."""
    seen: dict[str, bytes] = {}
    real_exif, real_icc = png_module.exif.describe, png_module.icc.describe

    def exif_spy(tiff: bytes, report: core.Report, *, source: str = "EXIF") -> None:
        seen["exif"] = tiff
        real_exif(tiff, report, source=source)

    def icc_spy(profile: bytes, report: core.Report) -> None:
        seen["icc"] = profile
        real_icc(profile, report)

    monkeypatch.setattr(png_module.exif, "describe", exif_spy)
    monkeypatch.setattr(png_module.icc, "describe", icc_spy)
    blob = b"Exif\x00\x00" + exif_tiff()
    hexed = blob.hex()
    raw = f"\nexif\n{len(blob):8d}\n" + "\n".join(hexed[i : i + 72]
                                                  for i in range(0, len(hexed), 72)) + "\n"
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = with_chunks(plain_png(), [
        chunk(b"zTXt", b"Raw profile type exif\x00\x00" + zlib.compress(raw.encode())),
        chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(profile)),
    ])
    result = core.clean(data)
    assert seen == {"exif": exif_tiff(), "icc": profile}
    assert b"zTXt" not in result.data and b"iCCP" not in result.data


def test_report_text_speaks_plainly() -> None:
    text = core.inspect(dirty_png()).text()
    assert "Who took it or owns it:\n  - Author: Jane Secret" in text
    assert "Software: SecretSoftware 2.1" in text
    assert "Last modified: 2024-05-17 13:45:02 UTC" in text


def test_apple_cgbi_png_is_named() -> None:
    data = plain_png()
    cgbi = data[:8] + chunk(b"CgBI", b"\x50\x00\x20\x06") + data[8:]
    with pytest.raises(core.MalformedImage, match="Apple-optimised"):
        core.clean(cgbi)


def test_a_describer_failure_never_stops_cleaning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: whatever a shared describer does with a hostile block, the block is
    dropped and the file still cleans; the report names the block as unreadable."""

    def broken(tiff: bytes, report: core.Report, *, source: str = "EXIF") -> None:
        raise ValueError("boom")

    monkeypatch.setattr(png_module.exif, "describe", broken)
    result = core.clean(dirty_png(6))
    assert b"SecretMake" not in result.data
    assert any("could not be read" in f.value for f in result.report.findings)
