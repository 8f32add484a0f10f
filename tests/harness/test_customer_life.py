"""A chat's life with a fake API: call order, tokens, holds cut by the run's end, persistent chats, clean-up."""

import math
import random
from dataclasses import replace

from chatload.harness.chats import LiveChats, clean_up
from chatload.harness.client import Call
from chatload.harness.customer import Arrival, Customer
from chatload.harness.recorder import Recorder
from chatload.harness.scenario.model import ChatLife, HoldTime


class FakeApi:
    """Answers every call ok unless `answers[operation]` holds a list of (outcome, status, code) to use first."""

    def __init__(self, answers=None):
        self.calls = []
        self.answers = answers or {}
        self.n = 0

    def call(self, operation, **kw):
        self.calls.append((operation, kw))
        self.n += 1
        scripted = self.answers.get(operation)
        if scripted:
            outcome, status, code = scripted.pop(0)
            return Call(operation, outcome, status, code, 1, outcome, 100.0 + self.n, 1.0, None)
        response = {"ResponseMetadata": {"HTTPStatusCode": 200}}
        if operation == "StartChatContact":
            response.update(ContactId=f"contact-{self.n}", ParticipantId="p", ParticipantToken="ptoken-secret")
        if operation == "CreateParticipantConnection":
            response["ConnectionCredentials"] = {"ConnectionToken": "ctoken-secret", "Expiry": "x"}
        return Call(operation, "ok", 200, "", 1, "ok", 100.0 + self.n, 1.0, response)


class FakeEnding:
    def __init__(self, set_after=None):
        self.waited = []
        self.flag = False
        self.set_after = set_after

    def wait(self, timeout):
        self.waited.append(timeout)
        if self.set_after is not None and len(self.waited) >= self.set_after:
            self.flag = True
        return self.flag

    def is_set(self):
        return self.flag


def make(tmp_path, life, api=None, ending=None, chats=None):
    api = api or FakeApi()
    rec = Recorder(tmp_path, "local")
    reported = []
    customer = Customer(
        api=api,
        recorder=rec,
        chats=LiveChats() if chats is None else chats,
        life=life,
        instance_id="inst",
        contact_flow_id="flow",
        rng=random.Random(1),
        ending=FakeEnding() if ending is None else ending,
        sleep=lambda s: None,
        name="local-u1",
        report=reported.append,
    )
    return customer, api, rec, reported


LIFE = ChatLife(connect=True, connect_delay_s=0.5, messages=2, message_interval_s=1.0, hold=HoldTime("fixed", 5.0))


def test_a_full_chat(tmp_path):
    customer, api, rec, reported = make(tmp_path, LIFE)
    customer.live_chat(Arrival(99.0, "steady"))
    ops = [op for op, _ in api.calls]
    assert ops == [
        "StartChatContact",
        "CreateParticipantConnection",
        "SendMessage",
        "SendMessage",
        "DisconnectParticipant",
    ]
    assert api.calls[1][1]["ParticipantToken"] == "ptoken-secret"
    assert api.calls[1][1]["Type"] == ["CONNECTION_CREDENTIALS"] and api.calls[1][1]["ConnectParticipant"] is True
    assert api.calls[4][1] == {"ConnectionToken": "ctoken-secret"}
    assert customer.ending.waited == [0.5, 1.0, 1.0, 5.0]
    assert len(reported) == 5 and len(customer.chats) == 0
    rec.close(compact=False)
    text = rec.csv_path.read_text()
    assert "secret" not in text
    import pandas as pd

    rows = pd.read_csv(rec.csv_path)
    assert rows["stage"].unique().tolist() == ["steady"]
    assert rows["contact_id"].nunique() == 1 and rows["chat"].unique().tolist() == ["local-u1-1"]
    assert rows["t_intended"][0] == 99.0 and rows["t_intended"][1:].isna().all()


def test_failed_start_ends_the_chat_there(tmp_path):
    api = FakeApi({"StartChatContact": [("throttled_concurrency", 429, "LimitExceededException")]})
    customer, api, _rec, reported = make(tmp_path, LIFE, api=api)
    customer.live_chat(Arrival(1.0, "s"))
    assert [op for op, _ in api.calls] == ["StartChatContact"]
    assert reported[0].outcome == "throttled_concurrency" and len(customer.chats) == 0


def test_the_end_of_the_run_cuts_the_hold_and_messages_and_leaves_the_chat_to_the_clean_up(tmp_path):
    ending = FakeEnding(set_after=2)  # the run ends during the first message interval
    customer, api, _rec, _ = make(tmp_path, LIFE, ending=ending)
    customer.live_chat(Arrival(1.0, "s"))
    # no messages after the end, and no DisconnectParticipant of its own: every customer cut short at
    # once would end its chat in the same instant; the paced clean-up ends it instead
    assert [op for op, _ in api.calls] == ["StartChatContact", "CreateParticipantConnection"]
    assert len(customer.chats) == 1 and customer.chats.chats()[0].connection_token


def test_no_connection_ends_by_stop_contact(tmp_path):
    life = replace(LIFE, connect=False, messages=0)
    customer, api, _, _ = make(tmp_path, life)
    customer.live_chat(Arrival(1.0, "s"))
    assert [op for op, _ in api.calls] == ["StartChatContact", "StopContact"]
    assert api.calls[1][1] == {"InstanceId": "inst", "ContactId": "contact-1"}


