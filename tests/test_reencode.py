"""The re-encoding path: TIFF, BMP, HEIC, AVIF (and read-only formats) rebuilt from pixels.

ExifTool (tests/oracle.py) reads every output; pixels are compared with the
input's (exactly for lossless outputs, by mean absolute difference for HEIC/AVIF).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageCms, ImageFile, ImageOps, ImageStat

import core
from core import isobmff, objectstore, pixels
from core.errors import CleanError, TooLarge
from core.pillow_formats import AVIF, BMP, HEIF, TIFF
from core.policy import Orientation, Policy
from core.report import Report
from core.tiff_ifd import TiffReader
from tests.conftest import CORPUS, corpus_files
from tests.oracle import exiftool_tags, leaks

SAMPLES = corpus_files("exif-samples/tiff", "exif-samples/heif") + [
    CORPUS / "mat2-dirty" / f"dirty.{ext}" for ext in ("tiff", "bmp", "heic", "avif")
]
LOSSLESS = {"tiff", "bmp", "png"}


def _id(p: Path) -> str:
    return p.name


@pytest.fixture(scope="module")
def cleaned_samples(corpus: Path) -> dict[str, core.Cleaned]:
    """Every sample cleaned once (HEIC encoding is slow; the tests share the results)."""
    return {p.name: core.clean(p.read_bytes()) for p in SAMPLES}


@pytest.fixture(scope="module")
def oracle_rows(cleaned_samples: dict[str, core.Cleaned]) -> dict[str, dict]:
    names = list(cleaned_samples)
    rows = exiftool_tags([cleaned_samples[n].data for n in names])
    return dict(zip(names, rows, strict=True))


def _displayed(im: Image.Image) -> Image.Image:
    """What a viewer shows: orientation applied, sRGB, RGBA."""
    shown = ImageOps.exif_transpose(im)
    assert shown is not None
    profile = im.info.get("icc_profile")
    rgba = shown.convert("RGBA")
    if profile:
        rgb = ImageCms.profileToProfile(
            shown.convert("RGB"), ImageCms.ImageCmsProfile(io.BytesIO(profile)),
            ImageCms.createProfile("sRGB"), outputMode="RGB",
        )
        assert rgb is not None
        rgb.putalpha(rgba.getchannel("A"))
        rgba = rgb
    return rgba


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


# --------------------------------------------------------------------------- corpus


@pytest.mark.parametrize("path", SAMPLES, ids=_id)
def test_corpus_output_has_no_leaks(path: Path, cleaned_samples, oracle_rows) -> None:
    cleaned = cleaned_samples[path.name]
    assert cleaned.lossless is False
    assert leaks(oracle_rows[path.name]) == []
    # the report says what was there
    assert cleaned.report.format in ("tiff", "bmp", "heif", "avif")


@pytest.mark.parametrize("path", SAMPLES, ids=_id)
def test_corpus_output_keeps_the_picture(path: Path, cleaned_samples) -> None:
    cleaned = cleaned_samples[path.name]
    with Image.open(path) as original, Image.open(io.BytesIO(cleaned.data)) as out:
        want = _displayed(original)
        got = out.convert("RGBA")
        assert got.size == want.size
        if cleaned.format in LOSSLESS:
            assert got.tobytes() == want.tobytes()
        else:
            assert _mean_abs_diff(got, want) < 4.0


def test_heic_with_gps_loses_the_exif_item(cleaned_samples) -> None:
    source = (CORPUS / "exif-samples/heif/IMG_5195.HEIC").read_bytes()
    meta_in = isobmff.the_meta(source, isobmff.top_level(source))
    assert any(i.type == "Exif" for i in meta_in.items.values())  # the input has GPS EXIF
    out = cleaned_samples["IMG_5195.HEIC"]
    assert out.report.by_category(core.Category.LOCATION)  # the report says GPS was there
    assert any(r.what == "EXIF item" for r in out.report.removed)
    assert out.format == "heif" and out.media_type == "image/heic"
    meta = isobmff.the_meta(out.data, isobmff.top_level(out.data))
    assert {i.type for i in meta.items.values()} <= {"hvc1", "grid", "iden", "iovl"}
    boxes = isobmff.top_level(out.data)
    # outside the coded pixels, not even a short tag name; short strings may occur by
    # chance in 4 MB of HEVC data, so inside mdat look for the long ones only
    structure = b"".join(out.data[b.start : b.end] for b in boxes if b.type != b"mdat")
    assert not any(s in structure for s in (b"Exif", b"GPS", b"iPhone", b"Apple"))
    assert b"iPhone 11 Pro Max" not in out.data and b"14.4.2" not in out.data


def test_heic_made_with_gps_exif_comes_out_without_it() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 29.0)  # GPSLatitude
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 140, 200)).save(buf, "HEIF", exif=exif.tobytes(), quality=90)
    data = buf.getvalue()
    assert b"SpyCam" in data
    cleaned = core.clean(data)
    assert b"SpyCam" not in cleaned.data
    assert HEIF().leftovers(cleaned.data, Policy()) == []
    assert leaks(exiftool_tags([cleaned.data])[0]) == []


# --------------------------------------------------------------------------- orientation


def _asymmetric(size: tuple[int, int] = (40, 24)) -> Image.Image:
    im = Image.new("RGB", size)
    im.putdata([(x * 6, y * 10, (x * y) % 256) for y in range(size[1]) for x in range(size[0])])
    return im


def _tiff_with_orientation(o: int) -> bytes:
    buf = io.BytesIO()
    _asymmetric().save(buf, "TIFF", tiffinfo={274: o}, compression="tiff_lzw")
    return buf.getvalue()


@pytest.mark.parametrize("o", range(1, 9))
def test_bake_orientation_all_eight(o: int) -> None:
    data = _tiff_with_orientation(o)
    cleaned = core.clean(data, Policy(orientation=Orientation.BAKE))
    with Image.open(io.BytesIO(data)) as original:
        want = ImageOps.exif_transpose(original)
    with Image.open(io.BytesIO(cleaned.data)) as out:
        assert out.getexif().get(274) in (None, 1)
        assert out.size == want.size
        assert out.convert("RGB").tobytes() == want.convert("RGB").tobytes()


@pytest.mark.parametrize("o", [2, 5, 6, 7])
@pytest.mark.parametrize("policy", list(Orientation))
def test_tiff_comes_out_upright_under_every_policy(o: int, policy: Orientation) -> None:
    """Re-encoded TIFFs are always upright and untagged (Pillow applies the tag on read)."""
    data = _tiff_with_orientation(o)
    cleaned = core.clean(data, Policy(orientation=policy))
    tags = {t: e for _, ifd in TiffReader(cleaned.data).ifd_chain() for t, e in ifd.items()}
    assert 274 not in tags
    upright = _asymmetric().transpose(pixels.ORIENTATION_TRANSPOSE[o])
    with Image.open(io.BytesIO(cleaned.data)) as b:
        assert b.convert("RGB").tobytes() == upright.tobytes()


def test_tiff_orientation_tag_is_a_leftover() -> None:
    assert TIFF().leftovers(_tiff_with_orientation(6), Policy()) == ["TIFF Orientation (IFD 0)"]


@pytest.mark.parametrize("o", range(1, 9))
def test_avif_irot_imir_applied(o: int) -> None:
    exif = Image.Exif()
    exif[274] = o
    buf = io.BytesIO()
    _asymmetric((48, 32)).save(buf, "AVIF", exif=exif.tobytes(), quality=95)
    data = buf.getvalue()
    cleaned = core.clean(data)
    with Image.open(io.BytesIO(data)) as original:
        want = ImageOps.exif_transpose(original)
    with Image.open(io.BytesIO(cleaned.data)) as out:
        assert out.getexif().get(274) in (None, 1)  # no irot/imir left: upright pixels
        assert out.size == want.size
        assert _mean_abs_diff(out, want) < 6.0


# --------------------------------------------------------------------------- colour


def _generic_rgb_profile() -> bytes:
    with Image.open(CORPUS / "exif-samples/orientation/landscape_3.jpg") as im:
        profile = im.info["icc_profile"]
    desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    assert "sRGB" not in desc
    return profile


def test_icc_profile_is_converted_to_srgb(corpus: Path) -> None:
    profile = _generic_rgb_profile()
    src = _asymmetric()
    buf = io.BytesIO()
    src.save(buf, "TIFF", icc_profile=profile)
    cleaned = core.clean(buf.getvalue())
    expected = ImageCms.profileToProfile(
        src, ImageCms.ImageCmsProfile(io.BytesIO(profile)), ImageCms.createProfile("sRGB"),
        outputMode="RGB",
    )
    assert expected is not None
    with Image.open(io.BytesIO(cleaned.data)) as out:
        assert "icc_profile" not in out.info
        assert out.convert("RGB").tobytes() == expected.tobytes()
        assert out.convert("RGB").tobytes() != src.tobytes()  # a conversion happened
    assert any(r.what.startswith("TIFF ICC") for r in cleaned.report.removed)

    kept = core.clean(buf.getvalue(), Policy(keep_icc=True))
    with Image.open(io.BytesIO(kept.data)) as out:
        assert out.info.get("icc_profile") == profile
        assert out.convert("RGB").tobytes() == src.tobytes()


# --------------------------------------------------------------------------- limits, damage


def _bomb_tiff(w: int, h: int) -> bytes:
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, w * h)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHLL" if typ == 4 else "<HHLHH", tag, typ, count, value,
                           *(() if typ == 4 else (0,)))
    return b"II*\x00" + struct.pack("<L", 8) + ifd + b"\x00" * 4 + b"\x00" * 64


def test_decompression_bomb_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("decoded before checking the pixel limit")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(TooLarge):
        core.clean(_bomb_tiff(60_000, 60_000))
    with pytest.raises(TooLarge):
        core.clean(_bomb_tiff(200, 200), Policy(max_pixels=10_000))
    bmp = b"BM" + struct.pack("<LHHL", 70, 0, 0, 54) + struct.pack(
        "<LllHHLLllLL", 40, 50_000, 50_000, 1, 24, 0, 0, 0, 0, 0, 0) + b"\x00" * 16
    with pytest.raises(TooLarge):
        core.clean(bmp)


@pytest.mark.parametrize(
    "name", ["exif-samples/heif/samplefilehub.heif", "mat2-dirty/dirty.tiff",
             "mat2-dirty/dirty.avif", "mat2-dirty/dirty.bmp"]
)
def test_truncated_or_flipped_input_gives_clean_error(name: str, corpus: Path) -> None:
    data = (CORPUS / name).read_bytes()
    secrets = (b"jvoisin", b"Canon", b"GPS", b"Artist")
    cases = [data[:n] for n in (0, 8, 16, 30, 100, 400, len(data) // 2, len(data) - 3)]
    for pos in range(4, min(len(data), 2000), 151):
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        cases.append(bytes(flipped))
    cases.append(b"\x00\x00\x00\x18ftypheic" + b"\xff" * 200)
    cases.append(b"II*\x00\xff\xff\xff\xff" + b"\x00" * 50)
    for case in cases:
        try:
            out = core.clean(case)
        except CleanError:
            continue
        assert not any(s in out.data for s in secrets)


# --------------------------------------------------------------------------- leftovers


def test_leftovers_name_what_is_not_allowed(corpus: Path) -> None:
    assert TIFF().leftovers((CORPUS / "mat2-dirty/dirty.tiff").read_bytes(), Policy())
    heic = (CORPUS / "exif-samples/heif/samplefilehub.heif").read_bytes()
    left = HEIF().leftovers(heic, Policy())
    assert "'Exif' item" in left and "'mime' item" in left and "'cdsc' item reference" in left
    assert "'Exif' item" in AVIF().leftovers((CORPUS / "mat2-dirty/dirty.avif").read_bytes(),
                                             Policy())
    clean_tiff = core.clean((CORPUS / "mat2-dirty/dirty.tiff").read_bytes()).data
    assert TIFF().leftovers(clean_tiff, Policy()) == []
    assert TIFF().leftovers(clean_tiff + b"hidden note", Policy()) == [
        "11 TIFF bytes that no directory points to"]
    clean_heic = core.clean(heic).data
    boxes = isobmff.top_level(clean_heic)
    assert HEIF().leftovers(clean_heic, Policy()) == []
    assert HEIF().leftovers(clean_heic + struct.pack(">L4s", 14, b"mdat") + b"SECRET",
                            Policy()) == ["6 bytes in 'mdat' that no item uses"]
    uuid_box = struct.pack(">L4s", 30, b"uuid") + b"\x11" * 16 + b"SECRET"
    assert HEIF().leftovers(clean_heic + uuid_box, Policy()) == ["'uuid' box"]
    assert boxes[0].type == b"ftyp"
    cleaned_bmp = core.clean((CORPUS / "mat2-dirty/dirty.bmp").read_bytes()).data
    assert BMP().leftovers(cleaned_bmp, Policy()) == []
    assert BMP().leftovers(cleaned_bmp + b"secret", Policy()) == ["6 bytes after the BMP pixels"]


def test_heic_colour_profile_only_with_keep_icc(corpus: Path) -> None:
    data = (CORPUS / "mat2-dirty/dirty.heic").read_bytes()
    kept = core.clean(data, Policy(keep_icc=True))
    meta = isobmff.the_meta(kept.data, isobmff.top_level(kept.data))
    assert any(p.type == "colr" and p.detail == "prof" for p in meta.properties)
    assert HEIF().leftovers(kept.data, Policy()) == ["colour profile ('colr' prof)"]


# --------------------------------------------------------------------------- fallbacks


@pytest.mark.parametrize(
    ("fmt", "mode", "want"),
    [("JPEG2000", "RGB", "jpeg"), ("PPM", "RGB", "png"), ("QOI", "RGBA", "png"),
     ("ICO", "RGBA", "png")],
)
def test_read_only_formats_fall_back_with_a_note(fmt: str, mode: str, want: str) -> None:
    im = _asymmetric((32, 32)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt)
    report = Report()
    out = pixels.rebuild(buf.getvalue(), Policy(), report)
    assert out.format == want
    assert any(n.startswith(f"re-encoded as {want.upper()}") for n in report.notes)
    assert leaks(exiftool_tags([out.data])[0]) == []
    with Image.open(io.BytesIO(out.data)) as got:
        assert got.size == (32, 32)
        if want == "png":
            assert got.convert(mode).tobytes() == im.tobytes()


def test_ppm_comment_is_reported() -> None:
    data = b"P6\n# taken at 12 Rue Secrete\n2 1\n255\n" + bytes(6)
    report = core.inspect(data)
    assert any("Rue Secrete" in f.value for f in report.findings)


def test_multi_page_tiff_keeps_every_page() -> None:
    pages = [_asymmetric(), Image.new("RGB", (10, 12), (200, 0, 0))]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:])
    cleaned = core.clean(buf.getvalue())
    with Image.open(io.BytesIO(cleaned.data)) as out:
        assert out.n_frames == 2
        out.seek(1)
        assert out.convert("RGB").tobytes() == pages[1].tobytes()


# --------------------------------------------------------------------------- object store


def test_object_store_hook_marks_and_does_not_loop(corpus: Path) -> None:
    data = (CORPUS / "mat2-dirty/dirty.tiff").read_bytes()
    meta = {"X-Amz-Meta-Original-Name": "holiday at home.tiff", "camera": "Canon", "keep-me": "1"}
    result = objectstore.clean_object(data, meta, keep=["keep-me"])
    assert result is not None
    assert result.metadata == {"onionclean": "cleaned", "onionclean-format": "tiff",
                               "keep-me": "1"}
    assert result.content_type == "image/tiff" and result.extension == ".tiff"
    assert leaks(exiftool_tags([result.data])[0]) == []
    # writing the result back fires the trigger again: it must not clean its own output
    assert objectstore.clean_object(result.data, result.metadata) is None
    assert objectstore.clean_object(data, {"x-amz-meta-onionclean": "Cleaned"}) is None
    assert objectstore.key_with_extension("u/a.b/photo.HEIC", ".heic") == "u/a.b/photo.heic"
    assert objectstore.key_with_extension("u/.hidden", ".png") == "u/.hidden.png"
    with pytest.raises(CleanError):
        objectstore.clean_object(b"%PDF-1.4 not an image", {})


# --------------------------------------------------------------------------- frames


def _frames(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (40, 30), (i * 60, 255 - i * 60, 80)) for i in range(n)]


def _durations(data: bytes) -> list[int | float | None]:
    found = []
    with Image.open(io.BytesIO(data)) as im:
        for i in range(im.n_frames):
            im.seek(i)
            im.load()
            found.append(im.info.get("duration"))
    return found


def test_animated_avif_keeps_every_frame_as_webp() -> None:
    """libavif's sequence writer stamps the current time into mvhd/tkhd/mdhd: refuse that
    container (leftovers) and keep every frame in an animated WebP instead, with a note."""
    frames = _frames(3)
    buf = io.BytesIO()
    frames[0].save(buf, "AVIF", save_all=True, append_images=frames[1:], duration=[100, 200, 300])
    cleaned = core.clean(buf.getvalue())
    assert cleaned.format == "webp"
    assert any("animated WebP" in n for n in cleaned.report.notes)
    assert _durations(cleaned.data) == [100, 200, 300]
    assert leaks(exiftool_tags([cleaned.data])[0]) == []
    # the refused container, for the record: its 'moov' box is not on the allow-list
    assert "'moov' box" in AVIF().leftovers(buf.getvalue(), Policy())


def test_multi_image_heif_keeps_every_image() -> None:
    frames = _frames(3)
    buf = io.BytesIO()
    frames[0].save(buf, "HEIF", save_all=True, append_images=frames[1:], quality=90)
    cleaned = core.clean(buf.getvalue())
    with Image.open(io.BytesIO(cleaned.data)) as out:
        assert out.n_frames == 3
        out.seek(2)
        assert _mean_abs_diff(out, frames[2]) < 4.0


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_bake_keeps_every_frame_of_animations(fmt: str) -> None:
    frames = _frames(3)
    exif = Image.Exif()
    exif[274] = 6
    extra = {} if fmt == "GIF" else {"exif": exif.tobytes()}
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=[100, 200, 300],
                   loop=0, **({"lossless": True} if fmt == "WEBP" else {}), **extra)
    cleaned = core.clean(buf.getvalue(), Policy(orientation=Orientation.BAKE))
    assert [int(d or 0) for d in _durations(cleaned.data)] == [100, 200, 300]
    with Image.open(io.BytesIO(cleaned.data)) as out:
        assert out.n_frames == 3
        out.seek(1)
        want = frames[1] if fmt == "GIF" else frames[1].transpose(Image.Transpose.ROTATE_270)
        assert _mean_abs_diff(out, want) < 2.0


def test_icc_conversion_is_noted() -> None:
    buf = io.BytesIO()
    _asymmetric().save(buf, "TIFF", icc_profile=_generic_rgb_profile())
    assert any("sRGB" in n for n in core.clean(buf.getvalue()).report.notes)


def test_bigtiff_input_comes_out_as_plain_clean_tiff() -> None:
    buf = io.BytesIO()
    _asymmetric().save(buf, "TIFF", big_tiff=True, tiffinfo={271: "SpyCam", 315: "Jane Secret"})
    data = buf.getvalue()
    assert data[:4] == b"II+\x00" and b"SpyCam" in data
    cleaned = core.clean(data)
    assert cleaned.data[:4] == b"II*\x00" and b"SpyCam" not in cleaned.data
    assert leaks(exiftool_tags([cleaned.data])[0]) == []
    with Image.open(io.BytesIO(cleaned.data)) as out:
        assert out.convert("RGB").tobytes() == _asymmetric().tobytes()


def test_pixel_limit_is_the_policys_not_pillows() -> None:
    """Pillow warns above ~89 megapixels; the policy (here 1 gigapixel) decides."""
    data = _bomb_tiff(10_000, 9_500)  # 95 MP declared, no pixel data behind it
    with pytest.raises(CleanError) as err:
        core.clean(data, Policy(max_pixels=1_000_000_000))
    assert not isinstance(err.value, TooLarge)  # it got past the limit and failed decoding


def test_heif_allow_list_refuses_thumbnails_depth_maps_and_links() -> None:
    """Patch a clean RGBA HEIC (alpha = an 'auxl' image) into the shapes phones write."""
    buf = io.BytesIO()
    Image.new("RGBA", (32, 24), (10, 20, 30, 128)).save(buf, "TIFF")
    clean = core.clean(buf.getvalue(), Policy()).data  # TIFF in...
    heic = pixels.rebuild(buf.getvalue(), Policy(), Report(), prefer="heif").data  # HEIC out
    assert core.clean(heic).format == "heif" and TIFF().leftovers(clean, Policy()) == []
    assert HEIF().leftovers(heic, Policy()) == []
    assert b"auxl" in heic and b"urn:mpeg:hevc:2015:auxid:1" in heic
    thumb = heic.replace(b"auxl", b"thmb", 1)
    assert HEIF().leftovers(thumb, Policy()) == ["'thmb' item reference"]
    assert core.inspect(thumb).by_category(core.Category.THUMBNAIL)
    depth = heic.replace(b"urn:mpeg:hevc:2015:auxid:1", b"urn:mpeg:hevc:2015:auxid:2", 1)
    assert HEIF().leftovers(depth, Policy()) == ["auxiliary image (urn:mpeg:hevc:2015:auxid:2)"]
    report = core.inspect(depth)
    assert any("depth map" in f.value for f in report.by_category(core.Category.EXTRA_IMAGE))


def test_heif_sequence_without_still_image_is_refused_clearly() -> None:
    ftyp = struct.pack(">L4s4sL4s4s", 24, b"ftyp", b"msf1", 0, b"msf1", b"hevc")
    moov = struct.pack(">L4s", 16, b"moov") + struct.pack(">L4s", 8, b"mvhd")
    with pytest.raises(core.UnsupportedFormat, match="sequence"):
        core.clean(ftyp + moov)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_tiff_and_bmp_clean_or_refuse(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["mat2-dirty/dirty.bmp", "exif-samples/tiff/Arbitro.tiff",
                                      "exif-samples/tiff/DudleyLeavittUtah.tiff"]))
    original = (CORPUS / name).read_bytes()
    blob = bytearray(original)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, min(len(blob), 600) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(blob)))
    try:
        out = core.clean(bytes(blob[:cut]))
    except CleanError:
        return
    for secret in (b"Russell Leavitt", b"Mac OS X", b"http://ns.adobe.com"):
        assert secret not in out.data
