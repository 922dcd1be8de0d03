"""Real SIP peers for the bridge tests: sipp and baresip as subprocesses.

Each runs in its own temporary folder (sipp writes logs next to itself and
opens its pcaps relative to it; baresip reads its config and dumps WAVs
there). Ports are picked free on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import wave
from pathlib import Path

import numpy as np

from tests.conftest import RTP_PORTS, free_port
from webrtc.tones import write_pcmu_pcap

SIPP_SHARE = Path("/usr/share/sip-tester")


def free_udp_port() -> int:
    """A UDP port free on 127.0.0.1 whose TCP twin is free too (the bridge listens on both)."""
    return free_port()


def rtp_base() -> int:
    """An even RTP port for the bridge, from this pass's range; pjsua moves on to the next pair when one is taken."""
    return random.randrange(RTP_PORTS[0], RTP_PORTS[1] - 64, 2)


def copy_pcaps(workdir: Path) -> Path:
    """sipp plays `pcap/NAME.pcap` relative to where it runs: copy the package's pcaps there once."""
    pcap = workdir / "pcap"
    if not pcap.exists():
        pcap.mkdir(parents=True)
        for f in SIPP_SHARE.glob("*.pcap"):
            shutil.copy(f, pcap / f.name)
    return workdir


async def run_sipp(workdir: Path, *args: str, timeout: float = 30.0) -> tuple[int, str]:
    """Run sipp to completion in `workdir` (pcaps copied to `pcap/`); (exit status, its output)."""
    copy_pcaps(workdir)
    out = workdir / f"sipp-{random.getrandbits(32):08x}.out"
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            "sipp", *args, "-i", "127.0.0.1", "-nostdin", "-timeout", f"{int(timeout)}s",
            cwd=workdir, stdout=sink, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            rc = await asyncio.wait_for(proc.wait(), timeout + 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    return rc, out.read_text(errors="replace")


# The media lines of an offer: PCMU only (sipp's own RTP), or PCMA with RFC 4733 events (pcap playback).
PCMU_MEDIA = "m=audio [media_port] RTP/AVP 0\n      a=rtpmap:0 PCMU/8000"
PCMA_DTMF_MEDIA = (
    "m=audio [auto_media_port] RTP/AVP 8 101\n      a=rtpmap:8 PCMA/8000\n"
    "      a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-15"
)


def invite(media: str = PCMU_MEDIA) -> str:
    """A sipp UAC scenario's INVITE to [service] (its `<send>`, retransmitted), offering `media`."""
    return f"""  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      {media}
    ]]>
  </send>"""


def in_dialog(method: str, cseq: int, retrans: bool = False) -> str:
    """A sipp UAC scenario's `<send>` of `method` in its dialog, to the first Request-URI (as many callers do)."""
    return f"""  <send{' retrans="500"' if retrans else ''}>
    <![CDATA[
      {method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>"""


# A sipp scenario's last steps when the far side hangs up: its BYE answered 200.
BYE_ANSWERED = """  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>"""


def uac_expecting(code: int) -> str:
    """A sipp UAC scenario: one INVITE, which must get final response `code` (then ACK)."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="INVITE answered with {code}">
{invite()}
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="{code}"/>
{in_dialog("ACK", 1)}
</scenario>
"""


def uas_answering(code: int) -> str:
    """A sipp UAS scenario: receive one INVITE and refuse it with `code`."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="UAS refusing with {code}">
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 {code} Refused
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""


class Baresip:
    """baresip calling out with a 1000 Hz tone as microphone, dumping what it hears (sndfile)."""

    def __init__(self, workdir: Path, tone_hz: int = 1000) -> None:
        self.dir = workdir
        self.port = free_udp_port()
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config").write_text(
            f"""sip_listen       127.0.0.1:{self.port}
ausrc_srate      48000
auplay_srate     48000
ausrc_channels   2
auplay_channels  1
audio_source     ausine,{tone_hz}
audio_player     aufile,{workdir}/played.wav
audio_alert      aufile,/dev/null
module_path      /usr/lib/baresip/modules
module           g711.so
module           ausine.so
module           aufile.so
module           sndfile.so
module_app       account.so
module_app       menu.so
snd_path         {workdir}
"""
        )
        (workdir / "accounts").write_text(f"<sip:caller@127.0.0.1:{self.port}>;regint=0\n")
        self.proc: asyncio.subprocess.Process | None = None
        self.output = workdir / "baresip.out"

    async def dial(self, uri: str, seconds: int) -> None:
        sink = self.output.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            "baresip", "-f", str(self.dir), "-e", f"/dial {uri}", "-t", str(seconds),
            stdout=sink, stderr=asyncio.subprocess.STDOUT,
        )
        sink.close()

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def heard(self) -> tuple[np.ndarray, int]:
        """What baresip decoded from us (the sndfile 'dec' dump): samples, rate."""
        (path,) = self.dir.glob("dump-*-dec.wav")
        with wave.open(str(path)) as w:
            rate, channels = w.getframerate(), w.getnchannels()
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return samples[::channels], rate


def tone_pcap(path: Path, hz: float, seconds: float) -> Path:
    """A pcap of PCMU RTP (20 ms packets) carrying a steady `hz` tone, for sipp's `play_pcap_audio`."""
    n = np.arange(int(seconds * 50) * 160)
    pcm = np.round(0.3 * 32767 * np.sin(2 * np.pi * hz * n / 8000)).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_pcmu_pcap(path, pcm.reshape(-1, 160))
    return path


def uac_playing(pcap: str) -> str:
    """A sipp UAC scenario: INVITE (PCMU), ACK, play `pcap` (relative to sipp's folder) for the call's
    length (`-d`), BYE. The ACK and BYE go to the first Request-URI, as many callers do."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller playing a tone">
{invite("m=audio [auto_media_port] RTP/AVP 0" + chr(10) + "      a=rtpmap:0 PCMU/8000")}
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200"/>
{in_dialog("ACK", 1)}
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause/>
{in_dialog("BYE", 2, retrans=True)}
  <recv response="200"/>
</scenario>
"""
