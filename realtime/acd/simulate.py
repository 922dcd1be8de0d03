"""What-if simulator: the real AcdEngine on a virtual clock against synthetic traffic.

A scenario (JSON, see scenario_example.json and docs/acd.md) gives queues with
hourly arrival rates per interval, handle-time and patience distributions,
and agents with skills, memberships, shifts and pauses. The simulator plays
the hub's part: it feeds the engine arrivals, answers, hang-ups, wrap-ups and
agent state changes from an event heap, fires the engine's timers at its
deadlines, and reads the engine's own live statistics per interval. Same
seed, same result.

Also the two command-line entry points, `main_simulate` and `main_erlang`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from heapq import heappop, heappush
from typing import Any

from .commands import ContactAssigned, ContactRecord, ContactRecorded, OfferContact, PauseAgent
from .config import AgentConfig, ConfigError, Contact, InvalidContactError, Membership, QueueConfig, RoutingStep
from .engine import AcdEngine
from .erlang import agents_for_service_level, erlang_report
from .stats import QueueStats, combine_queue_stats


class ScenarioError(ValueError):
    """The scenario is invalid; the message names the offending field."""


# ------------------------------------------------------------------ scenario


@dataclass(frozen=True, slots=True)
class Distribution:
    """A duration distribution, seconds."""

    # exponential, lognormal, fixed or none (never happens: infinite).
    kind: str
    # Mean (the value itself for fixed).
    mean: float = 0.0
    # Standard deviation (lognormal only).
    sd: float = 0.0

    def sampler(self, rng: random.Random) -> Callable[[], float] | None:
        """A function drawing one value, or None for "none"."""
        if self.kind == "none":
            return None
        if self.kind == "fixed":
            value = self.mean
            return lambda: value
        if self.kind == "exponential":
            rate = 1.0 / self.mean
            return lambda: rng.expovariate(rate)
        # Lognormal from its mean and sd: sigma^2 = ln(1 + sd^2/mean^2), mu = ln(mean) - sigma^2/2.
        sigma2 = math.log(1.0 + (self.sd / self.mean) ** 2)
        mu, sigma = math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2)
        return lambda: rng.lognormvariate(mu, sigma)


def parse_distribution(where: str, spec: Any) -> Distribution:
    """"none", a number (fixed), or {"type": ..., "mean": ..., "sd": ..., "value": ...}."""
    if spec is None or spec == "none":
        return Distribution("none")
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        spec = {"type": "fixed", "value": spec}
    if not isinstance(spec, Mapping):
        raise ScenarioError(f"{where}: {spec!r} is not a distribution")
    kind = spec.get("type")
    if kind == "none":
        return Distribution("none")
    if kind not in ("exponential", "lognormal", "fixed"):
        raise ScenarioError(f"{where}.type: {kind!r} (allowed: exponential, lognormal, fixed, none)")
    mean = spec.get("value" if kind == "fixed" else "mean")
    sd = spec.get("sd", 0.0) if kind == "lognormal" else 0.0
    for name, value in (("mean", mean), ("sd", sd)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ScenarioError(f"{where}.{name}: {value!r} must be a finite number >= 0")
    if kind != "fixed" and mean <= 0:
        raise ScenarioError(f"{where}.mean: {mean!r} must be > 0")
    if kind == "lognormal" and sd <= 0:
        raise ScenarioError(f"{where}.sd: {sd!r} must be > 0")
    return Distribution(kind, float(mean), float(sd))


@dataclass(frozen=True, slots=True)
class QueueTraffic:
    """A queue and the traffic offered to it."""

    # The queue's configuration, as the engine gets it.
    config: QueueConfig
    # Arrivals per hour, one value per interval.
    arrivals_per_hour: tuple[float, ...]
    # Talk time of each contact.
    handle_time: Distribution
    # How long a caller waits before hanging up ("none": forever).
    patience: Distribution
    # (priority, share) pairs the contacts' priority is drawn from.
    priorities: tuple[tuple[int, float], ...]
    # Skills every contact of the queue requires.
    required_skills: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class AgentPlan:
    """One simulated agent."""

    # Skills and memberships, as the engine gets them.
    config: AgentConfig
    # Seconds from the start at which the agent logs in.
    shift_start: float
    # Seconds from the start at which the agent logs out (after any contact in hand).
    shift_end: float
    # (start, duration) pauses, seconds from the start.
    pauses: tuple[tuple[float, float], ...]
    # Seconds the agent lets an offer ring before answering.
    answer_delay: float
    # Probability that the agent lets an offer ring out.
    miss_probability: float


@dataclass(frozen=True, slots=True)
class Scenario:
    """A complete simulation input."""

    # Name shown in reports.
    name: str
    # Seed of every random draw.
    seed: int
    # Length of one reporting interval, seconds.
    interval_seconds: float
    # Number of intervals simulated.
    intervals: int
    # Queues, in configuration order (an overflow target before its sources).
    queues: tuple[QueueTraffic, ...]
    # Agents.
    agents: tuple[AgentPlan, ...]
    # Engine-wide autopause threshold (0: off).
    max_missed_offers: int = 0
    # Seconds an autopaused agent stays paused before coming back.
    autopause_seconds: float = 60.0
    # Seconds simulated after the last interval so contacts in progress finish.
    drain_seconds: float = 4 * 3600.0

    @property
    def horizon(self) -> float:
        return self.interval_seconds * self.intervals


_QUEUE_TRAFFIC_KEYS = {"arrivals_per_hour", "handle_time", "patience", "priority", "required_skills"}
_QUEUE_CONFIG_KEYS = {f.name for f in fields(QueueConfig)}


_AGENT_KEYS = {"id", "count", "skills", "queues", "shift_start", "shift_end", "pauses", "answer_delay",
               "miss_probability"}
_SCENARIO_KEYS = {"name", "seed", "interval_minutes", "intervals", "queues", "agents", "max_missed_offers",
                  "autopause_seconds", "drain_seconds"}


def _known(where: str, spec: Mapping[str, Any], keys: set[str]) -> None:
    # Keys starting with "_" or named "comment" are notes for the reader.
    unknown = sorted(k for k in spec if k not in keys and k != "comment" and not str(k).startswith("_"))
    if unknown:
        raise ScenarioError(f"{where}: unknown field(s) {unknown}")


def _num(where: str, value: Any, default: float | None = None, *, positive: bool = False) -> float:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ScenarioError(f"{where}: {value!r} must be a finite number >= 0")
    if positive and value == 0:
        raise ScenarioError(f"{where}: {value!r} must be > 0")
    return float(value)


def _queue(i: int, spec: Any, intervals: int) -> QueueTraffic:
    where = f"queues[{i}]"
    if not isinstance(spec, Mapping):
        raise ScenarioError(f"{where}: {spec!r} is not an object")
    _known(where, spec, _QUEUE_TRAFFIC_KEYS | _QUEUE_CONFIG_KEYS)
    options = {k: v for k, v in spec.items() if k in _QUEUE_CONFIG_KEYS}
    try:
        options["routing_steps"] = tuple(RoutingStep(**s) for s in spec.get("routing_steps", ()))
        config = QueueConfig(**options)
    except (ConfigError, TypeError) as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    rates = spec.get("arrivals_per_hour", 0.0)
    rates = [rates] * intervals if isinstance(rates, (int, float)) else list(rates)
    if len(rates) != intervals:
        raise ScenarioError(f"{where}.arrivals_per_hour: {len(rates)} values for {intervals} intervals")
    rates = [_num(f"{where}.arrivals_per_hour[{k}]", r) for k, r in enumerate(rates)]
    priority = spec.get("priority", 0)
    if isinstance(priority, Mapping):
        mix = tuple((int(p), _num(f"{where}.priority[{p!r}]", s)) for p, s in priority.items())
    elif isinstance(priority, int) and not isinstance(priority, bool):
        mix = ((priority, 1.0),)
    else:
        raise ScenarioError(f"{where}.priority: {priority!r} must be an integer or {{priority: share}}")
    if not mix or sum(s for _, s in mix) <= 0:
        raise ScenarioError(f"{where}.priority: shares must add up to more than 0")
    skills = spec.get("required_skills", {})
    try:
        Contact("check", config.name, required_skills=skills)
    except InvalidContactError as exc:
        raise ScenarioError(f"{where}.required_skills: {exc}") from None
    return QueueTraffic(
        config=config, arrivals_per_hour=tuple(rates),
        handle_time=parse_distribution(f"{where}.handle_time", spec.get("handle_time", {"type": "exponential",
                                                                                         "mean": 180})),
        patience=parse_distribution(f"{where}.patience", spec.get("patience", "none")),
        priorities=mix, required_skills=dict(skills),
    )


def _agents(i: int, spec: Any, horizon: float) -> list[AgentPlan]:
    where = f"agents[{i}]"
    if not isinstance(spec, Mapping) or not isinstance(spec.get("id"), str):
        raise ScenarioError(f"{where}: needs an object with a string \"id\"")
    _known(where, spec, _AGENT_KEYS)
    count = spec.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ScenarioError(f"{where}.count: {count!r} must be an integer >= 1")
    ids = [spec["id"]] if count == 1 else [f"{spec['id']}-{k:0{len(str(count))}d}" for k in range(1, count + 1)]
    queues = spec.get("queues", {})
    try:
        if isinstance(queues, Mapping):
            members = tuple(Membership(q, p) for q, p in queues.items())
        else:
            members = tuple(Membership(**m) for m in queues)
        configs = [AgentConfig(a, spec.get("skills", {}), members) for a in ids]
    except (ConfigError, TypeError) as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    start = _num(f"{where}.shift_start", spec.get("shift_start"), 0.0)
    end = _num(f"{where}.shift_end", spec.get("shift_end"), horizon)
    if end <= start:
        raise ScenarioError(f"{where}.shift_end: {end!r} must be after shift_start {start!r}")
    pauses = []
    for k, p in enumerate(spec.get("pauses", ())):
        if not isinstance(p, Mapping):
            raise ScenarioError(f"{where}.pauses[{k}]: {p!r} is not an object")
        pauses.append((_num(f"{where}.pauses[{k}].start", p.get("start")),
                       _num(f"{where}.pauses[{k}].duration", p.get("duration"), positive=True)))
    miss = _num(f"{where}.miss_probability", spec.get("miss_probability"), 0.0)
    if miss > 1:
        raise ScenarioError(f"{where}.miss_probability: {miss!r} must be at most 1")
    return [
        AgentPlan(config=c, shift_start=start, shift_end=end, pauses=tuple(sorted(pauses)),
                  answer_delay=_num(f"{where}.answer_delay", spec.get("answer_delay"), 0.0), miss_probability=miss)
        for c in configs
    ]


def load_scenario(data: Mapping[str, Any]) -> Scenario:
    """Build a Scenario from its JSON form, checking every field."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"scenario: {data!r} is not an object")
    _known("scenario", data, _SCENARIO_KEYS)
    intervals = data.get("intervals", 1)
    if isinstance(intervals, bool) or not isinstance(intervals, int) or intervals < 1:
        raise ScenarioError(f"intervals: {intervals!r} must be an integer >= 1")
    interval_seconds = _num("interval_minutes", data.get("interval_minutes"), 30.0, positive=True) * 60.0
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ScenarioError(f"seed: {seed!r} must be an integer")
    queues = tuple(_queue(i, q, intervals) for i, q in enumerate(data.get("queues", ())))
    if not queues:
        raise ScenarioError("queues: at least one queue is needed")
    horizon = interval_seconds * intervals
    agents = tuple(a for i, spec in enumerate(data.get("agents", ())) for a in _agents(i, spec, horizon))
    ids = [a.config.id for a in agents]
    if len(set(ids)) != len(ids):
        raise ScenarioError("agents: agent ids must be unique")
    max_missed = data.get("max_missed_offers", 0)
    if isinstance(max_missed, bool) or not isinstance(max_missed, int) or max_missed < 0:
        raise ScenarioError(f"max_missed_offers: {max_missed!r} must be an integer >= 0")
    return Scenario(
        name=str(data.get("name", "scenario")), seed=seed, interval_seconds=interval_seconds, intervals=intervals,
        queues=queues, agents=agents, max_missed_offers=max_missed,
        autopause_seconds=_num("autopause_seconds", data.get("autopause_seconds"), 60.0),
        drain_seconds=_num("drain_seconds", data.get("drain_seconds"), 4 * 3600.0),
    )


