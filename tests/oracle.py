"""ExifTool as the outside oracle: which tags does a cleaned file still carry?

ExifTool (Debian's libimage-exiftool-perl, installed by scripts/setup.sh) reads
every output; a tag is acceptable only when it is on the structural allow-list
below (sizes, codings, JFIF without thumbnail, the kept Orientation). Anything
else, known or unknown, is a leak.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: Whole groups that describe the file on disk or ExifTool itself, never the photo.
ALLOWED_GROUPS = {"ExifTool", "System"}

#: Tags that describe how the pixels are stored: nothing about place, time, device or person.
ALLOWED_TAGS: dict[str, set[str]] = {
    "File": {
        "FileType", "FileTypeExtension", "MIMEType", "ImageWidth", "ImageHeight",
        "EncodingProcess", "BitsPerSample", "ColorComponents", "YCbCrSubSampling",
        "ExifByteOrder", "BMPVersion", "Planes", "BitDepth", "Compression", "ImageLength",
        "PixelsPerMeterX", "PixelsPerMeterY", "NumColors", "NumImportantColors",
        "RedMask", "GreenMask", "BlueMask", "AlphaMask", "ColorSpace",
        "RenderingIntent",
    },
    "Composite": {"ImageSize", "Megapixels"},
    "JFIF": {"JFIFVersion", "ResolutionUnit", "XResolution", "YResolution"},
    "Adobe": {"DCTEncodeVersion", "APP14Flags0", "APP14Flags1", "ColorTransform"},
    "IFD0": {
        "Orientation",
        # TIFF structure (re-encoded TIFF output)
        "SubfileType", "ImageWidth", "ImageHeight", "BitsPerSample", "Compression",
        "PhotometricInterpretation", "StripOffsets", "SamplesPerPixel", "RowsPerStrip",
        "StripByteCounts", "PlanarConfiguration", "Predictor", "ExtraSamples",
        "SampleFormat", "TileWidth", "TileLength", "TileOffsets", "TileByteCounts",
        "FillOrder", "ColorMap", "XResolution", "YResolution", "ResolutionUnit",
    },
    "PNG": {
        "ImageWidth", "ImageHeight", "BitDepth", "ColorType", "Compression", "Filter",
        "Interlace", "Gamma", "SRGBRendering", "WhitePointX", "WhitePointY", "RedX", "RedY",
        "GreenX", "GreenY", "BlueX", "BlueY", "Palette", "Transparency", "SignificantBits",
        "AnimationFrames", "AnimationPlays",
    },
    "RIFF": {
        "ImageWidth", "ImageHeight", "VP8Version", "HorizontalScale", "VerticalScale",
        "AlphaPreprocessing", "AlphaFiltering", "AlphaCompression", "BackgroundColor",
        "AnimationLoopCount", "WebP_Flags", "ImageFeatures", "Duration",
    },
    # HEIF/AVIF (ISO-BMFF) structure as ExifTool names it: brands, handler, codec
    # configuration (hvcC/av1C), colour coding (nclx), sizes (ispe/clap/pixi), the
    # alpha plane's aux type, where the coded data lies. No item of metadata.
    "QuickTime": {
        "MajorBrand", "MinorVersion", "CompatibleBrands", "HandlerType",
        "HEVCConfigurationVersion", "GeneralProfileSpace", "GeneralTierFlag",
        "GeneralProfileIDC", "GenProfileCompatibilityFlags", "ConstraintIndicatorFlags",
        "GeneralLevelIDC", "MinSpatialSegmentationIDC", "ParallelismType", "ChromaFormat",
        "BitDepthLuma", "BitDepthChroma", "AverageFrameRate", "ConstantFrameRate",
        "NumTemporalLayers", "TemporalIDNested", "ColorProfiles", "ColorPrimaries",
        "TransferCharacteristics", "MatrixCoefficients", "VideoFullRangeFlag",
        "ImageSpatialExtent", "CleanAperture", "ImagePixelDepth", "AuxiliaryImageType",
        "MediaDataSize", "MediaDataOffset", "MediaData", "AV1ConfigurationVersion",
        "SeqProfile", "SeqLevelIdx0", "SeqTier0", "HighBitDepth", "TwelveBit",
        "ChromaSamplePosition", "InitialDelaySamples", "MonochromeGrayscale",
        "ChromaSubsamplingX", "ChromaSubsamplingY",
    },
    "Meta": {"PrimaryItemReference"},
    "GIF": {
        "GIFVersion", "ImageWidth", "ImageHeight", "HasColorMap", "ColorResolutionDepth",
        "BitsPerPixel", "BackgroundColor", "AnimationIterations", "FrameCount", "Duration",
        "TransparentColor", "PixelAspectRatio",
    },
}

#: ExifTool warnings that describe structure, not hidden data.
ALLOWED_WARNINGS: set[str] = set()


def _run_exiftool(paths: list[Path]) -> list[dict]:
    exe = shutil.which("exiftool")
    if exe is None:
        raise RuntimeError(
            "exiftool is not installed: run `bash scripts/test.sh` (it installs"
            " libimage-exiftool-perl)"
        )
    proc = subprocess.run(
        [exe, "-j", "-a", "-u", "-G1", "-s", "-ee", *map(str, paths)],
        capture_output=True,
        check=False,
        timeout=300,
    )
    if not proc.stdout.strip():
        raise RuntimeError(f"exiftool printed nothing: {proc.stderr.decode(errors='replace')}")
    return json.loads(proc.stdout)


def exiftool_tags(blobs: Iterable[bytes], suffix: str = ".img") -> list[dict]:
    """ExifTool's tags (``Group:Tag`` -> value) for each blob, in one ExifTool run."""
    blobs = list(blobs)
    with tempfile.TemporaryDirectory(prefix="onionclean-oracle-") as tmp:
        paths = []
        for i, blob in enumerate(blobs):
            p = Path(tmp) / f"{i:05d}{suffix}"
            p.write_bytes(blob)
            paths.append(p)
        rows = _run_exiftool(paths) if paths else []
    by_name = {Path(r["SourceFile"]).name: r for r in rows}
    return [by_name[p.name] for p in paths]


def leaks(
    tags: dict, *, allow_orientation: bool = True, extra: frozenset[str] = frozenset()
) -> list[str]:
    """Tags outside the allow-list, as ``Group:Tag=value`` strings (empty: clean)."""
    found = []
    for key, value in tags.items():
        if key == "SourceFile":
            continue
        group, _, tag = key.partition(":")
        if group in ALLOWED_GROUPS and tag != "Warning":
            continue
        if key in extra:
            continue
        if group == "ExifTool" and tag == "Warning" and value in ALLOWED_WARNINGS:
            continue
        if group == "IFD0" and tag == "Orientation" and not allow_orientation:
            found.append(f"{key}={value}")
            continue
        if tag in ALLOWED_TAGS.get(group, ()):
            continue
        found.append(f"{key}={value!r}"[:200])
    return found


def leaks_of(blob: bytes, **kw) -> list[str]:
    """Convenience: run ExifTool on one blob and return its leaks."""
    return leaks(exiftool_tags([blob])[0], **kw)
