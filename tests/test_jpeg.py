"""The lossless JPEG path (core/jpeg.py): allow-list, pixels, orientation, damage.

Oracles from outside our code: ExifTool reads every output (one batched run per
test), Pillow/libjpeg decodes inputs and outputs and the pixels must be equal,
and PIL.ImageOps.exif_transpose shows how a viewer displays the orientation.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import core
from core import jpeg
from core.policy import Orientation, Policy
from core.report import Category
from core.tiff_ifd import build_orientation_exif
from tests.conftest import corpus_dir, corpus_files
from tests.oracle import exiftool_tags, leaks

SECRET = b"Secret Person 0xC0FFEE"


# --- helpers (an independent, minimal view of JPEG structure) --------------------------


def picture(size: tuple[int, int] = (96, 64), seed: int = 1) -> Image.Image:
    """A small deterministic RGB picture with edges and noise."""
    rng = random.Random(seed)
    w, h = size
    noise = Image.frombytes("L", size, rng.randbytes(w * h))
    grad = Image.linear_gradient("L").resize(size)
    return Image.merge("RGB", (grad, noise, grad.transpose(Image.Transpose.ROTATE_180)))


def encode(image: Image.Image | None = None, **options) -> bytes:
    out = io.BytesIO()
    (image or picture()).save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def header_segments(data: bytes) -> tuple[list[bytes], bytes]:
    """The raw segments between SOI and the first SOS, and the rest (SOS onwards)."""
    pos, segs = 2, []
    while data[pos + 1] != 0xDA:
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segs.append(data[pos : pos + 2 + length])
        pos += 2 + length
    return segs, data[pos:]


def build(segs: list[bytes], rest: bytes) -> bytes:
    return b"\xff\xd8" + b"".join(segs) + rest


def pixels(data: bytes) -> tuple[tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size, im.tobytes()


def shown(data: bytes) -> tuple[tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as im:
        im = ImageOps.exif_transpose(im)
        return im.size, im.tobytes()


def markers(data: bytes) -> list[int]:
    """Markers of a cleaned file, as the plugin's own walk sees them (for assertions)."""
    return [s.marker for s in jpeg.walk(data, Policy()).segments]


def assert_no_leaks(blobs: list[bytes], **kw) -> None:
    problems = []
    for i, tags in enumerate(exiftool_tags(blobs, suffix=".jpg")):
        left = leaks(tags, **kw)
        if left:
            problems.append(f"output {i}: {left}")
    assert not problems, "\n".join(problems)


def identifying_strings(data: bytes) -> set[bytes]:
    """Camera make/model/software/date strings Pillow reads from an input's EXIF."""
    found: set[bytes] = set()
    try:
        with Image.open(io.BytesIO(data)) as im:
            exif = im.getexif()
    except Exception:  # noqa: BLE001 - a damaged input simply has none we can read
        return found
    for tag in (0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298):
        value = exif.get(tag)
        if isinstance(value, str) and len(value.strip(" \x00")) >= 5:
            found.add(value.strip(" \x00").encode("latin-1", "ignore"))
    return found


def corpus_jpegs() -> list[Path]:
    corpus_dir()
    return [p for p in corpus_files() if p.read_bytes()[:3] == b"\xff\xd8\xff"]


# --- the real corpus ------------------------------------------------------------------


def test_every_corpus_jpeg_cleans_losslessly_and_exiftool_finds_nothing() -> None:
    files = corpus_jpegs()
    assert len(files) >= 50
    outputs, problems = [], []
    for path in files:
        data = path.read_bytes()
        cleaned = core.clean(data)
        assert cleaned.format == "jpeg" and cleaned.lossless and cleaned.extension == ".jpg"
        assert pixels(cleaned.data) == pixels(data), f"{path.name}: pixels changed"
        assert shown(cleaned.data) == shown(data), f"{path.name}: displays differently"
        assert jpeg.leftovers(cleaned.data, Policy()) == []
        for needle in identifying_strings(data):
            if needle in cleaned.data:
                problems.append(f"{path.name}: output still contains {needle!r}")
        outputs.append(cleaned.data)
    assert not problems, "\n".join(problems)
    assert_no_leaks(outputs)


