"""Call recordings: a recorded SIP call (baresip caller, bot agent) ends up as an Ogg Opus file holding both
parties; who may list, hear and download recordings; the retention job deleting them.

Each test runs its own hub (its recordings folder is the test's) on a backend of its own."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from tests.conftest import HubProcess, WorkerProcess, drop_backend, prepared_backend, set_queue_config, set_tenant_settings
from tests.helpers import bearer, login
from tests.sip_peers import Baresip, ended, hears, windows
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent
from webrtc.recorder import RecordingWriter, read_channels
from webrtc.tones import tone_present, write_tone_wav

CALLER_HZ, AGENT_HZ, MUSIC_HZ = 1000.0, 500.0, 700.0
CALL_SECONDS = 6.0


def _url(b) -> str:  # type: ignore[no-untyped-def]
    return b.database_url.replace("sqlite://", "sqlite+aiosqlite://").replace("postgresql://", "postgresql+asyncpg://")


async def in_store(b, fn):  # type: ignore[no-untyped-def]
    """Run `fn(session)` in a transaction on the backend's store (what no route exposes)."""
    from store.db import make_engine, make_sessionmaker

    engine = make_engine(_url(b))
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            return await fn(s)
    finally:
        await engine.dispose()


async def tenant_id(b, slug: str) -> int:  # type: ignore[no-untyped-def]
    from store.repos import tenant_by_slug

    async def get(s):  # type: ignore[no-untyped-def]
        return (await tenant_by_slug(s, slug)).id

    return await in_store(b, get)


async def add_recording(b, folder: Path, slug: str, ended_ago: float | None, seconds: float = 2.0) -> str:  # type: ignore[no-untyped-def]
    """A finished recording of `slug` with a real file (a 1000 Hz caller, a 500 Hz agent), ended `ended_ago` s ago."""
    from store.models import Recording

    rid = uuid.uuid4().hex
    done: list = []
    rec = RecordingWriter({}, folder, done.append)
    legs = {"c": SimpleNamespace(current=None), "a": SimpleNamespace(current=None)}
    sources = {"c": ToneSource(CALLER_HZ), "a": ToneSource(AGENT_HZ)}
    rec.start(rid, "c", "a")
    tap = rec._recorders[rid]
    for tick in range(int(seconds * 50)):
        for name, leg in legs.items():
            leg.current = sources[name].frame(tick)
        tap.capture(legs)
    rec.close()
    [result] = done
    t = await tenant_id(b, slug)
    now = time.time()
    started = now - (ended_ago or 0.0) - seconds

    async def put(s):  # type: ignore[no-untyped-def]
        s.add(Recording(
            id=rid, tenant_id=t, contact_id=uuid.uuid4().hex[:16], queue="support", agent_id=None, started_at=started,
            ended_at=None if ended_ago is None else now - ended_ago, seconds=result.seconds, bytes=result.bytes,
            path=result.path,
        ))

    await in_store(b, put)
    return rid


async def row(b, rid: str):  # type: ignore[no-untyped-def]
    from store.models import Recording

    async def get(s):  # type: ignore[no-untyped-def]
        return await s.get(Recording, rid)

    return await in_store(b, get)


@pytest.fixture
def own_backend(tmp_path):  # type: ignore[no-untyped-def]
    b = prepared_backend(tmp_path)
    yield b
    drop_backend(b)


# ---------------------------------------------------------------- a recorded call


