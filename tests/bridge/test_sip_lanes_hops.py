"""Lane 0 as a proxy (bridge/spread.py, bridge/hop.py): Max-Forwards, IPv6, TCP and TLS callers spread over lanes.

Same rig as tests/bridge/test_sip_lanes.py (the bridge in a process of its
own); callers are raw sockets, sipp and baresip at the one public port.
"""

from __future__ import annotations

import asyncio
import re
import socket
import uuid
from pathlib import Path

import pytest

from bridge.events import SipError
from bridge.ua import SipBridge
from tests.sip_peers import Baresip, ended, hears, self_signed
from webrtc.engine import MediaEngine

from .peers import BYE_ANSWERED, free_udp_port, invite, rtp_base, run_sipp, tone_pcap, uac_playing
from .test_sip_lanes import CALLER_HZ, OUR_HZ, start_rig

pytestmark = pytest.mark.timeout(120)


def raw_invite(host: str, port: int, here: int, max_forwards: int) -> tuple[bytes, str]:
    """An INVITE with no body from a UDP socket on `here` (and its Call-ID)."""
    call_id = f"hops-{uuid.uuid4().hex[:12]}"
    h = f"[{host}]" if ":" in host else host
    text = (f"INVITE sip:support@{h}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{here};rport;branch=z9hG4bK{call_id}\r\n"
            f"Max-Forwards: {max_forwards}\r\nFrom: <sip:caller@{h}>;tag=1\r\nTo: <sip:support@{h}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{h}:{here}>\r\nContent-Length: 0\r\n\r\n")
    return text.encode(), call_id


def final_response(sock: socket.socket, timeout: float = 5.0) -> str:
    """The first final (>= 200) response read from `sock`."""
    sock.settimeout(timeout)
    while True:
        data = sock.recv(65535).decode(errors="replace")
        m = re.match(r"SIP/2\.0 (\d{3})", data)
        if m and int(m.group(1)) >= 200:
            return data


def pjsip_entries(log: Path) -> list[str]:
    """The entries of a rig's pjsip log (`--sip-log`), each possibly several lines."""
    return [e for e in re.split(r"^pjsip: ", log.read_text(errors="replace"), flags=re.MULTILINE) if e]


async def test_lane0_answers_483_to_max_forwards_0_and_passes_invites_on_one_hop_less(tmp_path: Path) -> None:
    port, lane_port = free_udp_port(), free_udp_port()
    log = tmp_path / "pjsip.log"
    rig = await start_rig(port, lane_port, 2, options=("--sip-log", str(log)))
    work = tmp_path / "sipp"
    tone_pcap(work / "pcap" / "tone.pcap", CALLER_HZ, 6)
    (work / "caller.xml").write_text(uac_playing("pcap/tone.pcap"))
    try:
        # RFC 3261 §16.3 step 3: Max-Forwards 0 on arrival is answered 483 by lane 0, whichever lane was next.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            data, _ = raw_invite("127.0.0.1", port, sock.getsockname()[1], 0)
            sock.sendto(data, ("127.0.0.1", port))
            answer = await asyncio.to_thread(final_response, sock)
        assert answer.startswith("SIP/2.0 483 Too Many Hops"), answer[:200]
        stats = await rig.ask("stats", "stats")
        assert stats["calls"] == 0 and "offered" not in stats["stats"], stats

        # Two calls: the first stays on lane 0, the second goes to lane 1 with Max-Forwards 70 - 1.
        rc, out = await run_sipp(work, f"127.0.0.1:{port}", "-sf", "caller.xml", "-s", "support", "-m", "2",
                                 "-l", "2", "-r", "10", "-d", "2000", "-p", str(free_udp_port()), timeout=30)
        assert rc == 0, out[-2000:]
        offers = sorted(o["lane"] for o in rig.seen if "offer" in o)
        assert offers == [0, 1], rig.seen
    finally:
        await rig.stop()
    # Lane 1 received its INVITE from lane 0's port: with 69. Lane 0 received both from sipp: with 70.
    invites = [e for e in pjsip_entries(log) if e.startswith("RX") and "Request msg INVITE" in e]
    from_lane0 = [e for e in invites if f"from UDP 127.0.0.1:{port}:" in e]
    from_sipp = [e for e in invites if e not in from_lane0 and "Max-Forwards: 0" not in e]
    assert len(from_lane0) == 1 and re.search(r"^Max-Forwards: 69\s*$", from_lane0[0], re.MULTILINE), from_lane0
    assert len(from_sipp) == 2 and all(re.search(r"^Max-Forwards: 70\s*$", e, re.MULTILINE) for e in from_sipp), \
        from_sipp


