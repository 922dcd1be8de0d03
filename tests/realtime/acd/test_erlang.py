"""Erlang B/C against published values, numerical stability, and the `erlang` command."""

from __future__ import annotations

import json
import math

import pytest

from realtime.acd.erlang import (
    agents_for_service_level, average_speed_of_answer, erlang_b, erlang_c, erlang_report, service_level,
)
from realtime.acd.simulate import main_erlang


def naive_erlang_c(c: int, a: float) -> float:
    top = a ** c / math.factorial(c) * c / (c - a)
    return top / (sum(a ** k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize(("c", "a"), [(1, 0.5), (2, 1.0), (8, 6.0), (10, 9.5), (30, 25.0)])
def test_erlang_c_matches_the_textbook_formula(c, a):
    assert erlang_c(c, a) == pytest.approx(naive_erlang_c(c, a), rel=1e-12)


def test_known_values():
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    # 120 calls/h, 180 s AHT, 8 agents: the classic call-center example.
    r = erlang_report(120, 180, 8, 20)
    assert (r.traffic, r.occupancy) == (6.0, 0.75)
    assert r.p_wait == pytest.approx(0.3570, abs=1e-4)
    assert r.asa == pytest.approx(32.13, abs=0.01)
    assert r.service_level == pytest.approx(0.7142, abs=1e-4)


def test_large_systems_stay_finite_and_sane():
    # a**c / c! overflows a float long before this; the recurrence does not.
    p = erlang_c(5000, 4950.0)
    assert 0.0 < p < 1.0 and math.isfinite(p)
    assert erlang_c(1000, 0.0) == 0.0
    assert erlang_c(10, 10.0) == 1.0 and average_speed_of_answer(10, 12.0, 100.0) == math.inf
    assert service_level(3, 5.0, 100.0, 20.0) == 0.0


def test_agents_needed_for_a_service_level():
    assert agents_for_service_level(6.0, 180.0, 20.0, 0.8) == 9
    with pytest.raises(ValueError, match="target"):
        agents_for_service_level(6.0, 180.0, 20.0, 1.0)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="servers"):
        erlang_c(-1, 1.0)
    with pytest.raises(ValueError, match="aht"):
        erlang_report(100, 0, 3, 20)


def test_cli_prints_figures_and_staffing(capsys):
    assert main_erlang(["--rate", "120", "--aht", "180", "--agents", "8", "--sl-seconds", "20",
                        "--target-sl", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "P(wait) 35.7%" in out and "ASA 32.1 s" in out and "SL 71.4% within 20 s" in out
    assert "needed for SL 80.0%: 9 agents" in out


def test_cli_json(capsys):
    assert main_erlang(["--rate", "120", "--aht", "180", "--agents", "5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["staffed"]["p_wait"] == 1.0 and data["staffed"]["asa"] is None  # overloaded: no finite ASA
