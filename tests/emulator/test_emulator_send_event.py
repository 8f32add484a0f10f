"""SendEvent (POST /participant/event) through real boto3 clients against a running emulator: the
transcript, its own rate bucket, refusal after the chat ended, validation, idempotency and counters.
(Its push on the websocket is in test_emulator_websocket.py.)"""

import json
import re

import pytest
from support import connect_client, error_of, participant_client
from support import start_chat as start

from chatload.emulator_control import running_emulator

pytestmark = pytest.mark.e2e
ROOMY = {
    "rates": {"default": {"rate": 1000, "burst": 1000}, "StartChatContact": {"rate": 1000, "burst": 1000}},
    "participant_rates": {"default": {"rate": 1000, "burst": 1000}},
}
QUIET = {"emulator": {"time_scale": 1.0}, "flow": {"greeting": ""}, "agents": {"join": False, "reply_think": False}}
EV = "application/vnd.amazonaws.connect.event."
TYPING = EV + "typing"


@pytest.fixture(scope="module")
def emu():
    with running_emulator(ROOMY) as handle:
        yield handle


@pytest.fixture
def fresh(emu):
    emu.put_config({**QUIET, "participant_rates": ROOMY["participant_rates"]})
    emu.reset()
    return emu


def chat_of(emu):
    """(participant client, connection token, StartChatContact's answer) of a new connected chat."""
    chat = start(connect_client(emu.url))
    p = participant_client(emu.url)
    out = p.create_participant_connection(ParticipantToken=chat["ParticipantToken"], Type=["CONNECTION_CREDENTIALS"])
    return p, out["ConnectionCredentials"]["ConnectionToken"], chat


def transcript(p, token):
    return p.get_transcript(ConnectionToken=token, ScanDirection="FORWARD", MaxResults=100)["Transcript"]


def balanced(counts):
    """`requests` is the sum of the outcome counters, exactly (docs/emulator.md)."""
    outcomes = ("accepted", "throttled_tps", "throttled_concurrency", "invalid", "not_found", "access_denied")
    return counts["requests"] == sum(counts[k] for k in (*outcomes, "server_error"))


def test_events_join_the_transcript_in_order_with_messages(fresh):
    p, token, chat = chat_of(fresh)
    typing = p.send_event(ConnectionToken=token, ContentType=TYPING)
    message = p.send_message(ConnectionToken=token, ContentType="text/plain", Content="hello")
    receipt = json.dumps({"messageId": message["Id"]})
    read = p.send_event(ConnectionToken=token, ContentType=EV + "message.read", Content=receipt)
    assert typing["Id"] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", typing["AbsoluteTime"])
    items = transcript(p, token)
    assert [i["Id"] for i in items] == [typing["Id"], message["Id"], read["Id"]]
    assert [(i["Type"], i["ContentType"], i.get("Content")) for i in items] == [
        ("EVENT", TYPING, None),
        ("MESSAGE", "text/plain", "hello"),
        ("EVENT", EV + "message.read", receipt),
    ]
    assert {(i["ParticipantRole"], i["ParticipantId"], i["ContactId"]) for i in items} == {
        ("CUSTOMER", chat["ParticipantId"], chat["ContactId"])
    }
    counts = fresh.state()["operations"]["SendEvent"]
    assert counts["requests"] == counts["accepted"] == 2 and balanced(counts)


def test_a_retried_client_token_answers_the_first_event_again(fresh):
    p, token, _ = chat_of(fresh)
    first = p.send_event(ConnectionToken=token, ContentType=TYPING, ClientToken="typing-1")
    again = p.send_event(ConnectionToken=token, ContentType=TYPING, ClientToken="typing-1")
    assert (again["Id"], again["AbsoluteTime"]) == (first["Id"], first["AbsoluteTime"])
    other = p.send_event(ConnectionToken=token, ContentType=TYPING)  # boto3 fills in a fresh ClientToken
    assert [i["Id"] for i in transcript(p, token)] == [first["Id"], other["Id"]]
    assert fresh.state()["operations"]["SendEvent"]["accepted"] == 3  # a replay is still an answered call


def test_its_own_bucket_throttles_with_throttling_exception(fresh):
    fresh.put_config(
        {"emulator": {"time_scale": 0.001}, "participant_rates": {"SendEvent": {"rate": 10, "burst": 15}}}
    )  # AWS's default 10/s burst 15, refilling 0.01 tokens per real second: exactly the burst passes
    p, token, _ = chat_of(fresh)
    for _ in range(15):
        p.send_event(ConnectionToken=token, ContentType=TYPING)
    error = error_of(p.send_event, ConnectionToken=token, ContentType=TYPING)
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ThrottlingException", 429)
    assert error["Error"]["Message"] == "Rate exceeded"
    p.send_message(ConnectionToken=token, ContentType="text/plain", Content="SendMessage has a bucket of its own")
    state = fresh.state()
    assert state["operations"]["SendEvent"]["throttled_tps"] == 1 and balanced(state["operations"]["SendEvent"])
    assert state["operations"]["SendMessage"]["throttled_tps"] == 0
    [bucket] = [b for b in state["buckets"] if b["operation"] == "SendEvent"]
    assert (bucket["rate"], bucket["burst"], bucket["tokens"]) == (10, 15, 0)
    assert len(transcript(p, token)) == 16


def test_defaults_give_send_event_the_documented_quota():
    with running_emulator() as handle:
        rates = handle.config()["participant_rates"]
    assert rates["SendEvent"] == {"rate": 10.0, "burst": 15.0} == rates["SendMessage"]


def test_refused_once_the_chat_ended(fresh):
    p, token, _ = chat_of(fresh)
    p.disconnect_participant(ConnectionToken=token)
    error = error_of(p.send_event, ConnectionToken=token, ContentType=TYPING)
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("AccessDeniedException", 403)
    assert error_of(p.send_event, ConnectionToken="not-a-token", ContentType=TYPING)["Error"]["Code"] == (
        "AccessDeniedException"
    )
    counts = fresh.state()["operations"]["SendEvent"]
    assert counts["access_denied"] == 2 and counts["accepted"] == 0 and balanced(counts)


@pytest.mark.parametrize(
    ("content_type", "content", "field"),
    [
        ("text/plain", None, "ContentType"),
        (EV + "participant.joined", None, "ContentType"),
        (EV + "typing" + "x" * 100, None, "ContentType"),
        (EV + "message.read", None, "Content"),
        (EV + "message.delivered", "not json", "Content"),
        (EV + "message.delivered", '{"id": "m-1"}', "Content"),
    ],
)
def test_bad_content_types_and_receipts_are_validation_errors(fresh, content_type, content, field):
    p, token, _ = chat_of(fresh)
    extra = {} if content is None else {"Content": content}
    error = error_of(p.send_event, ConnectionToken=token, ContentType=content_type, **extra)
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ValidationException", 400)
    assert error["Error"]["Message"].startswith(f"Value at '{field}' failed to satisfy constraint: ")
    assert "\n" not in error["Error"]["Message"]
    assert transcript(p, token) == []
    counts = fresh.state()["operations"]["SendEvent"]
    assert counts["invalid"] == 1 and balanced(counts)
