"""The re-encoding fallback: every other still-image format Pillow can read.

One class per format, found by magic number only (never by name or declared
type). These formats cannot be cleaned at container level here, so ``clean``
decodes them and rebuilds the picture from its pixels alone
(:func:`core.pixels.rebuild`): no metadata can survive, and ``leftovers``
proves it for the formats onionclean writes (TIFF, BMP, HEIC, AVIF) by parsing
the output against a structural allow-list. Formats onionclean only reads
(JPEG 2000, ICO, PPM/PGM, QOI) are re-encoded as PNG or JPEG, with a note.

Imported last by :mod:`core.formats_all`, so the lossless handlers (JPEG, PNG,
WebP, GIF) sniff first.
"""

from __future__ import annotations

import re
import struct
from typing import ClassVar

from core import exif, icc, iptc, isobmff, pixels, xmp
from core.errors import MalformedImage
from core.formats import CleanOutput, ImageFormat, register
from core.policy import Orientation, Policy
from core.report import Category, Report
from core.tiff_ifd import TAG_EXIF_IFD, TAG_GPS_IFD, TiffReader, read_orientation


class PillowFormat(ImageFormat):
    """Shared behaviour: inspect through Pillow, clean by rebuilding from pixels."""

    #: registry name that :mod:`core.pixels` opens this format with
    name: ClassVar[str]

    def open_size(self, data: bytes) -> tuple[int, int]:
        """The stored size, read from the header (nothing is decoded)."""
        with pixels.open_image(data, self.name) as im:
            return im.size

    def inspect(self, data: bytes, report: Report, policy: Policy | None = None) -> None:
        self.precheck(data)
        report.width, report.height = self.open_size(data)
        self.describe(data, report, policy or Policy())

    def precheck(self, data: bytes) -> None:
        """Refuse what the container says cannot be handled, before Pillow sees it."""

    def describe(self, data: bytes, report: Report, policy: Policy) -> None:
        """Findings, and the pieces cleaning with ``policy`` removes (format-specific)."""

    def orientation(self, data: bytes) -> int:
        """The orientation the format asks a viewer to apply (1: none)."""
        return 1

    def clean(self, data: bytes, policy: Policy, report: Report) -> CleanOutput:
        self.inspect(data, report, policy)
        o = self.orientation(data)
        if policy.orientation == Orientation.DROP:
            return pixels.rebuild(data, policy, report)
        # re-encoding anyway: bake the rotation in (KEEP and BAKE look the same)
        return pixels.rebuild(data, policy, report, orientation=o)

    def leftovers(self, data: bytes, policy: Policy) -> list[str]:
        # onionclean never writes this format (re-encoded as PNG/JPEG): such data is
        # not an output of clean, so it cannot be vouched for.
        return [f"{self.label} data (onionclean never writes {self.label})"]


# --------------------------------------------------------------------------- TIFF

#: TIFF 6.0 tags that describe how pixels are stored (baseline + extensions).
TIFF_STRUCTURAL: frozenset[int] = frozenset(
    {
        254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 280, 281, 282, 283,
        284, 296, 317, 320, 322, 323, 324, 325, 338, 339, 340, 341, 529, 530, 531, 532,
    }
)
TAG_XMP, TAG_IPTC, TAG_PHOTOSHOP, TAG_ICC = 700, 33723, 34377, 34675

TIFF_TAG_NAMES: dict[int, str] = {
    269: "DocumentName", 270: "ImageDescription", 271: "Make", 272: "Model",
    274: "Orientation", 285: "PageName", 305: "Software", 306: "DateTime", 315: "Artist",
    316: "HostComputer", 330: "SubIFDs", 700: "XMP", 33432: "Copyright", 33723: "IPTC",
    34377: "Photoshop", 34665: "Exif IFD", 34675: "ICC profile", 34853: "GPS IFD",
    37724: "Photoshop layers (ImageSourceData)", 50341: "PrintIM",
}


