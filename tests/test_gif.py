"""GIF (still and animated): block-level cleaning, checked by ExifTool and every frame."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image, ImageCms

import core
from core import gif as gif_module
from core.gif import GIF
from tests.chunk_helpers import (
    XMP_PACKET,
    assert_exiftool_clean,
    assert_no_secrets,
    assert_pixel_exact,
    flip,
    frames,
    fuzz_corruptions,
    outside_image_data,
    truncate,
    truncations,
)
from tests.conftest import corpus_dir


def sub_blocks(payload: bytes) -> bytes:
    """GIF89a 15: data as sub-blocks of at most 255 bytes, then the block terminator."""
    return b"".join(bytes([len(payload[i : i + 255])]) + payload[i : i + 255]
                    for i in range(0, len(payload), 255)) + b"\x00"


def app_ext(ident: bytes, payload: bytes) -> bytes:
    return b"\x21\xff\x0b" + ident + sub_blocks(payload)


def xmp_ext(packet: bytes) -> bytes:
    """XMP spec part 3 1.1.2: raw packet bytes, then the 258-byte magic trailer."""
    return b"\x21\xff\x0b" + b"XMP DataXMP" + packet + gif_module.XMP_MAGIC_TRAILER


GCE_FOR_TEXT = b"\x21\xf9\x04\x04\x05\x00\x00\x00"
PLAIN_TEXT = (b"\x21\x01\x0c" + struct.pack("<HHHHBBBB", 0, 0, 40, 8, 8, 8, 1, 0)
              + sub_blocks(b"secret plain text"))


def animated_gif() -> bytes:
    images = []
    for i in range(3):
        im = Image.new("P", (30, 18), i)
        im.putpalette([v for c in range(256) for v in (c, (c * 3) % 256, 255 - c)])
        for x in range(30):
            im.putpixel((x, (x + i) % 18), 10 + x)
        images.append(im)
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=[70, 110, 150],
                   loop=0, transparency=5, comment=b"Hidden comment from Pillow", disposal=1)
    return out.getvalue()


def dirty_gif(profile: bytes = b"") -> bytes:
    """Pillow's animated GIF plus comment, XMP, ICC, unknown, plain-text and trailing data."""
    data = animated_gif()
    parsed = gif_module.parse(data, core.Policy())
    head_end = parsed.blocks[0].end
    images = [b for b in parsed.blocks if b.kind == "image"]
    # the plain text (with its own GCE) goes right after the first image
    first_image_end = images[0].end
    extra_front = (
        b"\x21\xfe" + sub_blocks(b"Hidden comment, Jane Secret, Rue du Secret 12")
        + xmp_ext(XMP_PACKET)
        + app_ext(b"ACMEDATA1.0", b"PRIVATEPAYLOAD")
        + b"\x21\x99" + sub_blocks(b"PRIVATEPAYLOAD unknown label")
        + (app_ext(b"ICCRGBG1012", profile) if profile else b"")
    )
    return (data[:head_end] + extra_front + data[head_end:first_image_end] + GCE_FOR_TEXT
            + PLAIN_TEXT + data[first_image_end:] + b"TRAILINGSECRET")


def durations(data: bytes) -> list[int]:
    result = []
    with Image.open(io.BytesIO(data)) as im:
        for i in range(im.n_frames):
            im.seek(i)
            result.append(im.info.get("duration"))
    return result


def kinds(data: bytes) -> list[str]:
    return [b.kind for b in gif_module.parse(data, core.Policy()).blocks]


def test_corpus_dirty_gif_cleans_without_leaks() -> None:
    data = (corpus_dir() / "mat2-dirty" / "dirty.gif").read_bytes()
    result = core.clean(data)
    assert result.format == "gif" and result.lossless
    assert_exiftool_clean([result.data])
    assert_pixel_exact(data, result.data)
    assert durations(data) == durations(result.data)
    assert b"this is a test comment" not in result.data
    assert [f.value for f in result.report.by_category(core.Category.COMMENT)] == [
        "this is a test comment"]


def test_dirty_animated_gif_cleans_pixel_exact() -> None:
    data = dirty_gif()
    result = core.clean(data)
    assert_pixel_exact(data, result.data)
    assert_no_secrets(result.data)
    assert durations(result.data) == [70, 110, 150]
    with Image.open(io.BytesIO(result.data)) as im:
        assert im.info["loop"] == 0
    # one GCE per image: the plain text's GCE went with the plain text
    assert kinds(result.data) == ["header", "app", "gce", "image", "gce", "image", "gce",
                                  "image", "trailer"]
    removed = {r.what for r in result.report.removed}
    assert {"GIF comment", "GIF plain-text extension", "GIF application extension XMP DataXMP",
            "GIF application extension ACMEDATA1.0", "GIF unknown extension",
            "GIF graphic control", "data after the GIF's trailer"} <= removed
    assert_exiftool_clean([result.data])


