"""Trunks and TLS in the bridge: the pure helpers, then SipBridge with bad input (it must keep serving)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.events import CallEnded, Registration, SipError
from bridge.trunk import Trunk, registration_state, trunk_uri
from bridge.ua import SipBridge
from tests.sip_peers import self_signed
from webrtc.engine import MediaEngine

from .peers import free_udp_port, rtp_base
from .test_sip_bridge import Events

# Each test in a process of its own (forked), as each media worker has its own: pjsua is one per process,
# and creating and destroying it again and again in one process is not something pjsua2 is built for.
pytestmark = [pytest.mark.timeout(60), pytest.mark.own_process]


def test_trunk_uris_name_the_transport_unless_udp():
    assert trunk_uri("carrier.example:5060", "udp") == "sip:carrier.example:5060"
    assert trunk_uri("carrier.example", "tcp", "+4930123") == "sip:+4930123@carrier.example;transport=tcp"
    assert trunk_uri("10.0.0.1:5061", "tls", "alice") == "sip:alice@10.0.0.1:5061;transport=tls"


def test_registration_states_follow_the_final_response():
    assert registration_state(200, 300) == "registered"
    assert registration_state(200, 0) == "unregistered"  # RFC 3261 §10.2.2: the binding is gone
    assert registration_state(401, 0) == registration_state(403, 0) == registration_state(408, 0) == "failed"


def test_a_trunk_keeps_its_password_out_of_repr_and_refuses_bad_settings():
    t = Trunk("1/c", "127.0.0.1:5060", "udp", "alice", "s3cret", register=True)
    assert "s3cret" not in repr(t) and "alice" in repr(t)
    with pytest.raises(ValueError, match="transport 'sctp'"):
        Trunk("1/c", "127.0.0.1", "sctp", "alice", "x")
    with pytest.raises(ValueError, match="host"):
        Trunk("1/c", "evil.example>;lr", "udp", "alice", "x")
    with pytest.raises(ValueError, match="username"):
        Trunk("1/c", "127.0.0.1", "udp", "a@b", "x")


async def test_tls_start_names_the_bad_file_then_a_good_pair_listens(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    for c, k, message in ((str(tmp_path / "none.pem"), str(key), "none.pem' does not exist"),
                          (str(cert), None, "needs a private key file"),
                          (str(garbage), str(garbage), "not a PEM certificate chain")):
        bridge = SipBridge(MediaEngine(), port=free_udp_port(), transports=("udp",), on_event=lambda e: None,
                           tls_port=free_udp_port(), tls_cert=c, tls_key=k)
        with pytest.raises(SipError, match=message):
            await bridge.start()
    bridge = SipBridge(MediaEngine(), port=free_udp_port(), transports=("udp",), on_event=lambda e: None,
                       tls_port=free_udp_port(), tls_cert=str(cert), tls_key=str(key))
    await bridge.start()
    await bridge.stop()


async def test_trunks_that_cannot_work_are_reported_and_the_bridge_keeps_serving() -> None:
    events = Events()
    engine = MediaEngine()
    bridge = SipBridge(engine, port=free_udp_port(), on_event=events, rtp_port=rtp_base())
    await bridge.start()
    try:
        nobody = free_udp_port()
        bridge.set_trunks([Trunk("1/gone", f"127.0.0.1:{nobody}", "tcp", "alice", "pw", register=True)])
        # Nothing listens there (TCP: refused at once): the registration fails with a status, not silence.
        failed = await events.expect(Registration)
        assert (failed.trunk, failed.state) == ("1/gone", "failed") and failed.code >= 400, failed
        # A call through a trunk this bridge does not have ends at once.
        bridge.dial("o1", "sip:+4930123@127.0.0.1", trunk="9/unknown")
        ended = await events.expect(CallEnded, "o1")
        assert ended.code == 503 and "9/unknown" in ended.reason
        with pytest.raises(SipError, match="not unique"):
            bridge.set_trunks([Trunk("1/a", "h", "udp", "u", "p"), Trunk("1/a", "h", "udp", "u", "p")])
        # Removing a registering trunk is reported.
        bridge.set_trunks([])
        gone = await events.expect(Registration)
        assert (gone.trunk, gone.state) == ("1/gone", "unregistered")
    finally:
        await bridge.stop()
        await engine.close_all()