def test_invalid_corpus_files_clean_or_refuse() -> None:
    done = []
    for path in corpus_files("exif-samples/invalid"):
        try:
            done.append(core.clean(path.read_bytes()).data)
        except core.CleanError as e:
            assert str(e)
    assert_no_leaks(done)


@pytest.mark.parametrize("kind", ["landscape", "portrait"])
def test_all_eight_orientations_display_as_the_original(kind: str) -> None:
    outputs = []
    for o in range(1, 9):
        data = (corpus_dir() / "exif-samples" / "orientation" / f"{kind}_{o}.jpg").read_bytes()
        cleaned = core.clean(data)
        assert shown(cleaned.data) == shown(data), f"{kind}_{o}"
        assert pixels(cleaned.data) == pixels(data), f"{kind}_{o}"
        with Image.open(io.BytesIO(cleaned.data)) as im:
            exif = im.info.get("exif")
        if o == 1:
            assert exif is None
        else:
            # the only EXIF we write: IFD0 holding Orientation and nothing else
            assert exif == b"Exif\x00\x00" + build_orientation_exif(o)
            assert any("orientation" in k for k in cleaned.report.kept)
        outputs.append(cleaned.data)
        dropped = core.clean(data, Policy(orientation=Orientation.DROP))
        assert jpeg.APP1 not in markers(dropped.data)
        assert pixels(dropped.data) == pixels(data)
        if o != 1:
            assert dropped.report.notes  # it says the picture may now display differently
        outputs.append(dropped.data)
    assert_no_leaks(outputs)


def test_bake_orientation_rotates_the_pixels() -> None:
    """Policy BAKE re-encodes through core.pixels.rebuild: no tag, same look (lossy)."""
    from PIL import ImageChops, ImageCms, ImageStat

    outputs = []
    for o in range(2, 9):
        data = (corpus_dir() / "exif-samples" / "orientation" / f"landscape_{o}.jpg").read_bytes()
        cleaned = core.clean(data, Policy(orientation=Orientation.BAKE))
        assert not cleaned.lossless
        with Image.open(io.BytesIO(cleaned.data)) as out, Image.open(io.BytesIO(data)) as src:
            assert out.getexif().get(0x0112) in (None, 1)
            want = ImageOps.exif_transpose(src).convert("RGB")
            if src.info.get("icc_profile"):  # rebuild converts to sRGB (core/pixels.py)
                want = ImageCms.profileToProfile(
                    want, ImageCms.ImageCmsProfile(io.BytesIO(src.info["icc_profile"])),
                    ImageCms.createProfile("sRGB"), outputMode="RGB",
                )
            got = out.convert("RGB")
            assert got.size == want.size, o
            mean_diff = ImageStat.Stat(ImageChops.difference(got, want)).mean
            assert max(mean_diff) < 8, f"orientation {o}: baked picture looks different"
        outputs.append(cleaned.data)
    assert_no_leaks(outputs, allow_orientation=False)
    # an upright photo needs no re-encoding even with BAKE
    upright = (corpus_dir() / "exif-samples" / "orientation" / "landscape_1.jpg").read_bytes()
    assert core.clean(upright, Policy(orientation=Orientation.BAKE)).lossless


# --- look-alike segments and hidden data ----------------------------------------------


