"""Acceptance: the simulator, running the real engine, behaves as an M/M/c queue.

Three checks on one queue of identical agents, exponential handle times, no
abandonment and no wrap-up, over c in {2, 5, 10} and utilisation in
{0.5, 0.7, 0.85}:

1. Exactness: every contact's wait equals the one the first-come-first-served
   M/M/c recursion (Kiefer-Wolfowitz) gives for the same arrival and handle
   times. This holds to rounding at any load and any run length.
2. Inputs: interarrival and handle times have the scenario's means.
3. Erlang C: the probability of waiting and the ASA agree with Erlang C
   within 4 standard errors (batch means over the run) plus a floor of
   1 point / 2 %. Waiting times in a loaded queue are strongly
   autocorrelated, so a run of n contacts has a relative ASA error of about
   k / sqrt(n) with k from 9 (c=2, 0.5) to 25 (c=10, 0.85): "a few percent"
   everywhere takes ~500,000 contacts per point. The default run lengths
   keep this file to a few seconds; UNIDESK_MMC_SCALE=20 runs 20 times
   longer and tightens the bound accordingly (docs/acd.md gives measured
   figures).
"""

from __future__ import annotations

import functools
import heapq
import math
import os

import pytest

from realtime.acd import Outcome
from realtime.acd.erlang import average_speed_of_answer, erlang_c
from realtime.acd.simulate import load_scenario, run

AHT = 100.0
GRID = [(c, rho) for c in (2, 5, 10) for rho in (0.5, 0.7, 0.85)]
SCALE = float(os.environ.get("UNIDESK_MMC_SCALE", "1"))
CALLS = {0.5: 6000, 0.7: 10000, 0.85: 16000}
BATCHES = 20


@functools.lru_cache(maxsize=None)
def simulate(c: int, rho: float, calls: int, seed: int) -> list:
    """Records of an M/M/c run, in arrival order; every contact is answered."""
    rate = rho * c / AHT
    horizon = calls / rate
    scenario = load_scenario({
        "name": f"mmc-{c}-{rho}", "seed": seed, "interval_minutes": horizon / 60, "intervals": 1,
        "queues": [{"name": "q", "strategy": "longest-idle", "arrivals_per_hour": rate * 3600,
                    "handle_time": {"type": "exponential", "mean": AHT}, "patience": "none"}],
        # Agents stay past the horizon so that the last contacts are answered too.
        "agents": [{"id": "agent", "count": c, "queues": {"q": 0}, "shift_end": 100 * horizon}],
        "drain_seconds": 100 * horizon,
    })
    result = run(scenario)
    assert result.unfinished == 0
    records = sorted(result.records, key=lambda r: r.arrived_at)
    assert all(r.outcome is Outcome.ANSWERED for r in records)
    return records


def fcfs_waits(c: int, records: list) -> list[float]:
    """Kiefer-Wolfowitz: each arrival takes the server that frees first."""
    free = [0.0] * c
    waits = []
    for r in records:
        soonest = heapq.heappop(free)
        start = max(r.arrived_at, soonest)
        waits.append(start - r.arrived_at)
        heapq.heappush(free, start + r.talk_seconds)
    return waits


@pytest.mark.parametrize(("c", "rho"), GRID)
def test_each_wait_is_the_fcfs_mmc_wait(c, rho):
    records = simulate(c, rho, 800, seed=c * 100 + int(rho * 100))
    expected = fcfs_waits(c, records)
    assert sum(w > 0 for w in expected) > 0
    for r, w in zip(records, expected):
        assert r.wait_seconds == pytest.approx(w, abs=1e-6 * AHT), r.contact_id


def batch_se(values: list[float]) -> float:
    size = len(values) // BATCHES
    means = [sum(values[i * size:(i + 1) * size]) / size for i in range(BATCHES)]
    centre = sum(means) / BATCHES
    return math.sqrt(sum((m - centre) ** 2 for m in means) / (BATCHES - 1) / BATCHES)


def long_run(c: int, rho: float) -> list:
    records = simulate(c, rho, int(CALLS[rho] * SCALE), seed=7 + c * 1000 + int(rho * 100))
    return records[len(records) // 20:]  # the first 5 % started from an empty queue


@pytest.mark.parametrize(("c", "rho"), GRID)
def test_probability_of_waiting_and_asa_agree_with_erlang_c(c, rho):
    records = long_run(c, rho)
    waits = [r.wait_seconds for r in records]
    waited = [1.0 if w > 1e-9 else 0.0 for w in waits]
    p_wait, asa = sum(waited) / len(waited), sum(waits) / len(waits)
    p_theory, asa_theory = erlang_c(c, rho * c), average_speed_of_answer(c, rho * c, AHT)
    assert abs(p_wait - p_theory) <= 4 * batch_se(waited) + 0.01, (p_wait, p_theory)
    assert abs(asa - asa_theory) <= 4 * batch_se(waits) + 0.02 * asa_theory, (asa, asa_theory)


@pytest.mark.parametrize(("c", "rho"), [(2, 0.85), (10, 0.5)])
def test_arrivals_and_handle_times_follow_the_scenario(c, rho):
    records = long_run(c, rho)
    n = len(records)
    gaps = [b.arrived_at - a.arrived_at for a, b in zip(records, records[1:])]
    talks = [r.talk_seconds for r in records]
    for sample, mean in ((gaps, AHT / (rho * c)), (talks, AHT)):
        m = sum(sample) / len(sample)
        assert abs(m - mean) <= 4 * mean / math.sqrt(n)  # exponential: sd = mean
        sd = math.sqrt(sum((x - m) ** 2 for x in sample) / (len(sample) - 1))
        assert abs(sd / m - 1.0) <= 0.05
