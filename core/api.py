"""The two entry points: :func:`clean` and :func:`inspect` (bytes in, no files, no network).

Fail closed: every output is parsed again by its format's allow-list
(:meth:`ImageFormat.leftovers`) and opened by Pillow, which must see the
expected size and no metadata; if anything is off, :class:`CleanError` is
raised and no bytes are returned.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

from PIL import Image

from core import formats
from core.errors import CleanError, MalformedImage, TooLarge, UncleanOutput
from core.icc import is_profile
from core.policy import Orientation, Policy
from core.report import Report
from core.tiff_ifd import is_orientation_only

log = logging.getLogger("onionclean.core")

# Pillow logs tag *values* (an Artist's name, a place) at DEBUG while it reads TIFF and
# EXIF data: a debug log level must never turn a user's metadata into log lines.
logging.getLogger("PIL").setLevel(logging.INFO)

#: Keys Pillow may put in ``Image.info`` for a clean file: structure, not metadata.
PILLOW_STRUCTURAL_INFO = frozenset(
    {
        # JPEG
        "jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "adobe",
        "adobe_transform", "progressive", "progression",
        # PNG / APNG
        "gamma", "srgb", "chromaticity", "transparency", "bits", "default_image",
        "loop", "duration", "disposal", "blend", "bbox",
        # GIF
        "version", "background", "extension",
        # WebP
        "timestamp",
        # TIFF / BMP / HEIF
        "compression", "resolution", "planar_configuration", "bit_depth", "primaries",
        "transfer_characteristics", "matrix_coefficients", "full_range",
        # pillow-heif: the coding of the primary image (nclx = coded colour description)
        "primary", "chroma", "nclx_profile", "icc_profile_type",
    }
)


@dataclass(frozen=True)
class Cleaned:
    """A cleaned image: its bytes, what it is, and the report of what was removed."""

    data: bytes
    media_type: str
    extension: str  # with the dot, e.g. ".jpg"
    report: Report
    format: str = ""
    lossless: bool = True


def _check_input(data: bytes, policy: Policy) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("core.clean and core.inspect take bytes")
    data = bytes(data)
    if not data:
        raise MalformedImage("the file is empty (zero bytes)")
    if len(data) > policy.max_bytes:
        raise TooLarge(
            f"this file is {len(data) / 1e6:.1f} MB; the limit is {policy.max_bytes / 1e6:.0f} MB"
        )
    return data


def _guarded(label: str, func, *args):  # type: ignore[no-untyped-def]
    """Run a parser step; turn any non-CleanError failure into MalformedImage.

    Parsers see bytes from strangers: whatever goes wrong inside them (struct,
    zlib, Pillow's SyntaxError...) must reach the caller as one error family.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return func(*args)
    except CleanError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise TooLarge(f"the {label} has too many pixels to open safely") from e
    except MemoryError as e:
        raise TooLarge(f"the {label} needs too much memory to process") from e
    except Exception as e:  # noqa: BLE001 - fail closed, one error family
        log.debug("parser failure in %s: %s", label, type(e).__name__)
        raise MalformedImage(f"the {label} is damaged and cannot be read") from e


def clean(data: bytes, policy: Policy = Policy()) -> Cleaned:  # noqa: B008 - frozen
    """Remove all metadata from an image; return the cleaned image and a report.

    Raises :class:`core.errors.CleanError` (never returns the original bytes).
    """
    data = _check_input(data, policy)
    handler = formats.sniff(data)
    report = Report(format=handler.name, media_type=handler.media_type, cleaned=True)
    out = _guarded(handler.label, handler.clean, data, policy, report)
    out_handler = formats.by_name(out.format)
    _guarded(f"cleaned {out_handler.label}", verify, out, out_handler, policy, report)
    return Cleaned(
        data=out.data,
        media_type=out_handler.media_type,
        extension=out_handler.extension,
        report=report,
        format=out.format,
        lossless=out.lossless,
    )


def inspect(data: bytes) -> Report:
    """What the image gives away: where, when, which device, ... (nothing is changed)."""
    policy = Policy()
    data = _check_input(data, policy)
    handler = formats.sniff(data)
    report = Report(format=handler.name, media_type=handler.media_type)
    _guarded(handler.label, handler.inspect, data, report)
    return report


def verify(out: formats.CleanOutput, handler: formats.ImageFormat, policy: Policy,
           report: Report) -> None:
    """The output check. Raise :class:`UncleanOutput` unless ``out`` is provably clean."""
    sniffed = formats.sniff(out.data)
    if sniffed.name != out.format:
        raise UncleanOutput(f"the cleaned file is not the {out.format} it should be")
    left = handler.leftovers(out.data, policy)
    if left:
        log.warning("output check refused a %s output (%d leftovers)", out.format, len(left))
        raise UncleanOutput(
            "the cleaned file still carries metadata (" + ", ".join(left[:5]) + ")"
        )
    if out.orientation != 1 and policy.orientation != Orientation.KEEP:
        raise UncleanOutput("the cleaned file carries an orientation the policy removes")
    with Image.open(io.BytesIO(out.data)) as im:
        if im.size != (out.width, out.height):
            raise UncleanOutput(
                f"the cleaned file is {im.size[0]}x{im.size[1]}, expected"
                f" {out.width}x{out.height}"
            )
        if report.width and report.height and not policy.orientation == Orientation.BAKE:
            if (out.width, out.height) != (report.width, report.height):
                raise UncleanOutput("the cleaned image changed size")
        for key, value in im.info.items():
            if key in PILLOW_STRUCTURAL_INFO:
                continue
            if value is None or (isinstance(value, bytes | str | list | dict | tuple)
                                 and not value):
                continue  # pillow-heif lists every kind of metadata, empty when absent
            if key == "exif" and is_orientation_only(_tiff_of(value)):
                continue
            if key == "icc_profile" and (not value or (
                    policy.keep_icc and isinstance(value, bytes) and is_profile(value))):
                continue
            raise UncleanOutput(f"the cleaned file still carries {key!r}")


def _tiff_of(exif: bytes) -> bytes:
    return exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
