"""A small Titan client: ``onionclean upload FILE [URL]`` (operators' smoke test).

Titan (the Titan specification, transjovian.org): the request line is
``titan://host[:port]/path;size=N;mime=TYPE[;token=T]`` followed by CRLF and
exactly N bytes of body, over TLS like Gemini; the answer is a Gemini response
header ``<STATUS> <META>\\r\\n`` (Gemini spec section 3.1) and, for status 20,
the body. Gemini servers use self-signed certificates (TOFU, section 4.2): this
client does not check a CA but prints the certificate's SHA-256 fingerprint and,
given ``--pin``, refuses any other. With ``--socks`` it connects through a
SOCKS5 proxy with remote name resolution (Tor's SocksPort, for .onion capsules).

No Twisted here: plain sockets, so the client works anywhere.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

#: Largest response header (Gemini spec: <META> is at most 1024 bytes).
MAX_HEADER = 1029 + 2
#: Largest body accepted back (a cleaned photo is never much larger than the upload).
MAX_BODY = 200_000_000


class TitanClientError(Exception):
    """The upload could not be made; ``str()`` says why."""


@dataclass(frozen=True)
class TitanResponse:
    status: int
    meta: str
    body: bytes
    fingerprint: str  # SHA-256 of the server's certificate (hex, colon-separated)


def titan_url(url: str, action: str = "clean") -> tuple[str, str, int, str]:
    """``(titan_url_without_params, host, port, path)`` from a gemini:// or titan:// URL.

    A capsule's home URL (``gemini://host/``) is turned into ``titan://host/<action>``.
    """
    parts = urlsplit(url if "://" in url else f"titan://{url}")
    if parts.scheme not in ("gemini", "titan") or not parts.hostname:
        raise TitanClientError(f"{url!r} is not a gemini:// or titan:// URL")
    path = parts.path if parts.scheme == "titan" and parts.path not in ("", "/") else f"/{action}"
    port = parts.port or 1965
    netloc = parts.hostname if port == 1965 else f"{parts.hostname}:{port}"
    return f"titan://{netloc}{path}", parts.hostname, port, path


def request_line(base: str, size: int, mime: str | None, token: str | None) -> bytes:
    """``<base>;size=N[;mime=M][;token=T]\\r\\n`` (Titan spec: parameters after the path)."""
    line = f"{base};size={size}"
    if mime:
        line += f";mime={quote(mime, safe='/+.-')}"
    if token:
        line += f";token={quote(token, safe='')}"
    raw = (line + "\r\n").encode("utf-8")
    if len(raw) > 1026:
        raise TitanClientError("the request line would be over 1024 bytes")
    return raw


def _connect(host: str, port: int, socks: tuple[str, int] | None, timeout: float) -> socket.socket:
    if socks is None:
        return socket.create_connection((host, port), timeout=timeout)
    from python_socks.sync import Proxy

    proxy = Proxy.from_url(f"socks5://{socks[0]}:{socks[1]}", rdns=True)
    sock = proxy.connect(dest_host=host, dest_port=port, timeout=timeout)
    sock.settimeout(timeout)
    return sock


def upload(url: str, data: bytes, *, action: str = "clean", mime: str | None = None,
           token: str | None = None, socks: tuple[str, int] | None = None,
           pin: str | None = None, timeout: float = 120.0,
           connect: tuple[str, int] | None = None) -> TitanResponse:
    """Send ``data`` with Titan and return the capsule's answer.

    ``connect`` reaches the capsule at another address than the URL's (like
    curl's ``--resolve``): the request line still names the URL's host.
    """
    base, host, port, _ = titan_url(url, action)
    line = request_line(base, len(data), mime, token)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # TOFU: checked against --pin below, not a CA
    try:
        raw = _connect(*(connect or (host, port)), socks, timeout)
    except OSError as e:
        raise TitanClientError(f"cannot connect to {host}:{port}: {e}") from e
    with raw, ctx.wrap_socket(raw, server_hostname=host) as tls:
        cert = tls.getpeercert(binary_form=True) or b""
        digest = hashlib.sha256(cert).hexdigest()
        fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
        if pin and pin.replace(":", "").lower() != digest:
            raise TitanClientError(f"the capsule's certificate {fingerprint} is not the pinned one")
        try:
            tls.sendall(line + data)
        except OSError:
            pass  # the capsule may answer early (too large, bad token): read its answer
        buf = b""
        while b"\r\n" not in buf:
            chunk = tls.recv(4096)
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_HEADER and b"\r\n" not in buf:
                raise TitanClientError("the answer's header is over 1024 bytes")
        header, sep, body = buf.partition(b"\r\n")
        if not sep:
            raise TitanClientError("the capsule closed the connection without an answer")
        status_text, _, meta = header.decode("utf-8", "replace").partition(" ")
        if not (len(status_text) == 2 and status_text.isdigit()):
            raise TitanClientError(f"not a Gemini answer: {header[:80]!r}")
        status = int(status_text)
        chunks = [body]
        total = len(body)
        if status // 10 == 2:
            while chunk := tls.recv(65536):
                total += len(chunk)
                if total > MAX_BODY:
                    raise TitanClientError("the answer is larger than any cleaned photo")
                chunks.append(chunk)
    return TitanResponse(status, meta.strip(), b"".join(chunks), fingerprint)