# ----------------------------------------------------------------- simulation

# Event kinds; at equal times the smaller kind goes first (interval rollover first).
_INTERVAL, _SHIFT_START, _PAUSE_END, _ARRIVAL, _ACCEPT, _TALK_END, _READY, _ABANDON, _PAUSE_START, _SHIFT_END = (
    range(10))


@dataclass(slots=True)
class SimulationResult:
    """What a run produced."""

    # The scenario run.
    scenario: Scenario
    # Per interval, per queue: the engine's statistics for that interval.
    intervals: list[dict[str, QueueStats]]
    # Per queue: the intervals combined.
    totals: dict[str, QueueStats]
    # Every contact record the engine emitted (drain included).
    records: list[ContactRecord]
    # Contacts generated.
    arrivals: int
    # Contacts still in the ACD when the simulation stopped.
    unfinished: int
    # Events processed (engine timers included).
    events: int


@dataclass(slots=True)
class _SimAgent:
    plan: AgentPlan
    # off, ready, busy, paused.
    state: str = "off"
    # What to do once the contact in hand is done: None, "pause" or "logout".
    after_work: str | None = None
    pause_until: float = 0.0


def run(scenario: Scenario) -> SimulationResult:
    """Simulate the scenario to the end of its last interval, then drain."""
    rng = random.Random(scenario.seed)
    engine = AcdEngine(rng=random.Random(rng.getrandbits(64)), max_missed_offers=scenario.max_missed_offers,
                       stats_changed=False)
    events: list[tuple] = []
    seq = 0

    def push(when: float, kind: int, a: Any = None, b: Any = None) -> None:
        nonlocal seq
        seq += 1
        heappush(events, (when, kind, seq, a, b))

    traffic = {q.config.name: q for q in scenario.queues}
    handle = {name: q.handle_time.sampler(rng) for name, q in traffic.items()}
    patience = {name: q.patience.sampler(rng) for name, q in traffic.items()}
    for q in scenario.queues:
        engine.configure_queue(q.config, 0.0)
    agents: dict[str, _SimAgent] = {}
    for plan in scenario.agents:
        engine.configure_agent(plan.config, 0.0)
        agents[plan.config.id] = _SimAgent(plan)
        push(plan.shift_start, _SHIFT_START, plan.config.id)
        push(plan.shift_end, _SHIFT_END, plan.config.id)
        for start, duration in plan.pauses:
            push(start, _PAUSE_START, plan.config.id, duration)
    horizon = scenario.horizon
    width = scenario.interval_seconds
    for k in range(scenario.intervals + 1):
        push(k * width, _INTERVAL, k)

    def next_arrival(name: str, t: float) -> None:
        # Piecewise-constant Poisson rate: draw with the current interval's
        # rate; past the interval's end, start over from there (memoryless).
        rates = traffic[name].arrivals_per_hour
        while t < horizon:
            k = int(t // width)
            rate = rates[k] / 3600.0
            end = (k + 1) * width
            if rate > 0:
                t2 = t + rng.expovariate(rate)
                if t2 < end:
                    push(t2, _ARRIVAL, name)
                    return
            t = end

    for name in traffic:
        next_arrival(name, 0.0)

    records: list[ContactRecord] = []
    wrap_of: dict[str, float] = {}
    intervals: list[dict[str, QueueStats]] = []
    counter = 0

    def work_done(agent_id: str, now: float) -> None:
        sim = agents[agent_id]
        if sim.after_work == "logout" or now >= sim.plan.shift_end:
            sim.state = "off"
            engine.agent_not_ready(agent_id, now, logged_out=True)
        elif sim.after_work == "pause" and now < sim.pause_until:
            sim.state = "paused"
            engine.agent_not_ready(agent_id, now)
            push(sim.pause_until, _PAUSE_END, agent_id)
        else:
            sim.state = "ready"
            engine.agent_ready(agent_id, now)
        sim.after_work = None

    def drain(now: float) -> None:
        while True:
            commands = engine.commands_out()
            if not commands:
                return
            for cmd in commands:
                kind = type(cmd)
                if kind is OfferContact:
                    sim = agents[cmd.agent_id]
                    p = sim.plan
                    if p.miss_probability and rng.random() < p.miss_probability:
                        continue  # lets it ring out: the engine's timer handles it
                    if p.answer_delay:
                        push(now + p.answer_delay, _ACCEPT, cmd.contact_id, cmd.agent_id)
                    else:
                        engine.offer_accepted(cmd.contact_id, cmd.agent_id, now)
                elif kind is ContactAssigned:
                    agents[cmd.agent_id].state = "busy"
                    wrap_of[cmd.contact_id] = cmd.wrap_up_seconds
                    push(now + handle[cmd.queue](), _TALK_END, cmd.contact_id, cmd.agent_id)
                elif kind is ContactRecorded:
                    records.append(cmd.record)
                elif kind is PauseAgent:
                    sim = agents[cmd.agent_id]
                    sim.state = "paused"
                    push(now + scenario.autopause_seconds, _PAUSE_END, cmd.agent_id)

    stop = horizon + scenario.drain_seconds
    handled = 0
    while True:
        deadline = engine.next_deadline()
        if events and (deadline is None or events[0][0] <= deadline):
            now, kind, _, a, b = heappop(events)
            if now > stop:
                break
            if kind == _ARRIVAL:
                counter += 1
                q = traffic[a]
                priority = q.priorities[0][0]
                if len(q.priorities) > 1:
                    priority = rng.choices([p for p, _ in q.priorities], [s for _, s in q.priorities])[0]
                cid = f"{a}-{counter}"
                engine.contact_arrived(Contact(cid, a, priority, q.required_skills), now)
                give_up = patience[a]
                if give_up is not None:
                    push(now + give_up(), _ABANDON, cid)
                next_arrival(a, now)
            elif kind == _TALK_END:
                engine.contact_ended(a, now, wrap_up_seconds_used=wrap_of[a])
                wrap = wrap_of.pop(a)
                if wrap > 0:
                    push(now + wrap, _READY, b)
                else:
                    work_done(b, now)
            elif kind == _READY:
                work_done(a, now)
            elif kind == _ACCEPT:
                engine.offer_accepted(a, b, now)
            elif kind == _ABANDON:
                engine.contact_abandoned(a, now)
            elif kind == _INTERVAL:
                if a > 0:
                    intervals.append({name: engine.queue_stats(name, now) for name in traffic})
                engine.reset_stats(now)
            elif kind == _SHIFT_START:
                agents[a].state = "ready"
                engine.agent_ready(a, now)
            elif kind == _SHIFT_END:
                sim = agents[a]
                if sim.state == "busy":
                    sim.after_work = "logout"
                elif sim.state != "off":
                    sim.state = "off"
                    engine.agent_not_ready(a, now, logged_out=True)
            elif kind == _PAUSE_START:
                sim = agents[a]
                if sim.state == "busy":
                    sim.after_work, sim.pause_until = "pause", now + b
                elif sim.state == "ready":
                    sim.state = "paused"
                    engine.agent_not_ready(a, now)
                    push(now + b, _PAUSE_END, a)
            elif kind == _PAUSE_END:
                sim = agents[a]
                if sim.state == "paused":
                    if now < sim.plan.shift_end:
                        sim.state = "ready"
                        engine.agent_ready(a, now)
                    else:
                        sim.state = "off"
                        engine.agent_not_ready(a, now, logged_out=True)
        elif deadline is not None:
            now = deadline
            if now > stop:
                break
            engine.handle_timeout(now)
        else:
            break
        handled += 1
        drain(now)

    totals = {name: combine_queue_stats(iv[name] for iv in intervals) for name in traffic}
    return SimulationResult(scenario, intervals, totals, records, counter, len(engine.active_contacts()), handled)


# ---------------------------------------------------------------------- output


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _clock(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_COLUMNS = ("queue", "interval", "offered", "answered", "abandoned", "SL", "ASA", "aband", "occupancy")


def _row(queue: str, label: str, s: QueueStats) -> tuple[str, ...]:
    return (queue, label, str(s.offered), str(s.answered), str(s.abandoned), _pct(s.service_level),
            _secs(s.asa), _pct(s.abandon_rate), _pct(s.occupancy))


def format_table(result: SimulationResult) -> str:
    """Per queue and interval: offered, SL, ASA, abandon rate, occupancy; then the totals."""
    width = result.scenario.interval_seconds
    rows = [_COLUMNS]
    for name, total in result.totals.items():
        for k, stats in enumerate(result.intervals):
            rows.append(_row(name, f"{_clock(k * width)}-{_clock((k + 1) * width)}", stats[name]))
        rows.append(_row(name, "total", total))
    sizes = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(sizes[i]) if i < 2 else cell.rjust(sizes[i]) for i, cell in enumerate(r))
             for r in rows]
    lines.insert(1, "  ".join("-" * n for n in sizes))
    lines.append("")
    lines.append(f"{len(result.records)} contacts recorded, {result.unfinished} unfinished, "
                 f"{result.events} events; SL = answered within threshold / (answered + abandoned after it)")
    return "\n".join(lines)