@register
class TIFF(PillowFormat):
    """TIFF 6.0 (Adobe, 1992): a header ``II*\\0``/``MM\\0*`` and chains of IFDs.

    Everything but the pixel-layout tags goes: Make/Model/DateTime/Artist/Software,
    the Exif and GPS sub-IFDs, XMP (700), IPTC (33723), Photoshop (34377), the ICC
    profile (34675, unless kept) and SubIFDs (330, which can hide whole images).
    """

    name = "tiff"
    media_type = "image/tiff"
    extension = ".tiff"
    label = "TIFF"

    @staticmethod
    def sniff(head: bytes) -> bool:
        return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

    def open_size(self, data: bytes) -> tuple[int, int]:
        """The DISPLAYED size: the output is always upright (see :meth:`clean`)."""
        with pixels.open_image(data, self.name) as im:
            tags = getattr(im, "tag_v2", {})
            w, h = tags.get(256), tags.get(257)
            if not (isinstance(w, int) and isinstance(h, int)):
                return im.size
        return (h, w) if self.orientation(data) in (5, 6, 7, 8) else (w, h)

    def clean(self, data: bytes, policy: Policy, report: Report) -> CleanOutput:
        """Always upright, whatever the orientation policy: Pillow (>= 12) applies the
        TIFF Orientation while decoding and every viewer shows it, so the re-encoded
        pixels are rotated as displayed and carry no tag (KEEP and DROP look alike)."""
        self.inspect(data, report, policy)
        return pixels.rebuild(data, policy, report, orientation=self.orientation(data))

    def orientation(self, data: bytes) -> int:
        if data[2:4] in (b"+\x00", b"\x00+"):
            return 1  # BigTIFF: the 32-bit reader cannot read it; Pillow shows it unrotated
        return read_orientation(data) or 1

    def describe(self, data: bytes, report: Report, policy: Policy) -> None:
        if data[2:4] in (b"+\x00", b"\x00+"):
            report.notes.append("BigTIFF: only the pixels are kept; its tags were not itemised")
            return
        reader = TiffReader(data)
        revealing = False
        for index, entries in reader.ifd_chain():
            for tag, entry in sorted(entries.items()):
                if tag in TIFF_STRUCTURAL:
                    continue
                if tag == 274:
                    continue  # Orientation: what happens to it is the orientation policy
                what = TIFF_TAG_NAMES.get(tag, f"tag {tag}")
                page = f" (page {index + 1})" if index else ""
                if tag == TAG_ICC and policy.keep_icc:
                    report.kept.append("the colour profile")
                else:
                    report.removed_piece(f"TIFF {what}{page}", 12 + len(entry.raw))
                revealing = True
                if tag == TAG_XMP:
                    xmp.describe(entry.raw, report)
                elif tag == TAG_IPTC:
                    iptc.describe_iim(entry.raw, report)
                elif tag == TAG_PHOTOSHOP:
                    iptc.describe_photoshop(entry.raw, report)
                elif tag == TAG_ICC:
                    icc.describe(entry.raw, report)
            if index == 0 and (revealing or TAG_EXIF_IFD in entries or TAG_GPS_IFD in entries):
                # A TIFF file is itself a TIFF structure: the EXIF describer reads its
                # IFD0 (Make, Model, DateTime, Artist...) and the Exif/GPS sub-IFDs.
                exif.describe(data, report, source="TIFF tags")

    def leftovers(self, data: bytes, policy: Policy) -> list[str]:
        reader = TiffReader(data)
        left: list[str] = []
        ifds = 0
        hidden = _unreferenced_tiff_bytes(reader)
        if hidden:
            left.append(f"{hidden} TIFF bytes that no directory points to")
        for index, entries in reader.ifd_chain():
            ifds += 1
            for tag in entries:
                if tag in TIFF_STRUCTURAL:
                    continue
                if tag == TAG_ICC and policy.keep_icc:
                    continue
                left.append(f"TIFF {TIFF_TAG_NAMES.get(tag, f'tag {tag}')} (IFD {index})")
            if 273 not in entries and 324 not in entries:
                raise MalformedImage("the cleaned TIFF has a page without image data")
        if ifds == 0:
            raise MalformedImage("the cleaned TIFF has no image directory")
        return left


def _unreferenced_tiff_bytes(reader: TiffReader) -> int:
    """Bytes of a TIFF that neither the header, an IFD, a tag value nor image data
    (strips/tiles) covers. Short runs of zeros are alignment padding (TIFF 6.0: values
    begin on word boundaries; Pillow pads appended pages to 16 bytes) and carry
    nothing; any other uncovered byte could carry anything."""
    data = reader.data
    ranges = [(0, 8)]
    seen: set[int] = set()
    offset = reader.first_ifd
    while offset and offset not in seen and len(seen) < 64:
        seen.add(offset)
        entries, nxt = reader.read_ifd(offset)
        (count,) = struct.unpack(reader.bo + "H", data[offset : offset + 2])
        ranges.append((offset, offset + 2 + 12 * count + 4))
        for entry in entries.values():
            if len(entry.raw) > 4:
                ranges.append((entry.value_offset, entry.value_offset + len(entry.raw)))
        for offsets, counts in ((273, 279), (324, 325)):
            if offsets in entries and counts in entries:
                for start, length in zip(
                    entries[offsets].values(), entries[counts].values(), strict=False
                ):
                    ranges.append((int(start), int(start) + int(length)))
        offset = nxt
    hidden, end = 0, 0
    for start, stop in [*sorted(ranges), (len(data), len(data))]:
        if start > end and not _is_padding(data[end:start]):
            hidden += start - end
        end = max(end, min(stop, len(data)))
    return hidden


