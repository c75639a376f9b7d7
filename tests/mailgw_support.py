"""Real parts for the mail gateway tests: the gateway process, swaks, relays, Postfix.

- :class:`GatewayProcess` runs ``onionclean mailgw`` (the real CLI) as a child
  process with its own empty cwd/HOME/TMPDIR, captures its log (stderr) at
  DEBUG level, and stops it by pid.
- :func:`swaks` sends with the real swaks client and parses the server's replies.
- :class:`SinkRelay` is a second aiosmtpd acting as the smarthost; it keeps what
  it accepted, can be stopped and started again on the same port.
- :class:`Postfix` is Debian's Postfix started with a throwaway config dir on a
  loopback port, delivering into a Maildir the test reads.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


# --- the gateway -------------------------------------------------------------------------


class GatewayProcess:
    """``onionclean mailgw`` in a child process; log = its stderr (DEBUG level)."""

    def __init__(self, workdir: Path, *args: str, relay_port: int | None = None,
                 domain: str = "test.onion", port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.domain = domain
        self.address = f"clean@{domain}"
        for sub in ("cwd", "home", "tmp"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "gateway.log"
        cmd = [sys.executable, "-m", "onionclean_cli", "mailgw", "--host", "127.0.0.1",
               "--port", str(self.port), "--domain", domain, "--log-level", "debug", *args]
        if relay_port is not None:
            cmd += ["--relay", f"127.0.0.1:{relay_port}"]
        env = dict(os.environ, HOME=str(workdir / "home"), TMPDIR=str(workdir / "tmp"),
                   PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1", **(env or {}))
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=workdir / "cwd", env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        try:
            wait_port(self.port)
            self._say_goodbye()
        except (TimeoutError, OSError):
            self.stop()
            raise RuntimeError("the gateway did not start:\n" + self.log()) from None

    def _say_goodbye(self) -> None:
        """One polite session (220, QUIT, 221, close), so that no half-closed probe
        connection still counts against a small connection limit when tests begin."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as c:
            c.sendall(b"QUIT\r\n")
            while c.recv(512):
                pass
        time.sleep(0.05)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def files_written(self) -> list[Path]:
        """Everything the gateway created in its cwd, HOME and TMPDIR (should be none)."""
        return [p for sub in ("cwd", "home", "tmp") for p in (self.workdir / sub).rglob("*")]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


# --- swaks -------------------------------------------------------------------------------

_REPLY = re.compile(r"^(?:<-|<\*\*|<~\*?)\s+(\d{3}) (.*)$")


@dataclass
class SwaksResult:
    """The last line of each server reply, in order, and swaks' own output."""

    returncode: int
    replies: list[str] = field(default_factory=list)
    output: str = ""

    def after(self, code_prefix: str) -> str:
        """The reply following the first reply starting with ``code_prefix`` ('354')."""
        for i, r in enumerate(self.replies):
            if r.startswith(code_prefix) and i + 1 < len(self.replies):
                return self.replies[i + 1]
        return ""

    @property
    def data_reply(self) -> str:
        """The answer to the end of DATA (after 354)."""
        return self.after("354")


def swaks(port: int, *, sender: str = "alice@example.org", to: str = "clean@test.onion",
          data: bytes | None = None, tmp: Path | None = None, extra: tuple[str, ...] = (),
          timeout: float = 120) -> SwaksResult:
    """Send one message with swaks; ``data`` (a whole RFC 5322 message) via ``--data FILE``."""
    cmd = ["swaks", "--server", f"127.0.0.1:{port}", "--from", sender, "--to", to,
           "--helo", "client.example", "--timeout", "100", *extra]
    if data is not None:
        assert tmp is not None
        path = tmp / f"mail-{time.monotonic_ns()}.eml"
        path.write_bytes(data)
        cmd += ["--data", f"@{path}"]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    replies = []
    for line in out.splitlines():
        m = _REPLY.match(line)
        if m:
            replies.append(f"{m.group(1)} {m.group(2)}")
    return SwaksResult(proc.returncode, replies, out)


# --- MIME builders (the sender's side) ---------------------------------------------------


def mail(subject: str = "holiday pictures", sender: str = "alice@example.org",
         to: str = "clean@test.onion", text: str = "Please clean these.",
         headers: dict[str, str] | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<orig-1234@example.org>"
    msg["User-Agent"] = "SecretMailer/9.9 (on the kitchen laptop)"
    msg["Received"] = "from [203.0.113.77] by mx.example.org"
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(text)
    return msg


def attach(msg: EmailMessage, data: bytes, filename: str | None,
           ctype: str = "application/octet-stream") -> None:
    maintype, _, subtype = ctype.partition("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)


def with_inline_image(msg: EmailMessage, data: bytes, cid: str) -> None:
    """Turn ``msg`` (text only so far) into text + HTML with an inline image (Content-ID)."""
    msg.add_alternative(f'<p>Look:</p><img src="cid:{cid[1:-1]}">', subtype="html")
    html = msg.get_payload()[1]
    html.add_related(data, "image", "jpeg", cid=cid)


def to_bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=email_policy.SMTP)


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=email_policy.default).parsebytes(raw)  # type: ignore[return-value]