def result_json(result: SimulationResult) -> dict[str, Any]:
    """Machine-readable form of a run."""
    width = result.scenario.interval_seconds
    return {
        "scenario": result.scenario.name,
        "seed": result.scenario.seed,
        "interval_seconds": width,
        "queues": {
            name: {
                "intervals": [
                    {"start": k * width, "end": (k + 1) * width, **stats[name].summary()}
                    for k, stats in enumerate(result.intervals)
                ],
                "total": total.summary(),
            }
            for name, total in result.totals.items()
        },
        "arrivals": result.arrivals,
        "contacts_recorded": len(result.records),
        "unfinished": result.unfinished,
        "events": result.events,
    }


def render_svg(result: SimulationResult) -> str:
    """One panel per queue: offered contacts as bars, service level and occupancy as lines."""
    panel_w, panel_h, pad = 640, 220, 40
    names = list(result.totals)
    n = max(1, len(result.intervals))
    height = len(names) * (panel_h + pad) + pad
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{panel_w + 2 * pad}" height="{height}" '
           'font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>']
    for p, name in enumerate(names):
        x0, y0 = pad, pad + p * (panel_h + pad)
        series = [iv[name] for iv in result.intervals]
        peak = max([s.offered for s in series] + [1])
        step = panel_w / n
        out.append(f'<text x="{x0}" y="{y0 - 8}" font-weight="bold">{_xml(name)}: offered (bars, max {peak}), '
                   'service level (green), occupancy (orange), 0-100%</text>')
        out.append(f'<rect x="{x0}" y="{y0}" width="{panel_w}" height="{panel_h}" fill="none" stroke="#999"/>')
        for k, s in enumerate(series):
            h = panel_h * s.offered / peak
            out.append(f'<rect x="{x0 + k * step + 2:.1f}" y="{y0 + panel_h - h:.1f}" width="{max(1.0, step - 4):.1f}" '
                       f'height="{h:.1f}" fill="#9ecae1"/>')
        for attr, colour in (("service_level", "#2ca02c"), ("occupancy", "#ff7f0e")):
            points = [f"{x0 + (k + 0.5) * step:.1f},{y0 + panel_h * (1 - getattr(s, attr)):.1f}"
                      for k, s in enumerate(series) if getattr(s, attr) is not None]
            if points:
                out.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="2"/>')
        width = result.scenario.interval_seconds
        for k in range(0, n, max(1, n // 8)):
            out.append(f'<text x="{x0 + k * step:.1f}" y="{y0 + panel_h + 14}">{_clock(k * width)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------- CLI


def main_simulate(argv: list[str]) -> int:
    """`unidesk simulate SCENARIO.json [--json] [--chart out.svg] [--seed N]`."""
    parser = argparse.ArgumentParser(prog="unidesk simulate",
                                     description="Run the ACD engine on synthetic traffic (docs/acd.md).")
    parser.add_argument("scenario", help="scenario file (JSON)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--chart", metavar="OUT.svg", help="also draw an SVG chart")
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    args = parser.parse_args(argv)
    try:
        with open(args.scenario, encoding="utf-8") as fh:
            data = json.load(fh)
        if args.seed is not None:
            data["seed"] = args.seed
        scenario = load_scenario(data)
    except (OSError, json.JSONDecodeError, ScenarioError) as exc:
        print(f"unidesk simulate: {exc}", file=sys.stderr)
        return 2
    result = run(scenario)
    if args.chart:
        with open(args.chart, "w", encoding="utf-8") as fh:
            fh.write(render_svg(result))
    if args.json:
        print(json.dumps(result_json(result), indent=2))
    else:
        print(format_table(result))
    return 0


def main_erlang(argv: list[str]) -> int:
    """`unidesk erlang --rate R --aht S --agents N [--sl-seconds T] [--target-sl X] [--json]`."""
    parser = argparse.ArgumentParser(prog="unidesk erlang", description="Erlang C staffing figures (M/M/c).")
    parser.add_argument("--rate", type=float, required=True, help="arrivals per hour")
    parser.add_argument("--aht", type=float, required=True, help="average handle time, seconds")
    parser.add_argument("--agents", type=int, help="agents staffed")
    parser.add_argument("--sl-seconds", type=float, default=20.0, help="service-level threshold (default 20)")
    parser.add_argument("--target-sl", type=float, help="also compute the agents needed for this service level")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    args = parser.parse_args(argv)
    if args.agents is None and args.target_sl is None:
        parser.error("give --agents, --target-sl, or both")
    try:
        out: dict[str, Any] = {}
        if args.agents is not None:
            out["staffed"] = erlang_report(args.rate, args.aht, args.agents, args.sl_seconds).as_dict()
        if args.target_sl is not None:
            traffic = args.rate * args.aht / 3600.0
            needed = agents_for_service_level(traffic, args.aht, args.sl_seconds, args.target_sl)
            out["target_sl"] = args.target_sl
            out["needed"] = erlang_report(args.rate, args.aht, needed, args.sl_seconds).as_dict()
    except ValueError as exc:
        print(f"unidesk erlang: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for title, key in (("staffed", "staffed"), (f"needed for SL {_pct(args.target_sl)}", "needed")):
        if key not in out:
            continue
        r = out[key]
        print(f"{title}: {r['agents']} agents, traffic {r['traffic']:.2f} Erlangs, occupancy {_pct(r['occupancy'])}")
        print(f"  P(wait) {_pct(r['p_wait'])}   ASA {_secs(r['asa'])} s   "
              f"SL {_pct(r['service_level'])} within {r['sl_seconds']:g} s")
    return 0
