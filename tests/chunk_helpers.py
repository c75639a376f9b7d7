"""Helpers for the PNG, WebP and GIF tests: pixels of every frame, corruption checks."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps, ImageSequence

import core
from tests.oracle import exiftool_tags, leaks

#: Hypothesis settings for the corruption tests: reproducible, bounded, no deadline.
FUZZ = settings(
    max_examples=60,
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


def clean_or_refuse(data: bytes, outputs: list[bytes],
                    policy: core.Policy = core.Policy()) -> None:  # noqa: B008 - frozen
    """The corruption contract: a verified clean output or a CleanError, nothing else."""
    try:
        result = core.clean(data, policy)
    except core.CleanError as e:
        assert str(e), "an error needs a message"
        return
    assert_no_secrets(result.data)
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
