"""SIP trunks against real peers: sipp as a registrar and as a carrier that challenges calls, baresip over TLS
(calling in, and called through a TLS trunk), and a small TLS registrar (Debian's sipp has no TLS).

One hub and one media worker serve the module; the trunks are in the store before the worker says hello
(the hub hands a worker its trunks then). The worker also listens for SIP over TLS with a certificate made
here, for this run only.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.bridge.peers import free_udp_port, run_sipp
from tests.conftest import Backend, HubProcess, WorkerProcess, cli, drop_backend, free_port, prepared_backend
from tests.helpers import bearer, cached_login
from tests.sip_peers import Baresip, ended, hears, self_signed
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent

CALLER_HZ, AGENT_HZ = 1000.0, 500.0
REALM = "carrier.test"
GOOD = ("alice", "al1ce-s3cret")  # what the registrar of trunk "a-good" accepts, and what the trunk says
BAD_PASSWORD = "not-what-sipp-wants"  # trunk "b-bad" says this; its registrar wants "b0b-s3cret"
CARRIER = ("carol", "c4rol-s3cret")  # trunk "carrier" of tenant acme; its calls are challenged with 407
TINA = ("tina", "t1na-s3cret")  # trunk "c-tls" of tenant demo registers over TLS

_REPLY = """
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]"""


def registrar_xml(username: str, password: str, then_call: str | None = None) -> str:
    """sipp as a registrar with digest auth (RFC 3261 §22.4): 401 to the first REGISTER, then 200 to a
    second one whose Authorization is right for `username`/`password`, 403 otherwise. With `then_call`,
    the carrier then calls that address at the registered contact, as a carrier's call comes in: the
    call must be answered; it hangs up after a moment."""
    call = f"""
  <send>
    <![CDATA[
      INVITE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+4930123@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:{then_call}@[local_ip]:[local_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:carrier@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=carrier 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+4930123@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:{then_call}@[local_ip]:[local_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="1000"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:+4930123@[local_ip]:[local_port]>;tag=[pid]SIPpTag09[call_number]
      To: <sip:{then_call}@[local_ip]:[local_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>""" if then_call else ""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="registrar with digest">
  <recv request="REGISTER"/>
  <send>
    <![CDATA[
      SIP/2.0 401 Unauthorized{_REPLY}
      WWW-Authenticate: Digest realm="{REALM}", nonce="n[pid]x[call_number]", algorithm=MD5
      Content-Length: 0
    ]]>
  </send>
  <recv request="REGISTER" rrs="true">
    <action>
      <verifyauth assign_to="ok" username="{username}" password="{password}"/>
    </action>
  </recv>
  <nop test="ok" next="good"/>
  <send next="end">
    <![CDATA[
      SIP/2.0 403 Forbidden{_REPLY}
      Content-Length: 0
    ]]>
  </send>
  <label id="good"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK{_REPLY}
      [last_Contact:];expires=120
      Expires: 120
      Content-Length: 0
    ]]>
  </send>{call}
  <label id="end"/>
</scenario>
"""


def challenging_carrier_xml() -> str:
    """sipp as a carrier: 407 to the INVITE (RFC 3261 §22.3), then answers the retried INVITE when it
    carries Proxy-Authorization (logged for the test to check: sipp's <verifyauth> reads only an
    Authorization header), echoes the RTP (sipp -rtp_echo) and takes the BYE."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier challenging calls">
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 407 Proxy Authentication Required{_REPLY}
      Proxy-Authenticate: Digest realm="{REALM}", nonce="p[pid]x[call_number]", algorithm=MD5
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="INVITE">
    <action>
      <ereg regexp=".*" search_in="hdr" header="Proxy-Authorization:" check_it="true" assign_to="credentials"/>
      <log message="Proxy-Authorization:[$credentials]"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 200 OK{_REPLY}
      Contact: <sip:carrier@[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=carrier 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK{_REPLY}
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""


def digest_is_right(header: str, method: str, username: str, password: str) -> bool:
    """Whether a Digest Authorization/Proxy-Authorization value answers its challenge with this
    password (RFC 2617 §3.2.2; MD5, with or without qop=auth)."""
    scheme, _, rest = header.strip().partition(" ")
    assert scheme.lower() == "digest", header
    p = {k.strip().lower(): v.strip().strip('"') for k, v in re.findall(r'(\w+)\s*=\s*("[^"]*"|[^,]+)', rest)}
    if p.get("username") != username:
        return False

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5(f"{username}:{p['realm']}:{password}")
    ha2 = md5(f"{method}:{p['uri']}")
    if p.get("qop"):
        want = md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
    else:
        want = md5(f"{ha1}:{p['nonce']}:{ha2}")
    return p.get("response") == want


class TlsRegistrar:
    """A registrar over TLS, for trunks with transport tls (Debian's sipp has no TLS): 401 with a
    digest challenge to a REGISTER without credentials, then 200 when they are right, 403 when not.
    Serves each connection on a thread of its own; `answers` lists the codes it sent."""

    def __init__(self, cert: Path, key: Path, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.answers: list[int] = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.sock = ctx.wrap_socket(socket.create_server(("127.0.0.1", 0)), server_side=True)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: ssl.SSLSocket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(4096)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)  # a REGISTER has no body
                lines = head.decode().split("\r\n")
                if not lines[0].startswith("REGISTER "):
                    continue
                hdr = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    hdr.setdefault(name.strip().lower(), value.strip())
                keep = "".join(f"{n}: {hdr[n.lower()]}\r\n" for n in ("Via", "From", "To", "Call-ID", "CSeq"))
                auth = hdr.get("authorization")
                if auth is None:
                    code, extra = 401, f'WWW-Authenticate: Digest realm="{REALM}", nonce="tls{len(self.answers)}"\r\n'
                elif digest_is_right(auth, "REGISTER", self.username, self.password):
                    code, extra = 200, f"Contact: {hdr['contact']};expires=120\r\n"
                else:
                    code, extra = 403, ""
                self.answers.append(code)
                reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden"}[code]
                conn.sendall(f"SIP/2.0 {code} {reason}\r\n{keep}{extra}Content-Length: 0\r\n\r\n".encode())

    def close(self) -> None:
        self.sock.close()


def add_trunk(b: Backend, tenant: str, name: str, host: str, username: str, password: str, **fields: object) -> None:
    """A trunk in the store, through the repository (read by the hub when a worker says hello)."""
    from store.db import make_engine, make_sessionmaker
    from store.repos import TenantRepo, tenant_by_slug

    url = b.database_url.replace("sqlite://", "sqlite+aiosqlite://").replace("postgresql://", "postgresql+asyncpg://")

    async def run() -> None:
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as s, s.begin():
            t = await tenant_by_slug(s, tenant)
            assert t is not None
            await TenantRepo(s, t.id).add_sip_trunk(name, host, username, password, **fields)
        await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def start_sipp(workdir: Path, scenario: str, port: int, *args: str) -> subprocess.Popen[bytes]:
    """sipp in the background as a UAS of `scenario` (one call) on UDP `port`; returns once it listens."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "scenario.xml").write_text(scenario)
    proc = subprocess.Popen(
        ["sipp", "-sf", "scenario.xml", "-i", "127.0.0.1", "-p", str(port), "-m", "1", "-nostdin",
         "-timeout", "60s", *args],
        cwd=workdir, stdout=open(workdir / "sipp.out", "wb"), stderr=subprocess.STDOUT,
    )

    def listening() -> bool:
        assert proc.poll() is None, (workdir / "sipp.out").read_text(errors="replace")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return True
        return False

    wait_for(listening, 10, "sipp listening")
    proc.out = workdir / "sipp.out"  # type: ignore[attr-defined]
    return proc


class Trunked:
    """The module's hub and worker, the registrars' sipp runs, and the carrier's port."""

    def __init__(self, backend: Backend, hub: HubProcess, worker: WorkerProcess, registrars: list, carrier_port: int,
                 folder: Path) -> None:
        self.backend, self.hub, self.worker = backend, hub, worker
        self.registrars, self.carrier_port, self.folder = registrars, carrier_port, folder

    def trunks(self, tenant: str = "demo") -> dict[str, dict]:
        r = httpx.get(f"{self.hub.url}/api/sip/trunks", headers=bearer(cached_login(self.hub.url, "admin", tenant)))
        assert r.status_code == 200, r.text
        return {t["name"]: t for t in r.json()}


@pytest.fixture(scope="module")
def trunked(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("trunks")
    backend = prepared_backend(folder)
    cert, key = self_signed(folder)
    good_port, bad_port, carrier_port = free_udp_port(), free_udp_port(), free_udp_port()
    add_trunk(backend, "demo", "a-good", f"127.0.0.1:{good_port}", *GOOD, realm=REALM, expires=120)
    add_trunk(backend, "demo", "b-bad", f"127.0.0.1:{bad_port}", "bob", BAD_PASSWORD, expires=120)
    add_trunk(backend, "acme", "carrier", f"127.0.0.1:{carrier_port}", *CARRIER, register=False,
              caller_id="+4940999")
    # Tenant beta calls out over TLS; its far end is a baresip phone (listening once the test starts it),
    # whose TLS port is the one after its UDP and TCP port: nothing else answers there.
    out = cli(backend.env(), "seed-demo", "--tenant", "beta", "--name", "Beta")
    assert out.returncode == 0, out.stderr
    both = folder / "cert-and-key.pem"  # baresip takes TLS connections with it
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    far = Baresip(folder / "far", int(CALLER_HZ), user="+4930555777", auto_answer=True, certificate=both)
    add_trunk(backend, "beta", "tls-carrier", f"127.0.0.1:{far.port + 1}", "beta1", "b3ta-s3cret",
              transport="tls", register=False)
    tls_registrar = TlsRegistrar(cert, key, *TINA)
    add_trunk(backend, "demo", "c-tls", f"127.0.0.1:{tls_registrar.port}", *TINA, transport="tls", expires=120)
    # The registrars listen before the worker says hello (and registers at once).
    registrars = [
        start_sipp(folder / "good", registrar_xml(*GOOD, then_call="support"), good_port, "-mp", str(free_udp_port())),
        start_sipp(folder / "bad", registrar_xml("bob", "b0b-s3cret"), bad_port),
    ]
    hub = HubProcess(backend, folder / "hub.log").start()
    tls_port = free_port()
    worker = WorkerProcess(hub, folder / "worker.log", name="w-trunks", UNIDESK_SIP_TLS_PORT=str(tls_port),
                           UNIDESK_SIP_TLS_CERT=str(cert), UNIDESK_SIP_TLS_KEY=str(key))
    worker.tls_port = tls_port
    try:
        worker.start()
        trunked = Trunked(backend, hub, worker, registrars, carrier_port, folder)
        trunked.cert, trunked.key, trunked.good_port = cert, key, good_port
        trunked.tls_registrar = tls_registrar
        trunked.far = far
        yield trunked
    finally:
        worker.stop()
        hub.stop()
        tls_registrar.close()
        far.stop()
        for proc in registrars:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        drop_backend(backend)


def wait_for(check, timeout: float = 15.0, what: str = "condition"):
    """Poll `check()` until it returns something truthy (bounded); that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)  # polling the hub's view, not synchronising
    raise AssertionError(f"no {what} within {timeout} s")


def test_the_worker_registers_with_digest_and_a_wrong_password_fails(trunked):
    def settled():
        trunks = trunked.trunks()
        states = {name: t["registration"]["state"] for name, t in trunks.items()}
        return trunks if states == {"a-good": "registered", "b-bad": "failed", "c-tls": "registered"} else None

    trunks = wait_for(settled, what="registration of the three trunks")
    good, bad = trunks["a-good"]["registration"], trunks["b-bad"]["registration"]
    assert good["code"] == 200 and good["expires"] == 120 and good["worker"] == "w-trunks", good
    assert bad["code"] == 403 and bad["reason"] == "Forbidden", bad
    # Over TLS the same: challenged, then accepted (the REGISTERs came over the TLS connection).
    assert trunked.tls_registrar.answers[:2] == [401, 200], trunked.tls_registrar.answers
    # Both registrars saw their scenario through: a challenge, then a checked retry; and the carrier's call
    # to the registered contact was answered by the dial plan (the route "support" allows loopback).
    for proc in trunked.registrars:
        assert proc.wait(20) == 0, proc.out.read_text(errors="replace")[-3000:]
    sup = bearer(cached_login(trunked.hub.url, "supervisor"))
    wait_for(lambda: {q["queue"]: q for q in httpx.get(f"{trunked.hub.url}/api/queue-stats", headers=sup).json()}
             .get("support", {}).get("abandoned"), what="the carrier's call, abandoned in the queue support")
    # The passwords stay in the hub and the worker: not in the listing, not in a log line.
    listing = httpx.get(f"{trunked.hub.url}/api/sip/trunks",
                        headers=bearer(cached_login(trunked.hub.url, "admin"))).text
    for secret in (GOOD[1], BAD_PASSWORD, TINA[1]):
        assert secret not in listing and "password" not in listing
        assert secret not in trunked.hub.log() and secret not in trunked.worker.log()
    # Other tenants see only their own trunks; agents and supervisors none.
    assert set(trunked.trunks("acme")) == {"carrier"}
    assert trunked.trunks("acme")["carrier"]["registration"]["state"] == "off"
    sup = httpx.get(f"{trunked.hub.url}/api/sip/trunks", headers=bearer(cached_login(trunked.hub.url, "supervisor")))
    assert sup.status_code == 403


async def test_a_call_out_answers_the_carriers_407_with_the_trunks_credentials(trunked):
    work = trunked.folder / "carrier"
    work.mkdir(exist_ok=True)
    (work / "carrier.xml").write_text(challenging_carrier_xml())
    carrier = asyncio.create_task(
        run_sipp(work, "-sf", "carrier.xml", "-p", str(trunked.carrier_port), "-m", "1", "-rtp_echo",
                 "-mp", str(free_udp_port()), "-trace_logs", timeout=40)
    )
    agent = BotAgent(trunked.hub.url, "acme", "agent1", "demo", ToneSource(AGENT_HZ))
    await agent.login()
    await agent.connect_phone()
    try:
        ack = await agent.request({"type": "call-dial", "to": "+4930555777"})
        assert ack["type"] == "ack", ack
        up = await agent.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] in ("connected", "ended"),
                                20)
        assert up["call"]["status"] == "connected", up
        # The carrier echoes what it gets: the agent hears its own microphone back through the trunk.
        assert await agent.hears(AGENT_HZ), f"the agent heard {agent.hearing():.0f} Hz, not its echo"
        assert (await agent.request({"type": "call-hangup", "call_id": ack["call_id"]}))["type"] == "ack"
        rc, out = await carrier
        assert rc == 0, out[-3000:]
    finally:
        carrier.cancel()
        await agent.close()
    # The retried INVITE's credentials are the trunk's, for the carrier's challenge.
    (logged,) = [line for f in work.glob("*_logs.log") for line in f.read_text().splitlines() if "Authorization" in line]
    credentials = logged.split("Proxy-Authorization:", 1)[1]
    assert f'realm="{REALM}"' in credentials, credentials
    assert digest_is_right(credentials, "INVITE", *CARRIER), credentials
    assert not digest_is_right(credentials, "INVITE", CARRIER[0], "another password")
    assert CARRIER[1] not in trunked.worker.log()


async def test_a_caller_over_tls_reaches_an_agent_and_both_hear_each_other(trunked, tmp_path):
    agent = BotAgent(trunked.hub.url, "demo", "agent1", "demo", ToneSource(AGENT_HZ))
    await agent.login()
    await agent.connect_phone()
    assert (await agent.request({"type": "set-state", "state": "available"}))["type"] == "ack"
    # The worker's requests (the BYE) come to the phone over a TLS connection of their own (RFC 3261
    # §18.1.1: to the phone's Contact): the phone needs a certificate too.
    mine = tmp_path / "phone.pem"
    mine.write_bytes(trunked.cert.read_bytes() + trunked.key.read_bytes())
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ), certificate=mine)
    try:
        phone.call(f"sip:support@127.0.0.1:{trunked.worker.tls_port};transport=tls", 25)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        contact_id = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": contact_id}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ), f"the agent heard {agent.hearing():.0f} Hz, not the caller"
        assert await asyncio.to_thread(hears, phone, AGENT_HZ), "the caller does not hear the agent"
        assert (await agent.request({"type": "end-contact", "contact_id": contact_id}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        await agent.request({"type": "complete-wrap-up", "contact_id": contact_id, "code": "resolved"})
    finally:
        phone.stop()
        await agent.request({"type": "set-state", "state": "logged-out"})
        await agent.close()


async def test_a_call_out_through_a_tls_trunk_connects_and_both_hear_each_other(trunked, tmp_path):
    far = trunked.far
    far.listen(40)
    agent = BotAgent(trunked.hub.url, "beta", "agent1", "demo", ToneSource(AGENT_HZ))
    await agent.login()
    await agent.connect_phone()
    try:
        ack = await agent.request({"type": "call-dial", "to": "+4930555777"})
        assert ack["type"] == "ack", ack
        up = await agent.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] in ("connected", "ended"),
                                20)
        assert up["call"]["status"] == "connected", (up, far.output()[-2000:])
        assert await agent.hears(CALLER_HZ), f"the agent heard {agent.hearing():.0f} Hz, not the far end"
        assert await asyncio.to_thread(hears, far, AGENT_HZ), "the far end does not hear the agent"
        assert (await agent.request({"type": "call-hangup", "call_id": ack["call_id"]}))["type"] == "ack"
        assert await asyncio.to_thread(ended, far), far.output()[-2000:]
    finally:
        far.stop()
        await agent.close()


def test_another_worker_takes_the_registrations_over_when_the_registering_one_is_gone(trunked, tmp_path):
    # Runs last: it kills the module's worker.
    second = WorkerProcess(trunked.hub, tmp_path / "second.log", name="w-second").start()
    try:
        assert trunked.trunks()["a-good"]["registration"]["worker"] == "w-trunks"
        registrar = start_sipp(tmp_path / "registrar", registrar_xml(*GOOD), trunked.good_port)
        trunked.worker.kill()
        # After the reconnect grace the hub gives the role to the remaining worker, which registers.
        taken = wait_for(
            lambda: (r := trunked.trunks()["a-good"]["registration"]).get("worker") == "w-second"
            and r["state"] == "registered" and r,
            timeout=20, what="registration by the second worker",
        )
        assert taken["code"] == 200
        assert registrar.wait(20) == 0, registrar.out.read_text(errors="replace")[-3000:]
    finally:
        second.stop()