_APPENDED_HEADER = re.compile(rb"\x00*(?:II\*\x00|MM\x00\*)....\x00*\Z", re.DOTALL)


def _is_padding(gap: bytes) -> bool:
    """Zeros (alignment), or zeros around the 8-byte header Pillow's multi-page writer
    leaves in front of each appended page (``II*\\0`` + an offset)."""
    if len(gap) < 16 and gap.count(0) == len(gap):
        return True
    return len(gap) < 40 and _APPENDED_HEADER.match(gap) is not None


# --------------------------------------------------------------------------- BMP

BMP_HEADER_SIZES = {12: "OS/2 1.x", 40: "Windows 3", 52: "V2", 56: "V3", 64: "OS/2 2.x",
                     108: "Windows V4", 124: "Windows V5"}
LCS_EMBEDDED, LCS_LINKED = b"MBED", b"LINK"


@register
class BMP(PillowFormat):
    """Windows bitmap: ``BM``, a BITMAPFILEHEADER, then a BITMAPINFOHEADER (or V4/V5).

    A V5 header can embed an ICC profile (``MBED``) or name a profile *file* on
    the author's disk (``LINK``: a path, often with a user name). Bytes between
    the headers and the pixels, or after the pixels, can hide anything.
    """

    name = "bmp"
    media_type = "image/bmp"
    extension = ".bmp"
    label = "BMP"

    @staticmethod
    def sniff(head: bytes) -> bool:
        if head[:2] != b"BM" or len(head) < 18:
            return False
        return struct.unpack("<L", head[14:18])[0] in BMP_HEADER_SIZES

    @staticmethod
    def _headers(data: bytes) -> tuple[int, int, bytes]:
        if len(data) < 18:
            raise MalformedImage("the BMP ends inside its header")
        off_bits = struct.unpack("<L", data[10:14])[0]
        hsize = struct.unpack("<L", data[14:18])[0]
        if hsize not in BMP_HEADER_SIZES or 14 + hsize > len(data):
            raise MalformedImage("the BMP header is damaged")
        return off_bits, hsize, data[14 : 14 + hsize]

    @staticmethod
    def _pixel_end(data: bytes, hdr: bytes, off_bits: int) -> int | None:
        """Where uncompressed pixel rows end (None when compressed or unknown)."""
        if len(hdr) < 40:
            return None
        width, height, _planes, bpp, compression, image_size = struct.unpack(
            "<llHHLL", hdr[4:24]
        )
        if compression in (0, 3, 6):  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS
            row = ((abs(width) * bpp + 31) // 32) * 4
            return off_bits + row * abs(height)
        return off_bits + image_size if image_size else None

    def describe(self, data: bytes, report: Report, policy: Policy) -> None:
        off_bits, hsize, hdr = self._headers(data)
        if hsize == 124 and len(hdr) >= 124:
            cstype = hdr[56:60][::-1]
            pdata, psize = struct.unpack("<LL", hdr[112:120])
            start = 14 + pdata
            if cstype == LCS_EMBEDDED and psize and start + psize <= len(data):
                icc.describe(data[start : start + psize], report)
                # onionclean's BMP output has no V5 header: the colour is converted instead
                report.removed_piece("BMP embedded colour profile", psize)
            elif cstype == LCS_LINKED and psize and start + psize <= len(data):
                path = data[start : start + psize].split(b"\x00", 1)[0].decode("cp1252", "replace")
                report.add(Category.OTHER, "Linked colour profile file", path)
                report.removed_piece("BMP linked profile file name", psize)
        end = self._pixel_end(data, hdr, off_bits)
        if end is not None and end < len(data):
            extra = len(data) - end
            report.add(Category.TRAILING_DATA, "Data after the picture", f"{extra} bytes")
            report.removed_piece("bytes after the BMP pixels", extra)

    def leftovers(self, data: bytes, policy: Policy) -> list[str]:
        off_bits, hsize, hdr = self._headers(data)
        left: list[str] = []
        if hsize == 124:
            cstype = hdr[56:60][::-1]
            if cstype == LCS_LINKED or (cstype == LCS_EMBEDDED and not policy.keep_icc):
                left.append(f"BMP colour profile ({cstype.decode('latin-1')})")
        if off_bits > len(data):
            raise MalformedImage("the cleaned BMP's pixels lie outside the file")
        end = self._pixel_end(data, hdr, off_bits)
        if end is not None:
            if end > len(data):
                raise MalformedImage("the cleaned BMP ends before its last pixel row")
            if end < len(data):
                left.append(f"{len(data) - end} bytes after the BMP pixels")
        return left


# --------------------------------------------------------------------------- HEIF / AVIF

HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
AVIF_BRANDS = {b"avif", b"avis"}

#: Boxes a clean HEIF/AVIF may hold (ISO/IEC 14496-12, 23008-12), by level.
TOP_BOXES = {b"ftyp", b"meta", b"mdat", b"free", b"skip"}
META_BOXES = {b"hdlr", b"pitm", b"iloc", b"iinf", b"iref", b"iprp", b"idat", b"dinf"}
IMAGE_ITEMS = {"hvc1", "av01", "grid", "iden", "iovl"}
STRUCTURAL_REFS = {"dimg", "auxl", "prem", "base"}
STRUCTURAL_PROPERTIES = {
    "ispe", "pixi", "colr", "hvcC", "av1C", "irot", "imir", "clap", "auxC", "pasp",
    "a1op", "a1lx", "lsel", "clli", "mdcv", "cclv", "rloc",
}
#: Item names the encoders used here write (libavif: "Color"/"Alpha"; libheif: none).
ENCODER_ITEM_NAMES = {"", "Color", "Alpha"}
ALPHA_AUX = {"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha", "urn:mpeg:hevc:2015:auxid:1"}


def _exif_item_tiff(payload: bytes) -> bytes:
    """An ``Exif`` item: a 4-byte offset to the TIFF header, then the TIFF (23008-12 A.2.1)."""
    if len(payload) < 4:
        return b""
    skip = int.from_bytes(payload[:4], "big")
    tiff = payload[4 + skip :] if 4 + skip <= len(payload) else b""
    if tiff[:2] not in (b"II", b"MM"):
        for mark in (b"II*\x00", b"MM\x00*"):
            i = payload.find(mark)
            if i >= 0:
                return payload[i:]
    return tiff


class ISOBMFFImage(PillowFormat):
    """HEIF-family stills: ``ftyp`` then a ``meta`` box describing items, pixels in ``mdat``."""

    def precheck(self, data: bytes) -> None:
        isobmff.the_meta(data, isobmff.top_level(data))

    def describe(self, data: bytes, report: Report, policy: Policy) -> None:
        boxes = isobmff.top_level(data)
        for b in boxes:
            if b.type not in TOP_BOXES:
                report.removed_piece(f"'{b.name}' box", b.size)
        meta = isobmff.the_meta(data, boxes)
        for c in meta.children:
            if c.type not in META_BOXES:
                report.removed_piece(f"'{c.name}' box in meta", c.size)
        thumbs = {t for typ, src, targets in meta.refs if typ == "thmb" for t in [src]}
        for item in meta.items.values():
            if item.type == "Exif":
                tiff = _exif_item_tiff(meta.item_bytes(data, item))
                if tiff:
                    exif.describe(tiff, report, source="EXIF")
                report.removed_piece("EXIF item", item.length)
            elif item.type == "mime":
                body = meta.item_bytes(data, item)
                if "xmp" in item.content_type or "rdf+xml" in item.content_type:
                    xmp.describe(body, report)
                    report.removed_piece("XMP item", item.length)
                else:
                    report.add(Category.OTHER, "Embedded data",
                               f"{item.content_type or 'unknown type'}, {len(body)} bytes")
                    report.removed_piece(f"{item.content_type or 'mime'} item", item.length)
            elif item.type == "uri ":
                report.add(Category.OTHER, "Embedded data", f"URI item ({item.uri_type})")
                report.removed_piece("URI item", item.length)
            elif item.id in thumbs:
                size = self._item_size(meta, item.id)
                report.add(Category.THUMBNAIL, "Embedded preview image",
                           f"{size} (it can show the picture before any crop)")
                report.removed_piece("thumbnail image", item.length)
            elif item.type not in IMAGE_ITEMS:
                report.removed_piece(f"'{item.type}' item", item.length)
        for prop in meta.properties:
            if prop.type == "colr" and prop.detail in ("prof", "rICC"):
                icc.describe(data[prop.box.payload + 4 : prop.box.end], report)
                if policy.keep_icc:
                    report.kept.append("the colour profile")
                else:
                    report.removed_piece("colour profile", prop.box.size)
            if prop.type == "auxC" and prop.detail and prop.detail not in ALPHA_AUX:
                kind = ("a depth map" if "depth" in prop.detail or "auxid:2" in prop.detail
                        else "an HDR gain map" if "gainmap" in prop.detail.lower()
                        else "an auxiliary image")
                report.add(Category.EXTRA_IMAGE, "Extra image", f"{kind} ({prop.detail})")

    @staticmethod
    def _item_size(meta: isobmff.Meta, item_id: int) -> str:
        for prop in meta.properties_of(item_id):
            if prop.type == "ispe":
                return "a small preview"
        return "a preview"

    def leftovers(self, data: bytes, policy: Policy) -> list[str]:
        left: list[str] = []
        boxes = isobmff.top_level(data)
        for b in boxes:
            if b.type not in TOP_BOXES:
                left.append(f"'{b.name}' box")
        meta = isobmff.the_meta(data, boxes)
        for c in meta.children:
            if c.type not in META_BOXES:
                left.append(f"'{c.name}' box in meta")
        if meta.handler != "pict":
            left.append(f"handler '{meta.handler}'")
        if meta.handler_name:
            left.append("a handler name")
        for item in meta.items.values():
            if item.type not in IMAGE_ITEMS:
                left.append(f"'{item.type.strip()}' item")
            if item.name not in ENCODER_ITEM_NAMES:
                left.append("an item name")
        for typ, _src, _targets in meta.refs:
            if typ not in STRUCTURAL_REFS:
                left.append(f"'{typ}' item reference")
        for prop in meta.properties:
            if prop.type not in STRUCTURAL_PROPERTIES:
                left.append(f"'{prop.type}' property")
            elif prop.type == "colr" and prop.detail != "nclx" and not policy.keep_icc:
                left.append(f"colour profile ('colr' {prop.detail})")
            elif prop.type == "auxC" and prop.detail not in ALPHA_AUX:
                left.append(f"auxiliary image ({prop.detail})")
        for flags, location in meta.dref_urls:
            if not flags & 1 or location:
                left.append("an external data reference")
        if meta.primary is None or meta.primary not in meta.items:
            raise MalformedImage("the cleaned file has no primary image")
        mdat_bytes = sum(b.end - b.payload for b in boxes if b.type == b"mdat")
        used = sum(i.length for i in meta.items.values() if i.construction == 0)
        if mdat_bytes > used:
            left.append(f"{mdat_bytes - used} bytes in 'mdat' that no item uses")
        return left


@register
class AVIF(ISOBMFFImage):
    """AVIF (AOMedia AV1 Image File Format 1.1): HEIF items coded with AV1.

    Pillow's own AVIF plugin (libavif) decodes and encodes it. Its decoder leaves
    the pixels unrotated and reports ``irot``/``imir`` as an EXIF orientation, which
    is applied here: in HEIF those properties are part of the image, not metadata.
    """

    name = "avif"
    media_type = "image/avif"
    extension = ".avif"
    label = "AVIF"

    @staticmethod
    def sniff(head: bytes) -> bool:
        major, compat = isobmff.brands(head)
        return major in AVIF_BRANDS or (bool(compat & AVIF_BRANDS) and major not in HEIF_BRANDS
                                         - {b"mif1", b"msf1"})

    def _transform(self, data: bytes) -> int:
        with pixels.open_image(data, self.name) as im:
            o = im.getexif().get(0x0112, 1)
        return o if isinstance(o, int) and 1 <= o <= 8 else 1

    def inspect(self, data: bytes, report: Report, policy: Policy | None = None) -> None:
        self.precheck(data)
        w, h = self.open_size(data)
        if self._transform(data) in (5, 6, 7, 8):
            w, h = h, w
        report.width, report.height = w, h  # as displayed: irot/imir are part of HEIF images
        self.describe(data, report, policy or Policy())

    def clean(self, data: bytes, policy: Policy, report: Report) -> CleanOutput:
        self.inspect(data, report, policy)
        return pixels.rebuild(data, policy, report, orientation=self._transform(data))


@register
class HEIF(ISOBMFFImage):
    """HEIF/HEIC (ISO/IEC 23008-12), decoded and encoded (HEVC) by pillow-heif/libheif.

    pillow-heif applies ``irot``/``imir`` while decoding, so its size is the
    displayed size. The output is written without EXIF, XMP or thumbnails
    (``exif=None, xmp=None``: otherwise pillow-heif copies them back).
    """

    name = "heif"
    media_type = "image/heic"
    extension = ".heic"
    label = "HEIC"

    @staticmethod
    def sniff(head: bytes) -> bool:
        major, compat = isobmff.brands(head)
        return major in HEIF_BRANDS or bool(compat & (HEIF_BRANDS - {b"mif1", b"msf1"}))

    def clean(self, data: bytes, policy: Policy, report: Report) -> CleanOutput:
        self.inspect(data, report, policy)
        return pixels.rebuild(data, policy, report)


# --------------------------------------------------------------------------- read-only formats

JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
J2K_CODESTREAM = b"\xff\x4f\xff\x51"
UUID_XMP = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
UUID_GEOJP2 = bytes.fromhex("b14bf8bd083d4b43a5ae8cd7d5a6ce03")


@register
class JPEG2000(PillowFormat):
    """JPEG 2000 (ISO/IEC 15444-1 Annex I boxes, or a bare codestream). Read only.

    Boxes ``xml `` and ``uuid`` carry XMP, GeoJP2 (a GeoTIFF: a location!) or other data.
    """

    name = "jpeg2000"
    media_type = "image/jp2"
    extension = ".jp2"
    label = "JPEG 2000"

    @staticmethod
    def sniff(head: bytes) -> bool:
        return head.startswith(JP2_SIGNATURE) or head.startswith(J2K_CODESTREAM)

    def describe(self, data: bytes, report: Report, policy: Policy) -> None:
        if not data.startswith(JP2_SIGNATURE):
            return
        for box in isobmff.iter_boxes(data):
            body = data[box.payload : box.end]
            if box.type == b"xml ":
                xmp.describe(body, report)
                report.removed_piece("XML box", box.size)
            elif box.type == b"uuid":
                uid = data[box.payload - 16 : box.payload]
                if uid == UUID_XMP:
                    xmp.describe(body, report)
                elif uid == UUID_GEOJP2:
                    report.add(Category.LOCATION, "Map coordinates (GeoJP2)",
                               f"{len(body)} bytes of geographic data")
                report.removed_piece("uuid box", box.size)
            elif box.type == b"jp2h":
                for sub in isobmff.iter_boxes(data, box.payload, box.end):
                    if sub.type == b"colr" and data[sub.payload : sub.payload + 1] == b"\x02":
                        icc.describe(data[sub.payload + 3 : sub.end], report)


@register
class ICO(PillowFormat):
    """Windows icon: ``00 00 01 00`` and a directory of images (PNG or BMP). Read only."""

    name = "ico"
    media_type = "image/vnd.microsoft.icon"
    extension = ".ico"
    label = "ICO"

    @staticmethod
    def sniff(head: bytes) -> bool:
        if head[:4] != b"\x00\x00\x01\x00" or len(head) < 22:
            return False
        count = struct.unpack("<H", head[4:6])[0]
        return 1 <= count <= 256 and head[9] == 0


PNM_MAGIC = re.compile(rb"P[1-6][ \t\r\n#]")


@register
class PPM(PillowFormat):
    """Netpbm PBM/PGM/PPM (``P1``..``P6``). Read only; ``#`` comment lines are metadata."""

    name = "ppm"
    media_type = "image/x-portable-anymap"
    extension = ".ppm"
    label = "PPM/PGM"

    @staticmethod
    def sniff(head: bytes) -> bool:
        return PNM_MAGIC.match(head) is not None

    def describe(self, data: bytes, report: Report, policy: Policy) -> None:
        header = data[:4096]
        comments = re.findall(rb"#([^\r\n]*)", header.split(b"\n255", 1)[0])
        for c in comments[:20]:
            report.add(Category.COMMENT, "Comment", c.decode("latin-1").strip()[:200])
            report.removed_piece("PNM comment", len(c) + 1)


@register
class QOI(PillowFormat):
    """The Quite OK Image format (``qoif``). Read only; it holds no metadata."""

    name = "qoi"
    media_type = "image/qoi"
    extension = ".qoi"
    label = "QOI"

    @staticmethod
    def sniff(head: bytes) -> bool:
        return head[:4] == b"qoif"
