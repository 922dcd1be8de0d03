"""What lane 0 does to a message's text when it passes it on: one stateless hop (RFC 3261 §16.6, §16.11).

Pure functions on header lines (no pjsip): bridge/spread.py reads the text
pjsip received, decides where it goes, edits it with these and sends it.
A message is kept as its header lines (folded lines joined) and its body,
untouched.

A **flow** names the connection a caller reached lane 0 on (transport,
address, port: RFC 5626 §5.2's idea of a flow token). Lane 0 keeps none:
it writes the flow into what comes back to it, its own Via on a request
passed to a lane (so the lane's responses find the caller's connection)
and the Record-Route it puts in a TCP or TLS caller's INVITE (so the
lane's requests in the dialog do).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

HEADER = re.compile(r"^([A-Za-z0-9.!%*_+`'~-]+)\s*:\s*(.*)$")
SENT_BY = re.compile(r"^SIP\s*/\s*2\.0\s*/\s*(\w+)\s+(\[[^\]]+\]|[^;:\s]+)(?::(\d+))?", re.IGNORECASE)
FLOW_PARAM = "uflow"
# RFC 3261 §16.6 step 3: a proxy adds Max-Forwards when the request has none, with 70.
DEFAULT_MAX_FORWARDS = 70
KINDS = ("udp", "tcp", "tls")


class HopError(ValueError):
    """A message lane 0 cannot pass on as it is (the text names what is wrong)."""


def split(text: str) -> tuple[list[str], str]:
    """Header lines (folded lines joined) and the body (untouched) of a message."""
    m = re.search(r"\r?\n\r?\n", text)
    head, body = (text[: m.start()], text[m.end():]) if m else (text, "")
    lines: list[str] = []
    for line in re.split(r"\r?\n", head):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines, body


def join(lines: list[str], body: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8", "surrogateescape")


def name_of(line: str) -> tuple[str, str] | None:
    """(lower-case name, value) of a header line; None for a line that is not one."""
    m = HEADER.match(line)
    return (m.group(1).lower(), m.group(2)) if m else None


def param(value: str, name: str) -> str | None:
    """A `;name=value` parameter ("" when it has no value, None when absent)."""
    m = re.search(rf";\s*{name}(?:\s*=\s*([^;,\s>]*))?", value, re.IGNORECASE)
    if m is None:
        return None
    return m.group(1) or ""


def find(lines: list[str], *names: str) -> list[int]:
    """Indexes of the header lines called any of `names` (lower case, compact forms included by the caller)."""
    return [i for i, line in enumerate(lines[1:], 1) if (name_of(line) or ("",))[0] in names]


def drop(lines: list[str], name: str) -> list[str]:
    """The lines without any header called `name`."""
    return [x for x in lines if (name_of(x) or ("",))[0] != name.lower()]


@dataclass(frozen=True)
class Flow:
    """Where a message goes back to: a caller's connection (tcp, tls) or a UDP address."""

    kind: str
    "`udp`, `tcp` or `tls`."
    host: str
    "The IP address (no brackets)."
    port: int

    def token(self) -> str:
        """The flow as one SIP token (usable as a Via or URI parameter's value)."""
        ip = ipaddress.ip_address(self.host)
        return f"{self.kind}-{ip.packed.hex()}-{self.port:x}"

    @classmethod
    def parse(cls, token: str) -> Flow:
        try:
            kind, packed, port = token.split("-")
            host = str(ipaddress.ip_address(bytes.fromhex(packed)))
            if kind not in KINDS:
                raise ValueError(kind)
            return cls(kind, host, int(port, 16))
        except ValueError:
            raise HopError(f"flow token {token!r} is not kind-hexaddress-hexport") from None

    @classmethod
    def of(cls, kind: str, remote: str) -> Flow:
        """The flow of a message received over `kind` from `remote` ("ip:port" or "[ip6]:port")."""
        host, _, port = remote.rpartition(":")
        return cls(kind.lower(), host.strip("[]"), int(port))


