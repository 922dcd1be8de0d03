"""Real SIP peers for tests: baresip as a scripted phone (a tone as its microphone, what it
hears dumped to WAV files), following the recipe in the project's test-peer notes."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import time
import wave
from pathlib import Path

import numpy as np

from tests.conftest import free_port


def free_port_pair() -> int:
    """A port p with p and p+1 free for UDP and TCP on loopback (free_port leaves p+1 to p)."""
    return free_port()


class Baresip:
    """One baresip phone in a folder of its own. `call()` dials and hangs up after `seconds`. Its microphone
    plays a tone of `tone_hz`, or the WAV file `source` (48 kHz stereo, like its capture settings)."""

    def __init__(
        self, folder: Path, tone_hz: int, user: str = "caller", auto_answer: bool = False, source: Path | None = None,
        certificate: Path | None = None, registrar: str | None = None, password: str | None = None,
    ) -> None:
        """`registrar` ("host:port"): a desk phone registering there as `user` with `password`."""
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        # baresip also opens TCP and TLS (the port after) beside UDP: all must be free.
        self.port = free_port_pair()
        self.user = user
        # baresip's sndfile dumps what it decodes: G.711, 8 kHz mono.
        self.rate = 8000
        (folder / "config").write_text(
            "\n".join(
                [
                    f"sip_listen       127.0.0.1:{self.port}",
                    "ausrc_srate      48000",
                    "auplay_srate     48000",
                    "ausrc_channels   2",
                    "auplay_channels  1",
                    f"audio_source     aufile,{source}" if source else f"audio_source     ausine,{tone_hz}",
                    f"audio_player     aufile,{folder / 'played.wav'}",
                    "audio_alert      aufile,/dev/null",
                    "module_path      /usr/lib/baresip/modules",
                    "module           g711.so",
                    "module           ausine.so",
                    "module           aufile.so",
                    "module           sndfile.so",
                    "module_app       account.so",
                    "module_app       menu.so",
                    f"snd_path         {folder}",
                    # Certificate and key in one PEM: lets the phone accept TLS connections (a BYE to it).
                    *([f"sip_certificate  {certificate}"] if certificate else []),
                    "",
                ]
            )
        )
        answer = ";answermode=auto" if auto_answer else ""
        if registrar:
            account = f"<sip:{user}@{registrar}>;auth_pass={password};regint=60{answer}"
        else:
            account = f"<sip:{user}@127.0.0.1:{self.port}>;regint=0{answer}"
        (folder / "accounts").write_text(account + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def call(self, uri: str, seconds: int) -> subprocess.Popen[bytes]:
        self.log = open(self.folder / "baresip.log", "wb")
        self.proc = subprocess.Popen(
            ["baresip", "-f", str(self.folder), "-e", f"/dial {uri}", "-t", str(seconds)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        return self.proc

    def listen(self, seconds: int) -> subprocess.Popen[bytes]:
        """Wait for calls (answered at once with auto_answer) and quit after `seconds`."""
        self.log = open(self.folder / "baresip.log", "wb")
        self.proc = subprocess.Popen(
            ["baresip", "-f", str(self.folder), "-t", str(seconds)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while "baresip is ready" not in self.output():
            assert time.monotonic() < deadline and self.proc.poll() is None, self.output()
            time.sleep(0.05)  # polling for readiness
        return self.proc

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        path = self.folder / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def heard(self) -> tuple[np.ndarray, int]:
        """What the phone heard (the decoded far side), mono samples and their rate."""
        dumps = sorted(self.folder.glob("dump-*-dec.wav"))
        assert dumps, f"baresip wrote no dump of what it heard: {sorted(p.name for p in self.folder.iterdir())}"
        with wave.open(str(dumps[-1])) as w:
            rate, channels = w.getframerate(), w.getnchannels()
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        if channels > 1:
            x = x.reshape(-1, channels)[:, 0]
        return x.astype(np.int16), rate


def latest(phone: Baresip, seconds: float) -> np.ndarray | None:
    """The last `seconds` the phone heard, from its dump as it grows; None until there are that many."""
    dumps = sorted(phone.folder.glob("dump-*-dec.wav"))
    if not dumps:
        return None
    raw = dumps[-1].read_bytes()[44:]  # the header's sizes are written at the end
    x = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")
    n = int(phone.rate * seconds)
    return x[-n:] if len(x) >= n else None


def hears(phone: Baresip, freq: float, timeout: float = 10.0, seconds: float = 0.5) -> bool:
    """Whether the phone's dump of what it hears shows `freq` in its latest `seconds`, within `timeout`
    (the dump grows while the call runs; polled, bounded)."""
    from webrtc.tones import tone_present

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        x = latest(phone, seconds)
        if x is not None and tone_present(x, phone.rate, freq):
            return True
        time.sleep(0.1)  # polling a file another process writes
    return False


def hears_all(phone: Baresip, freqs: list[float], timeout: float = 10.0, seconds: float = 0.5) -> bool:
    """Whether the phone hears every tone of `freqs` at once (a conference), within `timeout` (polled)."""
    from webrtc.tones import tones_present

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        x = latest(phone, seconds)
        if x is not None and tones_present(x, phone.rate, freqs):
            return True
        time.sleep(0.1)
    return False


def hears_not(phone: Baresip, freq: float, timeout: float = 10.0, seconds: float = 0.5) -> bool:
    """Whether, within `timeout`, the phone's latest `seconds` carry no trace of `freq` (polled, bounded)."""
    from webrtc.tones import tone_present

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        x = latest(phone, seconds)
        if x is not None and not tone_present(x, phone.rate, freq, min_snr_db=0.0):
            return True
        time.sleep(0.1)
    return False


