"""The capsule's pages and upload routes, as a Jetforce application.

- ``gemini://HOST/``       home page: what this is, ``titan://`` links to use it;
- ``gemini://HOST/about``  what is removed, what is kept, what is never stored;
- ``titan://HOST/clean``   ``20 <media type>`` + the cleaned photo;
- ``titan://HOST/inspect`` ``20 text/gemini`` + what the photo gives away.

Answers (Gemini spec, section 3.2): a request or upload that cannot work as
sent gets ``59 BAD REQUEST`` with what to do (malformed, too large, empty, not
an image, broken image); an image the cleaner cannot prove clean gets ``50``;
an unexpected failure gets ``42``, running out of memory ``40``; a busy
capsule ``44`` with the seconds to wait; another host ``53``; an unknown path
``51``. A failure never sends back any of the uploaded bytes.

The declared ``mime`` is a hint only: the core sniffs the bytes.
"""

from __future__ import annotations

import hmac
import logging
import typing

from jetforce.app.base import (
    DeferredResponse,
    EnvironDict,
    JetforceApplication,
    Request,
    Response,
    Status,
)
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

import core
from capsule.config import CapsuleConfig
from capsule.workers import CleaningPool
from core.report import HEADINGS

if typing.TYPE_CHECKING:
    from capsule.factory import CapsuleServer

log = logging.getLogger("onionclean.capsule")

NOTHING_KEPT = "Nothing was kept."

#: One answer of a cleaning job: status, meta, body (None on failure).
Answer = tuple[int, str, bytes | None]


def clean_job(body: bytearray | bytes, policy: core.Policy) -> Answer:
    """Runs on a worker thread: clean ``body``; every failure becomes an answer."""
    try:
        if not body:
            return Status.BAD_REQUEST, "The upload is empty (zero bytes): pick a photo.", None
        cleaned = core.clean(_take(body), policy)
        return Status.SUCCESS, cleaned.media_type, cleaned.data
    except BaseException as e:  # noqa: BLE001 - every failure gets a defined answer
        return _failure_answer(e)


def inspect_job(body: bytearray | bytes, hostname: str) -> Answer:
    """Runs on a worker thread: what the photo gives away, as a gemtext page."""
    try:
        if not body:
            return Status.BAD_REQUEST, "The upload is empty (zero bytes): pick a photo.", None
        report = core.inspect(_take(body))
        return Status.SUCCESS, "text/gemini", report_page(report, hostname).encode("utf-8")
    except BaseException as e:  # noqa: BLE001
        return _failure_answer(e)


def _take(body: bytearray | bytes) -> bytes:
    """The upload as ``bytes`` (which core does not copy again), freeing the receive
    buffer at once: one copy of the photo in memory while it is cleaned, not two."""
    if isinstance(body, bytes):
        return body
    data = bytes(body)
    body.clear()
    return data


def _failure_answer(e: BaseException) -> Answer:
    if isinstance(e, core.UncleanOutput):
        return Status.PERMANENT_FAILURE, f"Not cleaned: {e}. {NOTHING_KEPT}", None
    if isinstance(e, core.CleanError):
        return Status.BAD_REQUEST, f"Not cleaned: {e}. {NOTHING_KEPT}", None
    if isinstance(e, MemoryError):
        return (
            Status.TEMPORARY_FAILURE,
            f"The capsule ran out of memory; please try again later. {NOTHING_KEPT}",
            None,
        )
    if not isinstance(e, Exception):
        raise e  # KeyboardInterrupt, SystemExit
    # The exception's type only: its message may quote the photo's bytes.
    log.error("cleaning failed unexpectedly: %s", type(e).__name__)
    return Status.CGI_ERROR, f"Something went wrong inside the capsule. {NOTHING_KEPT}", None


def _line(text: str) -> str:
    """One gemtext line of text from the photo (no line breaks, no markup start)."""
    return " ".join(str(text).split())


def report_page(report: core.Report, hostname: str) -> str:
    """The report as gemtext: a heading per kind of finding, a bullet per finding."""
    out = ["# What this photo gives away", ""]
    size = f", {report.width}x{report.height} pixels" if report.width and report.height else ""
    out.append(f"{(report.format or 'image').upper()}{size}.")
    if not report.findings:
        out.append("No revealing metadata was found in this photo.")
    for category, heading in HEADINGS.items():
        found = report.by_category(category)
        if not found:
            continue
        out += ["", f"## {heading}"]
        out += [f"* {_line(f.label)}: {_line(f.value)}" for f in found]
    if report.notes:
        out += ["", "## Notes"] + [f"* {_line(n)}" for n in report.notes]
    out += [
        "",
        "Nothing of the photo was kept; this page is all that came back.",
        f"=> titan://{hostname}/clean Clean it: get the photo back without any of this",
        "=> / Home",
    ]
    return "\n".join(out) + "\n"


