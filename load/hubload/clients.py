"""Client processes: the agents changing state and the boards watching them.

Each runs in its own process (started by `measure` with the multiprocessing
`spawn` method), talks to the coordinator over a pipe, and reports its raw
records as arrays of int64/float64 bytes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import resource
import signal
import time
from array import array
from typing import Any

import msgspec

from .common import CONNECT_TIMEOUT, DRAIN_SECONDS, PHASE_TIMEOUT, raise_nofile


class _AgentMini(msgspec.Struct):
    id: int
    state: str = ""
    since: float = 0.0


class _Msg(msgspec.Struct):
    type: str = ""
    ref: str | None = None
    agent: _AgentMini | None = None
    code: str | None = None


_dec = msgspec.json.Decoder(_Msg)


def _connect_kwargs(cfg: dict[str, Any], board: bool) -> dict[str, Any]:
    return dict(
        open_timeout=CONNECT_TIMEOUT,
        ping_interval=None,  # the protocol's own ping frames keep the hub's reaper content
        close_timeout=2,
        max_size=None if board else 2**22,  # a board's snapshot lists every agent
        max_queue=1024 if board else 16,
        compression="deflate" if cfg["compression"] == "deflate" else None,
        proxy=None,
    )


async def _open(cfg: dict[str, Any], first_frame: str, board: bool) -> Any:
    """Connect and authenticate; ready once the hub's snapshot (the bare server's welcome) is in.

    Waiting for the snapshot, not just the welcome, keeps the number of
    authentications the server is still working on bounded by the batch size.
    """
    from websockets.asyncio.client import connect

    ready = "welcome" if cfg["mode"] == "bare" else "snapshot"
    ws = await connect(cfg["url"], **_connect_kwargs(cfg, board))
    try:
        await ws.send(first_frame)
        deadline = time.monotonic() + CONNECT_TIMEOUT
        for _ in range(10):
            raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
            m = _dec.decode(raw)
            if m.type == ready:
                return ws
            if m.type == "error":
                raise RuntimeError(f"auth refused: {raw[:200]}")
        raise RuntimeError(f"no {ready} frame")
    except BaseException:
        await ws.close()
        raise


async def _connect_batches(n: int, batch: int, open_one: Any) -> tuple[int, list[str]]:
    ok = 0
    errors: list[str] = []
    for start in range(0, n, batch):
        results = await asyncio.gather(
            *(open_one(i) for i in range(start, min(n, start + batch))), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                if len(errors) < 5:
                    errors.append(f"{type(r).__name__}: {r}")
            else:
                ok += 1
    return ok, errors


async def _pipe_recv(pipe: Any, timeout: float) -> Any:
    ready = await asyncio.to_thread(pipe.poll, timeout)
    if not ready:
        raise TimeoutError("the coordinator did not answer")
    return pipe.recv()


async def _pinger(conns: list[Any], stop: asyncio.Event, every: float) -> None:
    """Send the protocol's `ping` on every open connection once per `every` seconds, spread out."""
    frame = '{"type":"ping"}'
    chunk = 100
    rounds = 0
    while not stop.is_set() and rounds < 10_000:
        rounds += 1
        live = [c for c in conns if c is not None]
        if not live:
            return
        pause = every * chunk / len(live)
        for i in range(0, len(live), chunk):
            for c in live[i : i + chunk]:
                try:
                    await c.send(frame)
                except Exception:  # closed: the reader notices
                    pass
            try:
                await asyncio.wait_for(stop.wait(), pause)
                return
            except TimeoutError:
                pass