def uac_routed(pcap: str, our_bye: bool) -> str:
    """A sipp UAC scenario that follows the dialog's route set (RFC 3261 §12.2.1.1: ACK and BYE to the
    Contact, through the Record-Route): INVITE, ACK, play `pcap`; then hang up after `-d`, or wait for
    our BYE and answer it."""

    def request(method: str, cseq: int) -> str:
        return f"""  <send{' retrans="500"' if method == 'BYE' else ''}>
    <![CDATA[
      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      [routes]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>"""

    end = BYE_ANSWERED if our_bye else f"""  <pause/>
{request("BYE", 2)}
  <recv response="200"/>"""
    # Our Contact names the transport (RFC 3261 §19.1.1: without it a UAS reaches us over UDP).
    offer = invite("m=audio [auto_media_port] RTP/AVP 0" + chr(10) + "      a=rtpmap:0 PCMU/8000").replace(
        "Contact: sip:sipp@[local_ip]:[local_port]", "Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>")
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller following the route set">
{offer}
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
{request("ACK", 1)}
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
{end}
</scenario>
"""


async def test_tcp_callers_past_lane0s_four_are_spread_and_hang_up_from_both_sides(tmp_path: Path) -> None:
    port, lane_port = free_udp_port(), free_udp_port()
    rig = await start_rig(port, lane_port, 3, options=("--transports", "udp,tcp"))
    target = f"127.0.0.1:{port}"
    work = tmp_path / "sipp"
    tone_pcap(work / "pcap" / "tone.pcap", CALLER_HZ, 20)
    (work / "hangs-up.xml").write_text(uac_routed("pcap/tone.pcap", our_bye=False))
    (work / "waits.xml").write_text(uac_routed("pcap/tone.pcap", our_bye=True))
    common = ("-s", "support", "-t", "tn", "-max_socket", "64", "-r", "10")
    waits: asyncio.Task | None = None
    try:
        # Seven TCP callers at the one port (one connection each): three hang up, four wait for our BYE.
        hangs_up = asyncio.create_task(run_sipp(work, target, "-sf", "hangs-up.xml", "-m", "3", "-l", "3",
                                                "-d", "8000", "-p", str(free_udp_port()), "-mp", str(rtp_base()), *common,
                                                timeout=40))
        waits = asyncio.create_task(run_sipp(work, target, "-sf", "waits.xml", "-m", "4", "-l", "4",
                                             "-p", str(free_udp_port()), "-mp", str(rtp_base()), *common, timeout=40))
        offers = await rig.expect("offer", 7)
        lanes = [o["lane"] for o in offers]
        assert sorted(set(lanes)) == [0, 1, 2] and all(lanes.count(k) <= 3 for k in range(3)), lanes
        assert all(o["transport"] == "tcp" and o["remote"].startswith("127.0.0.1:") for o in offers), offers
        heard = await rig.expect("heard", 7, timeout=30)
        assert all(h["caller_tone"] for h in heard), heard

        # The callers' BYEs (over their connections, through lane 0, to the lanes) end three calls.
        rc, out = await hangs_up
        assert rc == 0, out[-3000:]
        by_caller = await rig.expect("ended", 3)
        assert all((e["code"], e["by"]) == (200, "remote") for e in by_caller), by_caller
        # Ours (from each lane, through lane 0, over each caller's connection) end the other four.
        assert rig.proc.stdin is not None
        rig.proc.stdin.write(b"hangup\n")
        by_us = await rig.expect("ended", 4)
        assert all((e["code"], e["by"]) == (200, "local") for e in by_us), by_us
        rc, out = await waits
        waits = None
        assert rc == 0, out[-3000:]
        stats = await rig.ask("stats", "stats")
        assert stats["stats"].get("answered") == 7 and "pjsua-486" not in stats["stats"], stats
    finally:
        if waits is not None:
            waits.cancel()
        await rig.stop()


def test_an_ipv6_address_is_refused_with_the_reason() -> None:
    """The PyPI pjsua2 is built without IPv6 (pj_dump_config: PJ_HAS_IPV6 0): pjsua's assertion on IPv6 media
    would abort the worker. The bridge says so at construction, naming the address."""
    for host in ("::1", "::"):
        with pytest.raises(SipError, match=re.escape(f"IPv6 address {host!r}") + ".*PJ_HAS_IPV6"):
            SipBridge(MediaEngine(), host=host, port=free_udp_port(), on_event=lambda e: None, lanes=2)


async def test_tls_callers_are_spread_and_hang_up_from_both_sides_over_their_connections(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    both = tmp_path / "cert-and-key.pem"  # the phones take TLS connections with it (lane 0's own BYE)
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    port, lane_port, tls_port = free_udp_port(), free_udp_port(), free_udp_port()
    rig = await start_rig(port, lane_port, 2, options=("--tls-port", str(tls_port), "--tls-cert", str(cert),
                                                       "--tls-key", str(key)))
    uri = f"sip:support@127.0.0.1:{tls_port};transport=tls"
    phones = [Baresip(tmp_path / f"phone{i}", CALLER_HZ, certificate=both) for i in range(3)]
    try:
        # First call: lane 0. Second: lane 1, and the phone hangs up itself (its BYE over its TLS connection,
        # through lane 0, to lane 1). Third: lane 1 again (lane 1 has the most free slots once more).
        phones[0].call(uri, 40)
        offers = await rig.expect("offer")
        phones[1].call(uri, 8)
        offers += await rig.expect("offer")
        assert await asyncio.to_thread(hears, phones[1], OUR_HZ), phones[1].output()[-2000:]
        (gone,) = await rig.expect("ended", timeout=20)
        assert (gone["ended"], gone["code"], gone["by"]) == (offers[1]["offer"], 200, "remote"), gone
        phones[2].call(uri, 40)
        offers += await rig.expect("offer")
        assert [o["lane"] for o in offers] == [0, 1, 1], offers
        assert all(o["transport"] == "tls" for o in offers), offers
        while sum("heard" in m for m in rig.seen) < 3:  # some came while we waited for others
            await rig.expect("heard")
        heard = [m for m in rig.seen if "heard" in m]
        assert len(heard) == 3 and all(h["caller_tone"] for h in heard), heard
        for phone in (phones[0], phones[2]):
            assert await asyncio.to_thread(hears, phone, OUR_HZ), phone.output()[-2000:]

        # Our BYEs: lane 0's straight to its phone, lane 1's through lane 0 over the phone's TLS connection.
        assert rig.proc.stdin is not None
        rig.proc.stdin.write(b"hangup\n")
        by_us = await rig.expect("ended", 2)
        assert all((e["code"], e["by"]) == (200, "local") for e in by_us), by_us
        for phone in (phones[0], phones[2]):
            assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
    finally:
        for phone in phones:
            phone.stop()
        await rig.stop()
