"""Pre-flight consent and plan math against hand-computed numbers (pure, no AWS)."""

from __future__ import annotations

import math

import pytest

from chatload.harness.cli import preflight as pf
from chatload.harness.scenario.model import ChatLife, HoldTime, RetryPolicy, Safety, Scenario, Stage, Target, Thresholds

INSTANCE = "0d5e2b6c-1111-4222-8333-944455556666"
FLOW = "7f1e2d3c-aaaa-4bbb-8ccc-ddddeeeeffff"


def scenario(stages, chat=None, **target) -> Scenario:
    t = {"kind": "aws", "region": "eu-west-2", "instance_id": INSTANCE, "contact_flow_id": FLOW, **target}
    return Scenario(
        name="plan-test",
        purpose="",
        path=None,
        stages=tuple(stages),
        chat=chat or ChatLife(),
        retry=RetryPolicy(),
        target=Target(**t),
        thresholds=Thresholds(),
        safety=Safety(max_chats=None, max_rate=None, max_error_share=None),
    )


FLAT = [Stage("flat", 60.0, 1.0)]


# ---------------------------------------------------------------- consent


def test_emulator_target_needs_no_consent():
    assert pf.consent_error(scenario(FLAT, kind="emulator"), confirm_flag=False) is None


def test_aws_without_confirmation_says_how_to_confirm():
    msg = pf.consent_error(scenario(FLAT), confirm_flag=False)
    assert msg is not None and "\n" not in msg
    assert "--confirm-real-instance" in msg and "confirm = true" in msg and "[target]" in msg
    assert INSTANCE in msg and "eu-west-2" in msg


def test_aws_confirmed_by_flag_or_scenario_key():
    assert pf.consent_error(scenario(FLAT), confirm_flag=True) is None
    assert pf.consent_error(scenario(FLAT, confirm=True), confirm_flag=False) is None


@pytest.mark.parametrize(
    ("field", "flag"),
    [("region", "--region"), ("instance_id", "--instance-id"), ("contact_flow_id", "--contact-flow-id")],
)
def test_aws_missing_target_fields_are_named(field, flag):
    msg = pf.consent_error(scenario(FLAT, **{field: ""}), confirm_flag=True)
    assert msg is not None and flag in msg and field in msg and "\n" not in msg


def test_aws_with_the_emulators_default_ids_is_refused():
    from chatload.contracts import DEFAULT_INSTANCE_ID

    msg = pf.consent_error(scenario(FLAT, instance_id=DEFAULT_INSTANCE_ID), confirm_flag=True)
    assert msg is not None and "--instance-id" in msg


# ---------------------------------------------------------------- plan


def test_plan_of_three_stages():
    # 60 s at 2/s = 120; linear 2 -> 4 over 30 s = 90; 60 s at 4/s = 240: 450 chats.
    # Chat life 1 + 3 x 2 + 5 = 12 s; the last stage lasts longer than that: 4/s x 12 s = 48 active.
    stages = [Stage("warm", 60, 2.0), Stage("ramp", 30, 4.0, ramp="linear"), Stage("hold", 60, 4.0)]
    chat = ChatLife(connect_delay_s=1.0, messages=3, message_interval_s=2.0, hold=HoldTime("fixed", 5.0))
    p = pf.plan(scenario(stages, chat))
    assert p.duration_s == 150
    assert p.expected_arrivals == pytest.approx(450)
    assert p.planned_chats == 450
    assert p.peak_rate == 4.0
    assert p.mean_chat_life_s == pytest.approx(12.0)
    assert p.steady_concurrency == pytest.approx(48.0)
    assert p.peak_concurrency == pytest.approx(48.0)
    assert p.messages == 1350
    assert p.calls == {
        "StartChatContact": 450,
        "CreateParticipantConnection": 450,
        "SendMessage": 1350,
        "DisconnectParticipant": 450,
    }
    assert p.peak_call_rates["SendMessage"] == pytest.approx(12.0)


def test_short_stage_concurrency_is_bounded_by_the_chats_started():
    # 5 s at 2/s = 10 chats that each stay 100 s: never more than 10 active (Little's law says 200).
    chat = ChatLife(connect=False, hold=HoldTime("fixed", 100.0), end_by="stop_contact")
    p = pf.plan(scenario([Stage("burst", 5, 2.0)], chat))
    assert p.planned_chats == 10
    assert p.steady_concurrency == pytest.approx(200.0)
    assert p.peak_concurrency == pytest.approx(10.0)
    assert p.messages == 0
    assert p.calls == {"StartChatContact": 10, "StopContact": 10}