def _quiet_gc() -> None:
    """Keep the collector's full passes out of the measurement: the client must not add pauses.

    Everything alive after connecting is frozen (never scanned again) and full
    collections are put off; a run is short and its garbage is bounded.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 1_000_000)


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def agent_worker(pipe: Any, cfg: dict[str, Any]) -> None:
    raise_nofile()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator stops us
    try:
        asyncio.run(_agent_main(pipe, cfg))
    finally:
        pipe.close()


async def _agent_main(pipe: Any, cfg: dict[str, Any]) -> None:
    ids: list[int] = cfg["ids"]
    tokens: list[str] = cfg["tokens"]
    names: list[str] = cfg["names"]
    bare = cfg["mode"] == "bare"
    n = len(ids)
    conns: list[Any] = [None] * n
    closed = bytearray(n)
    state = ["logged-out"] * n
    pauses = [0] * n
    inflight = [0.0] * n  # send time of the change in flight, 0 when idle
    got_ack = bytearray(n)
    got_event = bytearray(n)
    since_of = [0.0] * n
    ack_at = [0.0] * n
    idle: list[int] = []
    pos = [-1] * n
    rec_id = array("q")
    rec_since, rec_send, rec_ack, rec_done = array("d"), array("d"), array("d"), array("d")
    counts = {"errors": 0, "error_sample": [], "skipped": 0, "sent": 0, "lag": array("d")}
    readers: list[asyncio.Task[None]] = []

    def release(i: int) -> None:
        inflight[i] = 0.0
        if pos[i] < 0 and not closed[i]:
            pos[i] = len(idle)
            idle.append(i)

    def complete(i: int) -> None:
        rec_id.append(ids[i])
        rec_since.append(since_of[i])
        rec_send.append(inflight[i])
        rec_ack.append(ack_at[i])
        rec_done.append(time.monotonic())
        release(i)

    async def reader(i: int) -> None:
        ws = conns[i]
        try:
            async for raw in ws:
                m = _dec.decode(raw)
                t = m.type
                if t == "agent-state":
                    a = m.agent
                    if a is None or a.id != ids[i]:
                        continue
                    state[i] = a.state
                    if inflight[i] and not got_event[i]:
                        got_event[i] = 1
                        since_of[i] = a.since
                        if bare:  # the echo is the acknowledgement
                            got_ack[i] = 1
                            ack_at[i] = time.monotonic()
                        if got_ack[i]:
                            complete(i)
                elif t == "ack":
                    if inflight[i] and not got_ack[i]:
                        got_ack[i] = 1
                        ack_at[i] = time.monotonic()
                        if got_event[i]:
                            complete(i)
                elif t == "error":
                    counts["errors"] += 1
                    if len(counts["error_sample"]) < 5:
                        counts["error_sample"].append(raw[:200])
                    if inflight[i]:
                        release(i)
        except Exception:  # closed or broken: counted below
            pass
        closed[i] = 1
        if pos[i] >= 0:  # drop it from the idle set
            j = pos[i]
            last = idle.pop()
            if last != i:
                idle[j] = last
                pos[last] = j
            pos[i] = -1

    async def open_one(i: int) -> None:
        first = (
            '{"type":"auth","role":"agent","id":"1"}'
            if bare
            else json.dumps({"type": "auth", "token": tokens[i], "id": "1"})
        )
        conns[i] = await _open(cfg, first, board=False)
        readers.append(asyncio.create_task(reader(i)))
        pos[i] = len(idle)
        idle.append(i)

    ok, errors = await _connect_batches(n, cfg["batch"], open_one)
    _quiet_gc()
    pipe.send(("connected", ok, errors))
    stop = asyncio.Event()
    pinger = asyncio.create_task(_pinger(conns, stop, cfg["ping_every"]))

    msg = await _pipe_recv(pipe, PHASE_TIMEOUT)
    assert msg[0] == "go", msg
    _, t0, warm, dur, rate = msg
    w0, w1 = t0 + warm, t0 + warm + dur
    rng = random.Random(cfg["seed"])
    cid = 0
    cpu_w0 = cpu_w1 = None
    total = int(rate * (warm + dur))
    interval = 1.0 / rate if rate > 0 else 1.0
    for k in range(total):
        target = t0 + k * interval
        now = time.monotonic()
        if cpu_w0 is None and now >= w0:
            cpu_w0 = _cpu_self()
        if target > now:
            await asyncio.sleep(target - now)
        if not idle:
            counts["skipped"] += 1
            continue
        j = rng.randrange(len(idle))
        i = idle[j]
        last = idle.pop()
        if last != i:
            idle[j] = last
            pos[last] = j
        pos[i] = -1
        cid += 1
        if bare:
            # Shaped like the hub's agent-state event, so both servers move frames of one size.
            agent: dict[str, Any] = {"id": ids[i], "username": names[i], "display_name": names[i]}
            if state[i] == "available":
                pauses[i] += 1
                agent["state"] = "paused"
                agent["reason"] = "lunch" if pauses[i] % 2 else "break"
            else:
                agent["state"] = "available"
            agent["since"] = time.time()
            frame = msgspec.json.encode({"seq": cid, "type": "agent-state", "agent": agent}).decode()
        elif state[i] == "available":
            pauses[i] += 1
            reason = "lunch" if pauses[i] % 2 else "break"
            frame = f'{{"type":"set-state","state":"paused","reason":"{reason}","id":"c{cid}"}}'
        else:
            frame = f'{{"type":"set-state","state":"available","id":"c{cid}"}}'
        got_ack[i] = got_event[i] = 0
        sent_at = time.monotonic()
        inflight[i] = sent_at
        if sent_at >= w0 and sent_at < w1:
            counts["lag"].append(sent_at - target)
        try:
            await conns[i].send(frame)
            counts["sent"] += 1
        except Exception:  # closed: its reader marks it
            inflight[i] = 0.0
    if cpu_w0 is None:
        cpu_w0 = _cpu_self()
    now = time.monotonic()
    if now < w1:
        await asyncio.sleep(w1 - now)
    cpu_w1 = _cpu_self()
    # Let the last changes complete.
    end = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < end and any(inflight):
        await asyncio.sleep(0.05)
    unanswered = sum(1 for x in inflight if x)
    held = sum(1 for i in range(n) if conns[i] is not None and not closed[i])
    stop.set()
    await asyncio.wait([pinger], timeout=2)
    pipe.send(
        (
            "done",
            {
                "held": held,
                "records": (rec_id.tobytes(), rec_since.tobytes(), rec_send.tobytes(), rec_ack.tobytes()),
                "done": rec_done.tobytes(),
                "errors": counts["errors"],
                "error_sample": counts["error_sample"],
                "skipped": counts["skipped"],
                "sent": counts["sent"],
                "unanswered": unanswered,
                "lag": counts["lag"].tobytes(),
                "cpu": cpu_w1 - cpu_w0,
            },
        )
    )
    await _pipe_recv(pipe, PHASE_TIMEOUT)  # "exit"
    for t in readers:
        t.cancel()
    os._exit(0)  # sockets close with the process; a graceful close of thousands is not measured


def board_worker(pipe: Any, cfg: dict[str, Any]) -> None:
    raise_nofile()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asyncio.run(_board_main(pipe, cfg))
    finally:
        pipe.close()


async def _board_main(pipe: Any, cfg: dict[str, Any]) -> None:
    tokens: list[str] = cfg["tokens"]
    bare = cfg["mode"] == "bare"
    n = len(tokens)
    conns: list[Any] = [None] * n
    closed = bytearray(n)
    rec_id, rec_since, rec_mono, rec_wall = array("q"), array("d"), array("d"), array("d")
    window = [float("inf"), float("-inf")]  # record frames received inside [from, to]
    readers: list[asyncio.Task[None]] = []

    async def reader(i: int) -> None:
        ws = conns[i]
        mono, wall = time.monotonic, time.time
        try:
            async for raw in ws:
                t = mono()
                if not (window[0] <= t <= window[1]):
                    continue
                m = _dec.decode(raw)
                if m.type != "agent-state" or m.agent is None:
                    continue
                rec_id.append(m.agent.id)
                rec_since.append(m.agent.since)
                rec_mono.append(t)
                rec_wall.append(wall())
        except Exception:  # closed or broken: counted below
            pass
        closed[i] = 1

    async def open_one(i: int) -> None:
        first = (
            '{"type":"auth","role":"board","id":"1"}'
            if bare
            else json.dumps({"type": "auth", "token": tokens[i], "id": "1"})
        )
        conns[i] = await _open(cfg, first, board=True)
        readers.append(asyncio.create_task(reader(i)))

    ok, errors = await _connect_batches(n, cfg["batch"], open_one)
    _quiet_gc()
    pipe.send(("connected", ok, errors))
    stop = asyncio.Event()
    pinger = asyncio.create_task(_pinger(conns, stop, cfg["ping_every"]))
    msg = await _pipe_recv(pipe, PHASE_TIMEOUT)
    assert msg[0] == "go", msg
    _, t0, warm, dur, _rate = msg
    window[0], window[1] = t0, t0 + warm + dur + DRAIN_SECONDS
    now = time.monotonic()
    await asyncio.sleep(max(0.0, t0 + warm - now))
    cpu0 = _cpu_self()
    await asyncio.sleep(max(0.0, t0 + warm + dur - time.monotonic()))
    cpu1 = _cpu_self()
    await asyncio.sleep(max(0.0, window[1] - time.monotonic()) + 0.1)
    held = sum(1 for i in range(n) if conns[i] is not None and not closed[i])
    stop.set()
    await asyncio.wait([pinger], timeout=2)
    pipe.send(
        (
            "done",
            {
                "held": held,
                "records": (rec_id.tobytes(), rec_since.tobytes(), rec_mono.tobytes(), rec_wall.tobytes()),
                "cpu": cpu1 - cpu0,
            },
        )
    )
    await _pipe_recv(pipe, PHASE_TIMEOUT)
    for t in readers:
        t.cancel()
    os._exit(0)
