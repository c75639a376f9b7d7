"""Describe an XMP packet (ISO 16684-1) in plain words. Parsed with defusedxml.

XMP is RDF/XML written by strangers: it is parsed with :mod:`defusedxml`
(no DTDs, no entity expansion, no external references) after a size check.
Properties (ISO 16684-1 section 7) may be written as attributes of
``rdf:Description`` or as child elements; values are text, arrays
(``rdf:Seq``/``rdf:Bag``/``rdf:Alt`` of ``rdf:li``) or structures. They are
read into plain Python values, then the ones a person should know about become
findings; properties of namespaces this module does not know are counted.
Nothing escapes :func:`describe`: a packet it cannot read is reported as such.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml.ElementTree import fromstring

from core.exif import compass, format_position, map_url
from core.report import Category, Report, human_size, printable

log = logging.getLogger("onionclean.core")

#: Packets larger than this are reported by size only, never parsed.
MAX_PACKET = 8 * 1024 * 1024
#: Structures nested deeper than this are not followed.
MAX_DEPTH = 24
#: Items read from one array.
MAX_ITEMS = 1000

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML_NS = "http://www.w3.org/XML/1998/namespace"

NS = {
    "x": "adobe:ns:meta/",
    "rdf": RDF,
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "stEvt": "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#",
    "stRef": "http://ns.adobe.com/xap/1.0/sType/ResourceRef#",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "exifEX": "http://cipa.jp/exif/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "aux": "http://ns.adobe.com/exif/1.0/aux/",
    "crs": "http://ns.adobe.com/camera-raw-settings/1.0/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "Iptc4xmpCore": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "mwg-rs": "http://www.metadataworkinggroup.com/schemas/regions/",
    "stArea": "http://ns.adobe.com/xmp/sType/Area#",
    "stDim": "http://ns.adobe.com/xap/1.0/sType/Dimensions#",
    "MP": "http://ns.microsoft.com/photo/1.2/",
    "MPRI": "http://ns.microsoft.com/photo/1.2/t/RegionInfo#",
    "MPReg": "http://ns.microsoft.com/photo/1.2/t/Region#",
    "GCamera": "http://ns.google.com/photos/1.0/camera/",
    "Container": "http://ns.google.com/photos/1.0/container/",
    "Item": "http://ns.google.com/photos/1.0/container/item/",
    "drone-dji": "http://www.dji.com/drone-dji/1.0/",
}
KNOWN_NAMESPACES = frozenset(NS.values())


def q(prefix: str, local: str) -> str:
    """Clark notation, as ElementTree names things: ``{uri}local``."""
    return f"{{{NS[prefix]}}}{local}"


Value = str | list[Any] | dict[str, Any]


def describe(packet: bytes, report: Report) -> None:
    """Add findings for an XMP packet (the XML bytes)."""
    try:
        props, prefixes = parse(packet)
    except Exception as e:  # noqa: BLE001 - defused XML, expat, recursion: never crash
        log.debug("unreadable XMP packet: %s", type(e).__name__)
        report.add(
            Category.OTHER,
            "XMP metadata",
            f"{human_size(len(packet))} that could not be read (damaged or unsafe XML)",
        )
        return
    if props is None:
        report.add(Category.OTHER, "XMP metadata",
                   f"{human_size(len(packet))}, too large to read")
        return
    _Describer(props, prefixes, report).run()


def parse(packet: bytes) -> tuple[dict[str, Value] | None, dict[str, str]]:
    """The top-level properties of a packet (Clark names -> values) and its prefixes.

    Returns ``(None, {})`` when the packet is over :data:`MAX_PACKET`.
    Raises (defusedxml's or expat's errors) on unsafe or broken XML.
    """
    if len(packet) > MAX_PACKET:
        return None, {}
    data = bytes(packet).strip(b"\x00 \t\r\n")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception:
        # Trailing junk after the packet (padding, a second packet): cut to the RDF.
        start = data.find(b"<x:xmpmeta")
        end = data.rfind(b"</x:xmpmeta>")
        if start < 0 or end < start:
            start, end = data.find(b"<rdf:RDF"), data.rfind(b"</rdf:RDF>")
            if start < 0 or end < start:
                raise
            end += len(b"</rdf:RDF>")
        else:
            end += len(b"</x:xmpmeta>")
        root = fromstring(data[start:end], forbid_dtd=True, forbid_entities=True,
                          forbid_external=True)
    prefixes = {
        uri.decode("utf-8", "replace"): prefix.decode("ascii", "replace")
        for prefix, uri in re.findall(rb"xmlns:([\w.-]{1,40})\s*=\s*[\"']([^\"']{0,300})[\"']",
                                      data[:MAX_PACKET])
    }
    props: dict[str, Value] = {}
    for desc in root.iter(f"{{{RDF}}}Description"):
        for key, value in _struct(desc, 0).items():
            old = props.get(key)
            if isinstance(old, list) and isinstance(value, list):
                old.extend(value[: max(0, MAX_ITEMS - len(old))])  # one array, split in two
            else:
                props[key] = value
        if len(props) > 100_000:
            break
    return props, prefixes


def _struct(el: Element, depth: int) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for key, val in el.attrib.items():
        if not key.startswith((f"{{{RDF}}}", f"{{{XML_NS}}}")):
            out[key] = val
    for child in list(el)[:MAX_ITEMS]:
        out[child.tag] = _value(child, depth + 1)
    return out


def _value(el: Element, depth: int) -> Value:
    if depth > MAX_DEPTH:
        return ""
    resource = el.get(f"{{{RDF}}}resource")
    if resource is not None:
        return resource
    if el.get(f"{{{RDF}}}parseType") == "Resource":
        return _struct(el, depth)
    children = list(el)
    if children:
        first = children[0]
        if first.tag in (f"{{{RDF}}}Seq", f"{{{RDF}}}Bag", f"{{{RDF}}}Alt"):
            return [_value(li, depth + 1) for li in list(first)[:MAX_ITEMS]
                    if li.tag == f"{{{RDF}}}li"]
        if first.tag == f"{{{RDF}}}Description":
            return _struct(first, depth)
        return _struct(el, depth)
    attrs = {k: v for k, v in el.attrib.items()
             if not k.startswith((f"{{{RDF}}}", f"{{{XML_NS}}}"))}
    text = (el.text or "").strip()
    if attrs and not text:
        return dict(attrs)
    return text


def texts(value: Value | None) -> list[str]:
    """Every non-empty text inside a value (arrays flattened), printable."""
    out: list[str] = []

    def walk(v: Any, depth: int) -> None:
        if depth > MAX_DEPTH or len(out) >= MAX_ITEMS:
            return
        if isinstance(v, str):
            t = printable(v)
            if t:
                out.append(t)
        elif isinstance(v, list):
            for item in v:
                walk(item, depth + 1)
        elif isinstance(v, dict):
            for item in v.values():
                walk(item, depth + 1)

    walk(value, 0)
    return out


def leaf_count(value: Value) -> int:
    if isinstance(value, list):
        return sum(leaf_count(v) for v in value[:MAX_ITEMS])
    if isinstance(value, dict):
        return sum(leaf_count(v) for v in list(value.values())[:MAX_ITEMS])
    return 1


# -- value formats -------------------------------------------------------------

_DATE = re.compile(
    r"^(\d{4})(?:[-:](\d\d)(?:[-:](\d\d))?)?"
    r"(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?)?\s*(Z|[+-]\d\d:?\d\d)?$"
)


def xmp_date(text: str) -> tuple[str, str] | None:
    """An ISO 8601 date (XMP's format) -> (plain words, ISO string); None if not a date."""
    m = _DATE.match(text.strip())
    if not m:
        return None
    year, month, day, hh, mm, ss, frac, tz = m.groups()
    date = "-".join(p for p in (year, month, day) if p)
    iso = date
    words = f"on {date}" if day else f"in {date}"
    if hh:
        clock = f"{hh}:{mm}" + (f":{ss}" if ss else "")
        if frac and frac.strip("0"):
            clock += f".{frac[:6]}"
        words += f" at {clock}"
        iso += f"T{clock}"
    if tz:
        offset = "+00:00" if tz == "Z" else (tz if ":" in tz else f"{tz[:3]}:{tz[3:]}")
        words += f" (UTC{offset})"
        iso += offset
    return words, iso


_GPS = re.compile(r"^\s*(\d{1,3})(?:,(\d{1,2}(?:\.\d+)?))?(?:,(\d{1,2}(?:\.\d+)?))?\s*([NSEW])\s*$")


def xmp_coordinate(text: str) -> float | None:
    """XMP's GPSCoordinate ``"DDD,MM.mmk"`` or ``"DDD,MM,SSk"`` (XMP spec part 2) -> degrees."""
    m = _GPS.match(text)
    if m:
        deg, minutes, seconds, ref = m.groups()
        value = int(deg) + float(minutes or 0) / 60 + float(seconds or 0) / 3600
        if ref in "SW":
            value = -value
    else:
        try:
            value = float(text)  # decimal degrees, as some writers (DJI) use
        except ValueError:
            return None
        ref = ""
    limit = 90 if ref in "NS" and ref else 180
    return value if -limit <= value <= limit and value == value else None


def xmp_rational(text: str) -> float | None:
    """``"2605606/10000"`` or ``"260.5"`` -> float."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            d = float(den)
            return float(num) / d if d else None
        v = float(text)
        return v if v == v and abs(v) != float("inf") else None
    except ValueError:
        return None


# -- what to say ---------------------------------------------------------------

#: Simple text properties: name -> (category, label).
TEXT_PROPS: list[tuple[str, Category, str]] = [
    (q("tiff", "Make"), Category.DEVICE, "Camera make"),
    (q("tiff", "Model"), Category.DEVICE, "Camera model"),
    (q("aux", "SerialNumber"), Category.DEVICE, "Camera serial number"),
    (q("exifEX", "BodySerialNumber"), Category.DEVICE, "Camera serial number"),
    (q("aux", "Lens"), Category.DEVICE, "Lens"),
    (q("exifEX", "LensMake"), Category.DEVICE, "Lens make"),
    (q("exifEX", "LensModel"), Category.DEVICE, "Lens model"),
    (q("aux", "LensSerialNumber"), Category.DEVICE, "Lens serial number"),
    (q("exifEX", "LensSerialNumber"), Category.DEVICE, "Lens serial number"),
    (q("aux", "Firmware"), Category.DEVICE, "Camera firmware"),
    (q("exif", "ImageUniqueID"), Category.DEVICE, "Unique photo ID"),
    (q("exifEX", "ImageUniqueID"), Category.DEVICE, "Unique photo ID"),
    (q("aux", "OwnerName"), Category.PEOPLE, "Camera owner"),
    (q("exifEX", "CameraOwnerName"), Category.PEOPLE, "Camera owner"),
    (q("dc", "creator"), Category.PEOPLE, "Creator"),
    (q("dc", "contributor"), Category.PEOPLE, "Contributor"),
    (q("dc", "rights"), Category.PEOPLE, "Copyright"),
    (q("dc", "publisher"), Category.PEOPLE, "Publisher"),
    (q("photoshop", "AuthorsPosition"), Category.PEOPLE, "Author's job title"),
    (q("photoshop", "Credit"), Category.PEOPLE, "Credit"),
    (q("photoshop", "CaptionWriter"), Category.PEOPLE, "Caption written by"),
    (q("photoshop", "Source"), Category.PEOPLE, "Source"),
    (q("xmpRights", "Owner"), Category.PEOPLE, "Rights owner"),
    (q("xmpRights", "WebStatement"), Category.PEOPLE, "Rights web page"),
    (q("Iptc4xmpExt", "PersonInImage"), Category.PEOPLE, "People shown"),
    (q("dc", "title"), Category.DESCRIPTION, "Title"),
    (q("dc", "description"), Category.DESCRIPTION, "Description"),
    (q("photoshop", "Headline"), Category.DESCRIPTION, "Headline"),
    (q("photoshop", "Instructions"), Category.DESCRIPTION, "Instructions"),
    (q("photoshop", "TextLayerText"), Category.DESCRIPTION, "Text in the image's layers"),
    (q("crs", "RawFileName"), Category.DESCRIPTION, "Original file name"),
    (q("xmp", "Label"), Category.DESCRIPTION, "Label"),
    (q("xmp", "CreatorTool"), Category.SOFTWARE, "Created with"),
    (q("photoshop", "History"), Category.SOFTWARE, "Photoshop history"),
]

KEYWORD_PROPS = [q("dc", "subject"), q("lr", "hierarchicalSubject")]

#: (property, label, ExifTool-style name)
DATE_PROPS: list[tuple[str, str, str]] = [
    (q("exif", "DateTimeOriginal"), "Taken", "DateTimeOriginal"),
    (q("photoshop", "DateCreated"), "Taken", "DateCreated"),
    (q("exif", "DateTimeDigitized"), "Digitised", "DateTimeDigitized"),
    (q("xmp", "CreateDate"), "Created", "CreateDate"),
    (q("xmp", "ModifyDate"), "Last changed", "ModifyDate"),
    (q("xmp", "MetadataDate"), "Metadata last changed", "MetadataDate"),
]

PLACE_PARTS = ["Sublocation", "City", "ProvinceState", "CountryName", "WorldRegion"]


class _Describer:
    def __init__(self, props: dict[str, Value], prefixes: dict[str, str],
                 report: Report) -> None:
        self.props = props
        self.prefixes = prefixes
        self.report = report

    def add(self, category: Category, label: str, value: str, **data: Any) -> None:
        data.setdefault("source", "XMP")
        self.report.add(category, label, value, **data)

    def prop(self, prefix: str, local: str) -> Value | None:
        return self.props.get(q(prefix, local))

    def run(self) -> None:
        for step in (self._location, self._times, self._texts, self._keywords,
                     self._contact, self._history, self._ids, self._faces,
                     self._motion_photo, self._raw_settings, self._others):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - skip the unreadable part only
                log.debug("skipped an unreadable XMP part: %s", type(e).__name__)

    # -- where ---------------------------------------------------------------

    def _location(self) -> None:
        lat = lon = None
        lat_v, lon_v = self.prop("exif", "GPSLatitude"), self.prop("exif", "GPSLongitude")
        if isinstance(lat_v, str) and isinstance(lon_v, str):
            lat, lon = xmp_coordinate(lat_v), xmp_coordinate(lon_v)
        dji_lat = self.prop("drone-dji", "GpsLatitude") or self.prop("drone-dji", "Latitude")
        dji_lon = self.prop("drone-dji", "GpsLongitude") or self.prop("drone-dji", "Longitude")
        if (lat is None or lon is None) and isinstance(dji_lat, str) and isinstance(dji_lon, str):
            lat, lon = xmp_coordinate(dji_lat), xmp_coordinate(dji_lon)
        altitude = None
        alt_v = self.prop("exif", "GPSAltitude")
        if isinstance(alt_v, str):
            altitude = xmp_rational(alt_v)
            if altitude is not None and self.prop("exif", "GPSAltitudeRef") == "1":
                altitude = -altitude
        dji_alt = self.prop("drone-dji", "AbsoluteAltitude")
        if altitude is None and isinstance(dji_alt, str):
            altitude = xmp_rational(dji_alt)
        if lat is not None and lon is not None and not (lat == 0 and lon == 0):
            url = map_url(lat, lon)
            self.add(Category.LOCATION, "GPS position",
                     f"{format_position(lat, lon)} (on a map: {url})",
                     latitude=round(lat, 7), longitude=round(lon, 7),
                     altitude=None if altitude is None else round(altitude, 3), map_url=url)
        if altitude is not None:
            where = "above" if altitude >= 0 else "below"
            self.add(Category.LOCATION, "Altitude",
                     f"{abs(altitude):.1f} metres {where} sea level", altitude=round(altitude, 3))
        direction = self.prop("exif", "GPSImgDirection")
        if isinstance(direction, str) and (d := xmp_rational(direction)) is not None:
            self.add(Category.LOCATION, "Direction the camera faced",
                     f"{d:.0f}\u00b0 from north ({compass(d)})", direction=round(d, 3))
        # Place names: Photoshop/IPTC Core properties and IPTC Extension structures.
        flat = [
            self.prop("Iptc4xmpCore", "Location"),
            self.prop("photoshop", "City"),
            self.prop("photoshop", "State"),
            self.prop("photoshop", "Country"),
        ]
        names = [t for v in flat for t in texts(v)]
        if names:
            place = ", ".join(dict.fromkeys(names))
            self.add(Category.LOCATION, "Place", place, place=place)
        for key, label in (("LocationCreated", "Place where it was taken"),
                           ("LocationShown", "Place shown")):
            value = self.prop("Iptc4xmpExt", key)
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, dict):
                    continue
                parts = [t for part in PLACE_PARTS
                         for t in texts(item.get(f"{{{NS['Iptc4xmpExt']}}}{part}"))]
                if parts:
                    place = ", ".join(dict.fromkeys(parts))
                    self.add(Category.LOCATION, label, place, place=place)
        code = self.prop("Iptc4xmpCore", "CountryCode")
        if isinstance(code, str) and printable(code):
            self.add(Category.LOCATION, "Country code", printable(code), place=printable(code))

    # -- when ----------------------------------------------------------------

    def _times(self) -> None:
        for name, label, tag in DATE_PROPS:
            value = self.props.get(name)
            if not isinstance(value, str):
                continue
            parsed = xmp_date(value)
            if parsed:
                words, iso = parsed
                self.add(Category.TIME, label, words, tag=tag, datetime=iso)

    # -- device, people, description, software --------------------------------

    def _texts(self) -> None:
        for name, category, label in TEXT_PROPS:
            found = texts(self.props.get(name))
            if found:
                value = printable("; ".join(dict.fromkeys(found)))
                tag = name.rsplit("}", 1)[-1]
                self.add(category, label, value, tag=tag, raw=found[0])

    def _keywords(self) -> None:
        words = [t for name in KEYWORD_PROPS for t in texts(self.props.get(name))]
        if words:
            unique = list(dict.fromkeys(words))
            self.add(Category.DESCRIPTION, "Keywords", printable(", ".join(unique)),
                     tag="Subject", keywords=unique[:100])

    def _contact(self) -> None:
        info = self.prop("Iptc4xmpCore", "CreatorContactInfo")
        found = texts(info)
        if found:
            self.add(Category.PEOPLE, "Creator's contact details",
                     printable(", ".join(dict.fromkeys(found))), tag="CreatorContactInfo")

    def _history(self) -> None:
        history = self.prop("xmpMM", "History")
        if isinstance(history, list) and history:
            steps = []
            for event in history:
                if not isinstance(event, dict):
                    continue
                steps.append({
                    "action": printable(str(event.get(q("stEvt", "action"), "")), 40),
                    "software": printable(str(event.get(q("stEvt", "softwareAgent"), "")), 80),
                    "when": printable(str(event.get(q("stEvt", "when"), "")), 40),
                })
            if steps:
                tools = list(dict.fromkeys(s["software"] for s in steps if s["software"]))
                whens = [s["when"] for s in steps if s["when"]]
                value = f"{len(steps)} recorded editing step{'s' if len(steps) != 1 else ''}"
                dates = [d for w in whens if (d := xmp_date(w))]
                if dates:
                    first, last = dates[0][1][:10], dates[-1][1][:10]
                    value += f" between {first} and {last}" if first != last else f" on {first}"
                if tools:
                    value += " with " + ", ".join(tools[:5])
                    if len(tools) > 5:
                        value += f" and {len(tools) - 5} more"
                self.add(Category.SOFTWARE, "Edit history", value, tag="History",
                         steps=len(steps), history=steps[:50], software=tools[:20])
        ancestors = texts(self.prop("photoshop", "DocumentAncestors"))
        if ancestors:
            n = len(ancestors)
            self.add(Category.SOFTWARE, "Earlier documents",
                     f"IDs of {n} earlier document{'s' if n != 1 else ''} this photo was"
                     " made from (they link it to those files)",
                     tag="DocumentAncestors", count=n)

    def _ids(self) -> None:
        ids = [t for local in ("DocumentID", "OriginalDocumentID", "InstanceID")
               for t in texts(self.prop("xmpMM", local))]
        derived = self.prop("xmpMM", "DerivedFrom")
        ids += texts(derived)
        if ids:
            unique = list(dict.fromkeys(ids))
            self.add(Category.SOFTWARE, "Document IDs",
                     f"{len(unique)} unique ID{'s' if len(unique) != 1 else ''} that can link"
                     " this photo to other copies and versions of it",
                     tag="DocumentID", count=len(unique))

    def _faces(self) -> None:
        names: list[str] = []
        regions = 0
        mwg = self.prop("mwg-rs", "Regions")
        if isinstance(mwg, dict):
            region_list = mwg.get(q("mwg-rs", "RegionList"))
            for region in region_list if isinstance(region_list, list) else []:
                if isinstance(region, dict):
                    regions += 1
                    names += texts(region.get(q("mwg-rs", "Name")))
        ms = self.prop("MP", "RegionInfo")
        if isinstance(ms, dict):
            region_list = ms.get(q("MPRI", "Regions"))
            for region in region_list if isinstance(region_list, list) else []:
                if isinstance(region, dict):
                    regions += 1
                    names += texts(region.get(q("MPReg", "PersonDisplayName")))
        if names:
            unique = list(dict.fromkeys(names))
            self.add(Category.PEOPLE, "Names of people tagged in the photo",
                     printable(", ".join(unique)), tag="RegionName", names=unique[:100])
        elif regions:
            self.add(Category.PEOPLE, "Tagged areas",
                     f"{regions} marked area{'s' if regions != 1 else ''} (often faces)",
                     tag="Regions", count=regions)

    def _motion_photo(self) -> None:
        flags = [self.prop("GCamera", "MicroVideo"), self.prop("GCamera", "MotionPhoto")]
        directory = self.prop("Container", "Directory")
        has_video_item = False
        if isinstance(directory, list):
            for item in directory:
                if isinstance(item, dict):
                    inner = item.get(q("Container", "Item"), item)
                    mime = texts(inner.get(q("Item", "Mime")) if isinstance(inner, dict)
                                 else None)
                    if any(m.startswith("video/") for m in mime):
                        has_video_item = True
        if "1" in flags or has_video_item:
            size = xmp_rational(str(self.prop("GCamera", "MicroVideoOffset") or ""))
            value = "this is a motion photo: a video is hidden in the file"
            if size:
                value += f" (about {human_size(int(size))})"
            self.add(Category.TRAILING_DATA, "Motion photo", value, tag="MotionPhoto",
                     video_size=int(size) if size else None)

    def _raw_settings(self) -> None:
        crs = [k for k in self.props if k.startswith(f"{{{NS['crs']}}}")]
        if crs:
            self.add(Category.SOFTWARE, "Raw developer settings",
                     f"{len(crs)} settings from Adobe Camera Raw or Lightroom (how the photo"
                     " was edited)", tag="crs", count=len(crs))

    def _others(self) -> None:
        unknown: dict[str, int] = {}
        for key, value in self.props.items():
            uri = key[1:].split("}", 1)[0] if key.startswith("{") else ""
            if uri in KNOWN_NAMESPACES:
                continue
            name = self.prefixes.get(uri) or uri or "no namespace"
            unknown[name] = unknown.get(name, 0) + leaf_count(value)
        if unknown:
            total = sum(unknown.values())
            names = ", ".join(printable(n, 40) for n in list(unknown)[:8])
            self.add(Category.OTHER, "Other XMP properties",
                     f"{total} more propert{'ies' if total != 1 else 'y'} ({names})",
                     count=total, namespaces=[printable(n, 80) for n in list(unknown)[:50]])