def test_look_alike_segments_are_removed() -> None:
    base = encode()
    segs, rest = header_segments(base)
    jfif = segs[0]
    assert jfif[4:9] == b"JFIF\x00"
    thumb = bytes(range(256)) * 3 * 2  # 2x... a 16x32 RGB thumbnail
    jfif_with_thumb = segment(0xE0, jfif[4:16] + bytes((16, 32)) + thumb[: 3 * 16 * 32])
    planted = [
        jfif_with_thumb,
        segment(0xE0, b"JFXX\x00\x10" + SECRET),  # JFXX thumbnail extension
        segment(0xE0, b"II\x1a\x00\x00\x00HEAPCCDR" + SECRET),  # Canon CIFF look-alike
        segment(0xE0, b"JFIF\x00\x01\x02\x01\x00\x48\x00\x48\x00\x00" + SECRET),  # 2nd JFIF
        segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>" + SECRET + b"</x>"),
        segment(0xE1, b"http://ns.adobe.com/xmp/extension/\x00" + b"0" * 40 + SECRET),
        segment(0xE2, b"FPXR\x00" + SECRET),
        segment(0xE2, b"MPF\x00" + SECRET),
        segment(0xEC, b"Ducky\x00" + SECRET),
        segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04" + SECRET),
        segment(0xEE, b"Adobx\x00\x64\x00\x00\x00\x00\x01" + SECRET),  # not "Adobe"
        segment(0xEF, SECRET),
        segment(0xFE, b"comment: " + SECRET),
        segment(0xF0, SECRET),  # JPG0 extension
    ]
    video = struct.pack(">L4s4sL", 24, b"ftyp", b"mp42", 0) + b"mp42isom" + SECRET * 100
    data = build(planted + segs[1:], rest) + video
    cleaned = core.clean(data)
    assert SECRET not in cleaned.data
    assert pixels(cleaned.data) == pixels(base)  # libjpeg itself refuses the JPG0 input
    # the JFIF header survives, rebuilt without its thumbnail
    out_segs, _ = header_segments(cleaned.data)
    assert out_segs[0] == segment(0xE0, jfif_with_thumb[4:16] + b"\x00\x00")
    assert [s[4:9] for s in out_segs].count(b"JFIF\x00") == 1
    assert not any(s[1] in (0xE1, 0xE2, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xFE) for s in out_segs)
    assert cleaned.data.endswith(b"\xff\xd9")
    report = cleaned.report
    assert report.by_category(Category.THUMBNAIL)
    assert report.by_category(Category.COMMENT)
    assert any("motion photo" in f.value for f in report.by_category(Category.TRAILING_DATA))
    assert len(report.removed) >= len(planted)
    inspected = core.inspect(data)  # inspect tells the same story without changing anything
    assert inspected.by_category(Category.THUMBNAIL) and inspected.by_category(Category.COMMENT)
    assert any("video" in f.value for f in inspected.by_category(Category.TRAILING_DATA))
    assert_no_leaks([cleaned.data])


def test_adobe_app14_is_kept_but_cut_to_its_twelve_bytes() -> None:
    image = picture().convert("CMYK")
    data = encode(image)
    segs, rest = header_segments(data)
    adobe = [s for s in segs if s[1] == 0xEE]
    assert adobe, "Pillow writes an Adobe APP14 for CMYK"
    padded = [segment(0xEE, s[4:16] + SECRET) if s[1] == 0xEE else s for s in segs]
    cleaned = core.clean(build(padded, rest))
    assert SECRET not in cleaned.data
    out_segs, _ = header_segments(cleaned.data)
    assert [s for s in out_segs if s[1] == 0xEE] == [segment(0xEE, adobe[0][4:16])]
    assert pixels(cleaned.data) == pixels(data)
    with Image.open(io.BytesIO(cleaned.data)) as im:
        assert im.mode == "CMYK"
    assert_no_leaks([cleaned.data])


def test_icc_profile_dropped_by_default_kept_on_request() -> None:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(icc_profile=icc)
    assert b"ICC_PROFILE" not in core.clean(data).data
    kept = core.clean(data, Policy(keep_icc=True))
    with Image.open(io.BytesIO(kept.data)) as im:
        assert im.info.get("icc_profile") == icc
    assert jpeg.leftovers(kept.data, Policy(keep_icc=True)) == []
    assert jpeg.leftovers(kept.data, Policy()) != []  # not allowed unless asked


