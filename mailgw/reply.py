"""The automatic reply (RFC 3834): the cleaned photos and what each one was giving away.

RFC 3834 section 3.1: the reply goes to the envelope sender (Return-Path);
section 3.1.7: ``Auto-Submitted: auto-replied``; section 3.1.5: ``Subject``
prefixed; sections 3.1.3/3.1.4: ``In-Reply-To`` and ``References`` (RFC 5322
section 3.6.4). The reply carries nothing of the incoming mail's headers (no
Received, no client addresses, no User-Agent) and does not quote it; its
Message-ID is random on the service's host name and its Date is in UTC.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from mailgw.mime import Attachment, IncomingMail

SERVICE_NAME = "onionclean"
FOOTER = (
    "Nothing you sent is kept: this gateway held your mail only while it answered,\n"
    "wrote nothing to disk and logged no names, addresses or subjects."
)


@dataclass
class Outcome:
    """One attachment's fate: cleaned bytes and report text, or the reason it was refused."""

    attachment: Attachment
    data: bytes | None = None
    media_type: str = ""
    extension: str = ""
    report_text: str = ""
    error: str = ""
    not_an_image: bool = False


def new_message_id(hostname: str) -> str:
    """A fresh Message-ID on the service's host name (random; no pid, no time)."""
    return f"<{secrets.token_hex(16)}@{hostname}>"


def _unique_names(outcomes: list[Outcome]) -> dict[int, str]:
    """File names for the cleaned copies: original stem + the output's extension, unique."""
    names: dict[int, str] = {}
    seen: set[str] = set()
    for o in outcomes:
        if o.data is None:
            continue
        stem = o.attachment.stem or f"photo-{o.attachment.index}"
        name, n = f"{stem}{o.extension}", 2
        while name.lower() in seen:
            name, n = f"{stem}-{n}{o.extension}", n + 1
        seen.add(name.lower())
        names[o.attachment.index] = name
    return names


def _indent(text: str, prefix: str = "   ") -> str:
    return "\n".join(prefix + line if line else "" for line in text.splitlines())


def body_text(outcomes: list[Outcome], names: dict[int, str], over_limit: int) -> str:
    """The plain-language body: one section per attachment, then the footer."""
    lines: list[str] = ["Hello,", ""]
    cleaned = [o for o in outcomes if o.data is not None]
    if not outcomes:
        lines += [
            "Your mail reached the onionclean gateway, but it carried no attachment.",
            "Attach the photos you want cleaned (as files or inline pictures) and send",
            "the mail again: you will get them back without their hidden metadata.",
        ]
    elif not cleaned and all(o.not_an_image for o in outcomes):
        lines += ["Your mail carried no photo onionclean can clean:", ""]
    elif cleaned:
        lines += [
            f"Here {'is your photo' if len(cleaned) == 1 else 'are your photos'}, cleaned"
            " (attached). This is what each file was giving away:",
            "",
        ]
    else:
        lines += ["None of your files could be cleaned:", ""]
    for n, o in enumerate(outcomes, 1):
        label = o.attachment.label
        if o.data is not None:
            lines.append(f"{n}. {label}: cleaned, attached as {names[o.attachment.index]}")
            lines.append(_indent(o.report_text))
        else:
            lines.append(f"{n}. {label}: not cleaned, not attached. {o.error}")
        lines.append("")
    if over_limit:
        lines.append(
            f"{over_limit} more attachment(s) were not looked at: one mail may carry at most"
            f" {len(outcomes)}. Send them in another mail."
        )
        lines.append("")
    lines += ["-- ", FOOTER]
    return "\n".join(lines) + "\n"


def build_reply(mail: IncomingMail, outcomes: list[Outcome], *, from_address: str,
                to_address: str, hostname: str,
                placeholders: dict[bytes, bytes] | None = None) -> EmailMessage:
    """The reply message (RFC 5322 + MIME), ready for :func:`serialize`.

    With ``placeholders`` (see :func:`render_reply`), each attachment's body is a
    random token and the token -> image bytes pairs are put in the dict.
    """
    msg = EmailMessage(policy=email_policy.SMTP)
    local, _, domain = from_address.partition("@")
    msg["From"] = Address(SERVICE_NAME, local, domain)
    msg["To"] = to_address
    subject = mail.subject or "your photos"
    msg["Subject"] = f"Cleaned: {subject}"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = new_message_id(hostname)
    if mail.message_id:
        msg["In-Reply-To"] = mail.message_id
        msg["References"] = " ".join([*mail.references, mail.message_id])
    msg["Auto-Submitted"] = "auto-replied"
    names = _unique_names(outcomes)
    msg.set_content(body_text(outcomes, names, mail.over_limit), cte="quoted-printable")
    for o in outcomes:
        if o.data is None:
            continue
        maintype, _, subtype = o.media_type.partition("/")
        if placeholders is None:
            msg.add_attachment(o.data, maintype=maintype, subtype=subtype,
                               filename=names[o.attachment.index])
            continue
        token = f"onionclean-payload-{secrets.token_hex(16)}"
        msg.add_attachment(b"", maintype=maintype, subtype=subtype,
                           filename=names[o.attachment.index])
        msg.get_payload()[-1].set_payload(token)
        placeholders[token.encode("ascii")] = o.data
    return msg


def serialize(msg: EmailMessage) -> bytes:
    """CRLF line endings, lines within RFC 5322's 998 octets (base64 attachments)."""
    return msg.as_bytes(policy=email_policy.SMTP)


def render_reply(mail: IncomingMail, outcomes: list[Outcome], **kw: str) -> bytes:
    """:func:`build_reply` + :func:`serialize`, with the images' base64 done in C.

    The email package encodes and re-splits a 5 MB attachment line by line in
    Python (~0.2 s); here each attachment's body is a random token while the
    package writes the message, then the token is replaced by the base64 text
    (RFC 2045 section 6.8: 76-character lines, CRLF) made by ``base64.encodebytes``.
    """
    placeholders: dict[bytes, bytes] = {}
    raw = serialize(build_reply(mail, outcomes, placeholders=placeholders, **kw))
    for token, data in placeholders.items():
        encoded = base64.encodebytes(data).replace(b"\n", b"\r\n").rstrip(b"\r\n")
        raw = raw.replace(token, encoded, 1)
    return raw
