"""Titan uploads on Jetforce: a :class:`GeminiProtocol` that also reads a body.

The Titan Specification (transjovian.org/titan/page/The Titan Specification):

    "Client and server do the usual TLS handshake and then the client sends the
    Titan URL: titan://transjovian.org/test/raw/testing;size=123;mime=plain/text;
    token=hello\\r\\n -- that is, the target URL, followed by one, two, or three
    parameters [...] After the Titan URL and the carriage return and linefeed
    the client sends the data and the server replies with a regular Gemini
    status response."

    "Parameters are not query parameters! There is no question mark after the
    URL. Parameters are separated from the rest of the URL and each other using
    a semicolon and they come as key/value pairs."

    "size: the number of bytes of the data (mandatory)"; "mime: the MIME type of
    the data (optional)"; "token: a token (optional)".

Jetforce 1.0's :class:`GeminiProtocol` is a ``LineOnlyReceiver``: it would read a
body as more request lines (every CRLF inside a photo becomes a request), closes
the connection without an answer past 16 384 buffered bytes, and its
``REQUEST_TIMEOUT`` covers only the request line. :class:`TitanProtocol` replaces
the line reader with a small state machine:

``REQUEST``  read up to 1024 bytes + CRLF (Gemini spec 2: "The URL MUST NOT
             exceed 1024 bytes"); bytes after the CRLF already belong to the body.
``BODY``     read exactly ``size`` bytes, with an idle timeout reset per chunk
             and a deadline for the whole body, then dispatch to the Jetforce
             application with the body in ``environ["titan_body"]``.
``DRAIN``    after an early answer (too large, wrong token, busy, ...): read and
             discard what the client still sends (within a byte cap and a
             deadline) so that it gets to read the answer, then close. Closing a
             socket that still has unread input sends a TCP reset, and clients
             that get one before reading show "incomplete header" or hang
             (Lagrange issue 523).
``DONE``     answered; anything more is discarded.

Gemini requests go through Jetforce's own ``_handle_request_noblock`` unchanged
(its hostname/port checks, status constants, TLS environ). What Jetforce logs is
replaced: its access log holds the client's address and full URL, ours holds
the scheme, the route and the status only.
"""

from __future__ import annotations

import enum
import logging
import re
import time
import typing
import urllib.parse
from dataclasses import dataclass

from jetforce.app.base import EnvironDict, Status
from jetforce.protocol import GeminiProtocol
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

if typing.TYPE_CHECKING:
    from capsule.factory import CapsuleServer

log = logging.getLogger("onionclean.capsule")

#: Gemini spec section 2: "The URL MUST NOT exceed 1024 bytes".
MAX_REQUEST_LINE = 1024
#: A Gemini response header is "<STATUS><SPACE><META><CR><LF>", META at most 1024 bytes.
MAX_META = 1024
#: After an early answer with no body announced: close when the client is quiet this long.
DRAIN_IDLE_SECONDS = 1.0
_SIZE_RE = re.compile(r"[0-9]{1,15}")


class BadTitanRequest(ValueError):
    """The Titan parameters are missing or malformed; ``str()`` is for a person."""


@dataclass(frozen=True)
class TitanParams:
    """The three Titan parameters ("No other parameters are used")."""

    size: int
    mime: str | None = None
    token: str | None = None


