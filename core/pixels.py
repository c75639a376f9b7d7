"""Rebuild an image from its pixels alone (the re-encoding path).

Used by formats that cannot be cleaned losslessly (TIFF, HEIC, AVIF, BMP, ...)
and by every format when the policy bakes the orientation into the pixels.

CONTRACT (fixed):

    rebuild(data, policy, report, *, orientation=1, prefer=None) -> CleanOutput

decode ``data`` with Pillow (pixel limit checked before decoding), apply
``orientation`` (1..8) to the pixels, convert to sRGB when the input has an
ICC profile (unless ``policy.keep_icc``), and encode a brand-new image from the
pixels alone in format ``prefer`` (a registry name) or the input's own format,
falling back to PNG (or JPEG for photos) when no encoder exists, saying so in
``report.notes``.

Why "brand-new": a plain Pillow ``save`` is not metadata-free. It re-emits what
``Image.info`` holds (JPEG/GIF comments, PNG/TIFF ICC profiles, WebP EXIF/XMP)
and pillow-heif writes the EXIF (GPS included) back into a HEIC. Every frame is
therefore copied into a fresh :class:`PIL.Image.Image` whose ``info`` is empty,
and every encoder is called with explicit empty metadata arguments. The output
check in :mod:`core.api` proves the result.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pillow_heif
from PIL import Image, ImageCms, ImageFile, JpegImagePlugin

from core import formats
from core import icc as icc_mod
from core.errors import MalformedImage, TooLarge, UnsupportedFormat
from core.formats import CleanOutput
from core.policy import Policy
from core.report import Report

log = logging.getLogger("onionclean.core.pixels")

# HEIF/HEIC decoding (and HEVC encoding) come from pillow-heif; AVIF from
# Pillow's own AvifImagePlugin (Pillow >= 11.3 ships it with libavif: dav1d
# decoder, aom encoder).
pillow_heif.register_heif_opener()
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is damaged, never "mostly there"

#: Which Pillow plugins may open a file sniffed as a given registry format. Opening is
#: always restricted to these (never Pillow's whole plugin list: no EPS/Ghostscript,
#: no guessing from a second magic number).
PIL_OPENERS: dict[str, tuple[str, ...]] = {
    "jpeg": ("JPEG", "MPO"),
    "png": ("PNG",),
    "webp": ("WEBP",),
    "gif": ("GIF",),
    "tiff": ("TIFF",),
    "bmp": ("BMP", "DIB"),
    "heif": ("HEIF",),
    "avif": ("AVIF",),
    "jpeg2000": ("JPEG2000",),
    "ico": ("ICO",),
    "ppm": ("PPM",),
    "qoi": ("QOI",),
}

#: Human names for notes.
LABELS: dict[str, str] = {
    "jpeg": "JPEG", "png": "PNG", "webp": "WebP", "gif": "GIF", "tiff": "TIFF", "bmp": "BMP",
    "heif": "HEIC", "avif": "AVIF", "jpeg2000": "JPEG 2000", "ico": "ICO", "ppm": "PPM/PGM",
    "qoi": "QOI",
}

#: Output formats that hold more than one frame/page.
MULTI_FRAME = frozenset({"png", "webp", "gif", "tiff", "heif", "avif"})

#: Output formats that can carry an ICC profile (used only with ``policy.keep_icc``).
CARRIES_ICC = frozenset({"jpeg", "png", "webp", "tiff", "heif", "avif"})

#: EXIF Orientation -> the transpose that shows the picture upright (as
#: PIL.ImageOps.exif_transpose does; 2, 4, 5 and 7 are the mirrored ones).
ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


@dataclass
class Frame:
    """One decoded frame, pixels only, plus the timing an animation needs."""

    image: Image.Image
    duration: int | None = None


@dataclass
class Decoded:
    """What :func:`decode` read: fresh frames and the few structural facts the encoder needs."""

    source: str  # registry name of the input
    frames: list[Frame]
    icc: bytes | None  # the profile still attached to the pixels (keep_icc), else None
    loop: int | None = None
    lossless_source: bool = False
    jpeg_subsampling: int = -1
    #: orientation Pillow itself already applied while decoding (Pillow >= 12 does so
    #: for TIFF and then reports the displayed size), relative to the stored pixels
    applied: int = 1
    converted_icc: bool = False
    notes: list[str] = field(default_factory=list)


def rebuild(
    data: bytes,
    policy: Policy,
    report: Report,
    *,
    orientation: int = 1,
    prefer: str | None = None,
) -> CleanOutput:
    """Decode ``data``, apply ``orientation``, re-encode from pixels alone; see module doc.

    ``orientation`` is relative to the stored pixels; when Pillow already applied
    it while decoding (TIFF, Pillow >= 12), only what remains is applied.
    """
    if not 1 <= orientation <= 8:
        raise ValueError("orientation must be 1..8")
    source = _sniff_name(data)
    target = prefer or source
    decoded = decode(data, policy, source=source)
    report.notes.extend(n for n in decoded.notes if n not in report.notes)

    target = _choose_output(target, decoded, report)
    if decoded.applied != 1:
        orientation = _remaining(decoded.applied, orientation)
    if orientation != 1:
        for frame in decoded.frames:
            frame.image = frame.image.transpose(ORIENTATION_TRANSPOSE[orientation])
    if decoded.icc is not None and target not in CARRIES_ICC:
        decoded.converted_icc = True
        _note(report, f"the colour profile was converted to sRGB: {LABELS[target]} cannot"
              " carry one")
        for frame in decoded.frames:
            frame.image = _to_srgb(frame.image, decoded.icc, report)
        decoded.icc = None
    if decoded.converted_icc:
        _note(report, "colours were converted from the embedded colour profile to sRGB")
    if len(decoded.frames) > 1 and target not in MULTI_FRAME:
        _note(report, f"only the first of {len(decoded.frames)} images was kept:"
              f" {LABELS[target]} holds one image")
        decoded.frames = decoded.frames[:1]

    out = encode(decoded, target, policy)
    first = decoded.frames[0].image
    return CleanOutput(
        data=out,
        format=target,
        width=first.width,
        height=first.height,
        lossless=False,
        orientation=1,
    )


# --------------------------------------------------------------------------- decoding


def _sniff_name(data: bytes) -> str:
    try:
        return formats.sniff(data).name
    except UnsupportedFormat:
        raise
    except Exception as e:  # noqa: BLE001 - a sniffer choking is bad input
        raise MalformedImage("the file's header cannot be read") from e


def open_image(data: bytes, source: str) -> Image.Image:
    """Open (header only, nothing decoded) with the Pillow plugins allowed for ``source``."""
    openers = PIL_OPENERS.get(source)
    if openers is None:
        raise UnsupportedFormat(f"onionclean cannot decode {source} images")
    try:
        with warnings.catch_warnings():
            # Pillow's own guard warns above its MAX_IMAGE_PIXELS; the caller's
            # policy.max_pixels is checked right after opening, before any decoding.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=list(openers))
    except Image.DecompressionBombError as e:
        raise TooLarge(f"the {LABELS.get(source, source)} has too many pixels to open") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise MalformedImage(
            f"the {LABELS.get(source, source)} image is damaged and cannot be read"
        ) from e


def frame_sizes(im: Image.Image, source: str, policy: Policy) -> list[tuple[int, int]]:
    """The stored size of every frame, read from headers only (nothing decoded)."""
    n = int(getattr(im, "n_frames", 1) or 1)
    if n > policy.max_segments:
        raise TooLarge(f"the image has {n} frames; the limit is {policy.max_segments}")
    if n == 1 or source not in ("tiff", "heif", "jpeg"):
        return [im.size] * n  # animations share one canvas
    sizes = []
    for i in range(n):
        im.seek(i)  # TIFF/HEIF/MPO: reads the directory only
        sizes.append(im.size)
    im.seek(0)
    return sizes


def check_all_pixels(sizes: list[tuple[int, int]], policy: Policy, label: str) -> None:
    """Refuse bombs before decoding: each frame and all frames together under the limit."""
    for w, h in sizes:
        formats.check_pixels(w, h, policy, label)
    total = sum(w * h for w, h in sizes)
    if total > policy.max_pixels:
        raise TooLarge(
            f"the {label} holds {len(sizes)} images of {total / 1e6:.1f} megapixels in all;"
            f" the limit is {policy.max_pixels / 1e6:.0f} megapixels"
        )


def decode(data: bytes, policy: Policy, *, source: str | None = None) -> Decoded:
    """Decode every frame into fresh pixel-only images (sRGB unless ``policy.keep_icc``)."""
    source = source or _sniff_name(data)
    label = LABELS.get(source, source)
    im = open_image(data, source)
    with im:
        check_all_pixels(frame_sizes(im, source, policy), policy, label)
        icc = im.info.get("icc_profile") or None
        if icc is not None and policy.keep_icc and not icc_mod.is_profile(icc):
            icc = None  # kept only when it is one whole profile: anything else could carry data
        loop = im.info.get("loop")
        decoded = Decoded(
            source=source,
            frames=[],
            icc=None,
            loop=int(loop) if isinstance(loop, int) else None,
            lossless_source=_is_lossless_source(data, source, im),
            jpeg_subsampling=(
                JpegImagePlugin.get_sampling(im) if source == "jpeg" else -1
            ),
        )
        report = Report()
        stored_orientation = _tiff_orientation(im) if source == "tiff" else None
        for frame_im in _iter_frames(im, source):
            if stored_orientation and frame_im.tell() == 0 and _tiff_orientation(im) is None:
                decoded.applied = stored_orientation
            duration = frame_im.info.get("duration")
            pixels = _pixels_only(frame_im)
            if icc and not policy.keep_icc:
                pixels = _to_srgb(pixels, icc, report)
                decoded.converted_icc = not report.notes
            decoded.frames.append(
                Frame(pixels, int(duration) if isinstance(duration, int | float) else None)
            )
        if icc and policy.keep_icc:
            decoded.icc = bytes(icc)
        decoded.notes.extend(report.notes)
    if not decoded.frames:
        raise MalformedImage(f"the {label} holds no image")
    return decoded


def _tiff_orientation(im: Image.Image) -> int | None:
    tags = getattr(im, "tag_v2", None)
    value = tags.get(274) if tags is not None else None
    return value if isinstance(value, int) and 2 <= value <= 8 else None


def _iter_frames(im: Image.Image, source: str) -> Iterator[Image.Image]:
    """Each frame, decoded. Only called after :func:`check_all_pixels` passed, so
    Pillow's own (lower, global) bomb warning is not what decides here."""
    n = int(getattr(im, "n_frames", 1) or 1)
    for i in range(n):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if i:
                im.seek(i)
            im.load()
        yield im


