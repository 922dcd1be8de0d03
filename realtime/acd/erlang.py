"""Erlang B and C: the M/M/c figures staffing is planned with.

Erlang B is computed with its recurrence B(0) = 1, B(k) = A*B(k-1) / (k + A*B(k-1)),
which never forms A^c or c! and so stays accurate for thousands of agents;
Erlang C follows from it: C = c*B / (c - A*(1 - B)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def _check(servers: int, traffic: float) -> None:
    if isinstance(servers, bool) or not isinstance(servers, int) or servers < 0:
        raise ValueError(f"servers: {servers!r} must be an integer >= 0")
    if not math.isfinite(traffic) or traffic < 0:
        raise ValueError(f"traffic: {traffic!r} must be a finite number >= 0 (Erlangs)")


def erlang_b(servers: int, traffic: float) -> float:
    """Blocking probability of an M/M/c/c system offered `traffic` Erlangs."""
    _check(servers, traffic)
    b = 1.0
    for k in range(1, servers + 1):
        ab = traffic * b
        b = ab / (k + ab)
    return b


def erlang_c(servers: int, traffic: float) -> float:
    """Probability that a contact waits in an M/M/c queue (1.0 when the load is >= servers)."""
    _check(servers, traffic)
    if traffic == 0:
        return 0.0
    if traffic >= servers:
        return 1.0
    b = erlang_b(servers, traffic)
    return servers * b / (servers - traffic * (1.0 - b))


def average_speed_of_answer(servers: int, traffic: float, aht: float) -> float:
    """Mean wait over all contacts: C * AHT / (c - A); infinite when overloaded."""
    if traffic >= servers:
        return math.inf
    return erlang_c(servers, traffic) * aht / (servers - traffic)


def service_level(servers: int, traffic: float, aht: float, threshold: float) -> float:
    """Share of contacts answered within `threshold`: 1 - C * exp(-(c - A) * t / AHT)."""
    if traffic >= servers:
        return 0.0
    return 1.0 - erlang_c(servers, traffic) * math.exp(-(servers - traffic) * threshold / aht)


def agents_for_service_level(traffic: float, aht: float, threshold: float, target: float,
                             limit: int = 1_000_000) -> int:
    """Fewest agents whose service level reaches `target` (0 < target < 1)."""
    if not 0 < target < 1:
        raise ValueError(f"target: {target!r} must be between 0 and 1 (exclusive)")
    servers = max(1, math.floor(traffic) + 1)
    while service_level(servers, traffic, aht, threshold) < target:
        servers += 1
        if servers > limit:
            raise ValueError(f"target: {target!r} needs more than {limit} agents")
    return servers


@dataclass(frozen=True, slots=True)
class ErlangResult:
    """Erlang C figures for one staffing level."""

    # Arrivals per hour.
    rate_per_hour: float
    # Average handle time, seconds.
    aht: float
    # Agents staffed.
    agents: int
    # Offered load in Erlangs: rate * AHT / 3600.
    traffic: float
    # Agent occupancy: traffic / agents (capped at 1).
    occupancy: float
    # Probability that a contact waits.
    p_wait: float
    # Average speed of answer over all contacts, seconds.
    asa: float
    # Service-level threshold, seconds.
    sl_seconds: float
    # Share answered within the threshold.
    service_level: float

    def as_dict(self) -> dict[str, float | int | None]:
        # JSON has no infinity: an overloaded system's ASA becomes None.
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in asdict(self).items()}


def erlang_report(rate_per_hour: float, aht: float, agents: int, sl_seconds: float) -> ErlangResult:
    """All the figures for `agents` agents serving `rate_per_hour` contacts of `aht` seconds."""
    for name, value in (("rate", rate_per_hour), ("aht", aht), ("sl_seconds", sl_seconds)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}: {value!r} must be a finite number >= 0")
    if aht == 0:
        raise ValueError("aht: 0 must be > 0")
    traffic = rate_per_hour * aht / 3600.0
    return ErlangResult(
        rate_per_hour=rate_per_hour, aht=aht, agents=agents, traffic=traffic,
        occupancy=min(1.0, traffic / agents) if agents else 1.0, p_wait=erlang_c(agents, traffic),
        asa=average_speed_of_answer(agents, traffic, aht), sl_seconds=sl_seconds,
        service_level=service_level(agents, traffic, aht, sl_seconds),
    )
