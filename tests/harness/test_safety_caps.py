"""Caps, kill switch, chat budget and clean-up tally of harness.safety, with plain numbers."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from chatload.harness import safety
from chatload.harness.scenario.files import adhoc_scenario, load_scenario
from chatload.harness.scenario.model import Safety, Target


def scenario(kind: str = "aws", **caps):
    s = adhoc_scenario(1.0, 60.0)
    return dataclasses.replace(s, target=Target(kind=kind), safety=Safety(**caps))


def plan(peak_rate: float, planned_chats: int) -> SimpleNamespace:
    return SimpleNamespace(peak_rate=peak_rate, planned_chats=planned_chats)


# ---------------------------------------------------------------- caps


def test_real_instances_get_safe_defaults():
    caps = safety.effective_caps(scenario("aws"))
    assert (caps.max_chats, caps.max_rate, caps.max_error_share) == (500, 5.0, 0.10)
    assert set(caps.sources.values()) == {"default for real instances"}


def test_an_aws_scenario_file_gets_the_same_caps_as_a_target_override(tmp_path):
    path = tmp_path / "real.toml"
    path.write_text(
        'name = "real"\n[[stages]]\nname = "a"\nduration = "1m"\ntarget_rate = 1\n'
        '[target]\nkind = "aws"\nregion = "eu-west-2"\ninstance_id = "i-1"\ncontact_flow_id = "f-1"\n'
    )
    from_file = safety.effective_caps(load_scenario(path))
    assert (from_file.max_chats, from_file.max_rate) == (500, 5.0)
    assert from_file.sources["max_rate"] == "default for real instances"
    assert from_file.max_error_share <= 0.5  # the loader's default until it matches ours (0.10)


def test_emulator_runs_uncapped_unless_asked():
    caps = safety.effective_caps(scenario("emulator"))
    assert (caps.max_chats, caps.max_rate, caps.max_error_share) == (None, None, None)
    caps = safety.effective_caps(scenario("emulator", max_rate=3.0))
    assert caps.max_rate == 3.0 and caps.sources == {"max_rate": "max_rate under [safety]"}


def test_flag_beats_scenario_beats_default():
    s = scenario("aws", max_chats=5000, max_rate=2.0)
    caps = safety.effective_caps(s, max_rate=40.0)
    assert (caps.max_chats, caps.max_rate, caps.max_error_share) == (5000, 40.0, 0.10)
    assert caps.sources == {
        "max_chats": "max_chats under [safety]",
        "max_rate": "--max-rate",
        "max_error_share": "default for real instances",
    }
    assert safety.effective_caps(s, max_error_share=0.5).max_error_share == 0.5


def test_schedule_within_the_caps_passes():
    caps = safety.effective_caps(scenario("aws"))
    assert safety.check_caps(plan(5.0, 500), caps) is None


def test_rate_over_the_cap_is_refused_with_the_way_to_raise_it():
    msg = safety.check_caps(plan(12.5, 100), safety.effective_caps(scenario("aws")))
    assert msg is not None and "\n" not in msg
    assert "peak arrival rate 12.5 chats/s exceeds the cap 5/s (default for real instances)" in msg
    assert "--max-rate 12.5" in msg and "max_rate = 12.5 under [safety]" in msg


def test_chats_over_the_cap_are_refused_with_the_way_to_raise_it():
    msg = safety.check_caps(plan(1.0, 501), safety.effective_caps(scenario("aws")))
    assert msg is not None and "plans 501 chats, more than the cap 500" in msg
    assert "--max-chats 501" in msg and "max_chats = 501 under [safety]" in msg


def test_both_caps_exceeded_in_one_line():
    msg = safety.check_caps(plan(20.0, 3000), safety.effective_caps(scenario("aws")))
    assert msg is not None and "\n" not in msg and "--max-rate" in msg and "--max-chats" in msg


def test_uncapped_emulator_takes_anything():
    assert safety.check_caps(plan(1e6, 10**9), safety.effective_caps(scenario("emulator"))) is None


# ---------------------------------------------------------------- kill switch


def test_kill_switch_waits_for_min_calls():
    ks = safety.KillSwitch(0.1, min_calls=50, window_s=30)
    for i in range(49):
        assert ks.feed(i * 0.1, "server_error") is None
    reason = ks.feed(4.9, "server_error")
    assert reason is not None and ks.tripped == reason
    assert "50 of 50 calls in the last 30 s" in reason and "server_error 50" in reason and "10%" in reason


def test_throttles_are_data_not_errors():
    ks = safety.KillSwitch(0.1, min_calls=10, window_s=30)
    for i in range(100):
        ks.feed(i * 0.1, "throttled_tps" if i % 2 else "throttled_concurrency")
    for i in range(100):
        ks.feed(10 + i * 0.1, "dropped")
    assert ks.tripped is None


def test_chat_socket_rows_are_not_calls():
    # hold 0: every chat's FirstResponse times out (the chat ended before the flow's greeting);
    # with the socket on by default that must not stop a run on a real instance
    ks = safety.KillSwitch(0.1, min_calls=10, window_s=30)
    for i in range(100):
        ks.feed(i * 0.1, "ok", "StartChatContact")
        ks.feed(i * 0.1, "timeout", "FirstResponse")
        ks.feed(i * 0.1, "connection_error", "WebSocketClose")
    assert ks.tripped is None
    for i in range(12):
        ks.feed(10 + i * 0.1, "timeout", "StartChatContact")  # 12 of 112 API calls
    assert ks.tripped is not None and "12 of 112 calls" in ks.tripped


@pytest.mark.parametrize("outcome", sorted(safety.UNEXPECTED_OUTCOMES))
def test_each_unexpected_outcome_counts(outcome):
    ks = safety.KillSwitch(0.2, min_calls=10, window_s=30)
    for i in range(8):
        ks.feed(i, "ok")
    ks.feed(8, outcome)
    ks.feed(9, outcome)
    assert ks.tripped is None  # 2 of 10 = 20%: not above the limit
    ks.feed(10, outcome)
    assert ks.tripped is not None and outcome in ks.tripped  # 3 of 11


def test_old_errors_leave_the_window():
    ks = safety.KillSwitch(0.1, min_calls=20, window_s=30)
    for i in range(10):
        ks.feed(i * 0.1, "timeout")  # 10 errors in the first second, too few calls to judge
    for i in range(100):
        ks.feed(40 + i * 0.1, "ok")  # the errors are over 30 s old by now
    assert ks.tripped is None
    for i in range(12):
        ks.feed(50 + i * 0.1, "connection_error")  # 12 of 112 in the window
    assert ks.tripped is not None and "connection_error 12" in ks.tripped


def test_kill_switch_stays_tripped():
    ks = safety.KillSwitch(0.5, min_calls=4, window_s=10)
    for t in range(4):
        ks.feed(t, "client_error")
    reason = ks.tripped
    for t in range(100):
        ks.feed(10 + t, "ok")
    assert reason is not None and ks.tripped == reason


def test_kill_switch_off_never_trips():
    ks = safety.KillSwitch(None, min_calls=1)
    for t in range(100):
        ks.feed(t, "server_error")
    assert ks.tripped is None


# ---------------------------------------------------------------- budget


def test_chat_budget():
    budget = safety.ChatBudget(3)
    assert [budget.take() for _ in range(5)] == [True, True, True, False, False]
    assert budget.taken == 3 and budget.remaining == 0
    unlimited = safety.ChatBudget(None)
    assert all(unlimited.take() for _ in range(1000)) and unlimited.remaining is None


def test_zero_budget_starts_nothing():
    assert safety.ChatBudget(0).take() is False


# ---------------------------------------------------------------- clean-up


@pytest.mark.parametrize(
    ("status", "code", "result"),
    [
        (200, "", safety.ENDED),
        (410, "ContactNotFoundException", safety.ALREADY_ENDED),
        (429, "TooManyRequestsException", safety.RETRY),
        (429, "429", safety.RETRY),
        (500, "InternalServiceException", safety.RETRY),
        (0, "EndpointConnectionError", safety.RETRY),
        (403, "AccessDeniedException", safety.FAILED),
        (400, "InvalidRequestException", safety.FAILED),
    ],
)
def test_stop_result(status, code, result):
    assert safety.stop_result(status, code) == result


def test_clean_up_summary_and_listing():
    results = {"c3": safety.FAILED, "c1": safety.ENDED, "c2": safety.ALREADY_ENDED, "c0": safety.RETRY}
    summary = safety.clean_up_summary(results)
    assert summary == {"ended": 2, "still_active": 2, "not_ended": ["c0", "c3"]}
    text = safety.format_clean_up(summary, "inst-1")
    assert text.splitlines()[0] == "clean-up: 2 contacts ended, 2 could not be ended"
    assert "aws connect stop-contact --instance-id inst-1 --contact-id c0" in text
    assert "Contact search" in text
    assert safety.format_clean_up(safety.clean_up_summary({"a": safety.ENDED})) == (
        "clean-up: 1 contact ended, 0 could not be ended"
    )
