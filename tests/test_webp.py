"""WebP (simple, extended, animated): chunk-level cleaning, checked by ExifTool and pixels."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image, ImageCms

import core
from core import webp as webp_module
from core.webp import WebP
from tests.chunk_helpers import (
    XMP_PACKET,
    assert_exiftool_clean,
    assert_no_secrets,
    assert_pixel_exact,
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


def riff_chunk(fourcc: bytes, payload: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) & 1)


def riff(body: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def top_chunks(data: bytes) -> list[bytes]:
    return [c.fourcc for c in webp_module.parse(data, core.Policy()).chunks]


def vp8x_flags(data: bytes) -> int:
    assert data[12:16] == b"VP8X"
    return data[20]


def picture(mode: str = "RGBA", size: tuple[int, int] = (36, 22), shift: int = 0) -> Image.Image:
    im = Image.new(mode, size)
    im.putdata([((x * 7 + shift) % 256, (y * 11) % 256, (x ^ y) % 256, 90 + (x % 5) * 30)[
        : len(mode)] for y in range(size[1]) for x in range(size[0])])
    return im


def add_dirt(data: bytes, trailing: bytes = b"TRAILINGSECRET") -> bytes:
    """An unknown chunk (odd size, non-zero pad byte) at the end, and bytes after RIFF."""
    body = data[12:] + b"ACME" + struct.pack("<I", 15) + b"ACMEDATA secret" + b"\x7f"
    return riff(body) + trailing


def dirty_webp(orientation: int = 1, *, lossless: bool = True, mode: str = "RGBA",
               icc: bytes | None = None) -> bytes:
    out = io.BytesIO()
    kw = {"lossless": True} if lossless else {"quality": 90}
    if icc:
        kw["icc_profile"] = icc
    picture(mode).save(out, "WEBP", exif=b"Exif\x00\x00" + exif_tiff(orientation),
                       xmp=XMP_PACKET, **kw)
    return add_dirt(out.getvalue())


def dirty_animated_webp() -> bytes:
    """Three frames with EXIF/XMP, and an unknown chunk hidden inside the second frame."""
    images = [picture(shift=40 * i) for i in range(3)]
    out = io.BytesIO()
    images[0].save(out, "WEBP", save_all=True, append_images=images[1:], duration=[40, 60, 90],
                   loop=3, lossless=True, exif=b"Exif\x00\x00" + exif_tiff(), xmp=XMP_PACKET)
    data = out.getvalue()
    anmf = [c for c in webp_module.parse(data, core.Policy()).chunks if c.fourcc == b"ANMF"][1]
    payload = data[anmf.payload_start : anmf.payload_end] + riff_chunk(b"SECR", b"PRIVATEPAYLOAD")
    body = data[12 : anmf.start] + riff_chunk(b"ANMF", payload) + data[anmf.payload_end :]
    return add_dirt(riff(body))


def test_corpus_dirty_webp_cleans_without_leaks() -> None:
    data = (corpus_dir() / "mat2-dirty" / "dirty.webp").read_bytes()
    result = core.clean(data)
    assert result.format == "webp" and result.lossless
    assert_exiftool_clean([result.data])
    assert_pixel_exact(data, result.data)
    assert b"EXIF" not in result.data
    assert {r.what for r in result.report.removed} == {"WebP EXIF chunk"}


@pytest.mark.parametrize("lossless", [True, False], ids=["lossless", "lossy-with-alpha"])
def test_dirty_still_webp_cleans_pixel_exact(lossless: bool) -> None:
    data = dirty_webp(lossless=lossless)
    result = core.clean(data)
    assert_pixel_exact(data, result.data)
    assert_no_secrets(result.data)
    assert set(top_chunks(result.data)) <= webp_module.KEEP
    assert vp8x_flags(result.data) == webp_module.FLAG_ALPHA
    assert_exiftool_clean([result.data], allow_orientation=False)
    removed = {r.what for r in result.report.removed}
    assert {"WebP EXIF chunk", "WebP XMP chunk", "WebP ACME chunk",
            "data after the WebP's RIFF container"} <= removed


def test_animated_webp_keeps_every_frame_and_drops_frame_junk() -> None:
    data = dirty_animated_webp()
    assert b"PRIVATEPAYLOAD" in data
    result = core.clean(data)
    assert_pixel_exact(data, result.data)
    assert_no_secrets(result.data)
    assert "WebP SECR chunk in a frame" in {r.what for r in result.report.removed}
    with Image.open(io.BytesIO(result.data)) as im:
        assert im.n_frames == 3 and im.info["loop"] == 3
    assert vp8x_flags(result.data) & webp_module.FLAG_ANIMATION
    assert_exiftool_clean([result.data], allow_orientation=False)


def test_report_names_what_the_webp_gave_away(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spies record what the plugin hands over, then call the real describers."""
    seen = spy_on_describers(monkeypatch, webp_module)
    report = core.inspect(dirty_webp())
    assert seen == {"xmp": XMP_PACKET, "exif": exif_tiff()}  # "Exif\0\0" stripped
    found = {(f.category, f.label): f.value for f in report.findings}
    assert "ACME" in found[(core.Category.OTHER, "Unknown chunk")]
    assert (core.Category.TRAILING_DATA, "Data hidden after the picture") in found
    assert (report.width, report.height) == (36, 22)