def test_exif_xmp_comment_and_inspect_report() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Secretmaker"
    exif[0x0110] = "Secretmaker X1"
    exif[0x0112] = 8
    data = encode(exif=exif.tobytes(), comment=b"taken at home " + SECRET,
                  xmp=b"<x:xmpmeta>" + SECRET + b"</x:xmpmeta>")
    report = core.inspect(data)
    assert (report.width, report.height) == (96, 64)
    assert any(SECRET.decode() in f.value for f in report.by_category(Category.COMMENT))
    cleaned = core.clean(data)
    for needle in (SECRET, b"Secretmaker", b"xmpmeta"):
        assert needle not in cleaned.data
    assert cleaned.report.removed
    assert "orientation: rotated 90° counter-clockwise" in cleaned.report.kept
    assert shown(cleaned.data) == shown(data)
    assert_no_leaks([cleaned.data])


# --- coding variants: progressive, restart markers, fill bytes, odd orders ----------


def test_progressive_multi_scan_with_metadata_between_scans() -> None:
    data = encode(picture((333, 211), seed=3), progressive=True, optimize=True)
    segs, rest = header_segments(data)
    # put a COM and an XMP APP1 between the scans of the progressive image
    scans = rest.split(b"\xff\xc4")  # DHT segments separate the scans in Pillow's output
    assert len(scans) > 2
    between = segment(0xFE, SECRET) + segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + SECRET)
    rest2 = scans[0] + between + b"\xff\xc4" + b"\xff\xc4".join(scans[1:])
    dirty = build(segs, rest2)
    assert pixels(dirty) == pixels(data)  # still a valid JPEG for libjpeg
    cleaned = core.clean(dirty)
    assert SECRET not in cleaned.data
    assert markers(cleaned.data).count(jpeg.SOS) > 2
    assert pixels(cleaned.data) == pixels(data)
    with Image.open(io.BytesIO(cleaned.data)) as im:
        assert im.info.get("progressive")


@pytest.mark.parametrize("options", [
    {"restart_marker_blocks": 1},
    {"restart_marker_rows": 1},
    {"restart_marker_rows": 2, "progressive": True},
])
def test_restart_intervals(options: dict) -> None:
    data = encode(picture((200, 120), seed=5), comment=SECRET, **options)
    assert jpeg.DRI in markers(core.clean(data).data)
    cleaned = core.clean(data)
    assert b"\xff\xd0" in cleaned.data  # restart markers stay inside the scan data
    assert SECRET not in cleaned.data
    assert pixels(cleaned.data) == pixels(data)


def test_restart_markers_from_jpegtran(tmp_path: Path) -> None:
    import subprocess

    src = tmp_path / "in.jpg"
    src.write_bytes(encode(picture((160, 160), seed=7), comment=SECRET))
    data = subprocess.run(
        ["jpegtran", "-copy", "all", "-restart", "1B", str(src)],
        capture_output=True, check=True,
    ).stdout
    assert b"\xff\xdd" in data
    cleaned = core.clean(data)
    assert pixels(cleaned.data) == pixels(data)
    assert SECRET not in cleaned.data


