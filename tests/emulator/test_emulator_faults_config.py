"""Fault injection's configuration ([faults]: every key, one-line errors, PUT merges) and its draws."""

import math
import statistics

import pytest

from chatload.emulator.clock import FakeClock
from chatload.emulator.config import (
    ConfigError,
    EmulatorConfig,
    Faults,
    Latency,
    OperationFaults,
    config_to_dict,
    load_config,
    merge_config,
)
from chatload.emulator.faults import (
    DELAYED,
    FAULT_COUNTERS,
    NO_ANSWER,
    RESET,
    SERVER_ERROR,
    SERVICE_UNAVAILABLE,
    FaultInjector,
)
from chatload.emulator_control import to_toml

EXAMPLE = """
[faults]
seed = 42
no_answer_max_real_s = 30

[faults.default]
server_error_share = 0.01

[faults.StartChatContact]
latency = { distribution = "uniform", mean_ms = 200, spread_ms = 50 }
server_error_share = 0.02
service_unavailable_share = 0.03
reset_share = 0.01
no_answer_share = 0.005
window = ["60s", "1.5m"]

[faults.SendMessage]
latency = { distribution = "lognormal", mean_ms = 120, sigma = 0.5, max_ms = 2000 }
window = [10]

[faults.DescribeContact]
latency = { mean_ms = 80 }
"""


def load(tmp_path, text):
    path = tmp_path / "faults.toml"
    path.write_text(text)
    return load_config(path)


def test_the_documented_example_loads(tmp_path):
    faults = load(tmp_path, EXAMPLE).faults
    assert (faults.seed, faults.no_answer_max_real_s) == (42, 30.0)
    start = faults.operations["StartChatContact"]
    assert start == OperationFaults(
        latency=Latency("uniform", 200.0, 50.0),
        server_error_share=0.02,
        service_unavailable_share=0.03,
        reset_share=0.01,
        no_answer_share=0.005,
        window=(60.0, 90.0),
    )
    assert faults.operations["SendMessage"].latency == Latency("lognormal", 120.0, sigma=0.5, max_ms=2000.0)
    assert faults.operations["SendMessage"].window == (10.0, math.inf)
    assert faults.operations["DescribeContact"].latency == Latency("fixed", 80.0)  # fixed is the default
    # an operation's own table replaces "default" as a whole; the others fall back to it
    assert faults.for_operation("StartChatContact") is start
    assert faults.for_operation("GetTranscript") == OperationFaults(server_error_share=0.01)


def test_no_faults_by_default_and_round_trip(tmp_path):
    assert EmulatorConfig().faults == Faults()
    assert config_to_dict(EmulatorConfig())["faults"] == {"no_answer_max_real_s": 600.0}
    config = load(tmp_path, EXAMPLE)
    again = tmp_path / "again.toml"
    again.write_text(to_toml(config_to_dict(config)))
    assert load_config(again) == config


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[faults]\nseed = 'x'\n", "faults.seed"),
        ("[faults]\nseed = true\n", "faults.seed"),
        ("[faults]\nno_answer_max_real_s = 0\n", "faults.no_answer_max_real_s"),
        ("[faults]\ncolour = 1\n", "faults.colour"),
        ("[faults.StartChat]\nreset_share = 0.1\n", "faults.StartChat"),
        ("[faults.GetAttachment]\nreset_share = 0.1\n", "faults.GetAttachment"),
        ("[faults]\nStartChatContact = 3\n", "faults.StartChatContact"),
        ("[faults.default]\nreset = 0.1\n", "faults.default.reset"),
        ("[faults.default]\nserver_error_share = 1.5\n", "faults.default.server_error_share"),
        ("[faults.default]\nservice_unavailable_share = -0.1\n", "faults.default.service_unavailable_share"),
        ("[faults.default]\nreset_share = 'half'\n", "faults.default.reset_share"),
        ("[faults.default]\nno_answer_share = nan\n", "faults.default.no_answer_share"),
        ("[faults.default]\nreset_share = 0.6\nno_answer_share = 0.6\n", "faults.default: the shares add up to 1.2"),
        ("[faults.default]\nlatency = 200\n", "faults.default.latency"),
        ("[faults.default]\nlatency = { distribution = 'normal', mean_ms = 1 }\n", "latency.distribution"),
        ("[faults.default]\nlatency = { distribution = 'uniform' }\n", "faults.default.latency.mean_ms"),
        ("[faults.default]\nlatency = { mean_ms = -1 }\n", "faults.default.latency.mean_ms"),
        ("[faults.default]\nlatency = { mean_ms = 10, spread_ms = 5 }\n", "latency.spread_ms: not used by a fixed"),
        ("[faults.default]\nlatency = { mean_ms = 10, jitter = 5 }\n", "faults.default.latency.jitter: unknown"),
        (
            "[faults.default]\nlatency = { distribution = 'uniform', mean_ms = 10, spread_ms = 20 }\n",
            "latency.spread_ms: must be <= mean_ms",
        ),
        ("[faults.default]\nlatency = { distribution = 'lognormal', mean_ms = 10 }\n", "latency.sigma: required"),
        ("[faults.default]\nlatency = { distribution = 'lognormal', mean_ms = 0, sigma = 1 }\n", "latency.mean_ms"),
        ("[faults.default]\nlatency = { distribution = 'lognormal', mean_ms = 9, sigma = 9 }\n", "latency.sigma"),
        ("[faults.default]\nlatency = { mean_ms = 10, max_ms = 'x' }\n", "latency.max_ms"),
        ("[faults.default]\nwindow = '60s'\n", "faults.default.window"),
        ("[faults.default]\nwindow = []\n", "faults.default.window"),
        ("[faults.default]\nwindow = [1, 2, 3]\n", "faults.default.window"),
        ("[faults.default]\nwindow = ['soon', '90s']\n", "faults.default.window[0]"),
        ("[faults.default]\nwindow = ['60s', -5]\n", "faults.default.window[1]"),
        ("[faults.default]\nwindow = ['90s', '60s']\n", "faults.default.window: the end"),
    ],
)
def test_every_bad_key_gives_one_line_naming_it(tmp_path, text, where):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and where in message and "\n" not in message, message


