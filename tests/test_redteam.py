"""Red-team regressions: hostile inputs that once carried a marker through core.clean.

Each test builds its hostile file here (Pillow images plus hand-made blocks), cleans
it, and asserts three things: the marker (raw, UTF-16, base64, zlib-compressed) is
not in the output, ExifTool finds no tag outside the structural allow-list, and the
output decodes to the input's pixels (it is not a half-cleaned file).
"""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image, ImageCms

import core
from core.policy import Policy
from tests.oracle import leaks_of

MARKER = b"LEAKMARKER-48.8583N"
KEEP_ICC = Policy(keep_icc=True)


def marker_forms(data: bytes) -> list[bytes]:
    """Every form of MARKER found in ``data``: raw, UTF-16, base64, inside a zlib stream."""
    text = MARKER.decode()
    forms = [MARKER, text.encode("utf-16-le"), text.encode("utf-16-be"),
             base64.b64encode(MARKER)[:16]]
    found = [f for f in forms if f in data]
    for i in range(len(data) - 1):
        if data[i] & 0x0F == 8 and (data[i] << 8 | data[i + 1]) % 31 == 0:  # zlib header
            try:
                inflated = zlib.decompressobj().decompress(data[i:], 1 << 24)
            except zlib.error:
                continue
            found += [f for f in forms if f in inflated]
    return found


def pixels_of(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGBA").tobytes()


def assert_clean(data: bytes, policy: Policy = Policy(), **oracle: object) -> core.Cleaned:  # noqa: B008
    out = core.clean(data, policy)
    assert marker_forms(out.data) == []
    assert leaks_of(out.data, **oracle) == []
    assert pixels_of(out.data) == pixels_of(data)
    return out


def picture(fmt: str, **kw: object) -> bytes:
    im = Image.new("RGB", (24, 16))
    im.putdata([(x * 10, y * 15, (x * y) % 256) for y in range(16) for x in range(24)])
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = 8, []
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]))
        pos += 12 + n
    return out


def png_of(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(png_chunk(t, b) for t, b in chunks)


def riff_chunk(fourcc: bytes, payload: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)


# --- keep_icc keeps a colour profile, not whatever follows an ICC name ----------------------


def _jpeg_with_app2(payload: bytes) -> bytes:
    data = picture("JPEG")
    app2 = b"\xff\xe2" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + app2 + data[2:]


def _gif_with_icc_extension(payload: bytes) -> bytes:
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, 200, 10, 10])
    buf = io.BytesIO()
    im.save(buf, "GIF")
    data = buf.getvalue()
    subs = b"".join(bytes([len(payload[i : i + 255])]) + payload[i : i + 255]
                    for i in range(0, len(payload), 255))
    ext = b"\x21\xff\x0bICCRGBG1012" + subs + b"\x00"
    head = 13 + 3 * (2 << (data[10] & 7))
    return data[:head] + ext + data[head:]


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "gif", "tiff"])
def test_keep_icc_drops_a_block_that_is_not_a_profile(fmt: str) -> None:
    """Any bytes after an ICC name were kept byte for byte under keep_icc (all formats)."""
    fake = MARKER * 3
    if fmt == "jpeg":
        data = _jpeg_with_app2(b"ICC_PROFILE\x00\x01\x01" + fake)
    elif fmt == "png":
        chunks = png_chunks(picture("PNG"))
        data = png_of(chunks[:1] + [(b"iCCP", b"x\x00\x00" + zlib.compress(fake))] + chunks[1:])
    elif fmt == "webp":
        lossless = picture("WEBP", lossless=True)[12:]  # the simple file's VP8L chunk
        vp8x = riff_chunk(b"VP8X", bytes([0x20, 0, 0, 0]) + (23).to_bytes(3, "little")
                          + (15).to_bytes(3, "little"))
        body = vp8x + riff_chunk(b"ICCP", fake) + lossless
        data = b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body
    elif fmt == "gif":
        data = _gif_with_icc_extension(fake)
    else:
        buf = io.BytesIO()
        Image.open(io.BytesIO(picture("PNG"))).save(buf, "TIFF", tiffinfo={34675: fake})
        data = buf.getvalue()
    if fmt == "tiff":  # re-encoded: only the marker search and ExifTool apply
        out = core.clean(data, KEEP_ICC)
        assert marker_forms(out.data) == [] and leaks_of(out.data) == []
        return
    assert_clean(data, KEEP_ICC)


