"""The pre-flight plan against the project's shared schedule and scenario math (pure, no AWS)."""

from __future__ import annotations

import pytest

from chatload.harness.cli import preflight as pf
from chatload.harness.pacer import Schedule
from chatload.harness.scenario import model as scenario_model
from chatload.harness.scenario.model import ChatLife, HoldTime, RetryPolicy, Safety, Scenario, Stage, Target, Thresholds

STAGES = (
    Stage("up", 12, 6.0, ramp="linear"),
    Stage("hold", 5, 6.0),
    Stage("down", 9, 1.0, ramp="linear"),
    Stage("again", 4, 3.0, ramp="linear", start_rate=0.5),
)


def scenario(chat: ChatLife) -> Scenario:
    return Scenario(name="shared", purpose="", path=None, stages=STAGES, chat=chat, retry=RetryPolicy(),
                    target=Target(), thresholds=Thresholds(), safety=Safety())  # fmt: skip


def test_plan_agrees_with_the_scenario_model():
    s = scenario(ChatLife(messages=2, hold=HoldTime("exponential", 6.0, max_s=9.0)))
    p = pf.plan(s)
    assert p.expected_arrivals == pytest.approx(scenario_model.planned_chats(s))
    assert p.peak_rate == scenario_model.peak_rate(s)
    assert p.duration_s == s.duration_s
    # Little's law of the scenario model is the plan's steady concurrency (no chat duration set)
    assert p.steady_concurrency == pytest.approx(scenario_model.expected_active_chats(s))


@pytest.mark.parametrize("life", [0.7, 3.0, 8.0, 13.5, 40.0])
def test_peak_concurrency_is_the_busiest_window_of_the_schedule(life):
    chat = ChatLife(connect=False, hold=HoldTime("fixed", life), end_by="stop_contact")
    p = pf.plan(scenario(chat))
    schedule = Schedule(STAGES)
    grid = [i / 100 for i in range(int((schedule.duration_s + life) * 100) + 1)]
    busiest = max(schedule.expected_arrivals(t) - schedule.expected_arrivals(t - life) for t in grid)
    assert busiest - 1e-6 <= p.peak_concurrency <= busiest + 0.01


def test_without_connect_only_the_hold_counts():
    # customer.py neither waits the connect delay nor sends messages without a connection
    chat = ChatLife(connect=False, connect_delay_s=4.0, messages=3, message_interval_s=2.0,
                    hold=HoldTime("fixed", 5.0), end_by="stop_contact")  # fmt: skip
    assert pf.mean_chat_life_s(chat) == 5.0
    connected = ChatLife(connect_delay_s=4.0, messages=3, message_interval_s=2.0, hold=HoldTime("fixed", 5.0))
    assert pf.mean_chat_life_s(connected) == 15.0


def test_mean_hold_is_the_scenario_models_expected_hold():
    for hold in (HoldTime("lognormal", 20.0, sigma=0.8, max_s=30.0), HoldTime("exponential", 4.0, max_s=2.0)):
        assert pf.mean_hold_s(hold) == hold.expected()
    # a lognormal without spread is a point mass: clipped at the cap
    assert pf.mean_hold_s(HoldTime("lognormal", 20.0, sigma=0.0, max_s=15.0)) == 15.0
