"""The simulator: scenario format, determinism, reports, chart, command line."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from realtime.acd import Outcome
from realtime.acd.simulate import ScenarioError, load_scenario, main_simulate, render_svg, result_json, run


def example() -> dict:
    return json.loads(resources.files("realtime.acd").joinpath("scenario_example.json").read_text())


def small(**changes) -> dict:
    data = {
        "seed": 3, "interval_minutes": 30, "intervals": 2,
        "queues": [{"name": "q", "arrivals_per_hour": [60, 120], "handle_time": {"type": "fixed", "value": 120},
                    "patience": {"type": "exponential", "mean": 60}, "wrap_up_seconds": 10}],
        "agents": [{"id": "a", "count": 3, "queues": {"q": 0}, "answer_delay": 2}],
    }
    data.update(changes)
    return data


def test_example_scenario_runs_and_accounts_for_every_contact():
    result = run(load_scenario(example()))
    assert result.unfinished == 0
    outcomes = {r.outcome for r in result.records}
    assert Outcome.ANSWERED in outcomes and Outcome.ABANDONED in outcomes
    for name, total in result.totals.items():
        assert total.offered > 0, name
        assert 0.0 <= total.occupancy <= 1.0
    # No contact is lost: one record per arrival.
    assert len(result.records) == result.arrivals == len({r.contact_id for r in result.records})


def test_same_seed_same_result_and_other_seed_differs():
    a = result_json(run(load_scenario(small())))
    b = result_json(run(load_scenario(small())))
    c = result_json(run(load_scenario(small(seed=4))))
    assert a == b and a != c


def test_wrap_up_shift_and_pause_shape_the_agents_time():
    data = small(agents=[{"id": "a", "queues": {"q": 0}, "shift_start": 600, "shift_end": 3000,
                          "pauses": [{"start": 1200, "duration": 300}]}])
    result = run(load_scenario(data))
    answered = [r for r in result.records if r.outcome is Outcome.ANSWERED]
    assert answered and all(600 <= r.answered_at for r in answered)
    assert not any(1200 < r.answered_at < 1500 for r in answered)  # paused (calls in hand finish first)
    assert all(r.wrap_up_seconds == 10 for r in answered)


def test_overflow_and_priorities_in_a_scenario():
    data = small(queues=[
        {"name": "spill", "arrivals_per_hour": 0, "handle_time": 60},
        {"name": "q", "arrivals_per_hour": 200, "max_wait": 30, "overflow": "spill", "priority": {"0": 0.5, "3": 0.5},
         "handle_time": {"type": "lognormal", "mean": 200, "sd": 80}},
    ], agents=[{"id": "a", "count": 2, "queues": {"q": 0}}, {"id": "s", "queues": {"spill": 0}}])
    result = run(load_scenario(data))
    assert result.totals["q"].overflowed > 0 and result.totals["spill"].offered == result.totals["q"].overflowed
    assert {r.priority for r in result.records} == {0, 3}


@pytest.mark.parametrize(("change", "message"), [
    ({"intervals": 0}, "intervals: 0"),
    ({"queues": [{"name": "q", "arrivals_per_hour": [1, 2, 3]}]}, r"arrivals_per_hour: 3 values for 2 intervals"),
    ({"queues": [{"name": "q", "strategy": "psychic"}]}, r"queues\[0\]: QueueConfig.strategy: unknown value"),
    ({"queues": [{"name": "q", "handle_time": {"type": "gamma", "mean": 3}}]}, r"handle_time.type: 'gamma'"),
    ({"queues": [{"name": "q", "colour": "red"}]}, r"unknown field\(s\) \['colour'\]"),
    ({"agents": [{"id": "a", "skills": {"x": 500}}]}, "level 500 outside 0..100"),
    ({"agents": [{"id": "a", "shift_start": 50, "shift_end": 10}]}, "shift_end"),
])
def test_bad_scenarios_name_the_field(change, message):
    with pytest.raises(ScenarioError, match=message):
        load_scenario(small(**change))


def test_cli_table_json_and_chart(tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(small()))
    chart = tmp_path / "c.svg"
    assert main_simulate([str(path), "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "offered" in out and "00:30-01:00" in out and "total" in out
    assert chart.read_text().startswith("<svg") and "polyline" in chart.read_text()
    assert main_simulate([str(path), "--json", "--seed", "9"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["seed"] == 9 and len(data["queues"]["q"]["intervals"]) == 2
    assert set(data["queues"]["q"]["total"]) >= {"offered", "service_level", "asa", "abandon_rate", "occupancy"}


def test_cli_reports_a_bad_file(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text("{}")
    assert main_simulate([str(path)]) == 2
    assert "queues" in capsys.readouterr().err


def test_svg_escapes_queue_names():
    data = small(queues=[{"name": "a<b", "arrivals_per_hour": 10}], agents=[{"id": "x", "queues": {"a<b": 0}}])
    assert "a&lt;b" in render_svg(run(load_scenario(data)))