def via_kind(via: str) -> str:
    """The transport of one Via value (`udp`, `tcp`, `tls`, ...), lower case; "" when it does not parse."""
    m = SENT_BY.match(via.strip())
    return m.group(1).lower() if m else ""


def via_address(via: str) -> tuple[str, int] | None:
    """Where a response to this Via goes (RFC 3261 §18.2.2, RFC 3581 §4): received / rport, else sent-by."""
    m = SENT_BY.match(via.strip())
    if m is None:
        return None
    host = param(via, "received") or m.group(2).strip("[]")
    rport = param(via, "rport")
    return host, int(rport) if rport else int(m.group(3) or 5060)


def stamp_via(lines: list[str], top: int, ip: str, port: int) -> str:
    """Add `received` (and `rport`, when the sender asked) to the top Via (RFC 3261 §18.2.1, RFC 3581 §4);
    returns the Via's value as it came (its branch names the transaction)."""
    name, _, value = lines[top].partition(":")
    first, comma, rest = value.partition(",")
    stamped = re.sub(r";\s*(received|rport)(\s*=\s*[^;,\s]*)?", "", first.rstrip(), flags=re.IGNORECASE)
    stamped += f";received={ip}"
    if param(first, "rport") is not None:
        stamped += f";rport={port}"
    lines[top] = f"{name}:{stamped}{comma}{rest}"
    return first.strip()


def pop_via(lines: list[str]) -> tuple[str, str] | None:
    """Remove the top Via value (RFC 3261 §16.7 step 3); (the removed value, the next one) or None when
    the message has fewer than two."""
    vias = find(lines, "via", "v")
    if not vias:
        return None
    top = vias[0]
    name, _, value = lines[top].partition(":")
    first, comma, rest = value.partition(",")
    if comma:
        lines[top] = f"{name}:{rest}"
        return first.strip(), rest.split(",", 1)[0].strip()
    del lines[top]
    if len(vias) < 2:
        return None
    return first.strip(), lines[vias[1] - 1].partition(":")[2].split(",", 1)[0].strip()


def max_forwards(lines: list[str]) -> int | None:
    """The request's Max-Forwards (None when absent); HopError when it is not a number."""
    for i in find(lines, "max-forwards"):
        value = lines[i].partition(":")[2].strip()
        if not value.isdigit():
            raise HopError(f"Max-Forwards {value!r} is not a number")
        return int(value)
    return None


def decrement_max_forwards(lines: list[str]) -> None:
    """RFC 3261 §16.6 step 3: one less, or 70 when the request had none (the caller checked it is > 0)."""
    at = find(lines, "max-forwards")
    if not at:
        lines.insert(1, f"Max-Forwards: {DEFAULT_MAX_FORWARDS}")
        return
    value = max_forwards(lines)
    assert value is not None and value > 0, "a request with Max-Forwards 0 is answered 483, not passed on"
    lines[at[0]] = f"Max-Forwards: {value - 1}"
    for i in reversed(at[1:]):
        del lines[i]


def _entries(value: str) -> list[str]:
    """The comma-separated entries of a Route or Record-Route value (commas inside <> or quotes kept)."""
    out, depth, quoted, cur = [], 0, False, ""
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        if ch == "," and not depth and not quoted:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def pop_own_routes(lines: list[str]) -> list[str]:
    """RFC 3261 §16.4: remove the Route entries at the top that lane 0 put there (they carry `uflow`);
    returns them, top first. The other Route entries stay, in order, on one Route line."""
    at = find(lines, "route")
    if not at:
        return []
    entries = [e for i in at for e in _entries(lines[i].partition(":")[2])]
    own: list[str] = []
    while entries and param(entries[0], FLOW_PARAM) is not None:
        own.append(entries.pop(0))
    if not own:
        return []
    for i in reversed(at[1:]):
        del lines[i]
    if entries:
        lines[at[0]] = "Route: " + ", ".join(entries)
    else:
        del lines[at[0]]
    return own