def test_ramp_up_concurrency_is_the_last_window_of_the_ramp():
    # rate t over 10 s (0 -> 10/s), life 2 s: A(t) = t^2/2, peak at t = 10: 50 - 32 = 18 (steady 20).
    chat = ChatLife(connect=False, hold=HoldTime("fixed", 2.0))
    p = pf.plan(scenario([Stage("ramp", 10, 10.0, ramp="linear")], chat))
    assert p.planned_chats == 50
    assert p.peak_concurrency == pytest.approx(18.0)
    assert p.steady_concurrency == pytest.approx(20.0)


def test_peak_inside_a_window_between_breakpoints():
    # up 0 -> 10 over 10 s then down to 0 over 10 s, life 4 s: the best window is [8, 12]:
    # A(12) - A(8) = 68 - 32 = 36 (t = 12 is no stage edge: the vertex of the quadratic).
    chat = ChatLife(connect=False, hold=HoldTime("fixed", 4.0))
    stages = [Stage("up", 10, 10.0, ramp="linear"), Stage("down", 10, 0.0, ramp="linear")]
    p = pf.plan(scenario(stages, chat))
    assert p.expected_arrivals == pytest.approx(100.0)
    assert p.peak_concurrency == pytest.approx(36.0)


def test_linear_stage_with_its_own_start_rate():
    # 0 -> 3/s step then linear 1 -> 5 over 20 s: 30 + 60 = 90 chats; peak 5/s.
    stages = [Stage("a", 10, 3.0), Stage("b", 20, 5.0, ramp="linear", start_rate=1.0)]
    p = pf.plan(scenario(stages))
    assert p.planned_chats == 90
    assert p.peak_rate == 5.0


def test_plan_agrees_with_the_pacer():
    pacer = pytest.importorskip("chatload.harness.pacer")
    stages = [Stage("a", 7, 1.5), Stage("b", 11, 6.0, ramp="linear"), Stage("c", 3, 0.5)]
    p = pf.plan(scenario(stages))
    assert p.expected_arrivals == pytest.approx(pacer.Schedule(stages).expected_arrivals(21.0))


def test_mean_hold_of_clipped_distributions():
    assert pf.mean_hold_s(HoldTime("fixed", 30.0, max_s=20.0)) == 20.0
    assert pf.mean_hold_s(HoldTime("exponential", 10.0)) == 10.0
    # E[min(X, 10)] for an exponential of mean 10 = 10 (1 - e^-1)
    assert pf.mean_hold_s(HoldTime("exponential", 10.0, max_s=10.0)) == pytest.approx(10 * (1 - math.exp(-1)))
    # lognormal: compare with the integral of the survival function from 0 to the cap (midpoint rule)
    hold = HoldTime("lognormal", 20.0, sigma=0.8, max_s=30.0)
    mu = math.log(20.0) - 0.8**2 / 2
    n = 20000
    survival = sum(0.5 * math.erfc((math.log((i + 0.5) * 30.0 / n) - mu) / (0.8 * math.sqrt(2))) for i in range(n)) * (
        30.0 / n
    )
    assert pf.mean_hold_s(hold) == pytest.approx(survival, rel=1e-4)
    assert pf.mean_hold_s(HoldTime("lognormal", 20.0, sigma=0.8)) == 20.0


def test_chat_duration_cuts_the_chat_life():
    chat = ChatLife(connect=False, hold=HoldTime("fixed", 7200.0), chat_duration_minutes=60)
    assert pf.mean_chat_life_s(chat) == 3600.0


def test_format_plan_names_the_figures():
    stages = [Stage("warm", 60, 2.0), Stage("hold", 60, 4.0)]
    chat = ChatLife(messages=2, message_interval_s=1.0, hold=HoldTime("fixed", 8.0))
    text = pf.format_plan(pf.plan(scenario(stages, chat)))
    assert text.startswith("pre-flight: scenario plan-test against Amazon Connect instance " + INSTANCE)
    assert "planned chats     360 over 2m00s (2 stages), peak arrival rate 4 chats/s" in text
    assert "~40 active chats" in text and "10.0 s mean chat life" in text
    assert "messages to send  720" in text
    assert "StartChatContact 360" in text
    assert len(text.splitlines()) <= 6