def test_fill_bytes_and_odd_segment_order_and_dnl() -> None:
    data = encode(picture((80, 48), seed=9))
    segs, rest = header_segments(data)
    kinds = {s[1]: s for s in segs}
    dqt = [s for s in segs if s[1] == 0xDB]
    dht = [s for s in segs if s[1] == 0xC4]
    sof = kinds[0xC0]
    # frame header first, tables after it, a DRI of 0, COMs in between, fill bytes
    odd = [
        b"\xff\xff\xff" + sof,
        segment(0xFE, SECRET) + b"\x00\x00\x00",  # zero padding, as some writers leave
        *[b"\xff" + s for s in dqt],
        segment(0xDD, b"\x00\x00"),
        *reversed(dht),
        segment(0xE3, SECRET),
    ]
    scan_end = rest.rindex(b"\xff\xd9")
    dnl = segment(0xDC, struct.pack(">H", 48))
    dirty = build(odd, rest[:scan_end] + b"\xff\xff" + dnl + b"\xff\xff\xff\xd9")
    assert pixels(dirty) == pixels(data)
    cleaned = core.clean(dirty)
    assert SECRET not in cleaned.data
    assert pixels(cleaned.data) == pixels(data)
    got = markers(cleaned.data)
    assert jpeg.DNL in got and jpeg.DRI in got
    assert any("padding" in r.what for r in cleaned.report.removed)
    # a frame header with 0 lines (height given by the DNL only): a clear refusal
    sof0 = b"\xff\xc0" + sof[2:5] + b"\x00\x00" + sof[7:]
    no_height = build([sof0 if s == sof else s for s in segs], rest[:scan_end] + dnl
                      + b"\xff\xd9")
    with pytest.raises(core.MalformedImage, match="DNL"):
        core.clean(no_height)
    assert b"\xff\xff" not in cleaned.data.replace(b"\xff\xff\xd9", b"")  # fill dropped


def test_mpo_keeps_the_first_image_only() -> None:
    first, second = picture(seed=11), picture(seed=12)
    out = io.BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[second], quality=90)
    data = out.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        assert getattr(im, "n_frames", 1) == 2
    cleaned = core.clean(data)
    assert cleaned.media_type == "image/jpeg"
    with Image.open(io.BytesIO(cleaned.data)) as im:
        assert getattr(im, "n_frames", 1) == 1
    assert pixels(cleaned.data) == pixels(encode(first)) or pixels(cleaned.data)[0] == (96, 64)
    assert cleaned.data.count(b"\xff\xd8") == 1
    found = cleaned.report.by_category(Category.EXTRA_IMAGE)
    assert found and "1 extra image" in found[0].value
    # a plain second JPEG glued after EOI (no MPF index) goes too
    glued = encode(first) + encode(second, exif=Image.Exif().tobytes())
    cleaned = core.clean(glued)
    assert pixels(cleaned.data) == pixels(encode(first))
    assert len(cleaned.data) < len(glued) // 2 + 200
    assert_no_leaks([cleaned.data])


# --- limits and errors ------------------------------------------------------------


def test_errors_are_clean_errors_with_readable_messages() -> None:
    data = encode()
    segs, rest = header_segments(data)
    cases = {
        "middle of a segment": data[:30],
        "no image data (no SOS)": b"\xff\xd8" + b"".join(segs) + b"\xff\xd9",
        "cut short": data[: len(data) - 40],
        "stray bytes": b"\xff\xd8" + segs[0] + b"junk" + b"".join(segs[1:]) + rest,
        "second start-of-image": b"\xff\xd8\xff\xd8" + data[2:],
    }
    for words, bad in cases.items():
        with pytest.raises(core.MalformedImage, match=words.replace("(", r"\(").replace(
                ")", r"\)")):
            core.clean(bad)
    # a pixel bomb is refused from its frame header, before any scan data is read
    sof = [s for s in segs if s[1] == 0xC0][0]
    bomb_sof = sof[:5] + struct.pack(">HH", 60000, 60000) + sof[9:]
    bomb = build([bomb_sof if s == sof else s for s in segs], rest[:20])
    with pytest.raises(core.TooLarge, match="megapixels"):
        core.clean(bomb)
    many = build([segment(0xFE, b"x")] * 50 + segs, rest)
    with pytest.raises(core.TooLarge, match="segments"):
        core.clean(many, Policy(max_segments=40))


def test_leftovers_names_what_is_not_allowed() -> None:
    data = encode()
    segs, rest = header_segments(data)
    fmt = jpeg.JPEG()
    assert fmt.leftovers(data, Policy()) == []
    dirty = build(segs + [segment(0xFE, b"hello")], rest) + b"trailer"
    left = fmt.leftovers(dirty, Policy())
    assert any("comment" in x for x in left) and any("after the end" in x for x in left)
    exif = segment(0xE1, b"Exif\x00\x00" + build_orientation_exif(6))
    assert fmt.leftovers(build([segs[0], exif, *segs[1:]], rest), Policy()) == []
    assert fmt.leftovers(build([segs[0], exif, *segs[1:]], rest),
                         Policy(orientation=Orientation.DROP)) != []
    with pytest.raises(core.MalformedImage):
        fmt.leftovers(data[:-2], Policy())


