"""The ``onionclean`` command: the one place that wires core, capsule and mailgw together.

    onionclean clean FILE... [-o DIR | --in-place]
    onionclean inspect FILE... [--json]
    onionclean capsule --host 127.0.0.1 --port 1965 --hostname NAME --state-dir DIR
    onionclean mailgw --host 127.0.0.1 --port 2525 --domain NAME --relay HOST:PORT
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import core

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2


# --- clean / inspect -------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr for batches (only when stderr is a terminal)."""

    def __init__(self, total: int, stream=sys.stderr) -> None:  # type: ignore[no-untyped-def]
        self.total, self.done, self.stream = total, 0, stream
        self.enabled = total > 1 and stream.isatty()

    def step(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = width * self.done // self.total
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r[{bar}] {self.done}/{self.total}")
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


class TimeLimitExceeded(BaseException):
    """One file took longer than ``--timeout`` seconds.

    A BaseException (like KeyboardInterrupt) so that the core's fail-closed
    ``except Exception`` does not turn it into "the image is damaged".
    """


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the work on one file after ``seconds`` (SIGALRM; main thread only)."""

    def expired(signum: int, frame: object) -> None:
        raise TimeLimitExceeded(f"gave up after {seconds:g} s (--timeout)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _policy_from_args(args: argparse.Namespace) -> core.Policy:
    return core.Policy(
        orientation=core.Orientation(args.orientation),
        keep_icc=args.keep_icc,
        max_bytes=int(args.max_mb * 1_000_000),
    )


def _read_limited(path: Path, limit: int) -> bytes:
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise core.TooLarge(f"this file is over the limit of {limit / 1e6:.0f} MB")
    return data


def _write_atomically(target: Path, data: bytes) -> None:
    """Write to a temporary file beside ``target``, fsync, then rename over it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        except FileNotFoundError:
            pass
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _output_path(src: Path, cleaned: core.Cleaned, out_dir: Path | None, in_place: bool) -> Path:
    if in_place:
        return src
    name = src.stem + cleaned.extension
    if out_dir is not None:
        return out_dir / name
    return src.with_name(f"{src.stem}.clean{cleaned.extension}")


def cmd_clean(args: argparse.Namespace) -> int:
    policy = _policy_from_args(args)
    out_dir: Path | None = args.output
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(len(args.files))
    failures = 0
    for src in args.files:
        try:
            with time_limit(args.timeout):
                cleaned = core.clean(_read_limited(src, policy.max_bytes), policy)
            target = _output_path(src, cleaned, out_dir, args.in_place)
            if not args.in_place and target.exists():
                raise FileExistsError(f"{target} exists; not overwriting it")
            _write_atomically(target, cleaned.data)
            if not args.quiet:
                n = len(cleaned.report.removed)
                print(f"{src}: cleaned -> {target} ({n} piece(s) of metadata removed)")
        except (core.CleanError, OSError, TimeLimitExceeded) as e:
            failures += 1
            print(f"{src}: not cleaned: {e}", file=sys.stderr)
        progress.step()
    return EXIT_OK if failures == 0 else EXIT_SOME_FAILED


def cmd_inspect(args: argparse.Namespace) -> int:
    progress = Progress(len(args.files))
    failures = 0
    results = []
    for src in args.files:
        try:
            with time_limit(args.timeout):
                report = core.inspect(_read_limited(src, int(args.max_mb * 1_000_000)))
            if args.json:
                results.append({"file": str(src), "report": report.to_dict()})
            else:
                print(f"== {src}")
                print(report.text())
                print()
        except (core.CleanError, OSError, TimeLimitExceeded) as e:
            failures += 1
            if args.json:
                results.append({"file": str(src), "error": str(e)})
            else:
                print(f"{src}: cannot inspect: {e}", file=sys.stderr)
        progress.step()
    if args.json:
        json.dump(results, sys.stdout, indent=2, default=str)
        print()
    return EXIT_OK if failures == 0 else EXIT_SOME_FAILED


def _add_core_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("clean", help="remove all metadata from photos")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", type=Path, metavar="DIR",
                       help="write each cleaned file into DIR")
    where.add_argument("--in-place", action="store_true",
                       help="replace each file atomically (untouched on any failure)")
    p.add_argument("--orientation", choices=[o.value for o in core.Orientation],
                   default=core.Orientation.KEEP.value,
                   help="keep the orientation tag (default), bake it into the pixels, or drop it")
    p.add_argument("--keep-icc", action="store_true", help="keep colour profiles")
    p.add_argument("--max-mb", type=float, default=50.0, help="largest input (default 50 MB)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds allowed per file (default 300)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("inspect", help="show what photos give away")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--max-mb", type=float, default=50.0)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per file")
    p.set_defaults(func=cmd_inspect)