@pytest.mark.parametrize(
    ("window", "expected"),
    [([0, 30], (0.0, 30.0)), (["500ms", "2s"], (0.5, 2.0)), (["1m", "1h"], (60.0, 3600.0)), ([".5s"], (0.5, math.inf))],
)
def test_window_durations(window, expected):
    config = merge_config(EmulatorConfig(), {"faults": {"default": {"reset_share": 0.1, "window": window}}})
    assert config.faults.operations["default"].window == expected


def test_put_merges_faults_key_by_key_and_null_removes():
    base = merge_config(
        EmulatorConfig(),
        {
            "faults": {
                "seed": 7,
                "StartChatContact": {"latency": {"mean_ms": 100}, "reset_share": 0.1, "window": [0, 60]},
                "SendMessage": {"no_answer_share": 0.2},
            }
        },
        "PUT /_emulator/config",
    )
    merged = merge_config(base, {"faults": {"StartChatContact": {"server_error_share": 0.3}}})
    start = merged.faults.operations["StartChatContact"]
    assert (start.server_error_share, start.reset_share, start.window) == (0.3, 0.1, (0.0, 60.0))
    assert start.latency == Latency("fixed", 100.0)
    assert merged.faults.seed == 7 and "SendMessage" in merged.faults.operations
    # latency is replaced as a whole (its keys depend on the distribution)
    swapped = merge_config(
        merged, {"faults": {"StartChatContact": {"latency": {"distribution": "lognormal", "mean_ms": 50, "sigma": 1}}}}
    )
    assert swapped.faults.operations["StartChatContact"].latency == Latency("lognormal", 50.0, sigma=1.0)
    # the shares' sum is checked after the merge
    with pytest.raises(ConfigError, match=r"faults.StartChatContact: the shares add up to 1.1"):
        merge_config(merged, {"faults": {"StartChatContact": {"no_answer_share": 0.7}}}, "PUT /_emulator/config")
    # null: one key back to its default, one operation's table, or every fault
    cleared = merge_config(merged, {"faults": {"StartChatContact": {"window": None, "latency": None}}})
    assert cleared.faults.operations["StartChatContact"].window is None
    assert cleared.faults.operations["StartChatContact"].latency is None
    dropped = merge_config(merged, {"faults": {"SendMessage": None, "seed": None}})
    assert set(dropped.faults.operations) == {"StartChatContact"} and dropped.faults.seed is None
    assert merge_config(merged, {"faults": None}).faults == Faults()
    # other tables leave faults alone (the same object: the store does not re-seed)
    assert merge_config(merged, {"rates": {"StartChatContact": {"rate": 9}}}).faults is merged.faults


# ---------------------------------------------------------------- the draws (FaultInjector, fake clock)


def injector(faults, clock=None):
    config = merge_config(EmulatorConfig(), {"faults": faults})
    return FaultInjector(config.faults, clock or FakeClock())


