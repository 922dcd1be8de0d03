"""Desk phones registering with the bridge: the pure registrar, then real baresip phones over UDP.

Waits are on events or bounded polls, never sleeps.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from bridge.events import CallEnded, CallProgress, IncomingCall, Registered
from bridge.pjmodule import digest_works, pj_digest
from bridge.registrar import Registrar, SipUser, ha1, parse_digest
from tests.sip_peers import Baresip

from .test_sip_bridge import make_rig  # noqa: F401  (the fixture)

pytestmark = pytest.mark.timeout(60)

REALM = "demo"
ALICE = SipUser("alice", REALM, ha1("alice", REALM, "s3cret"))


# ---------------------------------------------------------------- the pure registrar


def register(user: str = "alice", auth: str = "", contact: str = "<sip:alice@10.0.0.5:5070>", expires: str = "60") -> str:
    lines = [
        "REGISTER sip:unidesk SIP/2.0", "Via: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK1",
        f"From: <sip:{user}@unidesk>;tag=1", f"To: <sip:{user}@unidesk>", "Call-ID: c1", "CSeq: 1 REGISTER",
    ]
    if contact:
        lines.append(f"Contact: {contact}")
    if expires:
        lines.append(f"Expires: {expires}")
    if auth:
        lines.append(f"Authorization: {auth}")
    return "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"


def answer(reg: Registrar, challenge: str, password: str, user: str = "alice", realm: str = REALM) -> str:
    nonce = parse_digest(challenge)["nonce"]  # type: ignore[index]
    h = ha1(user, realm, password)
    resp = pj_digest(h, nonce, "00000001", "abc", "auth", "sip:unidesk", realm, "REGISTER")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="sip:unidesk", '
            f'response="{resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="abc"')


def test_pjsip_computes_the_rfc2617_example() -> None:
    assert digest_works()


def test_challenge_then_register_then_expire() -> None:
    reg = Registrar(pj_digest)
    reg.set_users([ALICE], 0)
    now = 1000.0
    reply, bound = reg.handle(register(), "10.0.0.5:5070", now)
    assert (reply.code, bound) == (401, None)
    (name, challenge), = reply.headers
    assert name == "WWW-Authenticate" and 'realm="demo"' in challenge and 'qop="auth"' in challenge
    reply, bound = reg.handle(register(auth=answer(reg, challenge, "s3cret")), "10.0.0.5:5070", now)
    assert reply.code == 200 and ("Contact", "<sip:alice@10.0.0.5:5070>;expires=60") in reply.headers
    assert bound is not None and (bound.user, bound.contact, bound.expires) == ("alice", "sip:alice@10.0.0.5:5070", 60)
    assert reg.contact("alice", now + 1) == "sip:alice@10.0.0.5:5070"
    assert reg.expire(now + 59) == []
    gone = reg.expire(now + 60)
    assert [(g.user, g.expires) for g in gone] == [("alice", 0)] and reg.contact("alice", now + 61) is None


def test_wrong_password_forged_nonce_other_user_and_unknown_user_are_refused() -> None:
    reg = Registrar(pj_digest)
    assert reg.handle(register(), "x", 10)[0].code == 503  # no users known yet
    bob = SipUser("bob", "acme", ha1("bob", "acme", "pw"))
    reg.set_users([ALICE, bob], 0)
    reply, _ = reg.handle(register(), "x", 10)
    challenge = reply.headers[0][1]
    assert reg.handle(register(auth=answer(reg, challenge, "wrong")), "x", 10)[0].code == 403
    # Bob's valid credentials (his realm) for Alice's address.
    bob_challenge = reg.handle(register("bob"), "x", 10)[0].headers[0][1]
    assert reg.handle(register(auth=answer(reg, bob_challenge, "pw", "bob", "acme")), "x", 10)[0].code == 403
    forged = answer(reg, challenge, "s3cret").replace(parse_digest(challenge)["nonce"], "5.deadbeef")  # type: ignore[index]
    assert reg.handle(register(auth=forged), "x", 10)[0].code == 401
    stale = reg.handle(register(auth=answer(reg, challenge, "s3cret")), "x", 10 + 301)[0]
    assert stale.code == 401 and "stale=true" in stale.headers[0][1]
    assert reg.handle(register("mallory"), "x", 10)[0].code == 404
    assert reg.handle("REGISTER broken\r\n\r\n", "x", 10)[0].code == 400
    assert reg.handle(register(auth='Digest username="alice"'), "x", 10)[0].code == 400
    assert reg.bindings == {}


def test_unregister_and_changed_password_end_the_binding() -> None:
    reg = Registrar(pj_digest)
    reg.set_users([ALICE], 0)
    challenge = reg.handle(register(), "x", 10)[0].headers[0][1]
    assert reg.handle(register(auth=answer(reg, challenge, "s3cret")), "x", 10)[0].code == 200
    reply, gone = reg.handle(register(auth=answer(reg, challenge, "s3cret"), expires="0"), "x", 11)
    assert reply.code == 200 and gone is not None and gone.expires == 0 and reg.bindings == {}
    assert reg.handle(register(auth=answer(reg, challenge, "s3cret")), "x", 12)[0].code == 200
    ended = reg.set_users([SipUser("alice", REALM, ha1("alice", REALM, "new"))], 13)
    assert [(e.user, e.expires) for e in ended] == [("alice", 0)]


# ---------------------------------------------------------------- real phones


def desk_phone(tmp_path: Path, rig, user: str, password: str, name: str = "desk", hz: int = 500) -> Baresip:
    return Baresip(tmp_path / name, hz, user=user, auto_answer=True, registrar=rig.target, password=password)


async def until(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)  # polling another process's log, bounded
    return False


async def test_baresip_registers_with_the_right_password(make_rig, tmp_path: Path) -> None:
    rig = await make_rig()
    assert rig.bridge.desk_phones
    await rig.bridge.set_users([SipUser("agent1", REALM, ha1("agent1", REALM, "pw1"))])
    phone = desk_phone(tmp_path, rig, "agent1", "pw1")
    try:
        await asyncio.to_thread(phone.listen, 20)
        reg = await rig.events.expect(Registered)
        assert (reg.user, reg.expires) == ("agent1", 60)
        assert reg.contact.startswith("sip:agent1") and reg.contact.endswith(f"@127.0.0.1:{phone.port}")
        assert reg.remote == f"127.0.0.1:{phone.port}"
        assert await until(lambda: "200 OK" in phone.output()), phone.output()
        # Sending the users again re-reports the bindings that stand (a restarted hub learns them).
        await rig.bridge.set_users([SipUser("agent1", REALM, ha1("agent1", REALM, "pw1"))])
        again = await rig.events.expect(Registered)
        assert (again.user, again.contact) == ("agent1", reg.contact) and 0 < again.expires <= 60
        # The registered contact can be called; it answers (auto-answer) and the call has a leg of our naming.
        rig.bridge.dial("d1", reg.contact, leg_id="1-42")
        assert (await rig.events.expect(CallProgress, "d1")).state in ("ringing", "answered")
        while (await rig.events.expect(CallProgress, "d1")).state != "answered":
            pass
        assert "1-42" in rig.engine.mixer.legs and rig.bridge.leg_id("d1") == "1-42"
        rig.bridge.hangup("d1")
        assert (await rig.events.expect(CallEnded, "d1")).by == "local"
        assert "1-42" not in rig.engine.mixer.legs
        # Quitting unregisters.
        phone.stop()
        gone = await rig.events.expect(Registered)
        assert (gone.user, gone.expires) == ("agent1", 0)
    finally:
        phone.stop()


async def test_wrong_password_and_unknown_user_are_refused_and_calls_still_work(make_rig, tmp_path: Path) -> None:
    rig = await make_rig()
    await rig.bridge.set_users([SipUser("agent2", REALM, ha1("agent2", REALM, "right"))])
    wrong = desk_phone(tmp_path, rig, "agent2", "wrong", "wrong")
    unknown = desk_phone(tmp_path, rig, "nobody", "x", "unknown")
    try:
        await asyncio.to_thread(wrong.listen, 20)
        await asyncio.to_thread(unknown.listen, 20)
        assert await until(lambda: "403 Forbidden" in wrong.output()), wrong.output()
        assert await until(lambda: "404 Not Found" in unknown.output()), unknown.output()
        # A malformed REGISTER gets an error, not silence, and the bridge goes on.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.sendto((f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKx\r\n"
                      "From: <sip:agent2@x>;tag=1\r\nTo: <sip:agent2@x>\r\nCall-ID: m1\r\nCSeq: 1 REGISTER\r\n"
                      'Authorization: Digest username="agent2", bogus\r\nContent-Length: 0\r\n\r\n').encode(),
                     ("127.0.0.1", rig.port))
            assert s.recv(2048).startswith(b"SIP/2.0 400"), "a malformed Authorization is answered with 400"
        assert not [e for e in rig.events.seen if isinstance(e, Registered)]
        # INVITEs still reach the bridge after the REGISTER traffic.
        caller = Baresip(tmp_path / "caller", 1000)
        caller.call(f"sip:support@{rig.target}", 3)
        offer = await rig.events.expect(IncomingCall)
        assert offer.to_user == "support"
        rig.bridge.reject(offer.call_id, 486, "Busy Here")
        await rig.events.expect(CallEnded, offer.call_id)
        caller.stop()
    finally:
        wrong.stop()
        unknown.stop()


async def test_baresip_registers_over_tcp(make_rig, tmp_path: Path) -> None:
    rig = await make_rig()
    await rig.bridge.set_users([SipUser("agent3", REALM, ha1("agent3", REALM, "pw3"))])
    phone = Baresip(tmp_path / "tcp", 500, user="agent3", registrar=f"{rig.target};transport=tcp", password="pw3")
    try:
        await asyncio.to_thread(phone.listen, 20)
        reg = await rig.events.expect(Registered)
        assert (reg.user, reg.expires) == ("agent3", 60) and "transport=tcp" in reg.contact, reg
        assert await until(lambda: "200 OK" in phone.output()), phone.output()
    finally:
        phone.stop()
