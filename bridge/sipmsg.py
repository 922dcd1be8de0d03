"""Pure helpers on SIP text: name-addr parsing, the Via transport, DTMF digits.

No pjsua2 here, so they are testable without a network.
"""

from __future__ import annotations

import re

DTMF_DIGITS = frozenset("0123456789*#ABCD")

# RFC 3261 §25.1: name-addr = [ display-name ] LAQUOT addr-spec RAQUOT
_NAME_ADDR = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]*)>')


def split_name_addr(value: str) -> tuple[str | None, str]:
    """`'"Ann" <sip:ann@h>;tag=1'` → `("Ann", "sip:ann@h")`; a bare addr-spec has no display name."""
    m = _NAME_ADDR.match(value)
    if m is None:
        # addr-spec without brackets: header parameters follow a ';' (RFC 3261 §20.10).
        return None, value.strip().split(";", 1)[0]
    quoted, token, uri = m.groups()
    if quoted is not None:
        name = re.sub(r"\\(.)", r"\1", quoted)
    else:
        name = (token or "").strip()
    return (name or None), uri.strip()


def uri_user(uri: str) -> str:
    """User part of a SIP URI: `sip:+4930123@h;user=phone` → `+4930123`; `""` when there is none."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    if "@" not in rest:
        return ""
    user = rest.split("@", 1)[0]
    return user.split(";", 1)[0].split(":", 1)[0]


def via_transport(message: str) -> str:
    """Transport of the top Via of a SIP message (`udp`, `tcp`, ...); `""` when absent."""
    m = re.search(r"^(?:Via|v)\s*:\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)", message, re.MULTILINE | re.IGNORECASE)
    return m.group(1).lower() if m else ""


def header(message: str, name: str, compact: str | None = None) -> str:
    """First value of a header in a SIP message text (`""` when absent)."""
    names = name if compact is None else f"(?:{name}|{compact})"
    m = re.search(rf"^{names}\s*:\s*(.*?)\r?$", message, re.MULTILINE | re.IGNORECASE)
    return m.group(1).strip() if m else ""


def check_digits(digits: str) -> str:
    """Normalise DTMF digits (upper case) or raise ValueError naming the bad one."""
    out = digits.upper()
    if not out:
        raise ValueError("no DTMF digits given")
    for d in out:
        if d not in DTMF_DIGITS:
            raise ValueError(f"{d!r} in {digits!r} is not a DTMF digit (0-9, *, #, A-D)")
    return out


def content_length_mismatch(message: str) -> bool:
    """Whether a datagram's body is shorter than its Content-Length says.

    RFC 3261 §18.3: over UDP such a message SHOULD be rejected with 400;
    pjsip accepts it with the partial body, so the bridge checks itself.
    """
    head, sep, body = message.partition("\r\n\r\n")
    if not sep:
        return False
    value = header(head, "Content-Length", "l")
    if not value.isdigit():
        return False
    return int(value) > len(body.encode("utf-8", "surrogateescape"))


# RFC 3261 §7.3.1: these take one value; two of them make the request malformed (RFC 4475 §3.1.2.6).
# Full name → compact form.
_SINGLE = {"call-id": "i", "cseq": "", "from": "f", "to": "t", "max-forwards": "", "content-length": "l",
           "content-type": "c"}


def repeated_headers(message: str) -> list[str]:
    """Names of single-value headers that occur more than once in a message's head (compact forms
    count as their full name); `[]` for a well-formed message."""
    head = message.partition("\r\n\r\n")[0]
    compact = {c: name for name, c in _SINGLE.items() if c}
    seen: dict[str, int] = {}
    for line in head.split("\r\n")[1:]:
        if not line or line[0] in " \t":
            continue  # a folded continuation line
        name = line.split(":", 1)[0].strip().lower()
        name = compact.get(name, name)
        if name in _SINGLE:
            seen[name] = seen.get(name, 0) + 1
    return [name for name, n in seen.items() if n > 1]
