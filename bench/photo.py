"""A generated 12-megapixel phone-like JPEG for benchmarks (and tests of other parts).

    >>> from bench.photo import make_phone_jpeg
    >>> data = make_phone_jpeg()        # bytes, ~5-6 MB, cached per process and on disk

4000x3000 pixels of photo-like content (gradients, shapes, deterministic sensor
noise, so it compresses like a real photo), saved at quality 90 with 4:2:0
subsampling, carrying what a phone writes:

- EXIF (APP1): make, model, software, capture time with time-zone offset, lens,
  body serial number, Orientation=6 (portrait phone), a GPS position with
  altitude, and an IFD1 thumbnail (a small JPEG);
- XMP (APP1): creator tool, dates, a GPS position, Google motion-photo tags;
- an ICC profile (APP2, sRGB built by LittleCMS);
- after EOI, a ~2 MB MP4-like video (``ftyp`` box, ``mdat`` box): a motion photo.

Everything is deterministic (fixed seeds, no clock). The file is cached in
``bench/out/`` (git-ignored), never written anywhere else in the repository.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import random
import struct
from pathlib import Path

from PIL import Image, ImageCms, ImageDraw, ImageFilter

WIDTH, HEIGHT = 4000, 3000
VIDEO_BYTES = 2_100_000
OUT_DIR = Path(__file__).resolve().parent / "out"
#: Bump when the generator changes, so a stale cached file is not reused.
VERSION = 1

#: Strings the generated metadata carries; a cleaned file must contain none of them.
SECRETS = {
    "make": "Phonemaker",
    "model": "Phonemaker P12 Ultra",
    "serial": "SN-4417-2291-0042",
    "software": "PhoneOS 14.2 camera",
    "datetime": "2025:06:14 09:41:27",
    "owner": "Alice Example",
    "xmp_tool": "PhoneOS Camera XMP 3.1",
}
GPS_DEGREES = (48.858370, 2.294481)  # the Eiffel tower


def _pixels(width: int, height: int, seed: int) -> Image.Image:
    """Photo-like RGB content: smooth light, edges, and fine deterministic grain."""
    rng = random.Random(seed)
    sky = Image.linear_gradient("L").resize((width, height))
    glow = Image.radial_gradient("L").resize((width, height))
    r = Image.blend(sky, glow, 0.35)
    g = Image.blend(glow, sky, 0.55)
    b = sky.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    base = Image.merge("RGB", (r, g, b))
    draw = ImageDraw.Draw(base)
    for _ in range(60):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(40, 900), y0 + rng.randrange(40, 700)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    base = base.filter(ImageFilter.GaussianBlur(3))
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    texture = Image.merge("RGB", (grain, grain.rotate(180), grain.transpose(
        Image.Transpose.FLIP_LEFT_RIGHT)))
    return Image.blend(base, texture, 0.16)


def _dms(value: float) -> tuple[float, float, float]:
    """Degrees, minutes, seconds as EXIF GPS rationals (Pillow turns floats into them)."""
    degrees = int(value)
    minutes_f = (value - degrees) * 60
    minutes = int(minutes_f)
    return (float(degrees), float(minutes), round((minutes_f - minutes) * 60, 2))


def _exif(thumbnail: bytes) -> bytes:
    """TIFF bytes (with ``Exif\\0\\0``): IFD0, Exif IFD, GPS IFD, then an IFD1 thumbnail."""
    exif = Image.Exif()
    exif[0x010F] = SECRETS["make"]
    exif[0x0110] = SECRETS["model"]
    exif[0x0131] = SECRETS["software"]
    exif[0x0132] = SECRETS["datetime"]
    exif[0x013B] = SECRETS["owner"]  # Artist
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = SECRETS["datetime"]  # DateTimeOriginal
    sub[0x9011] = "+02:00"  # OffsetTimeOriginal
    sub[0xA434] = "Phonemaker wide 26mm f/1.8"  # LensModel
    sub[0xA431] = SECRETS["serial"]  # BodySerialNumber
    sub[0xA430] = SECRETS["owner"]  # CameraOwnerName
    gps = exif.get_ifd(0x8825)
    lat, lon = GPS_DEGREES
    gps[0x0000] = b"\x02\x02\x00\x00"
    gps[0x0001] = "N"
    gps[0x0002] = _dms(lat)
    gps[0x0003] = "E"
    gps[0x0004] = _dms(lon)
    gps[0x0005] = b"\x00"
    gps[0x0006] = 35.2
    tiff = exif.tobytes()[6:]  # Pillow writes "Exif\0\0" + a TIFF structure
    bo = "<" if tiff[:2] == b"II" else ">"
    # Append IFD1 (JPEGInterchangeFormat + Length) and the thumbnail; link it from IFD0.
    (ifd0,) = struct.unpack(bo + "L", tiff[4:8])
    (count,) = struct.unpack(bo + "H", tiff[ifd0 : ifd0 + 2])
    next_ptr = ifd0 + 2 + 12 * count
    body = bytearray(tiff)
    if len(body) % 2:
        body += b"\x00"
    ifd1 = len(body)
    struct.pack_into(bo + "L", body, next_ptr, ifd1)
    thumb_at = ifd1 + 2 + 2 * 12 + 4
    body += struct.pack(bo + "H", 2)
    body += struct.pack(bo + "HHLL", 0x0201, 4, 1, thumb_at)
    body += struct.pack(bo + "HHLL", 0x0202, 4, 1, len(thumbnail))
    body += b"\x00\x00\x00\x00"
    body += thumbnail
    return b"Exif\x00\x00" + bytes(body)


def _xmp() -> bytes:
    lat, lon = GPS_DEGREES
    packet = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:GCamera="http://ns.google.com/photos/1.0/camera/"
    xmp:CreatorTool="{SECRETS['xmp_tool']}"
    xmp:CreateDate="2025-06-14T09:41:27+02:00"
    exif:GPSLatitude="{int(lat)},{(lat % 1) * 60:.4f}N"
    exif:GPSLongitude="{int(lon)},{(lon % 1) * 60:.4f}E"
    GCamera:MicroVideo="1"
    GCamera:MicroVideoVersion="1"
    GCamera:MicroVideoOffset="{VIDEO_BYTES}">
   <dc:creator><rdf:Seq><rdf:li>{SECRETS['owner']}</rdf:li></rdf:Seq></dc:creator>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()
    body = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def _video(seed: int, size: int) -> bytes:
    """An MP4-like blob: ``ftyp`` box, a small ``moov`` with a GPS-ish user atom, ``mdat``."""
    rng = random.Random(seed)
    ftyp = struct.pack(">L4s4sL", 24, b"ftyp", b"isom", 0x200) + b"isommp41"
    loc = b"\xa9xyz" + b"+48.8583+002.2944/"
    udta = struct.pack(">L4s", 8 + 8 + len(loc), b"udta") + struct.pack(">L", 8 + len(loc)) + loc
    moov = struct.pack(">L4s", 8 + len(udta), b"moov") + udta
    payload = size - len(ftyp) - len(moov) - 8
    mdat = struct.pack(">L4s", payload + 8, b"mdat") + rng.randbytes(payload)
    return ftyp + moov + mdat


def build_phone_jpeg(width: int = WIDTH, height: int = HEIGHT, seed: int = 12) -> bytes:
    """Generate the photo (no caching): see the module docstring."""
    image = _pixels(width, height, seed)
    thumb_io = io.BytesIO()
    image.resize((160, 120)).save(thumb_io, "JPEG", quality=80)
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[24:36] = struct.pack(">6H", 2024, 1, 1, 0, 0, 0)  # fixed creation date (ICC.1 7.2.1)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, subsampling="4:2:0", exif=_exif(thumb_io.getvalue()),
               icc_profile=bytes(icc))
    jpeg = out.getvalue()
    # Put the XMP packet right after the EXIF APP1, where phones write it.
    exif_at = jpeg.index(b"\xff\xe1")
    exif_end = exif_at + 2 + struct.unpack(">H", jpeg[exif_at + 2 : exif_at + 4])[0]
    jpeg = jpeg[:exif_end] + _xmp() + jpeg[exif_end:]
    return jpeg + _video(seed, VIDEO_BYTES)


@functools.cache
def make_phone_jpeg() -> bytes:
    """The 12-megapixel phone-like JPEG, built once and cached in ``bench/out/``."""
    path = phone_jpeg_path()
    return path.read_bytes()


def phone_jpeg_path() -> Path:
    """Path of the cached photo in ``bench/out/`` (generated on first use)."""
    path = OUT_DIR / f"phone-12mp-v{VERSION}.jpg"
    digest = path.with_suffix(".sha256")
    if path.is_file() and digest.is_file():
        if hashlib.sha256(path.read_bytes()).hexdigest() == digest.read_text().strip():
            return path
    data = build_phone_jpeg()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # several benchmarks may race here
    tmp.write_bytes(data)
    tmp.replace(path)
    tmp_digest = digest.with_suffix(f".{os.getpid()}.tmp")
    tmp_digest.write_text(hashlib.sha256(data).hexdigest() + "\n")
    tmp_digest.replace(digest)
    return path


if __name__ == "__main__":
    p = phone_jpeg_path()
    print(f"{p} ({p.stat().st_size / 1e6:.2f} MB)")
