"""Loading scenarios: built-in files, defaults, multiplier, ad-hoc runs, durations, pool size, listing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from chatload.contracts import DEFAULT_CONTACT_FLOW_ID, DEFAULT_INSTANCE_ID, DEFAULT_REGION
from chatload.harness.pacer import Schedule
from chatload.harness.scenario.duration import parse_duration
from chatload.harness.scenario.files import adhoc_scenario, list_scenarios, load_scenario
from chatload.harness.scenario.model import (
    AWS_DEFAULT_MAX_CHATS,
    AWS_DEFAULT_MAX_ERROR_SHARE,
    AWS_DEFAULT_MAX_RATE,
    HoldTime,
    Scenario,
    Stage,
    chat_life_s,
    expected_active_chats,
    peak_rate,
    planned_chats,
    pool_size,
    scenario_to_dict,
    with_rate_multiplier,
)

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = ROOT / "scenarios"
BUILTIN_NAMES = [
    "ci-smoke",
    "concurrency-ceiling",
    "persistent-chat",
    "quota-increase-what-if",
    "replay-day",
    "retry-storm",
    "soak",
    "spike",
    "tps-ceiling",
]


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = """# A minimal scenario.
[[stages]]
duration = "30s"
target_rate = 2
"""


# ------------------------------------------------------------------ built-in scenarios


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_every_builtin_scenario_loads(name):
    path = BUILTIN / f"{name}.toml"
    s = load_scenario(path)
    assert s.name == name
    assert s.purpose and s.purpose == path.read_text().splitlines()[0].lstrip("# ").strip()
    assert s.target.kind == "emulator"
    assert pool_size(s) >= 1
    json.dumps(scenario_to_dict(s))
    Schedule(s.stages)


def test_the_builtin_folder_holds_exactly_the_documented_scenarios():
    assert sorted(p.stem for p in BUILTIN.glob("*.toml")) == BUILTIN_NAMES
    docs = (ROOT / "docs" / "scenarios.md").read_text()
    for name in BUILTIN_NAMES:
        assert f"`{name}`" in docs


def test_ci_smoke_is_short_and_gentle():
    s = load_scenario(BUILTIN / "ci-smoke.toml")
    assert s.duration_s + s.chat.connect_delay_s + s.chat.messages * s.chat.message_interval_s < 60
    assert (s.chat.hold.max_s or 0) <= 10
    assert peak_rate(s) < 3  # below StartChatContact 5/s and DisconnectParticipant 3/s
    assert s.thresholds.max_outcome_share["server_error"] == 0
    assert s.chat.websocket and s.thresholds.max_message_delivery_p95_ms == 1000  # the chat experience too


def test_tps_ceiling_steps_from_1_to_15_in_about_3_minutes():
    s = load_scenario(BUILTIN / "tps-ceiling.toml")
    rates = [st.target_rate for st in s.stages]
    assert rates[0] == 1 and rates[-1] == 15 and rates == sorted(rates) and 5 in rates
    assert all(st.ramp == "step" for st in s.stages)
    assert 150 <= s.duration_s <= 210
    assert s.retry.mode == "off"


def test_retry_storm_is_tps_ceiling_with_retries():
    plain = load_scenario(BUILTIN / "tps-ceiling.toml")
    storm = load_scenario(BUILTIN / "retry-storm.toml")
    assert storm.stages == plain.stages
    assert storm.chat == plain.chat
    assert (storm.retry.mode, storm.retry.max_attempts) == ("standard", 3)


def test_concurrency_ceiling_reaches_the_quota_without_tps_throttling():
    s = load_scenario(BUILTIN / "concurrency-ceiling.toml")
    quota = s.target.emulator_config["rates"]["StartChatContact"]
    assert quota["rate"] > peak_rate(s)
    assert s.chat.hold.mean_s >= 60
    assert expected_active_chats(s) > 500
    # 500 active chats within a couple of minutes
    schedule = Schedule(s.stages)
    assert schedule.arrival_time(500) < 60
    assert s.duration_s <= 180


def test_persistent_and_what_if_scenarios():
    assert load_scenario(BUILTIN / "persistent-chat.toml").chat.persistent == "ENTIRE_PAST_SESSION"
    what_if = load_scenario(BUILTIN / "quota-increase-what-if.toml")
    config = what_if.target.emulator_config
    assert config["rates"]["StartChatContact"]["rate"] >= peak_rate(what_if)
    assert config["instances"][0]["id"] == DEFAULT_INSTANCE_ID
    assert config["instances"][0]["concurrent_chats"] > expected_active_chats(what_if)


def test_list_scenarios_names_purposes_and_paths(tmp_path):
    listed = list_scenarios(BUILTIN)
    assert [name for name, _, _ in listed] == BUILTIN_NAMES
    assert all(purpose and path.is_file() for _, purpose, path in listed)
    write(tmp_path, "# broken one\n[[stages]\n", "broken.toml")
    write(tmp_path, 'name = "named"\npurpose = "from the key"\n', "x.toml")
    listed = list_scenarios(tmp_path)
    assert listed[0][0] == "broken" and listed[0][1].startswith("(cannot be read:")
    assert listed[1][:2] == ("named", "from the key")


# ------------------------------------------------------------------ defaults and resolution


def test_defaults_of_a_minimal_file(tmp_path):
    s = load_scenario(write(tmp_path, MINIMAL, "my scenario.toml"))
    assert s.name == "my-scenario"
    assert s.purpose == "A minimal scenario."
    assert s.stages == (Stage("stage-1", 30.0, 2.0, "step", None),)
    assert s.chat.connect and s.chat.end_by == "disconnect" and s.chat.hold == HoldTime("fixed", 0.0)
    assert (s.retry.mode, s.retry.max_attempts) == ("off", 1)
    t = s.target
    assert (t.kind, t.region, t.instance_id, t.contact_flow_id) == (
        "emulator",
        DEFAULT_REGION,
        DEFAULT_INSTANCE_ID,
        DEFAULT_CONTACT_FLOW_ID,
    )
    assert t.emulator_config == {} and not t.confirm and t.endpoint_url is None
    assert s.thresholds.max_dropped_share == 0.01
    assert (s.safety.max_chats, s.safety.max_rate, s.safety.max_error_share) == (None, None, None)
    assert s.users is None and s.path == str(tmp_path / "my scenario.toml")


def test_linear_start_rate_is_resolved_from_the_previous_stage(tmp_path):
    text = """