def test_keep_icc_png_profile_is_rebuilt_without_its_free_text_name() -> None:
    """iCCP's profile name is free text (and the zlib stream may trail bytes): rebuilt."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    chunks = png_chunks(picture("PNG"))
    iccp = MARKER + b"\x00\x00" + zlib.compress(profile) + MARKER
    out = core.clean(png_of(chunks[:1] + [(b"iCCP", iccp)] + chunks[1:]), KEEP_ICC)
    assert marker_forms(out.data) == []
    iccp = MARKER + b"\x00\x00" + zlib.compress(profile)
    out = core.clean(png_of(chunks[:1] + [(b"iCCP", iccp)] + chunks[1:]), KEEP_ICC)
    assert marker_forms(out.data) == []
    with Image.open(io.BytesIO(out.data)) as im:
        assert im.info["icc_profile"] == profile  # the profile itself is kept, as asked


def test_keep_icc_jpeg_keeps_a_real_profile() -> None:
    """The fix must not drop what keep_icc is for: a whole profile in numbered chunks."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = picture("JPEG", icc_profile=profile)
    out = core.clean(data, KEEP_ICC)
    with Image.open(io.BytesIO(out.data)) as im:
        assert im.info["icc_profile"] == profile


# --- PNG: bytes a decoder never reads, inside the image data chunks -------------------------


def _apng() -> bytes:
    frames = [Image.new("RGB", (12, 10), (i * 60, 20, 200 - i * 50)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:])
    return buf.getvalue()


@pytest.mark.parametrize("where", ["after the stream in IDAT", "extra IDAT after the stream",
                                   "inflated past the picture", "after the stream in fdAT"])
def test_png_image_data_carries_nothing_after_the_picture(where: str) -> None:
    """IDAT/fdAT were copied byte for byte, so bytes after the zlib stream (or more
    inflated bytes than the scanlines need), which decoders ignore, went through."""
    chunks = png_chunks(_apng() if "fdAT" in where else picture("PNG"))
    idat = [i for i, (t, _) in enumerate(chunks) if t == b"IDAT"]
    if where == "after the stream in IDAT":
        chunks[idat[-1]] = (b"IDAT", chunks[idat[-1]][1] + MARKER)
    elif where == "extra IDAT after the stream":
        chunks.insert(idat[-1] + 1, (b"IDAT", MARKER))
    elif where == "inflated past the picture":
        raw = zlib.decompress(b"".join(chunks[i][1] for i in idat))
        chunks[idat[0] : idat[-1] + 1] = [(b"IDAT", zlib.compress(raw + MARKER))]
    else:
        chunks = [(t, b + MARKER if t == b"fdAT" else b) for t, b in chunks]
    data = png_of(chunks)
    assert MARKER in data or MARKER in zlib.decompress(chunks[idat[0]][1])
    out = assert_clean(data)
    assert out.lossless
    if "fdAT" in where:  # every frame still decodes to the same pixels
        with Image.open(io.BytesIO(out.data)) as a, Image.open(io.BytesIO(data)) as b:
            assert a.n_frames == b.n_frames == 3
            for n in range(3):
                a.seek(n)
                b.seek(n)
                assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes()


# --- GIF: bytes after the End of Information code of a frame's LZW data ---------------------


def _gif_frames(data: bytes) -> list[bytes]:
    with Image.open(io.BytesIO(data)) as im:
        out = []
        for n in range(im.n_frames):
            im.seek(n)
            out.append(im.convert("RGBA").tobytes())
        return out


@pytest.mark.parametrize("where", ["sub-block after the end code", "end code left out"])
def test_gif_lzw_data_carries_nothing_after_the_picture(where: str) -> None:
    """Image blocks were copied whole; sub-blocks after the LZW End of Information code
    (or after the last pixel when the code is missing) are never decoded."""
    from core import gif
    from core.policy import Policy as P

    frames = [Image.new("P", (20, 10), i) for i in range(2)]
    for f in frames:
        f.putpalette([0, 0, 0, 250, 0, 0, 0, 250, 0])
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    data = buf.getvalue()
    blocks = [b for b in gif.parse(data, P()).blocks if b.kind == "image"]
    last = blocks[-1]
    lzw = gif.sub_block_data(data, last.data_start, last.end)
    used = gif.lzw_data_end(lzw, data[last.data_start - 1], 20 * 10)
    assert used == len(lzw)  # Pillow ends its data with the End of Information code
    if where == "end code left out":  # drop the final EOI: decoders stop at the last pixel
        lzw = lzw[:-1]
    hostile = (data[: last.data_start] + gif.sub_blocks(lzw + MARKER) + data[last.end :])
    assert gif.GIF().leftovers(hostile, P()) != []  # the output check sees it too
    out = core.clean(hostile)
    assert marker_forms(out.data) == [] and leaks_of(out.data) == []
    assert _gif_frames(out.data) == _gif_frames(hostile) == _gif_frames(data)