def _pixels_only(im: Image.Image) -> Image.Image:
    """A brand-new image holding the pixels (and palette/transparency) of ``im``, nothing else.

    Palette images keep their palette; a transparent palette index or colour key
    becomes an alpha channel (so no ``info`` needs to be carried at all).
    """
    mode = im.mode
    transparency = im.info.get("transparency")
    if mode == "P":
        if transparency is not None:
            im = im.convert("RGBA")
            mode = "RGBA"
    elif mode in ("L", "RGB", "1", "I;16", "I") and transparency is not None:
        im = im.convert("LA" if mode in ("L", "1") else "RGBA")
        mode = im.mode
    elif mode == "PA":
        im = im.convert("RGBA")
        mode = "RGBA"
    elif mode in ("RGBa", "La"):
        im = im.convert("RGBA" if mode == "RGBa" else "LA")
        mode = im.mode
    fresh = Image.new(mode, im.size)
    if mode == "P":
        palette = im.getpalette()
        if palette is not None:
            fresh.putpalette(palette)
    fresh.paste(im, (0, 0))
    fresh.info = {}
    return fresh


def _is_lossless_source(data: bytes, source: str, im: Image.Image) -> bool:
    if source == "webp":
        return _webp_is_lossless(data)
    if source in ("png", "gif", "tiff", "bmp", "ppm", "qoi", "ico"):
        return not (source == "tiff" and str(im.info.get("compression", "")).startswith("jpeg"))
    return False