[[stages]]
name = "a"
duration = 10
target_rate = 4
[[stages]]
name = "b"
duration = "1m"
ramp = "linear"
target_rate = 8
[[stages]]
name = "c"
duration = "5s"
ramp = "linear"
target_rate = 0
"""
    s = load_scenario(write(tmp_path, text))
    assert [(st.ramp, st.start_rate) for st in s.stages] == [("step", None), ("linear", 4.0), ("linear", 8.0)]
    assert s.duration_s == 75
    assert planned_chats(s) == pytest.approx(40 + 360 + 20)


def test_aws_target_gets_safety_defaults(tmp_path):
    text = (
        MINIMAL
        + """
[target]
kind = "aws"
region = "eu-west-2"
instance_id = "abc"
contact_flow_id = "def"
confirm = true
[safety]
max_chats = 50
"""
    )
    s = load_scenario(write(tmp_path, text))
    assert (s.target.kind, s.target.region, s.target.confirm) == ("aws", "eu-west-2", True)
    assert s.safety.max_chats == 50
    assert s.safety.max_rate == AWS_DEFAULT_MAX_RATE
    assert s.safety.max_error_share == AWS_DEFAULT_MAX_ERROR_SHARE
    plain = load_scenario(write(tmp_path, text.replace("max_chats = 50", ""), "t.toml"))
    assert plain.safety.max_chats == AWS_DEFAULT_MAX_CHATS


def test_retry_defaults_follow_botocore(tmp_path):
    for mode, attempts in (("standard", 3), ("adaptive", 3), ("legacy", 5)):
        s = load_scenario(write(tmp_path, MINIMAL + f'[retry]\nmode = "{mode}"\n'))
        assert (s.retry.mode, s.retry.max_attempts) == (mode, attempts)


def test_hold_shorthand_and_distributions(tmp_path):
    s = load_scenario(write(tmp_path, MINIMAL + '[chat]\nhold = "10s"\n'))
    assert s.chat.hold == HoldTime("fixed", 10.0)
    s = load_scenario(
        write(tmp_path, MINIMAL + '[chat.hold]\ndistribution = "lognormal"\nmean = "1m"\nsigma = 1.0\nmax = "5m"\n')
    )
    assert s.chat.hold == HoldTime("lognormal", 60.0, 1.0, 300.0)
    assert s.chat.hold.quantile(0.5) == pytest.approx(60 * math.exp(-0.5))
    assert HoldTime("exponential", 10).quantile(0.99) == pytest.approx(10 * math.log(100))
    assert HoldTime("exponential", 10, max_s=20).quantile(0.99) == 20
    assert HoldTime("exponential", 10, max_s=20).expected() == pytest.approx(10 * (1 - math.exp(-2)))


def test_connect_false_defaults_to_stop_contact(tmp_path):
    s = load_scenario(write(tmp_path, MINIMAL + "[chat]\nconnect = false\n"))
    assert s.chat.end_by == "stop_contact"


def test_overrides_apply_before_validation(tmp_path):
    path = write(tmp_path, MINIMAL)
    s = load_scenario(
        path,
        overrides={"target": {"kind": "aws", "region": "eu-west-2", "instance_id": "i", "contact_flow_id": "f"}},
    )
    assert s.target.kind == "aws" and s.safety.max_rate == AWS_DEFAULT_MAX_RATE
    s = load_scenario(path, overrides={"retry.mode": "standard", "chat.hold.mean": "3s"})
    assert s.retry.max_attempts == 3 and s.chat.hold.mean_s == 3


# ------------------------------------------------------------------ rate multiplier


def test_rate_multiplier_scales_every_rate(tmp_path):
    text = MINIMAL + '[[stages]]\nduration = "10s"\nramp = "linear"\nstart_rate = 1\ntarget_rate = 5\n'
    path = write(tmp_path, text)
    base = load_scenario(path)
    double = load_scenario(path, rate_multiplier=2.0)
    assert [st.target_rate for st in double.stages] == [4.0, 10.0]
    assert double.stages[1].start_rate == 2.0
    assert double.rate_multiplier == 2.0
    assert planned_chats(double) == pytest.approx(2 * planned_chats(base))
    assert [st.duration_s for st in double.stages] == [st.duration_s for st in base.stages]
    again = with_rate_multiplier(base, 2.0)
    assert again.stages == double.stages and again.rate_multiplier == 2.0
    # the default start of a linear stage is scaled too
    linear = load_scenario(
        write(tmp_path, MINIMAL + '[[stages]]\nduration = 5\nramp = "linear"\ntarget_rate = 6\n'), 0.5
    )
    assert linear.stages[1].start_rate == 1.0 and linear.stages[1].target_rate == 3.0


# ------------------------------------------------------------------ ad-hoc


def test_adhoc_scenario_is_one_flat_stage():
    s = adhoc_scenario(3, 30, hold_s=5)
    assert isinstance(s, Scenario)
    assert s.name == "adhoc" and s.path is None
    assert s.stages == (Stage("flat", 30.0, 3.0, "step", None),)
    assert s.chat.hold == HoldTime("fixed", 5.0)
    assert s.target.kind == "emulator"
    assert "3 chats/s" in s.purpose


def test_adhoc_overrides():
    s = adhoc_scenario(2, 60, users=7, chat={"messages": 2}, **{"retry.mode": "standard"})
    assert s.users == 7 and pool_size(s) == 7
    assert s.chat.messages == 2 and s.chat.hold.mean_s == 0
    assert s.retry.max_attempts == 3


# ------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("3h30m10s", 12610),
        ("90", 90),
        (90, 90),
        (1.5, 1.5),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("1m30s", 90),
        ("2d", 172800),
        (" 10 s ", 10),
        ("0", 0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "fast", "10x", "1s1m", "5m5m", "-3", -3, True, float("nan"), None, "1h-5m"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert "\n" not in str(info.value) and str(info.value)


# ------------------------------------------------------------------ pool size


def test_pool_size_follows_littles_law_with_headroom(tmp_path):
    s = adhoc_scenario(10, 60, hold_s=20)
    # life = 20 s hold + 3 calls (start, connect, disconnect) x 0.5 s = 21.5 s; busy = 215
    assert chat_life_s(s) == pytest.approx(21.5)
    assert pool_size(s) == math.ceil(215 * 1.25 + 4 * math.sqrt(215))
    assert pool_size(adhoc_scenario(0.001, 10)) >= 1


def test_pool_size_grows_with_retries_and_messages():
    base = adhoc_scenario(5, 60, hold_s=5)
    retried = adhoc_scenario(5, 60, hold_s=5, retry={"mode": "standard"})
    chatty = adhoc_scenario(5, 60, hold_s=5, chat={"messages": 4, "message_interval": "2s"})
    assert pool_size(retried) > pool_size(base)
    assert pool_size(chatty) > pool_size(base)
    # 3 attempts: 0.5 s each plus 1 s + 2 s of backoff, per call
    assert chat_life_s(retried) == pytest.approx(5 + 3 * (1.5 + 3))


def test_pool_size_uses_the_peak_and_respects_users(tmp_path):
    text = MINIMAL + '[[stages]]\nduration = "10s"\ntarget_rate = 20\n[chat]\nhold = "4s"\n'
    s = load_scenario(write(tmp_path, text))
    assert peak_rate(s) == 20
    assert pool_size(s) == math.ceil(20 * 5.5 * 1.25 + 4 * math.sqrt(20 * 5.5))
    assert pool_size(load_scenario(write(tmp_path, "users = 3\n" + text, "u.toml"))) == 3


# ------------------------------------------------------------------ meta.json form


def test_scenario_to_dict_is_json_and_complete():
    s = load_scenario(BUILTIN / "quota-increase-what-if.toml", rate_multiplier=0.5)
    d = json.loads(json.dumps(scenario_to_dict(s)))
    assert d["name"] == "quota-increase-what-if" and d["rate_multiplier"] == 0.5
    assert d["stages"][0] == {"name": "5/s", "duration_s": 40.0, "target_rate": 2.5, "ramp": "step", "start_rate": None}
    assert d["duration_s"] == s.duration_s
    assert d["users"] == pool_size(s)
    assert d["chat"]["hold"] == {"distribution": "exponential", "mean_s": 30.0, "sigma": 0.5, "max_s": 120.0}
    assert (d["chat"]["websocket"], d["chat"]["websocket_wait_s"]) == (True, 10.0)  # on by default
    assert scenario_to_dict(load_scenario(BUILTIN / "tps-ceiling.toml"))["chat"]["websocket"] is False  # no connect
    assert d["target"]["emulator_config"]["instances"][0]["concurrent_chats"] == 2000
    assert d["thresholds"]["max_outcome_share"]["throttled_concurrency"] == 0
    assert set(d) >= {"retry", "safety", "purpose", "path"}
