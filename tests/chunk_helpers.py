"""Helpers for the PNG, WebP and GIF tests: pixels of every frame, corruption checks."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps, ImageSequence

import core
from tests.oracle import exiftool_tags, leaks

#: Hypothesis settings for the corruption tests: reproducible, bounded, no deadline.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Strings the test images carry in their metadata; none may survive cleaning.
SECRETS = (
    b"Jane Secret", b"SecretMake", b"SecretModel", b"Hidden comment", b"Rue du Secret",
    b"SecretSoftware", b"secret-xmp-creator", b"PRIVATEPAYLOAD", b"TRAILINGSECRET",
    b"secret plain text", b"ACMEDATA",
)


def frames(data: bytes) -> list[tuple[str, tuple[int, int], bytes]]:
    """Every frame as Pillow decodes it: (mode, size, raw pixels)."""
    with Image.open(io.BytesIO(data)) as im:
        return [(f.mode, f.size, f.tobytes()) for f in ImageSequence.Iterator(im)]


def displayed(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    """The first frame as a viewer shows it (orientation applied), in RGBA."""
    with Image.open(io.BytesIO(data)) as im:
        shown = ImageOps.exif_transpose(im).convert("RGBA")
        return shown.mode, shown.size, shown.tobytes()


def assert_pixel_exact(before: bytes, after: bytes) -> None:
    a, b = frames(before), frames(after)
    assert len(a) == len(b), f"{len(a)} frames became {len(b)}"
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x[:2] == y[:2], f"frame {i}: {x[:2]} became {y[:2]}"
        assert x[2] == y[2], f"frame {i}: pixels changed"


def assert_no_secrets(blob: bytes, secrets: Iterable[bytes] = SECRETS) -> None:
    found = [s for s in secrets if s in blob]
    assert not found, f"the output still carries {found}"


def assert_exiftool_clean(blobs: list[bytes], *, allow_orientation: bool = True) -> None:
    if not blobs:
        return
    problems = []
    for i, tags in enumerate(exiftool_tags(blobs)):
        left = leaks(tags, allow_orientation=allow_orientation)
        if left:
            problems.append(f"output {i}: {left}")
    assert not problems, "\n".join(problems)


def outside_image_data(blob: bytes) -> bytes:
    """``blob`` without its compressed image data (PNG IDAT/fdAT, WebP VP8/VP8L/ALPH, GIF LZW).

    Written independently of the plugins' parsers. Damage can fold a metadata block into
    image data (a flipped GIF block terminator or WebP chunk size swallows the next
    block); every decoder then skips those bytes after the image's end code, and a
    lossless cleaner cannot tell them from pixels. Everywhere else, nothing may survive.
    """
    kept, pos = [], 0
    if blob.startswith(b"\x89PNG"):
        pos = 8
        while pos + 8 <= len(blob):
            length, ctype = struct.unpack_from(">I4s", blob, pos)
            if ctype not in (b"IDAT", b"fdAT"):
                kept.append(blob[pos : pos + 12 + length])
            pos += 12 + length
    elif blob[8:12] == b"WEBP":
        kept.append(blob[:12])
        pos = 12
        while pos + 8 <= len(blob):
            fourcc, size = struct.unpack_from("<4sI", blob, pos)
            if fourcc == b"ANMF":
                kept.append(blob[pos : pos + 24])  # header; its sub-chunks are walked next
                pos += 24
                continue
            if fourcc not in (b"VP8 ", b"VP8L", b"ALPH"):
                kept.append(blob[pos : pos + 8 + size + (size & 1)])
            pos += 8 + size + (size & 1)
    elif blob.startswith(b"GIF"):
        packed = blob[10]
        pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 13)
        kept.append(blob[:pos])
        while pos < len(blob) and blob[pos] != 0x3B:
            start = pos
            if blob[pos] == 0x2C:
                ipacked = blob[pos + 9]
                pos += 10 + (3 << ((ipacked & 7) + 1) if ipacked & 0x80 else 0) + 1
                kept.append(blob[start:pos])
                start = None
            else:
                pos += 2
            while blob[pos]:
                pos += 1 + blob[pos]
            pos += 1
            if start is not None:
                kept.append(blob[start:pos])
    kept.append(blob[pos:])
    return b"".join(kept)


def clean_or_refuse(data: bytes, outputs: list[bytes],
                    policy: core.Policy = core.Policy()) -> None:  # noqa: B008 - frozen
    """The corruption contract: a verified clean output or a CleanError, nothing else,
    and no metadata string outside the compressed image data (see outside_image_data).
    Inspecting the same bytes gives a report or a CleanError, too."""
    try:
        core.inspect(data)
    except core.CleanError as e:
        assert str(e), "an error needs a message"
    try:
        result = core.clean(data, policy)
    except core.CleanError as e:
        assert str(e), "an error needs a message"
        return
    assert_no_secrets(outside_image_data(result.data))
    outputs.append(result.data)


def fuzz_corruptions(original: bytes, mutate: Callable[[bytes, int, int], bytes]) -> list[bytes]:
    """Run hypothesis over (offset, value) mutations; return the outputs that cleaned."""
    outputs: list[bytes] = []

    @FUZZ
    @given(st.integers(0, len(original) - 1), st.integers(1, 255))
    def run(offset: int, value: int) -> None:
        clean_or_refuse(mutate(original, offset, value), outputs)

    run()
    return outputs


def flip(data: bytes, offset: int, value: int) -> bytes:
    """``data`` with the byte at ``offset`` XOR-ed with ``value``."""
    return data[:offset] + bytes([data[offset] ^ value]) + data[offset + 1 :]


def truncate(data: bytes, offset: int, _value: int) -> bytes:
    return data[:offset]


def truncations(original: bytes, count: int = 40) -> list[bytes]:
    """Clean ``original`` cut at ``count`` offsets spread over the file (and the last bytes)."""
    outputs: list[bytes] = []
    step = max(1, len(original) // count)
    cuts = sorted(set(range(0, len(original), step)) | set(range(len(original) - 24,
                                                                 len(original))))
    for cut in cuts:
        if cut > 0:
            clean_or_refuse(original[:cut], outputs)
    return outputs


XMP_PACKET = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
    b' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""'
    b' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
    b' xmp:CreatorTool="secret-xmp-creator" exif:GPSLatitude="48,51.5N"'
    b' exif:GPSLongitude="2,17.7E"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def exif_tiff(orientation: int = 1) -> bytes:
    """An EXIF block (TIFF structure, no ``Exif`` header) with make, model, GPS, orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SecretMake"
    exif[0x0110] = "SecretModel"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.5), "E", (2.0, 17.0, 40.2)
    data = exif.tobytes()
    return data[6:] if data.startswith(b"Exif\x00\x00") else data


def spy_on_describers(monkeypatch, plugin) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """Record the XMP and EXIF blocks ``plugin`` hands to the shared describers (which
    still run for real); returns the dict the spies fill: {"xmp": ..., "exif": ...}."""
    seen: dict[str, bytes] = {}
    real_xmp, real_exif = plugin.xmp.describe, plugin.exif.describe

    def xmp_spy(packet: bytes, report: core.Report) -> None:
        seen["xmp"] = packet
        real_xmp(packet, report)

    def exif_spy(tiff: bytes, report: core.Report, *, source: str = "EXIF") -> None:
        seen["exif"] = tiff
        real_exif(tiff, report, source=source)

    monkeypatch.setattr(plugin.xmp, "describe", xmp_spy)
    monkeypatch.setattr(plugin.exif, "describe", exif_spy)
    return seen
