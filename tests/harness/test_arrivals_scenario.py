"""The scenario's [arrivals] table: the process and its seed, a replayed recording, the command-line
overrides (--arrivals, --seed), and what meta.json records of them (pure: no Locust, no sockets)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from chatload.harness.runtime.options import UsageError, resolve, with_seed
from chatload.harness.scenario.files import find_scenario, load_scenario
from chatload.harness.scenario.model import scenario_to_dict
from chatload.harness.scenario.schema import ScenarioError

STAGE = '[[stages]]\nname = "flat"\nduration = "10s"\ntarget_rate = 4.5\n'


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_evenly_spaced_unless_the_file_says_poisson(tmp_path):
    plain = load_scenario(write(tmp_path, STAGE))
    assert (plain.arrivals.process, plain.arrivals.seed, plain.arrivals.replay) == ("uniform", None, None)
    assert scenario_to_dict(plain)["arrivals"] == {"process": "uniform", "seed": None, "replay": None}
    poisson = load_scenario(write(tmp_path, STAGE + '[arrivals]\nprocess = "poisson"\nseed = 7\n'))
    assert (poisson.arrivals.process, poisson.arrivals.seed) == ("poisson", 7)
    assert scenario_to_dict(poisson)["arrivals"] == {"process": "poisson", "seed": 7, "replay": None}


@pytest.mark.parametrize(
    ("text", "key", "needle"),
    [
        ('[arrivals]\nprocess = "poison"\n', "arrivals.process", "did you mean 'poisson'"),
        ("[arrivals]\nseed = -1\n", "arrivals.seed", "whole number"),
        ("[arrivals]\nseed = 1.5\n", "arrivals.seed", "whole number"),
        ("[arrivals]\nscale = 2\n", "arrivals.scale", "only with replay"),
        ('[arrivals]\nwindow = ["0", "10"]\n', "arrivals.window", "only with replay"),
        ("[arrivals]\nrate = 2\n", "arrivals.rate", "unknown key"),
    ],
)
def test_mistakes_in_arrivals_are_one_line(tmp_path, text, key, needle):
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, STAGE + text))
    message = str(caught.value)
    assert f"s.toml: {key}:" in message and needle in message and "\n" not in message


def test_a_replay_makes_the_stages_relative_to_the_scenario_file(tmp_path):
    (tmp_path / "traffic").mkdir()
    (tmp_path / "traffic" / "day.csv").write_text("interval_start,chats\n0,30\n60,90\n120,0\n")
    path = write(tmp_path, '[arrivals]\nreplay = "traffic/day.csv"\nscale = 2\nspeed = 6\n')
    scenario = load_scenario(path, rate_multiplier=1.5)
    assert scenario.arrivals.process == "poisson"  # the default for replays
    # 60 recorded s at speed 6 = 10 s; 30 chats x 2 over 10 s = 6/s, then x1.5 (rate multiplier) = 9/s
    assert [(s.name, s.duration_s, s.target_rate) for s in scenario.stages] == [
        ("0s", 10.0, 9.0),
        ("60s", 10.0, 27.0),
        ("120s", 10.0, 0.0),
    ]
    replay = scenario_to_dict(scenario)["arrivals"]["replay"]
    assert replay["file"] == "traffic/day.csv" and replay["scale"] == 2 and replay["speed"] == 6
    assert replay["intervals"] == [[0.0, 60.0, 30.0], [60.0, 60.0, 90.0], [120.0, 60.0, 0.0]]
    assert replay["shape"] == "intervals" and replay["wall_clock"] is False


def test_replay_mistakes_name_the_scenario_key_and_the_csv_row_and_column(tmp_path):
    (tmp_path / "day.csv").write_text("interval_start,chats\n0,30\n60,-2\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, '[arrivals]\nreplay = "day.csv"\n'))
    assert str(caught.value).endswith(
        "s.toml: arrivals.replay: day.csv: row 3, column chats: negative or not finite count -2"
    )
    with pytest.raises(ScenarioError, match=r"arrivals\.replay: missing\.csv: cannot be read"):
        load_scenario(write(tmp_path, '[arrivals]\nreplay = "missing.csv"\n'))
    with pytest.raises(ScenarioError, match=r"s\.toml: stages: give either \[\[stages\]\] or \[arrivals\] replay"):
        load_scenario(write(tmp_path, STAGE + '[arrivals]\nreplay = "day.csv"\n'))


def test_the_shipped_example_day(tmp_path):
    scenario = load_scenario(find_scenario("replay-day"))
    assert scenario.arrivals.process == "poisson" and scenario.arrivals.seed is not None
    assert len(scenario.stages) == 96 and scenario.duration_s == pytest.approx(240)
    assert scenario.stages[76].name == "2025-11-28T19:00Z"
    recorded = sum(chats for _, _, chats in scenario.arrivals.replay.intervals)
    offered = sum(s.target_rate * s.duration_s for s in scenario.stages)
    assert offered == pytest.approx(recorded * scenario.arrivals.replay.scale)


def options(**kw) -> SimpleNamespace:
    return SimpleNamespace(**{"scenario": "", "endpoint_url": "", "rate_multiplier": "1", **kw})


def test_command_line_overrides_and_a_fresh_seed(tmp_path):
    path = write(tmp_path, STAGE)
    settings = resolve(options(scenario=str(path), arrivals="poisson", seed="9"))
    assert (settings.scenario.arrivals.process, settings.scenario.arrivals.seed) == ("poisson", 9)
    assert with_seed(settings, 9).scenario.arrivals.seed == 9
    fresh = resolve(options(scenario=str(path), arrivals="poisson"))
    assert fresh.scenario.arrivals.seed is None
    drawn = with_seed(fresh, None).scenario.arrivals.seed
    assert isinstance(drawn, int) and drawn >= 0
    uniform = resolve(options(scenario="spike", arrivals="uniform"))  # spike's file says poisson, seed 101
    assert uniform.scenario.arrivals.process == "uniform"
    assert scenario_to_dict(uniform.scenario)["arrivals"]["seed"] is None
    assert with_seed(uniform, None) is uniform
    with pytest.raises(UsageError, match="--arrivals: expected uniform or poisson"):
        resolve(options(scenario=str(path), arrivals="bursty"))
    with pytest.raises(UsageError, match="--seed"):
        resolve(options(scenario=str(path), seed="-3"))


def test_the_scenarios_that_stand_for_real_traffic_are_poisson():
    for name in ("spike", "soak", "concurrency-ceiling", "quota-increase-what-if", "replay-day"):
        arrivals = load_scenario(find_scenario(name)).arrivals
        assert arrivals.process == "poisson" and arrivals.seed is not None, name
    assert load_scenario(find_scenario("tps-ceiling")).arrivals.process == "uniform"
    assert load_scenario(find_scenario("ci-smoke")).arrivals.process == "uniform"