def _webp_is_lossless(data: bytes) -> bool:
    """True when every image chunk of a RIFF/WebP file is VP8L (WebP container spec)."""
    kinds: set[bytes] = set()

    def walk(start: int, end: int, depth: int) -> None:
        pos = start
        while pos + 8 <= end and len(kinds) < 4:
            fourcc = data[pos : pos + 4]
            size = int.from_bytes(data[pos + 4 : pos + 8], "little")
            if fourcc in (b"VP8 ", b"VP8L"):
                kinds.add(fourcc)
            elif fourcc == b"ANMF" and depth == 0:
                walk(pos + 8 + 16, min(end, pos + 8 + size), 1)
            pos += 8 + size + (size & 1)

    walk(12, len(data), 0)
    return kinds == {b"VP8L"}


# --------------------------------------------------------------------------- colour


def _to_srgb(im: Image.Image, profile: bytes, report: Report) -> Image.Image:
    """Convert pixels described by ICC ``profile`` to sRGB (alpha kept as it is).

    A profile that cannot be used (damaged, or for other pixels than these) is
    dropped with a note: the pixels stay as they are.
    """
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        space = src.profile.xcolor_space.strip()
    except (OSError, ImageCms.PyCMSError, ValueError, TypeError) as e:
        log.debug("unusable ICC profile: %s", type(e).__name__)
        _note(report, "the colour profile was damaged; it was removed without colour conversion")
        return im
    alpha = None
    base = im
    if im.mode in ("RGBA", "LA"):
        alpha = im.getchannel("A")
        base = im.convert("RGB" if im.mode == "RGBA" else "L")
    want = {"RGB": ("RGB",), "GRAY": ("L",), "CMYK": ("CMYK",)}.get(space)
    if want is None:
        _note(report, f"the colour profile (colour space {space}) was removed without colour"
              " conversion")
        return im
    if base.mode not in want:
        if space == "RGB" and base.mode in ("P", "1", "L", "I;16", "I", "YCbCr"):
            base = base.convert("RGB")
        elif space == "GRAY" and base.mode in ("1", "I;16", "I"):
            base = base.convert("L")
        else:
            _note(report, "the colour profile did not match the pixels; it was removed without"
                  " colour conversion")
            return im
    try:
        converted = ImageCms.profileToProfile(
            base,
            src,
            _srgb(),
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
            outputMode="RGB",
        )
    except (OSError, ImageCms.PyCMSError, ValueError) as e:
        log.debug("ICC conversion failed: %s", type(e).__name__)
        _note(report, "the colour profile could not be applied; it was removed without colour"
              " conversion")
        return im
    assert converted is not None
    if space == "GRAY":
        converted = converted.convert("L")
    if alpha is not None:
        converted = converted.convert("RGBA" if converted.mode == "RGB" else "LA")
        converted.putalpha(alpha)
    converted.info = {}
    return converted


@cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


# --------------------------------------------------------------------------- encoding


@cache
def can_encode(target: str) -> bool:
    """Whether this installation can write ``target`` (tried once on a tiny image)."""
    if target not in ENCODERS:
        return False
    probe = Decoded(source=target, frames=[Frame(Image.new("RGB", (16, 16), (90, 120, 60)))],
                    icc=None)
    try:
        return bool(encode(probe, target, Policy()))
    except Exception as e:  # noqa: BLE001 - any failure means "no encoder here"
        log.info("no %s encoder available: %s", target, type(e).__name__)
        return False


def _has_alpha(decoded: Decoded) -> bool:
    return any(f.image.mode in ALPHA_MODES for f in decoded.frames)


def _choose_output(target: str, decoded: Decoded, report: Report) -> str:
    """``target`` when it can be written faithfully here, else PNG or JPEG (with a note)."""
    label = LABELS.get(target, target)
    if target == "jpeg" and _has_alpha(decoded):
        _note(report, "re-encoded as PNG: JPEG cannot keep the transparency")
        return "png"
    if target == "bmp" and _has_alpha(decoded):
        _note(report, "re-encoded as PNG: onionclean's BMP encoder cannot keep the"
              " transparency")
        return "png"
    if target == "avif" and len(decoded.frames) > 1 and can_encode("webp"):
        # libavif's sequence writer stamps the current time into mvhd/tkhd/mdhd
        _note(report, "re-encoded as an animated WebP: the AVIF animation writer here"
              " would stamp the current date and time into the file")
        return "webp"
    if can_encode(target):
        return target
    photo = (
        not decoded.lossless_source
        and not _has_alpha(decoded)
        and len(decoded.frames) == 1
        and decoded.frames[0].image.mode in ("RGB", "L", "CMYK", "YCbCr")
        and can_encode("jpeg")
    )
    fallback = "jpeg" if photo else "png"
    _note(report, f"re-encoded as {LABELS[fallback]}: there is no encoder for {label} here")
    return fallback


