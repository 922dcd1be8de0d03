"""Shared live state and the event bus.

`LiveStore` holds every agent's current state and the event streams. Changing
a state and publishing its events is one atomic step (`commit`): a
compare-and-set on the state's version, then for each event a sequence number,
an entry in the stream's capped log (for resuming clients) and a live
publication to every hub. Two implementations:

- `MemoryLiveStore`: one process, no services (the embedded default);
- `RedisLiveStore`: several hubs; the step is one Lua script, so two hubs can
  never both win the same version, and sequence order equals publish order.

A frame on the wire is the event's JSON with `"seq":N` spliced in front, so
an event is encoded once and sent as is to every subscriber.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from realtime.agent_state import AgentState, State

log = logging.getLogger("unidesk.live")

Deliver = Callable[[str, int, bytes], None]


class _Stored(msgspec.Struct, array_like=True):
    state: str
    reason: str | None
    since: float
    wrap_up_until: float | None
    contact_id: str | None
    version: int
    changed_by: str | None


_stored_dec = msgspec.json.Decoder(_Stored)
_enc = msgspec.json.Encoder()


def dump_state(s: AgentState, changed_by: str | None) -> bytes:
    return _enc.encode(
        _Stored(s.state.value, s.reason, s.since, s.wrap_up_until, s.contact_id, s.version, changed_by)
    )


def load_state(raw: bytes | str) -> tuple[AgentState, str | None]:
    d = _stored_dec.decode(raw)
    return (
        AgentState(State(d.state), d.reason, d.since, d.wrap_up_until, d.contact_id, d.version),
        d.changed_by,
    )


def make_frame(seq: int, body: bytes) -> bytes:
    assert body[:1] == b"{", "an event body is a JSON object"
    return b'{"seq":%d,' % seq + body[1:]


def frame_seq(frame: bytes | str) -> int:
    """The sequence number of a frame made by `make_frame` (cheap: no JSON parse)."""
    if isinstance(frame, str):
        return int(frame[7 : frame.index(",", 7)])
    return int(frame[7 : frame.index(b",", 7)])


def stream_board(tenant_id: int) -> str:
    return f"board:{tenant_id}"


def stream_agent(tenant_id: int, user_id: int) -> str:
    return f"agent:{tenant_id}:{user_id}"


class LiveStore:
    """Interface; see the module docstring."""

    def __init__(self, replay_events: int) -> None:
        self.replay_events = replay_events
        self._subscribers: list[Deliver] = []

    def subscribe(self, deliver: Deliver) -> None:
        """`deliver(stream, seq, frame)` is called for every event of every hub, in order."""
        self._subscribers.append(deliver)

    def _deliver(self, stream: str, seq: int, frame: bytes) -> None:
        for fn in self._subscribers:
            try:
                fn(stream, seq, frame)
            except Exception:  # a subscriber's bug must not stop delivery to the others
                log.exception("event subscriber failed")

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool:
        return True

    async def agent(self, tenant_id: int, user_id: int) -> tuple[AgentState, str | None]:
        raise NotImplementedError

    async def agents(self, tenant_id: int) -> dict[int, tuple[AgentState, str | None]]:
        raise NotImplementedError

    async def commit(
        self,
        tenant_id: int,
        user_id: int,
        expected_version: int,
        new: AgentState,
        changed_by: str | None,
        events: list[tuple[str, bytes]],
    ) -> list[int] | None:
        """Store `new` if the stored version is `expected_version`, then publish.

        Returns the events' sequence numbers, or None when another writer got
        there first: re-read, re-decide, retry.
        """
        raise NotImplementedError

    async def publish(self, events: list[tuple[str, bytes]]) -> list[int]:
        """Number, log and publish events that go with no agent-state change."""
        raise NotImplementedError

    async def seq(self, stream: str) -> int:
        raise NotImplementedError

    async def replay(self, stream: str, after: int, limit: int = 1000) -> list[bytes] | None:
        """Frames with seq > `after`; None when some are no longer kept (send a snapshot)."""
        raise NotImplementedError

    # Small shared maps (live contacts, latest queue figures): name → field → bytes.
    async def map_put(self, name: str, key: str, value: bytes) -> None:
        raise NotImplementedError

    async def map_put_many(self, name: str, items: dict[str, bytes]) -> None:
        """Several fields at once (one round trip on Redis)."""
        for key, value in items.items():
            await self.map_put(name, key, value)

    async def map_swap(self, name: str, key: str, expected: bytes | None, new: bytes | None) -> bool:
        """Compare-and-set of one field: write `new` (None: delete the field) only if the field still
        holds `expected` (None: absent). False, with nothing written, when another writer (another hub)
        changed it since it was read: the caller reads again, decides again and retries. The stored
        bytes are the version (a room's whole state), so no counter is kept beside them."""
        raise NotImplementedError

    async def map_delete(self, name: str, key: str) -> None:
        raise NotImplementedError

    async def map_get(self, name: str, key: str) -> bytes | None:
        raise NotImplementedError

    async def map_all(self, name: str) -> dict[str, bytes]:
        raise NotImplementedError

    async def lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew a lease held by `holder`; False while someone else holds it."""
        raise NotImplementedError

    async def inbox_push(self, name: str, payload: bytes) -> None:
        """Hand a message to the holder of the lease `name` (see `inbox_pop`)."""
        raise NotImplementedError

    async def inbox_pop(self, name: str, timeout: float) -> bytes | None:
        raise NotImplementedError

    async def due(self, now: float) -> list[tuple[int, int]]:
        """(tenant, user) pairs whose state has a deadline at or before `now`."""
        raise NotImplementedError


class MemoryLiveStore(LiveStore):
    def __init__(self, replay_events: int = 10_000) -> None:
        super().__init__(replay_events)
        self._agents: dict[int, dict[int, tuple[AgentState, str | None]]] = {}
        self._seq: dict[str, int] = {}
        self._logs: dict[str, deque[tuple[int, bytes]]] = {}
        self._deadlines: list[tuple[float, int, int]] = []
        self._maps: dict[str, dict[str, bytes]] = {}
        self._inboxes: dict[str, asyncio.Queue[bytes]] = {}

    async def agent(self, tenant_id: int, user_id: int) -> tuple[AgentState, str | None]:
        return self._agents.get(tenant_id, {}).get(user_id, (AgentState(), None))

    async def agents(self, tenant_id: int) -> dict[int, tuple[AgentState, str | None]]:
        return dict(self._agents.get(tenant_id, {}))

    async def commit(self, tenant_id, user_id, expected_version, new, changed_by, events):  # type: ignore[no-untyped-def]
        current, _ = self._agents.get(tenant_id, {}).get(user_id, (AgentState(), None))
        if current.version != expected_version:
            return None
        self._agents.setdefault(tenant_id, {})[user_id] = (new, changed_by)
        if new.wrap_up_until is not None:
            heapq.heappush(self._deadlines, (new.wrap_up_until, tenant_id, user_id))
        return self._publish(events)

    def _publish(self, events: list[tuple[str, bytes]]) -> list[int]:
        seqs = []
        for stream, body in events:
            seq = self._seq.get(stream, 0) + 1
            self._seq[stream] = seq
            frame = make_frame(seq, body)
            log_ = self._logs.get(stream)
            if log_ is None:
                log_ = self._logs[stream] = deque(maxlen=self.replay_events)
            log_.append((seq, frame))
            seqs.append(seq)
            self._deliver(stream, seq, frame)
        return seqs

    async def publish(self, events: list[tuple[str, bytes]]) -> list[int]:
        return self._publish(events)

    async def map_put(self, name: str, key: str, value: bytes) -> None:
        self._maps.setdefault(name, {})[key] = value

    async def map_swap(self, name: str, key: str, expected: bytes | None, new: bytes | None) -> bool:
        m = self._maps.setdefault(name, {})
        if m.get(key) != expected:
            return False
        if new is None:
            m.pop(key, None)
        else:
            m[key] = new
        return True

    async def map_delete(self, name: str, key: str) -> None:
        self._maps.get(name, {}).pop(key, None)

    async def map_get(self, name: str, key: str) -> bytes | None:
        return self._maps.get(name, {}).get(key)

    async def map_all(self, name: str) -> dict[str, bytes]:
        return dict(self._maps.get(name, {}))

    async def lease(self, name: str, holder: str, ttl: float) -> bool:
        return True  # one process: it always leads

    async def inbox_push(self, name: str, payload: bytes) -> None:
        self._inboxes.setdefault(name, asyncio.Queue()).put_nowait(payload)

    async def inbox_pop(self, name: str, timeout: float) -> bytes | None:
        q = self._inboxes.setdefault(name, asyncio.Queue())
        try:
            return await asyncio.wait_for(q.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def seq(self, stream: str) -> int:
        return self._seq.get(stream, 0)

    async def replay(self, stream: str, after: int, limit: int = 1000) -> list[bytes] | None:
        last = self._seq.get(stream, 0)
        if after >= last:
            return [] if after == last else None
        log_ = self._logs.get(stream) or deque()
        if not log_ or log_[0][0] > after + 1 or last - after > min(limit, self.replay_events):
            return None
        return [frame for seq, frame in log_ if seq > after]

    async def due(self, now: float) -> list[tuple[int, int]]:
        out = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, tid, uid = heapq.heappop(self._deadlines)
            out.append((tid, uid))
        return out


# KEYS: none (keys are derived from the prefix; one Redis, not a cluster).
# ARGV: prefix, tenant, user, expected version, new state, deadline ('' = none),
#       replay length, then stream/body pairs.
_COMMIT_LUA = """
local p = ARGV[1]
local hkey = p .. ':agents:' .. ARGV[2]
local cur = redis.call('HGET', hkey, ARGV[3])
local ver = 0
if cur then ver = cjson.decode(cur)[6] end
if ver ~= tonumber(ARGV[4]) then return -1 end
redis.call('HSET', hkey, ARGV[3], ARGV[5])
local member = ARGV[2] .. ':' .. ARGV[3]
if ARGV[6] == '' then
  redis.call('ZREM', p .. ':deadlines', member)
else
  redis.call('ZADD', p .. ':deadlines', ARGV[6], member)
end
local seqs = {}
local i = 8
while i < #ARGV do
  local stream = ARGV[i]
  local body = ARGV[i + 1]
  local seq = redis.call('INCR', p .. ':seq:' .. stream)
  local frame = '{"seq":' .. seq .. ',' .. string.sub(body, 2)
  redis.call('XADD', p .. ':log:' .. stream, 'MAXLEN', '~', ARGV[7], seq .. '-0', 'f', frame)
  redis.call('PUBLISH', p .. ':events', stream .. '\\n' .. frame)
  seqs[#seqs + 1] = seq
  i = i + 2
end
return seqs
"""

# Events without a state change. ARGV: prefix, replay length, then stream/body pairs.
_PUBLISH_LUA = """
local p = ARGV[1]
local seqs = {}
local i = 3
while i < #ARGV do
  local stream = ARGV[i]
  local body = ARGV[i + 1]
  local seq = redis.call('INCR', p .. ':seq:' .. stream)
  local frame = '{"seq":' .. seq .. ',' .. string.sub(body, 2)
  redis.call('XADD', p .. ':log:' .. stream, 'MAXLEN', '~', ARGV[2], seq .. '-0', 'f', frame)
  redis.call('PUBLISH', p .. ':events', stream .. '\\n' .. frame)
  seqs[#seqs + 1] = seq
  i = i + 2
end
return seqs
"""

# Take a free lease or renew one's own. ARGV: key, holder, ttl in ms.
_LEASE_LUA = """
local cur = redis.call('GET', ARGV[1])
if cur == false or cur == ARGV[2] then
  redis.call('SET', ARGV[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

# Claim due deadlines atomically, so that of several hubs only one acts on each.
_DUE_LUA = """
local key = ARGV[1] .. ':deadlines'
local items = redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[2], 'LIMIT', 0, 500)
for _, m in ipairs(items) do redis.call('ZREM', key, m) end
return items
"""


# A field's compare-and-set: ARGV = key, expected present (0/1), expected, new present (0/1), new.
_SWAP_LUA = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  if cur ~= ARGV[3] then return 0 end
elseif cur then
  return 0
end
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[5]) else redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
"""


class RedisLiveStore(LiveStore):
    def __init__(self, url: str, prefix: str, replay_events: int = 10_000) -> None:
        super().__init__(replay_events)
        import redis.asyncio as aioredis

        self.url = url
        self.prefix = prefix
        # A bounded pool that waits for a free connection: under a burst of changes an unbounded pool
        # opened hundreds of connections and Redis refused some (load/bench_hub.py --backend redis).
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=10)
        self.redis: Any = aioredis.Redis(connection_pool=pool)
        self._pubsub_conn: Any = aioredis.from_url(url)
        self._commit = self.redis.register_script(_COMMIT_LUA)
        self._due = self.redis.register_script(_DUE_LUA)
        self._publish = self.redis.register_script(_PUBLISH_LUA)
        self._lease = self.redis.register_script(_LEASE_LUA)
        self._swap = self.redis.register_script(_SWAP_LUA)
        # Blocking pops get a connection of their own.
        self._inbox_conn: Any = aioredis.from_url(url)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        # Last seq delivered per stream, to notice (and fill) a gap in the live feed.
        self._delivered: dict[str, int] = {}

    async def start(self) -> None:
        await self.redis.ping()
        self._task = asyncio.create_task(self._listen(), name="redis-events")
        await asyncio.wait_for(self._ready.wait(), 10)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # closing: nothing left to report to
                pass
        await self._pubsub_conn.aclose()
        await self._inbox_conn.aclose()
        await self.redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except Exception:  # health check: any failure means "not healthy"
            return False

    async def _listen(self) -> None:
        channel = f"{self.prefix}:events"
        while True:
            pubsub = self._pubsub_conn.pubsub()
            try:
                await pubsub.subscribe(channel)
                self._ready.set()
                async for msg in pubsub.listen():
                    if msg.get("type") != "message":
                        continue
                    data: bytes = msg["data"]
                    nl = data.index(b"\n")
                    stream = data[:nl].decode()
                    frame = data[nl + 1 :]
                    await self._on_frame(stream, frame)
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception:  # Redis went away: resubscribe; gaps are filled from the log
                log.exception("event subscription lost; reconnecting")
                await asyncio.sleep(0.5)

    async def _on_frame(self, stream: str, frame: bytes) -> None:
        seq = frame_seq(frame)
        last = self._delivered.get(stream)
        if last is not None and seq > last + 1:
            missed = await self.replay(stream, last, limit=self.replay_events)
            for f in missed or []:
                s = frame_seq(f)
                if s < seq:
                    self._deliver(stream, s, f)
        if last is None or seq > last:
            self._delivered[stream] = seq
            self._deliver(stream, seq, frame)

    def _hkey(self, tenant_id: int) -> str:
        return f"{self.prefix}:agents:{tenant_id}"

    async def agent(self, tenant_id: int, user_id: int) -> tuple[AgentState, str | None]:
        raw = await self.redis.hget(self._hkey(tenant_id), str(user_id))
        return load_state(raw) if raw else (AgentState(), None)

    async def agents(self, tenant_id: int) -> dict[int, tuple[AgentState, str | None]]:
        raw = await self.redis.hgetall(self._hkey(tenant_id))
        return {int(k): load_state(v) for k, v in raw.items()}

    async def commit(self, tenant_id, user_id, expected_version, new, changed_by, events):  # type: ignore[no-untyped-def]
        args: list[Any] = [
            self.prefix,
            tenant_id,
            user_id,
            expected_version,
            dump_state(new, changed_by),
            "" if new.wrap_up_until is None else repr(new.wrap_up_until),
            self.replay_events,
        ]
        for stream, body in events:
            args += [stream, body]
        result = await self._commit(args=args)
        if result == -1:
            return None
        return [int(x) for x in result]

    async def publish(self, events: list[tuple[str, bytes]]) -> list[int]:
        args: list[Any] = [self.prefix, self.replay_events]
        for stream, body in events:
            args += [stream, body]
        return [int(x) for x in await self._publish(args=args)]

    async def map_put(self, name: str, key: str, value: bytes) -> None:
        await self.redis.hset(f"{self.prefix}:map:{name}", key, value)

    async def map_put_many(self, name: str, items: dict[str, bytes]) -> None:
        if items:
            await self.redis.hset(f"{self.prefix}:map:{name}", mapping=items)  # type: ignore[arg-type]

    async def map_swap(self, name: str, key: str, expected: bytes | None, new: bytes | None) -> bool:
        args = [key, "1" if expected is not None else "0", expected or b"", "1" if new is not None else "0", new or b""]
        return bool(await self._swap(keys=[f"{self.prefix}:map:{name}"], args=args))

    async def map_delete(self, name: str, key: str) -> None:
        await self.redis.hdel(f"{self.prefix}:map:{name}", key)

    async def map_get(self, name: str, key: str) -> bytes | None:
        raw: bytes | None = await self.redis.hget(f"{self.prefix}:map:{name}", key)
        return raw

    async def map_all(self, name: str) -> dict[str, bytes]:
        raw = await self.redis.hgetall(f"{self.prefix}:map:{name}")
        return {k.decode(): v for k, v in raw.items()}

    async def lease(self, name: str, holder: str, ttl: float) -> bool:
        return bool(await self._lease(args=[f"{self.prefix}:lease:{name}", holder, int(ttl * 1000)]))

    async def inbox_push(self, name: str, payload: bytes) -> None:
        await self.redis.lpush(f"{self.prefix}:inbox:{name}", payload)

    async def inbox_pop(self, name: str, timeout: float) -> bytes | None:
        got = await self._inbox_conn.brpop([f"{self.prefix}:inbox:{name}"], timeout=max(timeout, 0.01))
        return got[1] if got else None

    async def seq(self, stream: str) -> int:
        raw = await self.redis.get(f"{self.prefix}:seq:{stream}")
        return int(raw or 0)

    async def replay(self, stream: str, after: int, limit: int = 1000) -> list[bytes] | None:
        last = await self.seq(stream)
        if after >= last:
            return [] if after == last else None
        # The log is trimmed approximately; the promise is UNIDESK_REPLAY_EVENTS, no more.
        if last - after > min(limit, self.replay_events):
            return None
        entries = await self.redis.xrange(f"{self.prefix}:log:{stream}", min=f"{after + 1}-0", max="+")
        if not entries or int(entries[0][0].split(b"-")[0]) != after + 1:
            return None
        return [fields[b"f"] for _, fields in entries]

    async def due(self, now: float) -> list[tuple[int, int]]:
        items = await self._due(args=[self.prefix, repr(now)])
        out = []
        for m in items:
            tid, uid = m.decode().split(":")
            out.append((int(tid), int(uid)))
        return out


def make_live_store(redis_url: str | None, prefix: str, replay_events: int) -> LiveStore:
    if redis_url:
        return RedisLiveStore(redis_url, prefix, replay_events)
    return MemoryLiveStore(replay_events)


def wall_clock() -> float:
    return time.time()
