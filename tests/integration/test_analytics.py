"""Live call analytics and alerts: a baresip caller who talks (a tone) for 3 s and then is silent, a bot
agent who talks until muted; the board receives the call's figures, the silence alert is raised, acknowledged
(recorded in the store) and cleared, and the figures match what the peers played."""

import asyncio
import time
import wave

import numpy as np

from tests.conftest import set_tenant_settings
from tests.integration.test_sip import available_bot, only
from tests.sip_peers import Baresip
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent
from webrtc.tones import tone

CALLER_HZ, AGENT_HZ = 1000.0, 500.0
CALLER_TALKS = 3.0
RULES = {"silence_seconds": 2, "call_minutes": None, "service_level_below": None, "longest_wait_seconds": None,
         "paused_minutes": None}


def talk_then_silence(path, seconds: float, total: float = 60.0) -> None:
    """A 48 kHz stereo WAV: a tone for `seconds`, then silence up to `total`."""
    rate = 48000
    x = np.zeros(int(total * rate), dtype=np.int16)
    x[: int(seconds * rate)] = tone(CALLER_HZ, int(seconds * rate), rate, 0.3)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(x, 2).astype("<i2").tobytes())


async def alert_rows(backend) -> list:
    from sqlalchemy import select

    from store.db import make_engine, make_sessionmaker
    from store.models import AlertRecord

    url = backend.database_url.replace("sqlite://", "sqlite+aiosqlite://").replace("postgresql://", "postgresql+asyncpg://")
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            return list((await s.execute(select(AlertRecord))).scalars())
    finally:
        await engine.dispose()


async def test_figures_reach_the_board_and_silence_raises_an_alert(hub, backend, media_worker, tmp_path):
    only(hub)
    set_tenant_settings(backend, "demo", alerts=RULES)
    wav = tmp_path / "caller.wav"
    talk_then_silence(wav, CALLER_TALKS)
    board = BotAgent(hub.url, "demo", "supervisor", "demo", ToneSource(1500.0))
    agent = await available_bot(hub, "agent2", AGENT_HZ)
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ), source=wav)
    try:
        await board.login()
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 60)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        connected_at = time.monotonic()

        def figures_of(m: dict) -> dict | None:
            if m["type"] != "live-calls":
                return None
            return next((c["figures"] for c in m.get("calls", []) if c["contact_id"] == cid), None)

        # The caller's tone ends: their talk time stops growing while the agent keeps talking.
        last = None
        for _ in range(30):
            m = await board.expect(lambda m: figures_of(m) is not None, 5)
            f = figures_of(m)
            assert f is not None
            if last is not None and f["caller_talk"] == last["caller_talk"] and f["caller_talk"] > 1.0:
                break
            last = f
        else:
            raise AssertionError(f"the caller's talk time never settled: {last}")
        assert f["agent_talk"] > f["caller_talk"] and f["silence"] == 0, f
        assert f["caller_talk"] <= CALLER_TALKS + 0.4, f
        # Both talked at once while the caller's tone played.
        assert abs(f["overtalk"] - f["caller_talk"]) <= 0.5, f

        # The agent mutes: nobody talks; after 2 s the silence alert is raised on the board.
        assert (await agent.request({"type": "call-mute", "call_id": cid, "on": True}))["type"] == "ack"
        muted_at = time.monotonic()
        raised = await board.expect(
            lambda m: m["type"] == "alert" and m["alert"]["kind"] == "silence" and m["alert"]["subject"] == cid, 10
        )
        alert = raised["alert"]
        assert alert["value"] >= 2 and alert["threshold"] == 2 and alert.get("cleared_at") is None
        # The talk split matches what was played: the agent talked from the answer until muted.
        board.events = [m for m in board.events if m["type"] != "live-calls"]  # figures from before the alert
        m = await board.expect(lambda m: figures_of(m) is not None, 5)
        f = figures_of(m)
        assert f is not None
        assert abs(f["agent_talk"] - (muted_at - connected_at)) <= 0.8, (f, muted_at - connected_at)
        assert f["silence"] >= 1.0 and f["longest_silence"] >= f["silence"], f

        # Acknowledged by the supervisor (recorded), then cleared when the agent talks again.
        assert (await board.request({"type": "alert-ack", "alert_id": alert["id"]}))["type"] == "ack"
        acked = await board.expect(lambda m: m["type"] == "alert" and m["alert"]["id"] == alert["id"]
                                   and m["alert"].get("acked_by") == "supervisor", 5)
        assert acked["alert"]["acked_at"] >= alert["raised_at"]
        bad = await board.request({"type": "alert-ack", "alert_id": "nope"})
        assert bad["type"] == "error" and bad["code"] == "not-found"
        err = await agent.request({"type": "alert-ack", "alert_id": alert["id"]})
        assert err["type"] == "error" and err["code"] == "forbidden"
        assert (await agent.request({"type": "call-mute", "call_id": cid, "on": False}))["type"] == "ack"
        cleared = await board.expect(lambda m: m["type"] == "alert" and m["alert"]["id"] == alert["id"]
                                     and m["alert"].get("cleared_at"), 10)
        assert cleared["alert"]["cleared_at"] > alert["raised_at"]
        rows = [r for r in await alert_rows(backend) if r.alert_id == alert["id"]]
        assert len(rows) == 1 and rows[0].acked_by is not None and rows[0].cleared_at is not None
        assert rows[0].kind == "silence" and rows[0].subject == cid

        # The call ends: it leaves the board.
        assert (await agent.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        await board.expect(lambda m: m["type"] == "live-calls" and cid in m.get("ended", []), 10)
        await agent.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})
    finally:
        set_tenant_settings(backend, "demo", alerts={})
        phone.stop()
        await agent.request({"type": "set-state", "state": "logged-out"})
        for b in (agent, board):
            await b.close()