def reply_attachments(msg: EmailMessage) -> dict[str, bytes]:
    return {p.get_filename(): p.get_payload(decode=True) for p in msg.iter_attachments()}


# --- relays ------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool = False


class _SinkHandler:
    def __init__(self, sink: SinkRelay) -> None:
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.sink.refuse:
            return self.sink.refuse
        self.sink.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                     tls=session.ssl is not None))
        return "250 2.0.0 OK: queued"


class SinkRelay:
    """A second aiosmtpd (threaded Controller: it lives in the test process) as smarthost."""

    def __init__(self, port: int | None = None, tls_context: ssl.SSLContext | None = None,
                 login: tuple[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self.refuse: str | None = None
        self.controller: Controller | None = None
        self.tls_context = tls_context
        self.login = login  # (user, password) the relay requires (AUTH after STARTTLS)
        self.logins: list[str] = []

    def start(self) -> SinkRelay:
        auth: dict[str, object] = {}
        if self.login is not None:
            auth = {"auth_required": True, "authenticator": self._authenticate}
        self.controller = Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port,
                                     data_size_limit=100_000_000, tls_context=self.tls_context,
                                     require_starttls=self.tls_context is not None, **auth)
        self.controller.start()
        return self

    def _authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (isinstance(auth_data, LoginPassword) and self.login is not None
              and (auth_data.login.decode(), auth_data.password.decode()) == self.login)
        if ok:
            self.logins.append(mechanism)
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def wait_for(self, n: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received


class Postfix:
    """Debian's Postfix on 127.0.0.1:PORT, throwaway config/queue, Maildir for example.org."""

    def __init__(self, base: Path, domain: str = "example.org",
                 transports: dict[str, int] | None = None) -> None:
        """``transports``: domain -> loopback port Postfix forwards that domain's mail to
        (Postfix then plays the sender's MTA for it)."""
        if os.geteuid() != 0:
            raise RuntimeError("a throwaway Postfix (postfix -c DIR start) needs root: run the"
                               " tests as root, as CI does")
        self.base = base
        self.port = free_port()
        transport_maps = ", ".join(f"{d}=smtp:[127.0.0.1]:{p}"
                                   for d, p in (transports or {}).items())
        self.conf = base / "conf"
        self.maildir = base / "mail" / "inbox"
        for d in ("conf", "queue", "data", "mail"):
            (base / d).mkdir(parents=True, exist_ok=True)
        uid, gid = _postfix_ids()
        for d in ("data", "mail"):
            os.chown(base / d, uid, gid)
        (self.conf / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
mail_owner = postfix
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.test
mydomain = relay.test
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
local_recipient_maps =
alias_maps =
alias_database =
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {base}/mail
virtual_mailbox_maps = static:inbox/
virtual_minimum_uid = {min(uid, 100)}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_mailbox_limit = 0
message_size_limit = 100000000
maillog_file = {base}/maillog
maillog_file_prefixes = {base}
smtpd_banner = $myhostname ESMTP
biff = no
transport_maps = {"inline:{ " + transport_maps + " }" if transport_maps else ""}
relay_domains = {", ".join(transports or {})}
# retry deferred mail within seconds (defaults: 300 s and more), as a test can wait
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
""")
        (self.conf / "master.cf").write_text(f"""\
127.0.0.1:{self.port} inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
""")

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        # Postfix reports to syslog unless stderr is a terminal: run it under script(1)
        # so that a failure message reaches the test output.
        cmd = " ".join(["postfix", "-c", str(self.conf), *args])
        return subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                              timeout=60, check=False)

    def start(self) -> Postfix:
        proc = self._postfix("start")
        if proc.returncode != 0:
            raise RuntimeError("postfix did not start: " + proc.stdout.decode(errors="replace"))
        wait_port(self.port)
        return self

    def master_pid(self) -> int | None:
        try:
            return int((self.base / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.master_pid()
        self._postfix("stop")
        if pid is not None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _pid_alive(pid):
                time.sleep(0.1)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)

    def log(self) -> str:
        path = self.base / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def messages(self) -> list[bytes]:
        new = self.maildir / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.is_dir() else []

    def wait_for(self, n: int, timeout: float = 30) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.messages()
            if len(msgs) >= n:
                return msgs
            time.sleep(0.1)
        log = (self.base / "maillog").read_text(errors="replace")[-3000:] \
            if (self.base / "maillog").exists() else ""
        raise TimeoutError(f"Postfix delivered {len(self.messages())} of {n}; log:\n{log}")


def _postfix_ids() -> tuple[int, int]:
    import pwd

    pw = pwd.getpwnam("postfix")
    return pw.pw_uid, pw.pw_gid


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def have(program: str) -> bool:
    return shutil.which(program) is not None


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 and the PEM file a client trusts it by."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = directory / "relay-cert.pem"
    key_pem = directory / "relay-key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_pem, key_pem)
    return ctx, cert_pem