# --- damage: truncations and byte flips --------------------------------------------

DAMAGE_FILES = [
    "exif-samples/gps/DSCN0010.jpg",
    "exif-samples/cameras/Canon_40D.jpg",
    "exif-samples/orientation/portrait_6.jpg",
    "exif-samples/xmp/BlueSquare.jpg",
    "mat2-dirty/dirty.jpg",
]


def _clean_or_refuse(data: bytes, outputs: dict[str, bytes], secrets: set[bytes]) -> None:
    try:
        cleaned = core.clean(data)
    except core.CleanError as e:
        assert str(e)
        return
    for needle in secrets:
        assert needle not in cleaned.data, needle
    assert jpeg.leftovers(cleaned.data, Policy()) == []
    outputs[hashlib.sha256(cleaned.data).hexdigest()] = cleaned.data


def _byte_flips(original: bytes, header_end: int, outputs: dict[str, bytes],
                secrets: set[bytes]):  # type: ignore[no-untyped-def]
    """A hypothesis test flipping 1-3 bytes of ``original`` (bounded, reproducible)."""

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def flipped(draw: st.DataObject) -> None:
        damaged = bytearray(original)
        for _ in range(draw.draw(st.integers(1, 3))):
            # mostly in the metadata and tables, where the structure lives
            limit = draw.draw(st.sampled_from([header_end, len(original)]))
            at = draw.draw(st.integers(0, min(limit, len(original)) - 1))
            damaged[at] ^= draw.draw(st.integers(1, 255))
        _clean_or_refuse(bytes(damaged), outputs, secrets)

    return flipped