def test_orientation_kept_displays_like_the_original() -> None:
    inputs = [dirty_webp(o) for o in range(1, 9)]
    outputs = [core.clean(d).data for d in inputs]
    for o, (before, after) in enumerate(zip(inputs, outputs, strict=True), start=1):
        assert displayed(before) == displayed(after), f"orientation {o}"
        assert_pixel_exact(before, after)
        assert bool(vp8x_flags(after) & webp_module.FLAG_EXIF) == (o != 1)
    for o, tags in enumerate(exiftool_tags(outputs), start=1):
        exif_tags = sorted(k for k in tags if k.split(":")[0] in ("IFD0", "ExifIFD", "GPS"))
        assert exif_tags == ([] if o == 1 else ["IFD0:Orientation"]), (o, tags)
    assert_exiftool_clean(outputs)


def test_simple_webp_gets_a_vp8x_to_carry_the_orientation() -> None:
    """A simple VP8L file with a (non-standard) EXIF chunk: VP8X added, alpha flag kept."""
    out = io.BytesIO()
    picture("RGBA").save(out, "WEBP", lossless=True)
    simple = out.getvalue()
    assert simple[12:16] == b"VP8L"
    data = riff(simple[12:] + riff_chunk(b"EXIF", exif_tiff(6)))
    result = core.clean(data)
    assert top_chunks(result.data) == [b"VP8X", b"VP8L", b"EXIF"]
    assert vp8x_flags(result.data) == webp_module.FLAG_EXIF | webp_module.FLAG_ALPHA
    assert_pixel_exact(simple, result.data)
    with Image.open(io.BytesIO(result.data)) as im:
        assert im.getexif().get(0x0112) == 6
    assert_exiftool_clean([result.data])


def test_orientation_dropped_on_request() -> None:
    data = dirty_webp(6)
    result = core.clean(data, core.Policy(orientation=core.Orientation.DROP))
    assert b"EXIF" not in result.data
    assert not vp8x_flags(result.data) & webp_module.FLAG_EXIF
    assert_pixel_exact(data, result.data)
    assert_exiftool_clean([result.data], allow_orientation=False)


def test_orientation_baked_on_request() -> None:
    data = dirty_webp(6)
    result = core.clean(data, core.Policy(orientation=core.Orientation.BAKE))
    assert not result.lossless
    assert displayed(result.data) == displayed(data)
    assert_no_secrets(result.data)
    assert_exiftool_clean([result.data], allow_orientation=False)


def test_colour_profile_dropped_unless_kept() -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = dirty_webp(icc=profile)
    default = core.clean(data)
    assert b"ICCP" not in default.data and not vp8x_flags(default.data) & webp_module.FLAG_ICC
    kept = core.clean(data, core.Policy(keep_icc=True))
    assert top_chunks(kept.data)[:2] == [b"VP8X", b"ICCP"]
    assert vp8x_flags(kept.data) & webp_module.FLAG_ICC
    with Image.open(io.BytesIO(kept.data)) as im:
        assert im.info["icc_profile"] == profile
    assert_pixel_exact(data, kept.data)


def test_leftovers_name_the_dirty_chunks() -> None:
    data = dirty_webp(3)
    left = WebP().leftovers(data, core.Policy())
    for name in ("WebP EXIF chunk", "WebP XMP chunk", "WebP ACME chunk", "1 non-zero pad bytes",
                 "14 bytes after the RIFF container", "VP8X reserved bits or XMP flag set"):
        assert name in left
    assert WebP().leftovers(core.clean(data).data, core.Policy()) == []


def test_damage_has_clear_messages() -> None:
    data = dirty_webp()
    with pytest.raises(core.MalformedImage, match="ends in the middle of a chunk"):
        core.clean(data[:100])
    huge = bytearray(data)
    huge[24:30] = b"\xff\xff\xff\xff\xff\xff"  # VP8X canvas 16777216 x 16777216
    with pytest.raises(core.TooLarge, match="megapixels"):
        core.clean(bytes(huge))
    with pytest.raises(core.TooLarge, match="more than 3 chunks"):
        core.clean(data, core.Policy(max_segments=3))


def test_truncations_clean_or_refuse() -> None:
    outputs = truncations(dirty_webp(6)) + truncations(dirty_animated_webp())
    assert outputs and all(b"TRAILING" not in o for o in outputs)
    assert_exiftool_clean(outputs)


def test_byte_flips_clean_or_refuse() -> None:
    outputs = fuzz_corruptions(dirty_animated_webp(), flip)
    outputs += fuzz_corruptions(dirty_webp(6, lossless=False), flip)
    outputs += fuzz_corruptions(dirty_webp(5), truncate)
    assert len(outputs) > 20, "too few corruptions cleaned to mean anything"
    assert_exiftool_clean(outputs)


def test_frames_helper_sees_every_webp_frame() -> None:
    assert len(frames(dirty_animated_webp())) == 3


def test_corruption_check_sees_the_metadata_blocks() -> None:
    """The helper that spares image data must still see every metadata block of the input."""
    rest = outside_image_data(dirty_animated_webp())
    for needle in (b"PRIVATEPAYLOAD", b"secret-xmp-creator", b"TRAILINGSECRET"):
        assert needle in rest