def _fit_mode(im: Image.Image, modes: tuple[str, ...], *, alpha: str, plain: str) -> Image.Image:
    if im.mode in modes:
        return im
    out = im.convert(alpha if im.mode in ALPHA_MODES else plain)
    out.info = {}
    return out


def _encode_jpeg(frames: list[Image.Image], d: Decoded, policy: Policy, **kw: Any) -> dict:
    im = _fit_mode(frames[0], ("L", "RGB", "CMYK"), alpha="RGB", plain="RGB")
    frames[0] = im
    opts: dict[str, Any] = {"quality": policy.jpeg_quality, "optimize": True}
    if d.jpeg_subsampling >= 0 and im.mode == "RGB":
        opts["subsampling"] = d.jpeg_subsampling
    return opts


def _encode_png(frames: list[Image.Image], d: Decoded, policy: Policy, **kw: Any) -> dict:
    for i, im in enumerate(frames):
        frames[i] = _fit_mode(im, ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B", "I"),
                              alpha="RGBA", plain="RGB")
    return {"compress_level": 6}


def _encode_webp(frames: list[Image.Image], d: Decoded, policy: Policy, **kw: Any) -> dict:
    for i, im in enumerate(frames):
        frames[i] = _fit_mode(im, ("RGB", "RGBA"), alpha="RGBA", plain="RGB")
    if d.lossless_source:
        return {"lossless": True, "quality": 100, "method": 4, "exact": True}
    return {"lossless": False, "quality": policy.jpeg_quality, "method": 4}


def _encode_gif(frames: list[Image.Image], d: Decoded, policy: Policy, **kw: Any) -> dict:
    return {"optimize": False, "comment": b""}


def _encode_tiff(frames: list[Image.Image], d: Decoded, policy: Policy, **kw: Any) -> dict:
    for i, im in enumerate(frames):
        frames[i] = _fit_mode(
            im, ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I;16B", "I", "F"),
            alpha="RGBA", plain="RGB",
        )
    return {"compression": "tiff_adobe_deflate", "tiffinfo": {}}


def _encode_bmp(frames: list[Image.Image], d: Decoded, policy: Policy, **kw: Any) -> dict:
    frames[0] = _fit_mode(frames[0], ("1", "L", "P", "RGB"), alpha="RGB", plain="RGB")
    return {}