def test_report_names_what_the_gif_gave_away(monkeypatch: pytest.MonkeyPatch) -> None:
    """A spy records the XMP packet the plugin hands over, then calls the real describer."""
    seen: list[bytes] = []
    real = gif_module.xmp.describe

    def xmp_spy(packet: bytes, report: core.Report) -> None:
        seen.append(packet)
        real(packet, report)

    monkeypatch.setattr(gif_module.xmp, "describe", xmp_spy)
    report = core.inspect(dirty_gif())
    assert seen == [XMP_PACKET]  # the magic trailer is not part of the packet
    comments = [f.value for f in report.by_category(core.Category.COMMENT)]
    assert sorted(comments) == ["Hidden comment from Pillow",
                                "Hidden comment, Jane Secret, Rue du Secret 12",
                                "secret plain text"]
    other = {f.label: f.value for f in report.by_category(core.Category.OTHER)}
    assert "ACMEDATA1.0" in other["Application data"]
    assert "0x99" in other["Unknown extension"]
    assert report.by_category(core.Category.TRAILING_DATA)
    assert (report.width, report.height) == (30, 18)


def test_colour_profile_dropped_unless_kept() -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = dirty_gif(profile)
    assert b"ICCRGBG1012" not in core.clean(data).data
    kept = core.clean(data, core.Policy(keep_icc=True))
    # Pillow does not read GIF ICC extensions: find it with the plugin's own block walk.
    icc_blocks = [b for b in gif_module.parse(kept.data, core.Policy()).blocks
                  if b.app == gif_module.ICC_APPLICATION]
    assert len(icc_blocks) == 1
    block = icc_blocks[0]
    assert gif_module.sub_block_data(kept.data, block.data_start, block.end) == profile
    assert_no_secrets(kept.data)
    assert_pixel_exact(data, kept.data)


def test_loop_and_gce_are_rebuilt_from_their_values() -> None:
    """Bytes hidden in a GCE's reserved bits or a NETSCAPE block's extra sub-blocks go."""
    data = animated_gif()
    gce = data.index(b"\x21\xf9\x04")
    tampered = bytearray(data)
    tampered[gce + 3] |= 0xE0  # reserved bits of the packed field
    net = data.index(b"NETSCAPE2.0") + 11
    tampered[net:net] = b"\x0ePRIVATEPAYLOAD"[:15]
    tampered = bytes(tampered)
    assert GIF().leftovers(tampered, core.Policy())
    result = core.clean(tampered)
    assert_no_secrets(result.data)
    assert GIF().leftovers(result.data, core.Policy()) == []
    assert_pixel_exact(data, result.data)


def test_missing_trailer_is_added() -> None:
    data = animated_gif()[:-1]
    result = core.clean(data)
    assert result.data.endswith(b"\x3b")
    assert any("trailer" in n for n in result.report.notes)


def test_damage_has_clear_messages() -> None:
    data = dirty_gif()
    with pytest.raises(core.MalformedImage, match="ends in the middle of"):
        core.clean(data[:200])
    with pytest.raises(core.MalformedImage, match="unknown block"):
        core.clean(data[:13 + 768] + b"\x55" + data[13 + 768 :])
    big = data[:6] + struct.pack("<HH", 65535, 65535) + data[10:]
    with pytest.raises(core.TooLarge, match="megapixels"):
        core.clean(big)
    with pytest.raises(core.TooLarge, match="more than 5 blocks"):
        core.clean(data, core.Policy(max_segments=5))


def test_leftovers_name_the_dirty_blocks() -> None:
    data = dirty_gif()
    left = GIF().leftovers(data, core.Policy())
    for name in ("GIF comment", "GIF plain-text extension", "GIF unknown extension",
                 "GIF application extension XMP DataXMP", "14 bytes after the trailer"):
        assert name in left
    assert GIF().leftovers(core.clean(data).data, core.Policy()) == []


def test_truncations_clean_or_refuse() -> None:
    outputs = truncations(dirty_gif(), count=60)
    assert outputs and all(b"TRAILING" not in o for o in outputs)
    assert_exiftool_clean(outputs)


def test_byte_flips_clean_or_refuse() -> None:
    outputs = fuzz_corruptions(dirty_gif(), flip)
    outputs += fuzz_corruptions(dirty_gif(), truncate)
    outputs += fuzz_corruptions((corpus_dir() / "mat2-dirty" / "dirty.gif").read_bytes(), flip)
    assert len(outputs) > 20, "too few corruptions cleaned to mean anything"
    assert_exiftool_clean(outputs)


def test_frames_helper_sees_every_gif_frame() -> None:
    assert len(frames(dirty_gif())) == 3


def test_corruption_check_sees_the_metadata_blocks() -> None:
    """The helper that spares image data must still see every metadata block of the input."""
    rest = outside_image_data(dirty_gif())
    for needle in (b"Jane Secret", b"secret plain text", b"PRIVATEPAYLOAD", b"TRAILINGSECRET"):
        assert needle in rest