def test_end_by_stop_contact(tmp_path):
    customer, api, _, _ = make(tmp_path, replace(LIFE, end_by="stop_contact", messages=0))
    customer.live_chat(Arrival(1.0, "s"))
    assert [op for op, _ in api.calls][-1] == "StopContact"


def test_throttled_disconnect_is_tried_again_then_left_for_clean_up(tmp_path):
    throttled = ("throttled_tps", 429, "ThrottlingException")
    api = FakeApi({"DisconnectParticipant": [throttled, throttled, throttled, throttled]})
    chats = LiveChats()
    customer, api, _rec, _ = make(tmp_path, replace(LIFE, messages=0), api=api, chats=chats)
    customer.live_chat(Arrival(1.0, "s"))
    assert [op for op, _ in api.calls].count("DisconnectParticipant") == 3
    assert len(chats) == 1  # still live: the clean-up's job
    clock = [0.0]
    summary = clean_up(
        chats, lambda chat, op: _end(customer, chat, op), lambda s: clock.__setitem__(0, clock[0] + s), lambda: clock[0]
    )
    assert summary == {"ended": 1, "still_active": 0, "not_ended": []}
    # first round: DisconnectParticipant (throttled again), then StopContact
    assert [op for op, _ in api.calls][-2:] == ["DisconnectParticipant", "StopContact"]


def _end(customer, chat, operation):
    kw = (
        {"ConnectionToken": chat.connection_token}
        if operation == "DisconnectParticipant"
        else {"InstanceId": "inst", "ContactId": chat.contact_id}
    )
    call = customer.call(operation, chat.stage, chat.chat, chat.contact_id, **kw)
    return call.operation, call.http_status, call.error_code


def test_clean_up_gives_up_at_the_deadline_and_names_the_contacts():
    chats = LiveChats()
    chats.started("c1", "contact-a", "s")
    chats.started("c2", "contact-b", "s")
    clock = [0.0]
    calls = []

    def end(chat, operation):
        calls.append(operation)
        if chat.contact_id == "contact-a":
            return operation, 200, ""
        return operation, 429, "TooManyRequestsException"

    summary = clean_up(
        chats, end, lambda s: clock.__setitem__(0, clock[0] + s), lambda: clock[0], deadline_s=5.0, pause_s=1.0
    )
    assert summary == {"ended": 1, "still_active": 1, "not_ended": ["contact-b"]}
    assert calls.count("StopContact") == 7 and len(chats) == 1  # a once, b at t = 0..5


def test_already_ended_contacts_count_as_ended():
    chats = LiveChats()
    chats.started("c1", "contact-a", "s")
    summary = clean_up(chats, lambda chat, op: (op, 410, "ContactNotFoundException"), lambda s: None, lambda: 0.0)
    assert summary["still_active"] == 0 and len(chats) == 0


def test_persistent_chats_continue_from_the_last_ended_contact(tmp_path):
    customer, api, _, _ = make(tmp_path, replace(LIFE, messages=0, persistent="ENTIRE_PAST_SESSION"))
    customer.live_chat(Arrival(1.0, "s"))
    customer.live_chat(Arrival(2.0, "s"))
    first, second = [kw for op, kw in api.calls if op == "StartChatContact"]
    assert "PersistentChat" not in first
    assert second["PersistentChat"] == {"RehydrationType": "ENTIRE_PAST_SESSION", "SourceContactId": "contact-1"}


def test_entire_past_session_always_names_the_sessions_first_contact(tmp_path):
    """AWS wants the first contact of the past session for ENTIRE_PAST_SESSION, however long the
    session has grown; FROM_SEGMENT names exactly the last ended contact."""
    for rehydration, expected in (
        ("ENTIRE_PAST_SESSION", ["contact-1", "contact-1"]),
        ("FROM_SEGMENT", ["contact-1", "contact-4"]),
    ):  # fmt: skip  (ids count every call)
        customer, api, _, _ = make(tmp_path / rehydration, replace(LIFE, messages=0, persistent=rehydration))
        for t in (1.0, 2.0, 3.0):
            customer.live_chat(Arrival(t, "s"))
        starts = [kw for op, kw in api.calls if op == "StartChatContact"]
        assert [kw["PersistentChat"]["SourceContactId"] for kw in starts[1:]] == expected, rehydration


def test_hold_draws_are_reproducible_per_seed():
    hold = HoldTime("lognormal", 10.0, sigma=0.5, max_s=30.0)
    a = [hold.sample(random.Random("run/local/1")) for _ in range(3)]
    b = [hold.sample(random.Random("run/local/1")) for _ in range(3)]
    assert a == b and all(0 < x <= 30 for x in a)
    assert not math.isnan(a[0])


class Gauge:
    def __init__(self):
        self.active = 0

    def chat_started(self):
        self.active += 1

    def chat_ended(self):
        self.active -= 1


def test_registry_feeds_the_live_gauge(tmp_path):
    gauge = Gauge()
    chats = LiveChats(gauge)
    customer, _api, _, _ = make(tmp_path, replace(LIFE, messages=0), chats=chats)
    customer.live_chat(Arrival(1.0, "s"))
    assert gauge.active == 0
    chats.started("x", "contact-x", "s")
    chats.ended("contact-x")
    chats.ended("contact-x")
    assert gauge.active == 0