def _encode_heif(frames: list[Image.Image], d: Decoded, policy: Policy, **kw: Any) -> dict:
    for i, im in enumerate(frames):
        frames[i] = _fit_mode(im, ("RGB", "RGBA"), alpha="RGBA", plain="RGB")
    # exif/xmp None: pillow-heif would otherwise take them from the image (it reads
    # getexif() even when info is empty); no thumbnails are ever written.
    # x265 preset "medium": about 3x faster than libheif's default here, same fidelity,
    # a few percent larger.
    return {"quality": policy.jpeg_quality, "exif": None, "xmp": None, "save_nclx_profile": True,
            "enc_params": {"preset": "medium"}}


def _encode_avif(frames: list[Image.Image], d: Decoded, policy: Policy, **kw: Any) -> dict:
    for i, im in enumerate(frames):
        frames[i] = _fit_mode(im, ("RGB", "RGBA"), alpha="RGBA", plain="RGB")
    return {"quality": policy.jpeg_quality, "exif": b"", "xmp": b"", "speed": 6}


ENCODERS: dict[str, tuple[str, Callable[..., dict]]] = {
    "jpeg": ("JPEG", _encode_jpeg),
    "png": ("PNG", _encode_png),
    "webp": ("WEBP", _encode_webp),
    "gif": ("GIF", _encode_gif),
    "tiff": ("TIFF", _encode_tiff),
    "bmp": ("BMP", _encode_bmp),
    "heif": ("HEIF", _encode_heif),
    "avif": ("AVIF", _encode_avif),
}


def encode(decoded: Decoded, target: str, policy: Policy) -> bytes:
    """Write the frames of ``decoded`` as ``target`` with no metadata at all."""
    pil_format, prepare = ENCODERS[target]
    frames = [f.image for f in decoded.frames]
    opts = prepare(frames, decoded, policy)
    if target in CARRIES_ICC:
        opts["icc_profile"] = decoded.icc if decoded.icc is not None else None
        if opts["icc_profile"] is None and target in ("webp", "avif"):
            opts["icc_profile"] = b""
        if opts["icc_profile"] is None and target in ("png", "tiff", "jpeg"):
            del opts["icc_profile"]  # the fresh image has no profile to fall back on
    if target in ("jpeg", "png", "webp", "tiff"):
        opts.setdefault("exif", b"")
    if len(frames) > 1:
        opts["save_all"] = True
        opts["append_images"] = frames[1:]
        durations = [f.duration for f in decoded.frames]
        if target in ("png", "webp", "gif", "avif") and any(d is not None for d in durations):
            opts["duration"] = [d or 0 for d in durations]
        if target in ("png", "webp", "gif") and decoded.loop is not None:
            opts["loop"] = decoded.loop
    buf = io.BytesIO()
    for im in frames:
        im.info = {}
        im.encoderinfo = {}
    frames[0].save(buf, format=pil_format, **opts)
    return buf.getvalue()


def _combine(first: int, then: int) -> int:
    """Orientation equivalent to applying ``first`` and then ``then`` (via a 2x3 probe)."""
    probe = Image.frombytes("L", (3, 2), bytes(range(6)))
    for o in (first, then):
        if o != 1:
            probe = probe.transpose(ORIENTATION_TRANSPOSE[o])
    for o in range(1, 9):
        test = Image.frombytes("L", (3, 2), bytes(range(6)))
        if o != 1:
            test = test.transpose(ORIENTATION_TRANSPOSE[o])
        if test.size == probe.size and test.tobytes() == probe.tobytes():
            return o
    raise AssertionError("orientations form a group")


def _remaining(applied: int, wanted: int) -> int:
    """The orientation that, after ``applied``, gives the same as ``wanted`` alone."""
    for r in range(1, 9):
        if _combine(applied, r) == wanted:
            return r
    raise AssertionError("orientations form a group")


def _note(report: Report, text: str) -> None:
    if text not in report.notes:
        report.notes.append(text)