def split_titan_url(url: str) -> tuple[str, TitanParams]:
    """Split a Titan request into the URL without parameters and the parameters.

    The parameters follow the path and their order is not fixed. Real clients:
    Lagrange ``URL;mime=M;size=N[;token=T]`` (older versions after the whole URL,
    query included; newer ones before ``?query``), gmid's ``titan``
    ``titan://host/path;size=N;token=T;mime=M`` (port dropped), Phoebe's ``titan``
    ``URL;size=N;mime=M;token=`` (empty token when none). This must run on the
    raw request line, before any unquoting: ``urlparse`` does not split
    parameters for unknown schemes, and an unquoted ``%3B`` would become one.
    """
    authority_start = url.find("://") + 3
    semi = url.find(";", authority_start)
    if semi < 0:
        raise BadTitanRequest(
            "This upload has no size: a Titan request needs ;size=N (the number of bytes)."
        )
    base, rest = url[:semi], url[semi + 1 :]
    rest = rest.split("#", 1)[0]
    params_part, has_query, query = rest.partition("?")
    if has_query:
        if "?" in base:
            raise BadTitanRequest("This request has two queries; send the upload again.")
        base = f"{base}?{query}"
    values: dict[str, str] = {}
    for piece in params_part.split(";"):
        key, eq, value = piece.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise BadTitanRequest("A Titan parameter is not of the form name=value.")
        if key in values:
            raise BadTitanRequest(f"The Titan parameter {key} is given twice.")
        values[key] = urllib.parse.unquote(value)
    if "size" not in values:
        raise BadTitanRequest(
            "This upload has no size: a Titan request needs ;size=N (the number of bytes)."
        )
    if not _SIZE_RE.fullmatch(values["size"]):
        raise BadTitanRequest(
            "The size of this upload is not a number of bytes (it must be 0 or more digits)."
        )
    return base, TitanParams(
        size=int(values["size"]),
        mime=values.get("mime") or None,
        token=values.get("token") or None,
    )


def clean_meta(meta: str) -> str:
    """A META field: one line, at most 1024 bytes of UTF-8."""
    meta = " ".join(meta.split())
    data = meta.encode("utf-8")[:MAX_META]
    return data.decode("utf-8", errors="ignore")


class State(enum.Enum):
    REQUEST = "request"
    BODY = "body"
    DISPATCHED = "dispatched"
    DRAIN = "drain"
    DONE = "done"


