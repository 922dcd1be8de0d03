"""RFC 4475 torture messages against the bridge, over UDP and TCP, then a normal call.

The owner here refuses every call with 404 except calls to `support`, which it
answers: a message pjsip lets through shows as an offered call refused by the
owner, one pjsip refuses as pjsip's own response, one it drops as silence.
Messages go one at a time, each followed by an OPTIONS whose 200 says that
everything before it has been handled (pjsip handles one socket in order).
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from bridge.agent import MIN_REFUSAL_AGE
from bridge.events import CallEnded, IncomingCall

from .peers import free_udp_port, run_sipp
from .test_sip_bridge import make_rig  # noqa: F401 (the fixture)
from .torture import MESSAGES, message

pytestmark = pytest.mark.timeout(120)

DROPPED = None

# What the bridge answers to each message over UDP: the first final response's status line, or
# DROPPED (pjsip's parser refuses it: over UDP it has no safe place to answer, RFC 3261 §18.3 lets it drop).
EXPECTED_UDP: dict[str, str | None] = {
    # Valid but tricky: parsed, and the call offered to the owner (who refuses what is not `support`).
    "wsinv": "404 Not Found",
    "esc01": "404 Not Found",  # offered with the To user unescaped to "user"
    "inv2543": "404 Not Found",  # a branch without the magic cookie is still a transaction
    "escruri": "404 Not Found",  # RFC 4475 wants 400; pjsip ignores headers in the Request-URI
    # Valid but tricky, answered by pjsua itself.
    "lwsdisp": "200 OK",
    "dblreq": "200 OK",  # the second request in the datagram is ignored
    "semiuri": "200 OK",
    "transports": "200 OK",
    "bext01": "420 Bad Extension",
    "invut": "415 Unsupported Media Type",
    # Invalid: answered.
    "clerr": "400 Content-Length Mismatch",  # the bridge (pjsip would take the partial body)
    "multi01": "400 Multiple Values In Single-Value Header",  # the bridge (pjsip would keep the first)
    "lwsstart": "400 Bad Request",  # pjsua: no Contact; the Request-Line's extra spaces are tolerated
    # Invalid, tolerated by pjsip (it answers as if well-formed; not a call, nothing reaches the owner).
    "trws": "200 OK",
    "badaspec": "200 OK",
    "baddn": "200 OK",
    "mismatch01": "200 OK",  # RFC 4475 wants 400: pjsip does not compare the CSeq method
    "mcl01": "200 OK",  # RFC 4475 wants 400: pjsip keeps one Content-Length
    # Unknown methods no module takes: the bridge's last module (bridge/pjmodule.py), RFC 3261 §8.2.1.
    "intmeth": "501 Not Implemented",
    "mismatch02": "501 Not Implemented",  # RFC 4475 allows 501 or 400 (the CSeq method differs)
    # Dropped by pjsip's parser.
    "unreason": DROPPED,  # a response without a transaction
    "bigcode": DROPPED,
    "badinv01": DROPPED,
    "ncl": DROPPED,
    "scalar02": DROPPED,
    "quotbal": DROPPED,
    "ltgtruri": DROPPED,
    "lwsruri": DROPPED,
    "badvers": DROPPED,  # RFC 4475 suggests 505
    "insuf": DROPPED,  # no To: no response can be built
    "unkscm": DROPPED,  # RFC 4475 suggests 416
    "unksm2": DROPPED,
}

# Over TCP (a connection per message): a few, where the stream changes things.
EXPECTED_TCP: dict[str, str | None] = {
    "wsinv": "404 Not Found",
    "lwsdisp": "200 OK",
    "insuf": DROPPED,
    "badvers": DROPPED,
    "unkscm": DROPPED,
    "clerr": DROPPED,  # on a stream the rest of the body is awaited; the connection stays usable
}


def _responses(data: bytes) -> list[tuple[str, str]]:
    """(Call-ID, status line) of each response in `data` (one or more messages)."""
    out = []
    for part in data.decode(errors="replace").split("SIP/2.0 ")[1:]:
        lines = part.split("\r\n")
        call_id = next((x.split(":", 1)[1].strip() for x in lines if x.lower().startswith(("call-id:", "i:"))), "")
        out.append((call_id.split(".", 1)[0], lines[0]))
    return out


def _sentinel(name: str, via: str, target: str, transport: str = "UDP") -> bytes:
    return (
        f"OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/{transport} {via};branch=z9hG4bK-after-{name}\r\n"
        f"From: <sip:probe@127.0.0.1>;tag=9\r\nTo: <sip:{target}>\r\nCall-ID: after-{name}\r\nCSeq: 1 OPTIONS\r\n"
        f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def _udp_round(rig, sock: socket.socket, name: str) -> str | None:
    """Send one torture message and its sentinel; the first final status of the message, or None."""
    loop = asyncio.get_running_loop()
    me = f"127.0.0.1:{sock.getsockname()[1]}"
    offered = len([e for e in rig.events.seen if isinstance(e, IncomingCall)])
    sock.sendto(message(name, me, rig.target), ("127.0.0.1", rig.port))
    sock.sendto(_sentinel(name, me, rig.target), ("127.0.0.1", rig.port))
    final: str | None = None
    sentinel: float | None = None
    deadline = time.monotonic() + 10

    def waiting() -> bool:
        if sentinel is None:
            return True
        if final is not None:
            return False
        # An offered call's answer comes after the sentinel's (the owner decides on the loop); the
        # bridge's own refusals are held back MIN_REFUSAL_AGE.
        if len([e for e in rig.events.seen if isinstance(e, IncomingCall)]) > offered:
            return True
        return time.monotonic() < sentinel + MIN_REFUSAL_AGE + 0.5

    while waiting():
        left = min(deadline, (sentinel or deadline) + MIN_REFUSAL_AGE + 0.5) - time.monotonic()
        assert time.monotonic() < deadline, f"{name}: no answer to the sentinel (or to an offered call) in time"
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), max(left, 0.01))
        except asyncio.TimeoutError:
            continue
        for call_id, status in _responses(data):
            if call_id == f"after-{name}":
                sentinel = time.monotonic()
            elif call_id == name and not status.startswith("1") and final is None:
                final = status
    return final


async def _tcp_round(rig, name: str) -> str | None:
    # A Call-ID of its own: the same request over UDP may still be in its transaction's last state.
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    me = f"127.0.0.1:{writer.get_extra_info('sockname')[1]}"
    tag = f"{name}-tcp"
    writer.write(message(name, me, rig.target, "TCP", call_id=tag))
    await writer.drain()
    final: str | None = None
    sentinel_sent = False
    data = b""
    deadline = time.monotonic() + 10
    # The sentinel goes on a connection of its own: on this one a broken message may hold the parser.
    side_r, side_w = await asyncio.open_connection("127.0.0.1", rig.port)
    side_me = f"127.0.0.1:{side_w.get_extra_info('sockname')[1]}"
    try:
        while True:
            if not sentinel_sent:
                side_w.write(_sentinel(name, side_me, rig.target, "TCP"))
                await side_w.drain()
                sentinel_sent = True
                got = await asyncio.wait_for(side_r.read(65535), 10)
                assert any(c == f"after-{name}" and s == "200 OK" for c, s in _responses(got)), got
            try:
                chunk = await asyncio.wait_for(reader.read(65535), 0.3)
            except asyncio.TimeoutError:
                chunk = b""
            data += chunk
            finals = [s for c, s in _responses(data) if c == tag and not s.startswith("1")]
            if finals:
                final = finals[0]
                break
            offered = [e for e in rig.events.seen if isinstance(e, IncomingCall) and e.transport == "tcp"]
            if not chunk and not any(e.sip_call_id.startswith(tag) for e in offered):
                break  # nothing came and nothing is pending with the owner: dropped
            assert time.monotonic() < deadline, f"{name} over TCP: an offered call was never answered"
    finally:
        for w in (writer, side_w):
            w.close()
    return final


async def test_rfc4475_torture_messages_get_sensible_answers_and_a_call_still_works(make_rig, tmp_path: Path) -> None:  # noqa: F811
    rig = await make_rig()
    offered: dict[str, IncomingCall] = {}

    def owner(e: object) -> None:
        if isinstance(e, IncomingCall):
            offered[e.sip_call_id.split(".", 1)[0]] = e
            if e.to_user == "support":
                rig.bridge.answer(e.call_id)
            else:
                rig.bridge.reject(e.call_id, 404, "Not Found")

    rig.events.hook = owner
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    udp = {name: await _udp_round(rig, sock, name) for name in MESSAGES}
    sock.close()
    got = dict(udp)
    assert got == EXPECTED_UDP
    # What reached the owner was parsed right: the escaped To user, the folded From's display name.
    assert offered["esc01"].to_user == "user"
    assert offered["wsinv"].to_user == "vivekg" and offered["wsinv"].caller == "jdrosen"
    assert set(offered) == {"wsinv", "esc01", "inv2543", "escruri"}, sorted(offered)

    tcp = {name: await _tcp_round(rig, name) for name in EXPECTED_TCP}
    assert tcp == EXPECTED_TCP

    # Every offered call was settled; nothing is left with the bridge.
    deadline = time.monotonic() + 10
    while rig.bridge.calls():
        assert time.monotonic() < deadline, rig.bridge.calls()
        await asyncio.sleep(0.05)  # polling the bridge's view, bounded
    print(f"\n[RFC 4475] UDP: {sum(v is not None for v in got.values())} answered, "
          f"{sum(v is None for v in got.values())} dropped; TCP: {len(tcp)} checked")

    # And the bridge still takes a normal call.
    rc, out = await run_sipp(tmp_path, "-sn", "uac", rig.target, "-s", "support", "-m", "1",
                             "-p", str(free_udp_port()))
    assert rc == 0, out[-2000:]
    answered = [e for e in offered.values() if e.to_user == "support"]
    assert len(answered) == 1
    ended = await rig.events.expect(CallEnded, answered[0].call_id)
    assert (ended.by, ended.code) == ("remote", 200)


async def test_a_burst_of_torture_messages_leaves_every_call_to_its_owner(make_rig) -> None:  # noqa: F811
    """All the messages in one burst: INVITEs refused inside pjsua's callback (clerr, multi01) free call
    slots that the next INVITEs of the same poll take. Each of those must still be the owner's to
    decide: the refused call's pjsua2 object, once deleted a turn later, hung up whatever call had
    taken its slot (603), that call's end was never reported, and freeing it at shutdown aborted the
    process (pjsua_call_set_user_data assertion)."""
    rig = await make_rig()

    def decide(e: object) -> None:
        if isinstance(e, IncomingCall):
            rig.bridge.reject(e.call_id, 404, "Not Found")

    rig.events.hook = decide
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    me = f"127.0.0.1:{sock.getsockname()[1]}"
    finals: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    # Six bursts (the slot a refused call frees is taken by the next call only sometimes), each
    # closed by a sentinel OPTIONS.
    for k in range(6):
        for name in MESSAGES:
            sock.sendto(message(name, me, rig.target, call_id=f"{name}-{k}"), ("127.0.0.1", rig.port))
        sock.sendto(_sentinel(f"burst{k}", me, rig.target), ("127.0.0.1", rig.port))
        deadline = time.monotonic() + 10
        while f"after-burst{k}" not in finals or not all(
            e.sip_call_id.split(".", 1)[0] in finals for e in rig.events.seen if isinstance(e, IncomingCall)
        ):
            left = deadline - time.monotonic()
            assert left > 0, f"burst {k}: answers so far: {finals}"
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 65535), left)
            except asyncio.TimeoutError:
                continue
            for call_id, status in _responses(data):
                if not status.startswith("1"):
                    finals.setdefault(call_id, status)
    sock.close()
    offered = [e for e in rig.events.seen if isinstance(e, IncomingCall)]
    assert offered, "no call reached the owner"
    # Every offered call got the owner's answer, and its end was reported.
    assert {e.sip_call_id.split(".", 1)[0]: finals[e.sip_call_id.split(".", 1)[0]] for e in offered} == {
        e.sip_call_id.split(".", 1)[0]: "404 Not Found" for e in offered
    }
    deadline = time.monotonic() + 5
    while rig.bridge.calls():
        assert time.monotonic() < deadline, f"calls never reported as ended: {rig.bridge.calls()}"
        await asyncio.sleep(0.05)  # polling the bridge's view, bounded
    ended = [e for e in rig.events.seen if isinstance(e, CallEnded)]
    assert sorted(e.code for e in ended) == [404] * len(offered)
    # Stopping frees every pjsua2 object without tripping an assertion (the fixture stops it too).
    await rig.bridge.stop()


async def test_stopping_with_a_call_offered_reports_it_and_frees_pjsua(make_rig) -> None:  # noqa: F811
    """A worker shutting down while a call is offered (or its refusal held back): the call is refused and
    reported, and pjsua is freed without an assertion (one Call object outlived libDestroy once)."""
    rig = await make_rig()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    me = f"127.0.0.1:{sock.getsockname()[1]}"
    sock.sendto(message("wsinv", me, rig.target), ("127.0.0.1", rig.port))
    sock.sendto(message("clerr", me, rig.target), ("127.0.0.1", rig.port))
    offer = await rig.events.expect(IncomingCall)
    await rig.bridge.stop()
    ended = await rig.events.expect(CallEnded, offer.call_id)
    assert ended.by == "local" and ended.code >= 400
    sock.close()


PJSUA_ALLOW = "PRACK, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, SUBSCRIBE, NOTIFY, REFER, MESSAGE, OPTIONS"


def _raw(method: str, me: int, target: str, name: str, to_tag: str = "", cseq: str | None = None) -> bytes:
    return (
        f"{method} sip:support@{target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-{name}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=abc\r\nTo: <sip:support@127.0.0.1>{to_tag}\r\n"
        f"Call-ID: {name}\r\nCSeq: 7 {cseq or method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def test_an_unknown_method_gets_501_and_what_pjsua_answers_is_unchanged(make_rig, tmp_path: Path) -> None:  # noqa: F811
    rig = await make_rig()
    offered: list[IncomingCall] = []

    def owner(e: object) -> None:
        if isinstance(e, IncomingCall):
            offered.append(e)
            rig.bridge.answer(e.call_id)

    rig.events.hook = owner
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    me = sock.getsockname()[1]

    async def ask(data: bytes, sentinel: str) -> list[str]:
        """Send `data`, then an OPTIONS; every message that came back before the OPTIONS' 200."""
        sock.sendto(data, ("127.0.0.1", rig.port))
        sock.sendto(_sentinel(sentinel, f"127.0.0.1:{me}", rig.target), ("127.0.0.1", rig.port))
        got: list[str] = []
        while True:
            text = (await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)).decode()
            if f"Call-ID: after-{sentinel}\r\n" in text:
                assert text.startswith("SIP/2.0 200 OK\r\n"), text
                assert f"Allow: {PJSUA_ALLOW}\r\n" in text, text  # pjsua's own answer, as before
                return got
            got.append(text)

    # Out of dialog, a method nobody knows: exactly this, statelessly.
    assert await ask(_raw("FOOBAR", me, rig.target, "unknown1"), "u1") == [
        f"SIP/2.0 501 Not Implemented\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{me};received=127.0.0.1;branch=z9hG4bK-unknown1\r\n"
        f"Call-ID: unknown1\r\n"
        f"From: <sip:probe@127.0.0.1>;tag=abc\r\n"
        f"To: <sip:support@127.0.0.1>;tag=z9hG4bK-unknown1\r\n"
        f"CSeq: 7 FOOBAR\r\n"
        f"Allow: {PJSUA_ALLOW}, REGISTER\r\n"
        f"Content-Length:  0\r\n\r\n"
    ]
    # Unchanged: in a dialog pjsip's dialog layer answers 481; an ACK, a known method nobody takes
    # (PUBLISH) and a response get nothing; OPTIONS and REGISTER are pjsua's and the registrar's.
    in_dialog = await ask(_raw("FOOBAR", me, rig.target, "unknown2", to_tag=";tag=x1"), "u2")
    assert [t.split("\r\n", 1)[0] for t in in_dialog] == ["SIP/2.0 481 Call/Transaction Does Not Exist"]
    assert await ask(_raw("ACK", me, rig.target, "unknown3"), "u3") == []
    assert await ask(_raw("PUBLISH", me, rig.target, "unknown4"), "u4") == []
    assert await ask(b"SIP/2.0 200 OK\r\nCall-ID: nobody\r\n\r\n", "u5") == []
    options = await ask(_raw("OPTIONS", me, rig.target, "unknown6"), "u6")
    assert [t.split("\r\n", 1)[0] for t in options] == ["SIP/2.0 200 OK"] and "User-Agent: unidesk" in options[0]
    register = await ask(_raw("REGISTER", me, rig.target, "unknown7"), "u7")
    assert [t.split("\r\n", 1)[0] for t in register] == ["SIP/2.0 503 Service Unavailable"]  # no users yet
    assert offered == []
    sock.close()

    # And the bridge still answers a normal call.
    rc, out = await run_sipp(tmp_path, "-sn", "uac", rig.target, "-s", "support", "-m", "1",
                             "-p", str(free_udp_port()))
    assert rc == 0, out[-2000:]
    assert len(offered) == 1
    ended = await rig.events.expect(CallEnded, offered[0].call_id)
    assert (ended.by, ended.code) == ("remote", 200)