def non_tone_share(x: np.ndarray, rate: int, freq: float) -> float:
    """The share of a window's power that lies outside ±60 Hz of `freq` (speech over a tone, or none)."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x)))) ** 2
    spectrum[0] = 0.0
    hz = np.fft.rfftfreq(len(x), 1 / rate)
    band = np.abs(hz - freq) <= 60
    total = float(spectrum.sum())
    return float(spectrum[~band].sum()) / total if total > 0 else 0.0


def loud(x: np.ndarray) -> bool:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) > 300  # about -40 dBFS


async def test_a_recorded_queue_announces_and_records_both_parties_of_a_sip_call(own_backend, tmp_path):
    folder = tmp_path / "recordings"
    set_queue_config(own_backend, "demo", "support", record=True, record_announcement="call-recorded")
    hub = HubProcess(own_backend, tmp_path / "hub.log", UNIDESK_RECORDINGS_DIR=str(folder)).start()
    music = tmp_path / "hold.wav"
    write_tone_wav(music, MUSIC_HZ, 2.0, 8000)
    worker = WorkerProcess(hub, tmp_path / "worker.log", UNIDESK_HOLD_MUSIC=str(music)).start()
    agent = BotAgent(hub.url, "demo", "agent1", "demo", ToneSource(AGENT_HZ))
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    sup = bearer(login(hub.url, "supervisor"))
    try:
        await agent.login()
        await agent.connect_phone()
        assert (await agent.request({"type": "set-state", "state": "available"}))["type"] == "ack"
        phone.call(f"sip:support@127.0.0.1:{worker.sip_port}", 60)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        connected = time.monotonic()
        assert await agent.hears(CALLER_HZ)
        assert await asyncio.to_thread(hears, phone, AGENT_HZ, 15.0), "the caller does not hear the agent"
        await asyncio.sleep(max(0.0, CALL_SECONDS - (time.monotonic() - connected)))  # the call's length
        assert (await agent.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        talked = time.monotonic() - connected
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        phone.stop()

        # The row is filled when the worker reports the finished file (polled, bounded).
        deadline = time.monotonic() + 20
        while True:
            listed = httpx.get(f"{hub.url}/api/recordings", params={"contact_id": cid}, headers=sup).json()
            if listed and listed[0]["seconds"] is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert len(listed) == 1, listed
        meta = listed[0]
        assert meta["queue"] == "support" and meta["agent"] == "agent1" and meta["caller"] == "caller"
        assert meta["available"] and meta["error"] is None and meta["ended_at"] >= meta["started_at"]
        path = folder / f"{meta['id']}.ogg"
        assert path.stat().st_size == meta["bytes"] > 0
        left, right = read_channels(path)
        assert abs(len(left) / 8000 - meta["seconds"]) < 0.2
        # From the agent's answer to the end of the contact, within what the commands' hops take.
        assert abs(meta["seconds"] - talked) < 1.5, (meta["seconds"], talked)
        steady = slice(8000, len(left) - 8000)  # leave out the first and last second
        assert sum(tone_present(w, 8000, CALLER_HZ) for w in windows(left[steady], 8000)) >= 6, "no caller on the left"
        assert sum(tone_present(w, 8000, AGENT_HZ) for w in windows(right[steady], 8000)) >= 6, "no agent on the right"
        assert not any(tone_present(w, 8000, AGENT_HZ) for w in windows(left[steady], 8000))
        assert not any(tone_present(w, 8000, CALLER_HZ) for w in windows(right[steady], 8000))

        # The announcement: from when the agent's tone reaches the caller, the caller hears speech over it
        # for a few seconds, then the tone alone.
        heard, rate = phone.heard()
        parts = windows(heard, rate)
        first = next(i for i, w in enumerate(parts) if loud(w) and non_tone_share(w, rate, AGENT_HZ) < 0.9)
        after = [non_tone_share(w, rate, AGENT_HZ) for w in parts[first:]]
        assert len(after) >= 11, len(after)
        # The prompt (3.4 s) adds a few percent of the power beside the tone; without it that share is
        # well under one percent (the first window, where the tone starts, is left out).
        shares = [round(a, 3) for a in after]
        assert float(np.mean(after[1:7])) > 0.02, f"no announcement over the agent's tone: {shares}"
        # Later, the tone alone: the announcement stopped (a prompt still playing would leave a few percent
        # in every window; the last window is left out too: it may hold the end of the call). A window may
        # still show a click where the agent's own sending was starved on a busy machine.
        later = after[8:-1]
        assert len(later) >= 2, shares
        assert float(np.min(later)) < 0.01, f"the tone is not alone later: {shares}"
        await agent.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})
    finally:
        phone.stop()
        await agent.close()
        worker.stop()
        hub.stop()


async def test_a_worker_that_cannot_write_says_why_in_the_recordings_row(own_backend, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    set_queue_config(own_backend, "demo", "support", record=True)
    hub = HubProcess(own_backend, tmp_path / "hub.log", UNIDESK_RECORDINGS_DIR=str(blocker / "recordings")).start()
    worker = WorkerProcess(hub, tmp_path / "worker.log").start()
    agent = BotAgent(hub.url, "demo", "agent2", "demo", ToneSource(AGENT_HZ))
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    sup = bearer(login(hub.url, "supervisor"))
    try:
        await agent.login()
        await agent.connect_phone()
        assert (await agent.request({"type": "set-state", "state": "available"}))["type"] == "ack"
        phone.call(f"sip:support@127.0.0.1:{worker.sip_port}", 30)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ)  # the call itself goes on
        deadline = time.monotonic() + 15
        while True:
            listed = httpx.get(f"{hub.url}/api/recordings", params={"contact_id": cid}, headers=sup).json()
            if listed and listed[0]["error"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert listed and "recordings folder" in listed[0]["error"], listed
        assert listed[0]["available"] is False and listed[0]["audio_url"] is None
        r = httpx.get(f"{hub.url}/api/recordings/{listed[0]['id']}/audio", headers=sup)
        assert r.status_code == 409 and "recordings folder" in r.json()["message"]
        assert (await agent.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        await agent.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})
    finally:
        phone.stop()
        await agent.close()
        worker.stop()
        hub.stop()


# ---------------------------------------------------------------- who may hear and download


async def test_supervisors_hear_recordings_admins_download_agents_and_other_tenants_do_not(own_backend, tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    rid = await add_recording(own_backend, folder, "demo", ended_ago=60.0)
    hub = HubProcess(own_backend, tmp_path / "hub.log", UNIDESK_RECORDINGS_DIR=str(folder)).start()
    base = f"{hub.url}/api/recordings"
    sup, admin, agent = (bearer(login(hub.url, u)) for u in ("supervisor", "admin", "agent1"))
    other = bearer(login(hub.url, "supervisor", tenant="acme"))
    size = (folder / f"{rid}.ogg").stat().st_size
    try:
        listed = httpx.get(base, headers=sup).json()
        assert [r["id"] for r in listed] == [rid] and listed[0]["download"] is False
        assert listed[0]["seconds"] == 2.0 and listed[0]["queue"] == "support"
        meta = httpx.get(f"{base}/{rid}", headers=sup).json()
        assert meta["audio_url"].startswith(f"/api/recordings/{rid}/audio?token=") and meta["bytes"] == size
        # The URL's token (for an <audio> element, which sends no bearer header) opens this recording only.
        r = httpx.get(hub.url + meta["audio_url"], headers={"Range": "bytes=0-3"})
        assert r.status_code == 206 and r.content == b"OggS"
        other_rid = await add_recording(own_backend, folder, "demo", ended_ago=30.0)
        token = meta["audio_url"].split("token=")[1]
        assert httpx.get(f"{base}/{other_rid}/audio", params={"token": token}).status_code == 401
        assert httpx.get(f"{base}/{rid}/audio", params={"token": "x.y.z"}).status_code == 401

        r = httpx.get(f"{base}/{rid}/audio", headers=sup)
        assert r.status_code == 200 and r.headers["content-type"] == "audio/ogg"
        assert r.content[:4] == b"OggS" and len(r.content) == size and "content-disposition" not in r.headers
        assert r.headers["accept-ranges"] == "bytes"
        r = httpx.get(f"{base}/{rid}/audio", headers={**sup, "Range": "bytes=100-199"})
        assert r.status_code == 206 and len(r.content) == 100
        assert r.headers["content-range"] == f"bytes 100-199/{size}"

        # Download: admins by default; a supervisor only once the tenant lists the role.
        assert httpx.get(f"{base}/{rid}/audio", params={"download": 1}, headers=sup).status_code == 403
        r = httpx.get(f"{base}/{rid}/audio", params={"download": 1}, headers=admin)
        assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment;")
        assert all(r["download"] for r in httpx.get(base, headers=admin).json())
        set_tenant_settings(own_backend, "demo", recordings={"download_roles": ["admin", "supervisor"]})
        assert httpx.get(f"{base}/{rid}/audio", params={"download": 1}, headers=sup).status_code == 200

        # Agents are refused everything; another tenant's supervisor does not learn that it exists.
        for url in (base, f"{base}/{rid}", f"{base}/{rid}/audio"):
            assert httpx.get(url, headers=agent).status_code == 403, url
        assert httpx.get(base, headers=other).json() == []
        for url in (f"{base}/{rid}", f"{base}/{rid}/audio"):
            r = httpx.get(url, headers=other)
            assert r.status_code == 404 and r.json()["error"] == "not-found", url
        assert httpx.get(f"{base}/{uuid.uuid4().hex}", headers=sup).status_code == 404
        assert httpx.get(f"{base}/not-an-id", headers=sup).status_code == 400
        assert httpx.get(f"{base}/{rid}/audio", params={"download": "yes"}, headers=admin).status_code == 400
        assert httpx.get(base, params={"limit": "0"}, headers=sup).status_code == 400
        assert httpx.get(f"{base}/{rid}").status_code == 401
    finally:
        hub.stop()


# ---------------------------------------------------------------- retention


async def test_the_retention_job_deletes_files_past_the_tenants_retention_and_marks_the_rows(own_backend, tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    # demo keeps recordings about a second (0.00002 days ≈ 1.7 s); acme the default 90 days.
    set_tenant_settings(own_backend, "demo", recordings={"retention_days": 0.00002})
    old = await add_recording(own_backend, folder, "demo", ended_ago=30.0)
    kept = await add_recording(own_backend, folder, "acme", ended_ago=30.0)
    running = await add_recording(own_backend, folder, "demo", ended_ago=None)  # no end yet: maybe still running
    hub = HubProcess(own_backend, tmp_path / "hub.log", UNIDESK_RECORDINGS_DIR=str(folder),
                     UNIDESK_RETENTION_SWEEP_SECONDS="0.3").start()
    sup = bearer(login(hub.url, "supervisor"))
    try:
        deadline = time.monotonic() + 20
        while (await row(own_backend, old)).deleted_at is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        gone = await row(own_backend, old)
        assert gone.deleted_at is not None and not (folder / f"{old}.ogg").exists()
        assert (await row(own_backend, kept)).deleted_at is None and (folder / f"{kept}.ogg").exists()
        assert (await row(own_backend, running)).deleted_at is None and (folder / f"{running}.ogg").exists()
        r = httpx.get(f"{hub.url}/api/recordings/{old}/audio", headers=sup)
        assert r.status_code == 410 and r.json()["error"] == "gone"
        meta = httpx.get(f"{hub.url}/api/recordings/{old}", headers=sup).json()
        assert meta["available"] is False and meta["audio_url"] is None and meta["deleted_at"] is not None
    finally:
        hub.stop()


@pytest.mark.redis_only
async def test_with_two_hubs_one_runs_the_retention_job(tmp_path):
    b = prepared_backend(tmp_path, "redis")
    folder = tmp_path / "recordings"
    folder.mkdir()
    set_tenant_settings(b, "demo", recordings={"retention_days": 0.00001})
    env = {"UNIDESK_RECORDINGS_DIR": str(folder), "UNIDESK_RETENTION_SWEEP_SECONDS": "0.2"}
    hubs = [HubProcess(b, tmp_path / f"hub{i}.log", **env).start() for i in range(2)]
    try:
        # Recordings due at once, one after another while both hubs run their loops.
        for _ in range(4):
            rid = await add_recording(b, folder, "demo", ended_ago=30.0, seconds=0.2)
            deadline = time.monotonic() + 20
            while (await row(b, rid)).deleted_at is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert (await row(b, rid)).deleted_at is not None and not (folder / f"{rid}.ogg").exists()
        sweeping = [h for h in hubs if "recordings past their retention" in h.log()]
        assert len(sweeping) == 1, [h.log_path for h in sweeping]
    finally:
        for h in hubs:
            h.stop()
        drop_backend(b)