def test_truncations_and_byte_flips_fail_closed() -> None:
    outputs: dict[str, bytes] = {}
    for name in DAMAGE_FILES:
        original = (corpus_dir() / name).read_bytes()
        secrets = identifying_strings(original)
        header_end = original.find(b"\xff\xda") + 200
        offsets = list(range(0, min(header_end, len(original)), 7))
        offsets += list(range(header_end, len(original), max(len(original) // 60, 1)))
        for cut in offsets:
            _clean_or_refuse(original[:cut], outputs, secrets)

        flipped = _byte_flips(original, header_end, outputs, secrets)
        flipped()
    assert outputs, "some damaged inputs should still clean"
    assert_no_leaks(list(outputs.values()))


def test_thousands_of_repeated_segments_are_counted_not_listed() -> None:
    """A file repeating a segment 19000 times gets a bounded report (and is cleaned)."""
    segs, rest = header_segments(encode())
    comments = [segment(0xFE, b"note %05d " % i + SECRET) for i in range(19000)]
    cleaned = core.clean(build(comments + segs, rest))
    assert SECRET not in cleaned.data
    assert len(cleaned.report.removed) == 19000
    assert len(cleaned.report.findings) <= 2 * jpeg.MAX_DESCRIBED_PER_KIND
    assert any(f.data.get("count") for f in cleaned.report.findings)


def test_output_check_compares_scans_instead_of_searching_them_again(monkeypatch) -> None:
    """leftovers() on a fresh output compares each scan with the input bytes that were
    searched; it never trusts a scan that differs, and it keeps nothing afterwards."""
    data = encode(picture((120, 90), seed=13), progressive=True, comment=SECRET)
    n_scans = markers(data).count(jpeg.SOS)
    searches: list[int] = []

    class CountingScanEnd:
        def search(self, buf: bytes, pos: int):  # type: ignore[no-untyped-def]
            searches.append(pos)
            return jpeg.SCAN_END_REGEX.search(buf, pos)

        def match(self, buf: bytes, pos: int):  # type: ignore[no-untyped-def]
            return jpeg.SCAN_END_REGEX.match(buf, pos)

    monkeypatch.setattr(jpeg, "SCAN_END_REGEX", jpeg.SCAN_END, raising=False)
    monkeypatch.setattr(jpeg, "SCAN_END", CountingScanEnd())
    cleaned = core.clean(data)
    assert n_scans > 2 and len(searches) == n_scans  # the clean walk's; none in the check
    monkeypatch.undo()
    assert getattr(jpeg._SCAN_PROOFS, "slot", None) is None  # released by the check
    # the same bytes in another object get the full search, with the same verdict
    assert jpeg.leftovers(bytes(bytearray(cleaned.data)), Policy()) == []
    layout = jpeg.walk(cleaned.data, Policy())
    first = next(s for s in layout.segments if s.marker == jpeg.SOS)
    scan = cleaned.data[first.payload_end : first.end]
    proof = {first.payload_end: memoryview(scan)}
    # a comment planted inside the proven scan: the comparison fails, the search runs
    # and the broken structure is refused
    inside = (cleaned.data[: first.payload_end + 5] + segment(0xFE, SECRET)
              + cleaned.data[first.payload_end + 5 :])
    with pytest.raises(core.MalformedImage):
        jpeg.walk(inside, Policy(), proven=proof)
    # a comment planted right after it: the scan matches, the comment is still walked
    after = cleaned.data[: first.end] + segment(0xFE, SECRET) + cleaned.data[first.end :]
    walked = jpeg.walk(after, Policy(), proven=proof)
    assert jpeg.COM in [s.marker for s in walked.segments]
    assert any("comment" in x for x in jpeg.leftovers(after, Policy()))
    # a proof that matches gives exactly the segments the search gives
    proven = jpeg.walk(cleaned.data, Policy(), proven={first.payload_end: memoryview(scan)})
    assert [(s.marker, s.start, s.end) for s in proven.segments] == [
        (s.marker, s.start, s.end) for s in layout.segments
    ]


def test_arithmetic_coding_and_grayscale(tmp_path: Path) -> None:
    """SOF9 (arithmetic coding, made by jpegtran -arithmetic) and one-component files."""
    import subprocess

    src = tmp_path / "in.jpg"
    src.write_bytes(encode(picture((144, 96), seed=17), comment=SECRET))
    arith = subprocess.run(["jpegtran", "-copy", "all", "-arithmetic", str(src)],
                           capture_output=True, check=True).stdout
    assert 0xC9 in markers(arith)  # SOF9
    gray = encode(picture(seed=18).convert("L"), comment=SECRET)
    outputs = []
    for data in (arith, gray):
        cleaned = core.clean(data)
        assert SECRET not in cleaned.data
        assert pixels(cleaned.data) == pixels(data)
        outputs.append(cleaned.data)
    assert_no_leaks(outputs)


def test_phone_like_photo_of_the_benchmark_cleans_completely() -> None:
    """bench/photo.py's generator (small size here): EXIF+GPS+thumbnail, XMP, ICC and a
    motion-photo video all go; the report names the place, the device and the video."""
    from bench.photo import GPS_DEGREES, SECRETS, build_phone_jpeg

    data = build_phone_jpeg(400, 300)
    before = exiftool_tags([data], suffix=".jpg")[0]
    assert any(k.startswith("GPS:") for k in before) and any("ICC" in k for k in before)
    assert any(k.startswith("XMP") for k in before)
    cleaned = core.clean(data)
    for secret in SECRETS.values():
        assert secret.encode() not in cleaned.data
    assert b"ftyp" not in cleaned.data
    assert pixels(cleaned.data) == pixels(data)
    assert shown(cleaned.data) == shown(data)  # Orientation 6 kept, alone
    assert cleaned.report.by_category(Category.TRAILING_DATA)
    text = cleaned.report.text()
    assert f"{GPS_DEGREES[0]:.3f}" in text and "video" in text
    assert_no_leaks([cleaned.data])