# --- capsule (Gemini/Titan) ------------------------------------------------------------


def cmd_capsule(args: argparse.Namespace) -> int:
    from capsule import CapsuleConfig, run

    token = args.token if args.token is not None else os.environ.get("ONIONCLEAN_CAPSULE_TOKEN")
    try:
        config = CapsuleConfig(
            host=args.host,
            port=args.port,
            hostname=args.hostname,
            state_dir=args.state_dir,
            public_port=args.public_port,
            max_upload_bytes=int(args.max_upload_mb * 1_000_000),
            max_inflight_bytes=max(
                int(args.max_inflight_mb * 1_000_000), int(args.max_upload_mb * 1_000_000)
            ),
            token=token or None,
            workers=args.workers,
            max_connections=args.max_connections,
            request_timeout=args.request_timeout,
            body_idle_timeout=args.body_idle_timeout,
            body_deadline=args.body_deadline,
        )
    except ValueError as e:
        print(f"onionclean capsule: {e}", file=sys.stderr)
        return EXIT_USAGE
    run(config)
    return EXIT_OK


def _add_capsule_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("capsule", help="run the Gemini capsule (Titan uploads) alone")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=1965, help="port to listen on (1965)")
    p.add_argument("--hostname", default="localhost",
                   help="the capsule's host name in URLs and its certificate (e.g. the .onion)")
    p.add_argument("--state-dir", type=Path, default=Path("capsule-state"),
                   help="where the TLS key and certificate are kept (nothing else is)")
    p.add_argument("--public-port", type=int, default=None,
                   help="port people use in URLs, if not --port (e.g. the onion's port)")
    p.add_argument("--token", default=None,
                   help="refuse uploads without this Titan token (or set"
                        " ONIONCLEAN_CAPSULE_TOKEN, which `ps` does not show)")
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest upload (25 MB)")
    p.add_argument("--max-inflight-mb", type=float, default=200.0,
                   help="uploads held in memory at once, in MB (200); beyond: 44 SLOW DOWN")
    p.add_argument("--workers", type=int, default=2, help="cleaning threads (2)")
    p.add_argument("--max-connections", type=int, default=256, help="open connections (256)")
    p.add_argument("--request-timeout", type=float, default=10.0,
                   help="seconds for the request line (10)")
    p.add_argument("--body-idle-timeout", type=float, default=30.0,
                   help="seconds without an upload byte before giving up (30)")
    p.add_argument("--body-deadline", type=float, default=600.0,
                   help="seconds for a whole upload (600)")
    p.set_defaults(func=cmd_capsule)


def cmd_upload(args: argparse.Namespace) -> int:
    import mimetypes

    from capsule.client import TitanClientError, upload

    socks = None
    if args.socks:
        host, _, port = args.socks.rpartition(":")
        socks = (host or "127.0.0.1", int(port))
    try:
        data = _read_limited(args.file, int(args.max_mb * 1_000_000))
        answer = upload(args.url, data, action="inspect" if args.inspect else "clean",
                        mime=mimetypes.guess_type(args.file.name)[0], token=args.token,
                        socks=socks, pin=args.pin, timeout=args.timeout)
    except (TitanClientError, OSError, core.CleanError, ValueError) as e:
        print(f"onionclean upload: {e}", file=sys.stderr)
        return EXIT_SOME_FAILED
    print(f"certificate {answer.fingerprint}", file=sys.stderr)
    if answer.status // 10 != 2:
        print(f"{answer.status} {answer.meta}", file=sys.stderr)
        return EXIT_SOME_FAILED
    if args.inspect:
        sys.stdout.write(answer.body.decode("utf-8", "replace"))
        return EXIT_OK
    ext = mimetypes.guess_extension(answer.meta.split(";")[0].strip()) or ".img"
    target = args.output or args.file.with_name(f"{args.file.stem}.clean{ext}")
    if target.exists():
        print(f"onionclean upload: {target} exists; not overwriting it", file=sys.stderr)
        return EXIT_SOME_FAILED
    _write_atomically(target, answer.body)
    print(f"{args.file}: cleaned by the capsule -> {target}")
    return EXIT_OK


def _add_upload_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upload", help="send a photo to a capsule with Titan (smoke test)")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("url", nargs="?", default="gemini://localhost:1965/", metavar="URL",
                   help="the capsule (gemini://HOST[:PORT]/ or a titan:// URL)")
    p.add_argument("-o", "--output", type=Path, metavar="OUT", help="where to write the result")
    p.add_argument("--inspect", action="store_true", help="ask what the photo gives away")
    p.add_argument("--token", help="the capsule's upload token, if it has one")
    p.add_argument("--socks", metavar="HOST:PORT", help="SOCKS5 proxy (Tor: 127.0.0.1:9050)")
    p.add_argument("--pin", metavar="SHA256", help="require this certificate fingerprint")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--max-mb", type=float, default=50.0)
    p.set_defaults(func=cmd_upload)