class CapsuleApplication(JetforceApplication):
    """Routes for the home page and the two upload endpoints."""

    known_paths = frozenset({"/", "/about", "/clean", "/inspect"})

    def __init__(self, config: CapsuleConfig, workers: CleaningPool) -> None:
        super().__init__()
        self.config = config
        self.workers = workers
        self.server: CapsuleServer | None = None  # set by listen()
        self.route("", scheme="gemini")(self.home)
        self.route("/about", scheme="gemini")(self.about)
        self.route("/clean", scheme="titan")(self.clean)
        self.route("/inspect", scheme="titan")(self.inspect)

    # --- before the body: host, path, token ----------------------------------------------

    def precheck(self, environ: EnvironDict) -> Response | None:
        """Called by the protocol after a Titan request line, before reading the body:
        a refusal to send at once, or None to go on."""
        try:
            request = self.request_class(environ)
        except Exception:  # noqa: BLE001 - Jetforce's own answer for a bad URL
            return Response(Status.BAD_REQUEST, "The URL is not valid.")
        if not any(pattern.match(request) for pattern, _ in self.routes):
            return self.default_callback(request)
        if self.config.token is not None:
            given = environ.get("titan_token") or ""
            if not hmac.compare_digest(given.encode(), self.config.token.encode()):
                return Response(
                    Status.BAD_REQUEST,
                    "This capsule needs an upload token: ask the person who runs it, then add"
                    " it in your client's token field (;token=...).",
                )
        return None

    def default_callback(self, request: Request, **_: typing.Any) -> Response:
        """No route: another host or port (53), or an unknown path (51)."""
        server_port = request.environ["SERVER_PORT"]
        if request.hostname != self.config.hostname or (
            request.port is not None and request.port != server_port
        ):
            return Response(
                Status.PROXY_REQUEST_REFUSED,
                f"This capsule is {self.config.hostname}; it does not serve other hosts.",
            )
        return Response(
            Status.NOT_FOUND, f"There is nothing here; start at gemini://{self._authority()}/"
        )

    # --- pages -------------------------------------------------------------------------

    def _authority(self) -> str:
        port = self.server.url_port if self.server is not None else self.config.url_port
        return self.config.hostname if port == 1965 else f"{self.config.hostname}:{port}"

    def home(self, request: Request) -> Response:
        a = self._authority()
        limit = self.config.max_upload_bytes / 1_000_000
        page = f"""# onionclean

Photos carry hidden data: where they were taken, when, and with which phone.
Send a photo here and get it back without any of it; the picture itself is unchanged.
Nothing you send is stored or logged.

=> titan://{a}/clean Clean a photo (you get the cleaned photo back)
=> titan://{a}/inspect See what a photo gives away (nothing comes back but a report)
=> gemini://{a}/about What is removed, what is kept, what is never stored

Photos up to {limit:.0f} MB: JPEG, PNG, WebP, GIF, TIFF, HEIC, AVIF, BMP.
Your client asks you to pick a file when you follow a titan:// link.
"""
        if self.config.token is not None:
            page += "This capsule asks for an upload token; its operator gives it out.\n"
        return Response(Status.SUCCESS, "text/gemini", page)

    def about(self, request: Request) -> Response:
        a = self._authority()
        page = f"""# What onionclean removes, keeps and never stores

## Removed
* The GPS position, altitude and direction: where the photo was taken
* Dates and times the photo was taken and edited
* Camera or phone make, model and serial numbers; lens and settings
* Owner and author names, copyright, captions, keywords, faces and people tags
* Editing software and edit history (XMP), IPTC, Photoshop blocks, comments
* Hidden preview images and thumbnails (they can show the uncropped original)
* Maker notes, embedded videos (motion photos) and data hidden after the picture
* Colour profiles (they can name the device)

## Kept
* The pixels, exactly: JPEG, PNG, WebP and GIF are rewritten without re-encoding
* The orientation, so the photo shows the right way up; nothing else

## Never stored
* The photo, before or after cleaning, is held in memory only while it is cleaned
* No file names, no tokens, no addresses are logged: only counts of answers
* If cleaning fails or cannot be proven complete, you get an error, never your photo back

=> gemini://{a}/ Home
"""
        return Response(Status.SUCCESS, "text/gemini", page)

    # --- uploads -----------------------------------------------------------------------

    def clean(self, request: Request) -> DeferredResponse:
        body = request.environ.pop("titan_body", None) or b""
        return self._run(clean_job, body, self.config.policy)

    def inspect(self, request: Request) -> DeferredResponse:
        body = request.environ.pop("titan_body", None) or b""
        return self._run(inspect_job, body, self._authority())

    def _run(self, job: typing.Callable[..., Answer], body: typing.Any,
             arg: typing.Any) -> DeferredResponse:
        """Run ``job`` on a worker; the status and the body follow when it is done."""
        size = len(body)
        status: Deferred[tuple[int, str]] = Deferred()
        payload: Deferred[bytes | None] = Deferred()

        def done(result: tuple[Answer, float]) -> None:
            (code, meta, data), seconds = result
            if self.server is not None:
                self.server.note_clean_rate(size, seconds)
            status.callback((code, meta))
            payload.callback(data)

        def failed(failure: Failure) -> None:
            log.error("worker failed: %s", failure.type.__name__)
            status.callback((Status.CGI_ERROR, f"Something went wrong. {NOTHING_KEPT}"))
            payload.callback(None)

        self.workers.submit(job, body, arg).addCallbacks(done, failed)
        del body
        return DeferredResponse(status, payload)