def ended(phone: Baresip, timeout: float = 10.0) -> bool:
    """Whether the phone's call ended (its log says so), within `timeout` (polled, bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = phone.output()
        if "terminated (duration" in out or "session closed" in out:
            return True
        time.sleep(0.1)
    return False


def windows(x: np.ndarray, rate: int, seconds: float = 0.5) -> list[np.ndarray]:
    n = int(rate * seconds)
    return [x[i : i + n] for i in range(0, len(x) - n + 1, n)]


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and its key (PEM), made for this run."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "sip-cert.pem", folder / "sip-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def credentials_work(port: int, user: str, realm: str, password: str, timeout: float = 10.0) -> bool:
    """Whether the registrar on 127.0.0.1:`port` accepts `user`'s password, within `timeout`: a REGISTER
    without Contact (a query, RFC 3261 §10.2.3: it binds nothing) answered 200 after the digest
    challenge. Polled, bounded: the hub hands credentials to the worker asynchronously."""
    import hashlib
    import re
    import socket

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(1.0)
        here = s.getsockname()[1]
        n = 0
        while time.monotonic() < deadline:
            n += 1
            uri = f"sip:127.0.0.1:{port}"

            def send(auth: str = "") -> str:
                s.sendto((f"REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{here};branch=z9hG4bKq{n}{len(auth)}\r\n"
                          f"From: <sip:{user}@127.0.0.1>;tag=q{n}\r\nTo: <sip:{user}@127.0.0.1>\r\n"
                          f"Call-ID: query-{here}-{n}\r\nCSeq: {1 + bool(auth)} REGISTER\r\nMax-Forwards: 70\r\n"
                          f"{auth}Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", port))
                try:
                    return s.recv(4096).decode(errors="replace")
                except TimeoutError:
                    return ""

            answer = send()
            m = re.search(r'nonce="([^"]+)"', answer)
            if answer.startswith("SIP/2.0 401") and m:
                nonce = m.group(1)
                ha2 = md5(f"REGISTER:{uri}")
                response = md5(f"{md5(f'{user}:{realm}:{password}')}:{nonce}:00000001:q:auth:{ha2}")
                auth = (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                        f'response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="q"\r\n')
                if send(auth).startswith("SIP/2.0 200"):
                    return True
            time.sleep(0.1)  # polling: the credentials are on their way to the worker
    return False