def test_nothing_is_planned_without_an_effect():
    assert injector({}).plans == {}
    assert injector({"default": {"reset_share": 0, "latency": {"mean_ms": 0}}}).plans == {}
    assert injector({"default": {"window": [1, 2]}}).plans == {}
    planned = injector({"default": {"reset_share": 0.1}})
    assert set(planned.plans) == {
        "StartChatContact",
        "StopContact",
        "DescribeContact",
        "CreateParticipantConnection",
        "SendMessage",
        "SendEvent",
        "DisconnectParticipant",
        "GetTranscript",
    }
    assert injector({"SendMessage": {"reset_share": 0.1}}).decide("StartChatContact") is None


def test_shares_are_drawn_and_counted_exclusively():
    faults = injector(
        {
            "seed": 1,
            "StartChatContact": {
                "server_error_share": 0.1,
                "service_unavailable_share": 0.2,
                "reset_share": 0.3,
                "no_answer_share": 0.1,
            },
        }
    )
    kinds = [faults.decide("StartChatContact") for _ in range(20_000)]
    counters = faults.state()["StartChatContact"]
    assert set(counters) == set(FAULT_COUNTERS)
    for kind, share in ((SERVER_ERROR, 0.1), (SERVICE_UNAVAILABLE, 0.2), (RESET, 0.3), (NO_ANSWER, 0.1)):
        assert counters[kind] == sum(1 for k in kinds if k is not None and k.kind == kind)
        assert abs(counters[kind] / 20_000 - share) < 0.015, kind
    assert sum(1 for k in kinds if k is None) == 20_000 - sum(
        counters[k] for k in (SERVER_ERROR, SERVICE_UNAVAILABLE, RESET, NO_ANSWER)
    )
    assert counters[DELAYED] == 0


def test_a_seed_reproduces_the_draws_after_a_reset():
    spec = {
        "seed": 99,
        "default": {"reset_share": 0.5, "latency": {"distribution": "uniform", "mean_ms": 100, "spread_ms": 50}},
    }
    faults = injector(spec)
    first = [faults.decide("SendMessage") for _ in range(200)]
    faults.restart()
    assert [faults.decide("SendMessage") for _ in range(200)] == first
    assert faults.state()["SendMessage"][RESET] == sum(1 for f in first if f.kind == RESET)
    other = injector({**spec, "seed": 100})
    assert [other.decide("SendMessage") for _ in range(200)] != first


def test_latency_distributions():
    fixed = injector({"default": {"latency": {"mean_ms": 200}}})
    assert {fixed.decide("GetTranscript").delay_s for _ in range(10)} == {0.2}
    uniform = injector(
        {"seed": 3, "default": {"latency": {"distribution": "uniform", "mean_ms": 200, "spread_ms": 50}}}
    )
    draws = [uniform.decide("GetTranscript").delay_s for _ in range(5000)]
    assert min(draws) >= 0.15 and max(draws) <= 0.25 and abs(statistics.fmean(draws) - 0.2) < 0.005
    lognormal = injector(
        {"seed": 4, "default": {"latency": {"distribution": "lognormal", "mean_ms": 100, "sigma": 0.5}}}
    )
    draws = [lognormal.decide("GetTranscript").delay_s for _ in range(20_000)]
    assert abs(statistics.fmean(draws) - 0.1) < 0.005  # mean_ms is the arithmetic mean
    capped = injector(
        {"default": {"latency": {"distribution": "lognormal", "mean_ms": 100, "sigma": 2, "max_ms": 150}}}
    )
    assert max(capped.decide("GetTranscript").delay_s for _ in range(2000)) == 0.15
    assert fixed.state()["GetTranscript"][DELAYED] == 10
    # a never-answered request has no latency (nothing is ever answered)
    silent = injector({"default": {"no_answer_share": 1, "latency": {"mean_ms": 200}}})
    assert silent.decide("SendMessage").delay_s == 0 and silent.state()["SendMessage"][DELAYED] == 0


def test_window_is_emulated_time_since_start_or_reset():
    clock = FakeClock()
    faults = injector({"StartChatContact": {"server_error_share": 1, "window": ["60s", "90s"]}}, clock)
    assert faults.decide("StartChatContact") is None
    clock.advance(59.9)
    assert faults.decide("StartChatContact") is None
    clock.advance(0.1)
    assert faults.decide("StartChatContact").kind == SERVER_ERROR
    clock.advance(29.9)
    assert faults.decide("StartChatContact").kind == SERVER_ERROR
    clock.advance(0.1)
    assert faults.decide("StartChatContact") is None
    assert faults.state()["StartChatContact"][SERVER_ERROR] == 2
    faults.restart()  # POST /_emulator/reset: the window starts again
    assert faults.elapsed() == 0 and faults.decide("StartChatContact") is None
    clock.advance(75)
    assert faults.decide("StartChatContact").kind == SERVER_ERROR