class TitanProtocol(GeminiProtocol):
    """One Gemini or Titan request on one TLS connection (see the module docstring)."""

    server: CapsuleServer  # type: ignore[assignment]

    def __init__(self, server: CapsuleServer, app: typing.Any) -> None:
        super().__init__(server, app)
        self.state = State.REQUEST
        self._buffer = bytearray()
        self._body: bytearray | None = None
        self._got = 0
        self._params: TitanParams | None = None
        self._reserved = 0
        self._body_started = 0.0
        self._idle: IDelayedCall | None = None
        self._deadline: IDelayedCall | None = None
        self._drain_left: int | None = None
        self._drained = 0
        self._over_capacity = False
        self._closing: IDelayedCall | None = None
        self._counted = False
        self.scheme = "-"

    # --- connection life -------------------------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()
        self.setTimeout(self.server.config.request_timeout)
        self._over_capacity = not self.server.connection_opened()
        self._counted = True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_timers()
        if self._closing is not None and self._closing.active():
            self._closing.cancel()
        self._release()
        self._body = None
        self._buffer = bytearray()
        if self._counted:
            self.server.connection_closed()
            self._counted = False
        self.state = State.DONE
        super().connectionLost(reason)

    def timeoutConnection(self) -> None:
        """The request line did not arrive in time (Jetforce's ``REQUEST_TIMEOUT``)."""
        if self.state is State.REQUEST:
            secs = self.server.config.request_timeout
            self._refuse(
                Status.BAD_REQUEST,
                f"The request did not arrive within {secs:.0f} seconds.",
                expect=0,
            )
        else:
            self.finish_connection()

    # --- reading -----------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Replaces ``LineOnlyReceiver.dataReceived``: request line, then body bytes."""
        if self.state is State.REQUEST:
            self._buffer += data
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_REQUEST_LINE + 1:  # room for the CR
                    self._buffer = bytearray()
                    self._refuse(
                        Status.BAD_REQUEST,
                        "The request is longer than 1024 bytes (Gemini's limit).",
                        expect=None,
                    )
                return
            line = bytes(self._buffer[:end])
            rest = bytes(self._buffer[end + 1 :])
            self._buffer = bytearray()
            self.setTimeout(None)
            if line.endswith(b"\r"):
                line = line[:-1]
            self._request_line(line, rest)
        elif self.state is State.BODY:
            self._body_data(data)
        elif self.state is State.DRAIN:
            self._drain_data(data)
        else:
            # Answered or answering: the client sent more than its size. Discard it.
            self._drained += len(data)
            if self._drained > self.server.config.drain_bytes:
                self.finish_connection()

    def _request_line(self, line: bytes, rest: bytes) -> None:
        self.request = line
        if len(line) > MAX_REQUEST_LINE:
            self._refuse(
                Status.BAD_REQUEST,
                "The request is longer than 1024 bytes (Gemini's limit).",
                expect=None,
            )
            return
        try:
            url = line.decode("utf-8")
        except UnicodeDecodeError:
            self._refuse(Status.BAD_REQUEST, "The request is not valid UTF-8.", expect=None)
            return
        if not url or any(ord(c) < 0x20 or c == "\x7f" for c in url):
            self._refuse(Status.BAD_REQUEST, "The request is empty or not a URL.", expect=None)
            return
        scheme, sep, _ = url.partition("://")
        self.scheme = scheme.lower() if sep else "-"
        if self.scheme not in ("gemini", "titan"):
            if not sep:
                self._refuse(Status.BAD_REQUEST, "The request is not an absolute URL.", None)
            else:
                self._refuse(
                    Status.PROXY_REQUEST_REFUSED,
                    "This capsule serves only gemini:// and titan:// URLs.",
                    expect=None,
                )
            return
        if self._over_capacity:
            self._refuse(Status.SLOW_DOWN, str(self.server.retry_after()), expect=None)
            return
        if self.scheme == "gemini":
            self.url = url
            self.state = State.DISPATCHED  # one request per connection; the rest is discarded
            self._dispatch()
            return
        self._titan_request(url, rest)

    def _titan_request(self, url: str, rest: bytes) -> None:
        config = self.server.config
        try:
            self.url, params = split_titan_url(url)
        except BadTitanRequest as e:
            self._refuse(Status.BAD_REQUEST, str(e), expect=None, rest=rest)
            return
        self._params = params
        refusal = self.app.precheck(self.build_environ())
        if refusal is not None:
            self._refuse(refusal.status, refusal.meta, expect=params.size, rest=rest)
            return
        if params.size > config.max_upload_bytes:
            self._refuse(
                Status.BAD_REQUEST,
                f"This capsule takes at most {_mb(config.max_upload_bytes)}; this photo is"
                f" {_mb(params.size)}. Send a smaller photo (or a smaller copy of it).",
                expect=params.size,
                rest=rest,
            )
            return
        if not self.server.budget.reserve(params.size):
            self._refuse(
                Status.SLOW_DOWN, str(self.server.retry_after()), expect=params.size, rest=rest
            )
            return
        self._reserved = params.size
        self.state = State.BODY
        # Allocated once at the announced size (reserved above): no regrowth copies;
        # calloc'd pages cost memory only as bytes arrive.
        self._body = bytearray(params.size)
        self._got = 0
        self._body_started = time.monotonic()
        reactor = self.server.reactor
        self._deadline = reactor.callLater(config.body_deadline, self._body_timed_out, "deadline")
        self._idle = reactor.callLater(config.body_idle_timeout, self._body_timed_out, "idle")
        self._body_data(rest)

    def _body_data(self, data: bytes) -> None:
        assert self._body is not None and self._params is not None
        need = self._params.size - self._got
        if data:
            if len(data) > need:
                self._drained += len(data) - need  # longer than size: the rest is discarded
                data = data[:need]
            self._body[self._got : self._got + len(data)] = data
            self._got += len(data)
            if self._idle is not None and self._idle.active():
                self._idle.reset(self.server.config.body_idle_timeout)
        if self._got == self._params.size:
            self._cancel_timers()
            self.state = State.DISPATCHED
            self._dispatch()

    def _body_timed_out(self, which: str) -> None:
        if self.state is not State.BODY:
            return
        got = self._got
        total = self._params.size if self._params else 0
        self._body = None
        self._release()
        self.server.stats["timeouts"] += 1
        if which == "idle":
            why = f"nothing arrived for {self.server.config.body_idle_timeout:.0f} seconds"
        else:
            why = f"the upload took longer than {self.server.config.body_deadline:.0f} seconds"
        self._refuse(
            Status.TEMPORARY_FAILURE,
            f"The upload stopped: {_mb(got)} of {_mb(total)} arrived, then {why}."
            " Nothing was kept; please try again.",
            expect=0,
        )

    # --- answering ---------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Hand the request to the Jetforce application (Jetforce's own request handler)."""
        d: Deferred[None] = ensureDeferred(self._handle_request_noblock())
        d.addErrback(self._dispatch_failed)

    def _dispatch_failed(self, failure: Failure) -> None:
        log.error("request handler failed: %s", failure.type.__name__)
        self.finish_connection()

    def parse_header(self) -> None:
        """Jetforce parses ``self.request`` here; ours is parsed and checked already."""

    def build_environ(self) -> EnvironDict:
        """Jetforce's environ plus the Titan parameters and the body (lowercase keys
        are Python-only, Jetforce's convention); ``SERVER_PORT`` is the public port."""
        environ = super().build_environ()
        environ["SERVER_PORT"] = self.server.url_port
        if self._params is not None:
            environ["TITAN_SIZE"] = self._params.size
            environ["TITAN_MIME"] = self._params.mime or ""
            environ["titan_token"] = self._params.token
            environ["titan_body"] = self._body
            self._body = None  # the application owns it now
        return environ

    def write_status(self, status: int, meta: str) -> None:
        super().write_status(status, clean_meta(meta))

    def finish_connection(self) -> None:
        """Jetforce's close (TLS close_notify, then TCP close once the answer is sent),
        with a deadline: a client that never reads its answer would otherwise keep the
        connection, and the upload's share of the in-flight budget, forever."""
        self._cancel_timers()
        self.state = State.DONE
        if self._closing is None:
            self._closing = self.server.reactor.callLater(
                self.server.config.body_deadline, self.transport.abortConnection
            )
        super().finish_connection()

    def _refuse(
        self, status: int, meta: str, expect: int | None, rest: bytes = b""
    ) -> None:
        """Answer at once, then drain what the client still sends, then close.

        ``expect``: body bytes the client announced (None: unknown, 0: none).
        """
        self._cancel_timers()
        self._release()
        self.write_status(status, meta)
        self.flush_status()
        self.log_request()
        if expect == 0:
            self.finish_connection()
            return
        self.state = State.DRAIN
        self._drain_left = expect
        config = self.server.config
        reactor = self.server.reactor
        self._deadline = reactor.callLater(config.drain_seconds, self.finish_connection)
        idle = DRAIN_IDLE_SECONDS if expect is None else config.body_idle_timeout
        self._idle = reactor.callLater(idle, self.finish_connection)
        self._drain_data(rest)

    def _drain_data(self, data: bytes) -> None:
        self._drained += len(data)
        if self._drain_left is not None:
            self._drain_left -= len(data)
        if (self._drain_left is not None and self._drain_left <= 0) or (
            self._drained > self.server.config.drain_bytes
        ):
            self.finish_connection()
        elif data and self._idle is not None and self._idle.active():
            self._idle.reset(DRAIN_IDLE_SECONDS if self._drain_left is None
                             else self.server.config.body_idle_timeout)

    def log_request(self) -> None:
        """Counters only: scheme, route and status. Never the client's address, the
        URL (it may carry a token or a file name) or the META."""
        status = getattr(self, "status", None)
        if status is None:
            return
        self.server.count_response(self.scheme, self._route_name(), status)

    def _route_name(self) -> str:
        url = getattr(self, "url", None)
        if not url:
            return "-"
        path = urllib.parse.urlparse(url).path.rstrip("/") or "/"
        return path if path in self.app.known_paths else "(other)"

    # --- helpers -----------------------------------------------------------------------

    def _cancel_timers(self) -> None:
        for call in (self._idle, self._deadline):
            if call is not None and call.active():
                call.cancel()
        self._idle = self._deadline = None

    def _release(self) -> None:
        if self._reserved:
            self.server.budget.release(self._reserved)
            self._reserved = 0


def _mb(n: int) -> str:
    if n < 1_000_000:
        return f"{n / 1000:.0f} KB" if n >= 1000 else f"{n} bytes"
    return f"{n / 1_000_000:.0f} MB" if n >= 10_000_000 else f"{n / 1_000_000:.1f} MB"