# --- mailgw (SMTP) ---------------------------------------------------------------------


def _mailgw_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    import mailgw

    relay_host, relay_port = (None, 25)
    if args.relay:
        relay_host, relay_port = mailgw.parse_host_port(args.relay, 25)
    socks_host, socks_port = (None, 9050)
    if args.socks:
        socks_host, socks_port = mailgw.parse_host_port(args.socks, 9050)
    starttls = {"auto": None, "require": True, "off": False}[args.relay_starttls]
    return mailgw.GatewayConfig(
        host=args.host, port=args.port, domains=tuple(args.domain or ["localhost"]),
        local_part=args.local_part, hostname=args.hostname,
        relay_host=relay_host, relay_port=relay_port, relay_starttls=starttls,
        relay_verify_tls=not args.relay_no_verify, relay_ca_file=args.relay_ca,
        relay_username=args.relay_user,
        relay_password=os.environ.get("ONIONCLEAN_RELAY_PASSWORD") if args.relay_user else None,
        socks_host=socks_host, socks_port=socks_port,
        max_message_bytes=int(args.max_message_mb * 1_000_000),
        max_recipients=args.max_recipients, max_connections=args.max_connections,
        max_inflight=args.max_inflight,
        clean_workers=args.workers or max(1, os.cpu_count() or 1),
        per_sender_per_hour=args.per_sender_per_hour,
        global_per_minute=args.global_per_minute,
        idle_timeout=args.idle_timeout, processing_timeout=args.processing_timeout,
    )


def cmd_mailgw(args: argparse.Namespace) -> int:
    import logging

    import mailgw

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = _mailgw_config(args)
    except ValueError as e:
        print(f"onionclean mailgw: {e}", file=sys.stderr)
        return EXIT_USAGE
    return mailgw.run(config)


def _add_mailgw_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mailgw", help="run the SMTP gateway: mail photos to clean@DOMAIN")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=2525, help="listen port (default 2525)")
    p.add_argument("--domain", action="append", metavar="NAME",
                   help="accept mail for clean@NAME (repeatable; the first names the service)")
    p.add_argument("--local-part", default="clean", help="the mailbox name (default clean)")
    p.add_argument("--hostname", help="name in the greeting and Message-IDs (default: domain)")
    p.add_argument("--relay", metavar="HOST:PORT",
                   help="smarthost for the replies; without it every mail is answered 451")
    p.add_argument("--relay-starttls", choices=["auto", "require", "off"], default="auto")
    p.add_argument("--relay-no-verify", action="store_true",
                   help="do not verify the relay's TLS certificate")
    p.add_argument("--relay-ca", metavar="PEM", help="CA bundle for the relay's certificate")
    p.add_argument("--relay-user", help="relay login (password from $ONIONCLEAN_RELAY_PASSWORD)")
    p.add_argument("--socks", metavar="HOST:PORT",
                   help="Tor SOCKS5 port: replies to .onion senders go directly through it")
    p.add_argument("--max-message-mb", type=float, default=25.0, help="default 25 MB")
    p.add_argument("--max-recipients", type=int, default=5)
    p.add_argument("--max-connections", type=int, default=20)
    p.add_argument("--max-inflight", type=int, default=4,
                   help="messages cleaned at once (bounds memory; default 4)")
    p.add_argument("--workers", type=int, default=0, help="cleaning threads (default: cores)")
    p.add_argument("--per-sender-per-hour", type=int, default=30)
    p.add_argument("--global-per-minute", type=int, default=120)
    p.add_argument("--idle-timeout", type=float, default=120.0, help="seconds")
    p.add_argument("--processing-timeout", type=float, default=120.0, help="seconds")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"],
                   help="logs carry counters only, at every level")
    p.set_defaults(func=cmd_mailgw)


# --- serve (both, optionally behind Tor) ----------------------------------------------


def _add_serve_command(sub: argparse._SubParsersAction) -> None:
    import onionclean_serve

    p = sub.add_parser("serve", help="run the capsule and the mail gateway (optionally on Tor)")
    onionclean_serve.add_arguments(p)
    p.set_defaults(func=onionclean_serve.serve)


# --- main ------------------------------------------------------------------------------

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_core_commands,
    _add_capsule_command,
    _add_mailgw_command,
    _add_serve_command,
    _add_upload_command,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onionclean", description="Remove every piece of metadata from photos."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
