"""The exact bytes real Titan clients send, replayed over real TLS.

No Titan client installs from this machine's registries, so each function
below reproduces one client's request from its source code: the order of
the parameters, how ``mime`` and ``token`` are written, whether the port stays
in the URL, how the body is written, and how the client closes.

- Lagrange, ``src/gmrequest.c`` (skyjake/lagrange), in ``submit_GmRequest``:
  ``printf_Block(&content, "%s;mime=%s;size=%zu", url, mime, size)``, then
  ``";token=" + urlEncode(token)`` when a token is given, ``"\\r\\n"``, then the
  data appended to the same block; the whole block is one ``TlsRequest``
  content (written back to back), and the response is read until the server
  closes. A zero-byte upload is ``"%s;mime=application/octet-stream;size=0\\r\\n"``.
- gmid's ``titan`` (omar-polo/gmid, ``titan.c``): the path gets
  ``";size=%lld;token=%s;mime=%s"`` (size, token, mime in that order; token and
  mime only when given), and ``serialize_iri`` writes
  ``scheme "://" host "/" path ["?" query]``: the PORT IS DROPPED. The request
  line is one write, then the file goes in ``BUFSIZ`` (8192 on glibc) chunks;
  between chunks it polls for a reply and stops sending as soon as one
  arrives. It reads at most 1024 bytes of reply, needs the CRLF in them, then
  ``tls_close`` (close_notify). Exit status: 0 for 2x and 3x (printing the
  redirect target for 3x, nothing for 2x), 2 for any other status.
- Phoebe's ``titan`` script (App::Phoebe, Alex Schroeder): ``URL;size=N;mime=M;
  token=T`` with an empty ``token=`` when none, request line and data in one
  write. (Its source is not in our search index; this follows the capture
  described in issue 3 and the Titan spec's own examples.)
- gplaces (Dima Krasner), ``titan_request``: ``"%s;mime=%s;size=%zu\\r\\n"`` or
  ``"%s;mime=%s;size=%zu;token=%s\\r\\n"``, one ``SSL_write`` for the request
  line, a second ``SSL_write`` for the whole body.
"""

from __future__ import annotations

import select
import socket
import ssl
import urllib.parse
from dataclasses import dataclass

GMID_BUFSIZ = 8192


@dataclass
class Reply:
    status: int
    meta: str
    body: bytes
    reset: bool = False  # the connection was reset instead of closed cleanly

    @property
    def header(self) -> str:
        return f"{self.status} {self.meta}"


def connect(port: int, host: str = "127.0.0.1", source: str | None = None,
            timeout: float = 60.0, server_name: str = "localhost") -> ssl.SSLSocket:
    """A TLS connection as Gemini clients make it: SNI, no CA check (TOFU)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(
        (host, port), timeout=timeout, source_address=(source, 0) if source else None
    )
    return ctx.wrap_socket(raw, server_hostname=server_name)


def read_until_closed(sock: ssl.SSLSocket) -> tuple[bytes, bool]:
    chunks = []
    reset = False
    while True:
        try:
            data = sock.recv(65536)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            break
        except (ConnectionResetError, BrokenPipeError):
            reset = True
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks), reset


def parse_reply(raw: bytes, reset: bool = False) -> Reply:
    header, sep, body = raw.partition(b"\r\n")
    if not sep:
        raise AssertionError(f"no complete response header (got {raw[:80]!r}, reset={reset})")
    text = header.decode("utf-8")
    code, _, meta = text.partition(" ")
    return Reply(int(code), meta, body, reset)


def exchange(port: int, payload: bytes, **kw) -> Reply:
    """Send ``payload`` in one write, read until the server closes."""
    with connect(port, **kw) as s:
        s.sendall(payload)
        raw, reset = read_until_closed(s)
    return parse_reply(raw, reset)


def gemini_get(port: int, url: str, **kw) -> Reply:
    return exchange(port, f"{url}\r\n".encode(), **kw)


def lagrange_upload(port: int, url: str, data: bytes, mime: str = "image/jpeg",
                    token: str | None = None, **kw) -> Reply:
    """Lagrange: URL;mime=M;size=N[;token=urlencoded]\\r\\n + data, one content block."""
    if data:
        head = f"{url};mime={mime};size={len(data)}"
        if token:
            head += ";token=" + urllib.parse.quote(token, safe="")
    else:
        head = f"{url};mime=application/octet-stream;size=0"
    return exchange(port, head.encode() + b"\r\n" + data, **kw)


def phoebe_titan(port: int, url: str, data: bytes, mime: str = "image/jpeg",
                 token: str | None = None, **kw) -> Reply:
    """Phoebe's titan: URL;size=N;mime=M;token=T (empty token when none), one write."""
    head = f"{url};size={len(data)};mime={mime};token={token or ''}\r\n"
    return exchange(port, head.encode() + data, **kw)


def gplaces_titan(port: int, url: str, data: bytes, mime: str = "image/jpeg",
                  token: str | None = None, **kw) -> Reply:
    """gplaces: request line in one SSL_write, the body in a second one."""
    head = f"{url};mime={mime};size={len(data)}"
    if token:
        head += f";token={token}"
    with connect(port, **kw) as s:
        s.sendall(head.encode() + b"\r\n")
        if data:
            s.sendall(data)
        raw, reset = read_until_closed(s)
    return parse_reply(raw, reset)


def gmid_titan(port: int, host: str, path: str, data: bytes, mime: str | None = None,
               token: str | None = None, **kw) -> tuple[int, Reply]:
    """gmid's titan: titan://HOST/PATH;size=N[;token=T][;mime=M] (no port), 8 KB chunks,
    stop sending once a reply arrives, read <= 1024 bytes, close_notify.

    Returns (exit status as gmid's titan computes it, reply header; body as read).
    """
    params = f";size={len(data)}"
    if token:
        params += f";token={token}"
    if mime:
        params += f";mime={mime}"
    request = f"titan://{host}/{path.lstrip('/')}{params}\r\n".encode()
    with connect(port, **kw) as s:
        s.sendall(request)
        got = b""
        for i in range(0, len(data), GMID_BUFSIZ):
            readable, _, _ = select.select([s], [], [], 0)
            if readable or s.pending():
                # libtls's tls_read returns TLS_WANT_POLLIN when the readable bytes are
                # only TLS records (e.g. TLS 1.3 session tickets): never block here.
                timeout = s.gettimeout()
                s.setblocking(False)
                try:
                    got = s.recv(1025)
                except ssl.SSLWantReadError:
                    got = b""
                finally:
                    s.settimeout(timeout)
                if got:
                    break
            s.sendall(data[i : i + GMID_BUFSIZ])
        if not got:
            got = s.recv(1025)
        try:
            s.unwrap()  # tls_close: send close_notify
        except (ssl.SSLError, OSError):
            pass
    if b"\r\n" not in got:
        raise AssertionError(f"gmid's titan: invalid reply {got[:80]!r}")
    reply = parse_reply(got)
    code = 0 if 20 <= reply.status < 40 else 2
    return code, reply