@pytest.mark.parametrize("where", ["tRNS longer than the palette", "PLTE in an RGB image",
                                   "tRNS longer than one RGB colour"])
def test_png_colour_chunks_carry_nothing_a_decoder_does_not_read(where: str) -> None:
    """PLTE and tRNS were kept whole: bytes past the palette's entries (tRNS), past the
    one transparent colour (tRNS of an RGB image), or a suggested palette in a truecolour
    image (PLTE, never used to draw it) went through."""
    if where == "tRNS longer than the palette":
        im = Image.new("P", (8, 8), 1)
        im.putpalette([0, 0, 0, 250, 0, 0])
        buf = io.BytesIO()
        im.save(buf, "PNG")
        chunks = png_chunks(buf.getvalue())
        chunks.insert(2, (b"tRNS", b"\x00\xff" + MARKER))
    else:
        chunks = png_chunks(picture("PNG"))
        extra = (b"PLTE", MARKER + b"\0\0") if where == "PLTE in an RGB image" else (
            b"tRNS", b"\x00\x0a\x00\x0f\x00\x00" + MARKER)
        chunks.insert(1, extra)
    assert_clean(png_of(chunks))


# --- JPEG: tables no decoder ever reads ------------------------------------------------------


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


@pytest.mark.parametrize("where", ["DQT in a slot no component names",
                                   "DHT redefined before any scan",
                                   "DHT after the last scan"])
def test_jpeg_unused_tables_are_dropped(where: str) -> None:
    """DQT/DHT segments were kept byte for byte, so a table in a slot nothing names, or
    one overwritten before any frame/scan header, carried up to 256 free bytes each."""
    data = picture("JPEG")
    dqt = data.index(b"\xff\xdb")
    padded = MARKER + bytes(64 - len(MARKER))
    huffman = b"\x11" + bytes(15) + bytes([len(MARKER)]) + MARKER  # AC table in slot 1
    if where == "DQT in a slot no component names":
        hostile = data[:dqt] + _jpeg_segment(0xDB, b"\x03" + padded) + data[dqt:]
    elif where == "DHT redefined before any scan":
        sos = data.index(b"\xff\xda")
        dht = data.rindex(b"\xff\xc4", 0, sos)
        hostile = data[:dht] + _jpeg_segment(0xC4, huffman) + data[dht:]
    else:
        hostile = data[:-2] + _jpeg_segment(0xC4, huffman) + data[-2:]
    out = assert_clean(hostile)
    assert out.lossless


# --- WebP: a second image chunk in a simple file ----------------------------------------------


def test_webp_simple_file_is_its_first_chunk_alone() -> None:
    """A simple (no VP8X) WebP is one VP8/VP8L chunk; a second VP8L after it was kept
    because its name is on the allow-list, although no decoder reads it."""
    simple = picture("WEBP", lossless=True)
    extra = riff_chunk(b"VP8L", b"\x2f" + simple[21:25] + MARKER)
    body = simple[12:] + extra
    assert_clean(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body)


def test_webp_raw_alpha_carries_nothing_after_its_values() -> None:
    """An uncompressed ALPH chunk holds width x height values; bytes after them were
    kept, though no decoder reads them."""
    buf = io.BytesIO()
    Image.new("RGBA", (16, 8), (9, 9, 9, 100)).save(buf, "WEBP", quality=80)
    data = buf.getvalue()
    pos, body = 12, b""
    while pos < len(data):
        fourcc, size = struct.unpack_from("<4sI", data, pos)
        payload = data[pos + 8 : pos + 8 + size]
        if fourcc == b"ALPH":  # raw alpha (compression 0), then the marker
            payload = b"\x00" + bytes([100]) * (16 * 8) + MARKER
        body += riff_chunk(fourcc, payload)
        pos += 8 + size + (size & 1)
    assert b"ALPH" in body
    assert_clean(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body)
