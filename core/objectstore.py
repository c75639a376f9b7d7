"""The object-store hook: clean a file that landed in a bucket (a bucket trigger).

A storage trigger (S3 event + Lambda, GCS Cloud Function, MinIO webhook, ...)
hands over the object's bytes and its user metadata; it writes back what
:func:`clean_object` returns::

    result = clean_object(body, object_metadata)
    if result is not None:                       # None: already cleaned, do nothing
        put_object(key_with(result.extension), result.data,
                   ContentType=result.content_type, Metadata=result.metadata)

Bytes in, bytes out: no files, no network, nothing logged about the object.

The "cleaned" marker lives OUTSIDE the image, in the object's metadata
(``onionclean: cleaned``), never in the pixels or the file (a marker inside
the file would be metadata itself). Writing the cleaned object back fires the
trigger again; :func:`clean_object` sees the marker and returns ``None``, so
the trigger does not loop on its own output.

User metadata of the original object is NOT copied (it often carries the
uploader's file name, device or location); only keys the caller allow-lists
with ``keep`` are carried across. A :class:`core.CleanError` propagates: the
caller decides whether to quarantine or delete the original; no half-cleaned
bytes are ever returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.api import clean
from core.policy import Policy
from core.report import Report

#: The marker (object metadata key and value) of an object onionclean wrote.
MARKER_KEY = "onionclean"
MARKER_VALUE = "cleaned"
#: Companion key naming the output format (structure, not about the photo).
FORMAT_KEY = "onionclean-format"

#: Prefixes stores put before user metadata keys in raw HTTP headers.
_HEADER_PREFIXES = ("x-amz-meta-", "x-goog-meta-", "x-minio-meta-")


def _plain_key(key: str) -> str:
    k = key.strip().lower()
    for prefix in _HEADER_PREFIXES:
        if k.startswith(prefix):
            return k[len(prefix) :]
    return k


def is_cleaned(metadata: Mapping[str, str]) -> bool:
    """True when the object metadata carries the marker (keys compared case-insensitively,
    with or without an ``x-amz-meta-``/``x-goog-meta-`` prefix: S3 lowercases keys)."""
    return any(
        _plain_key(k) == MARKER_KEY and str(v).strip().lower() == MARKER_VALUE
        for k, v in metadata.items()
    )


@dataclass(frozen=True)
class CleanedObject:
    """What to write back: the cleaned bytes, their content type and the new metadata."""

    data: bytes
    content_type: str
    extension: str  # with the dot; the format may differ from the input's
    metadata: dict[str, str]
    report: Report = field(repr=False)


def clean_object(
    data: bytes,
    metadata: Mapping[str, str],
    policy: Policy = Policy(),  # noqa: B008 - frozen dataclass
    *,
    keep: Iterable[str] = (),
) -> CleanedObject | None:
    """Clean an object's bytes; ``None`` when its metadata says it is already cleaned.

    ``keep`` lists user metadata keys (case-insensitive) to carry across unchanged;
    every other key is dropped. The result's metadata always holds the marker.
    """
    if is_cleaned(metadata):
        return None
    cleaned = clean(data, policy)
    wanted = {_plain_key(k) for k in keep}
    out = {
        _plain_key(k): str(v)
        for k, v in metadata.items()
        if _plain_key(k) in wanted and _plain_key(k) not in (MARKER_KEY, FORMAT_KEY)
    }
    out[MARKER_KEY] = MARKER_VALUE
    out[FORMAT_KEY] = cleaned.format
    return CleanedObject(
        data=cleaned.data,
        content_type=cleaned.media_type,
        extension=cleaned.extension,
        metadata=out,
        report=cleaned.report,
    )


def key_with_extension(key: str, extension: str) -> str:
    """The object key with its extension replaced (``a/b.HEIC`` + ``.png`` -> ``a/b.png``)."""
    slash = key.rfind("/")
    dot = key.rfind(".")
    stem = key[:dot] if dot > slash + 1 else key
    return stem + extension
