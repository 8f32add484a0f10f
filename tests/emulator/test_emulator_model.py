"""The emulator's rules without HTTP: quotas, lifecycle, idempotency, persistent chat, counters."""

import pytest

from chatload.emulator.clock import FakeClock
from chatload.emulator.config import EmulatorConfig, merge_config
from chatload.emulator.errors import ApiError
from chatload.emulator.model import Call, ChatStore
from chatload.emulator.validation import Validators

INSTANCE = "inst-1"
FLOW = "flow-1"
KEY = "AKIDCHATLOAD"


@pytest.fixture(scope="module")
def validators():
    return Validators.from_botocore()


@pytest.fixture
def make_store(validators):
    def make(**patch):
        base = {
            "instances": [{"id": INSTANCE, "concurrent_chats": 2, "contact_flows": [FLOW]}],
            "rates": {"StartChatContact": {"rate": 1000, "burst": 1000}},
        }
        for key, value in patch.items():
            base.setdefault(key, {}).update(value) if isinstance(value, dict) else base.__setitem__(key, value)
        config = merge_config(EmulatorConfig(instances={}), base)
        return ChatStore(config, clock=FakeClock(), validators=validators)

    return make


def start(store, attempt=1, key=KEY, **extra):
    body = {"InstanceId": INSTANCE, "ContactFlowId": FLOW, "ParticipantDetails": {"DisplayName": "Ann"}, **extra}
    return store.handle("StartChatContact", Call(body=body, access_key=key, attempt=attempt))


def refused(store, operation, call):
    with pytest.raises(ApiError) as caught:
        store.handle(operation, call)
    return caught.value


def connect(store, chat):
    out = store.handle(
        "CreateParticipantConnection", Call(body={"Type": ["CONNECTION_CREDENTIALS"]}, bearer=chat["ParticipantToken"])
    )
    return out["ConnectionCredentials"]["ConnectionToken"]


def active(store):
    return store.state()["instances"][INSTANCE]["active_chats"]


def counters(store, operation="StartChatContact"):
    return store.state()["operations"][operation]


# ---- concurrency quota: refusal and release by each way a chat ends ------------------------------


def test_quota_refuses_with_limit_exceeded_and_counts(make_store):
    store = make_store()
    start(store)
    start(store)
    error = refused(
        store,
        "StartChatContact",
        Call(
            body={"InstanceId": INSTANCE, "ContactFlowId": FLOW, "ParticipantDetails": {"DisplayName": "x"}},
            access_key=KEY,
        ),
    )
    assert (error.code, error.status) == ("LimitExceededException", 429)
    assert counters(store)["throttled_concurrency"] == 1
    assert counters(store)["accepted"] == 2
    assert store.state()["instances"][INSTANCE]["peak_active_chats"] == 2


def test_disconnect_participant_frees_the_slot(make_store):
    store = make_store()
    chat = start(store)
    start(store)
    token = connect(store, chat)
    store.handle("DisconnectParticipant", Call(body={}, bearer=token))
    assert active(store) == 1
    start(store)
    assert store.state()["chats_ended"]["CUSTOMER_DISCONNECT"] == 1


def test_stop_contact_frees_the_slot_and_a_second_stop_is_contact_not_found(make_store):
    store = make_store()
    chat = start(store)
    start(store)
    stop = Call(body={"InstanceId": INSTANCE, "ContactId": chat["ContactId"]}, access_key=KEY)
    store.handle("StopContact", stop)
    assert active(store) == 1
    start(store)
    error = refused(store, "StopContact", stop)
    assert (error.code, error.status) == ("ContactNotFoundException", 410)
    assert counters(store, "StopContact") == {**counters(store, "StopContact"), "accepted": 1, "not_found": 1}


def test_chat_duration_running_out_frees_the_slot(make_store):
    store = make_store(emulator={"unconnected_timeout_s": 0})
    start(store, ChatDurationInMinutes=60)
    start(store)  # default 1500 minutes
    store.clock.advance(3599)
    assert active(store) == 2
    store.clock.advance(2)
    assert active(store) == 1
    start(store)
    store.clock.advance(1500 * 60)
    assert active(store) == 0
    assert store.state()["chats_ended"]["EXPIRED"] == 3


def test_unconnected_timeout_ends_the_chat_unless_connected(make_store):
    store = make_store()  # unconnected_timeout_s = 300
    waiting = start(store)
    connected = start(store)
    connect(store, connected)
    store.clock.advance(301)
    assert active(store) == 1
    assert store.state()["chats_ended"]["CUSTOMER_CONNECTION_NOT_ESTABLISHED"] == 1
    error = refused(
        store,
        "CreateParticipantConnection",
        Call(body={"Type": ["CONNECTION_CREDENTIALS"]}, bearer=waiting["ParticipantToken"]),
    )
    assert error.code == "AccessDeniedException"


def test_unconnected_timeout_can_be_switched_off(make_store):
    store = make_store(emulator={"unconnected_timeout_s": 0})
    start(store)
    store.clock.advance(3600)
    assert active(store) == 1


def test_quota_change_applies_at_once(make_store):
    store = make_store()
    start(store)
    start(store)
    store.apply_config(merge_config(store.config, {"instances": [{"id": INSTANCE, "concurrent_chats": 3}]}))
    start(store)
    assert active(store) == 3


# ---- order of checks -----------------------------------------------------------------------------


def test_rate_bucket_comes_before_validation_and_every_attempt_spends_a_token(make_store):
    store = make_store(rates={"StartChatContact": {"rate": 1, "burst": 2}})
    bad = Call(body={"InstanceId": ""}, access_key=KEY)
    assert refused(store, "StartChatContact", bad).code == "InvalidParameterException"
    assert refused(store, "StartChatContact", Call(body=["x"], access_key=KEY)).status == 400
    assert refused(store, "StartChatContact", bad).code == "TooManyRequestsException"
    c = counters(store)
    assert (c["invalid"], c["throttled_tps"], c["requests"]) == (2, 1, 3)


def test_validation_before_existence_before_replay_before_quota(make_store):
    store = make_store()
    error = refused(
        store,
        "StartChatContact",
        Call(body={"InstanceId": "nope", "ContactFlowId": FLOW, "ParticipantDetails": {}}, access_key=KEY),
    )
    assert error.code == "InvalidParameterException"
    error = refused(
        store,
        "StartChatContact",
        Call(
            body={"InstanceId": "nope", "ContactFlowId": FLOW, "ParticipantDetails": {"DisplayName": "x"}},
            access_key=KEY,
        ),
    )
    assert (error.code, error.status) == ("ResourceNotFoundException", 404)
    error = refused(
        store,
        "StartChatContact",
        Call(
            body={"InstanceId": INSTANCE, "ContactFlowId": "other", "ParticipantDetails": {"DisplayName": "x"}},
            access_key=KEY,
        ),
    )
    assert error.code == "ResourceNotFoundException" and "ContactFlowId" in error.message
    first = start(store, ClientToken="t1")
    start(store)
    assert start(store, ClientToken="t1") == first  # replay at a full quota is still answered
    assert (
        refused(
            store,
            "StartChatContact",
            Call(
                body={"InstanceId": INSTANCE, "ContactFlowId": FLOW, "ParticipantDetails": {"DisplayName": "x"}},
                access_key=KEY,
            ),
        ).code
        == "LimitExceededException"
    )
    assert counters(store)["not_found"] == 2


def test_missing_authorization_is_refused_before_the_bucket(make_store):
    store = make_store()
    error = refused(store, "StartChatContact", Call(body={}, access_key=None))
    assert (error.status, error.counter) == (403, "access_denied")


def test_throttle_message_comes_from_config(make_store):
    store = make_store(
        rates={"StartChatContact": {"rate": 0, "burst": 0}}, emulator={"throttle_message": "Too Many Requests"}
    )
    error = refused(store, "StartChatContact", Call(body={}, access_key=KEY))
    assert (error.code, error.message, error.body()) == (
        "TooManyRequestsException",
        "Too Many Requests",
        {"message": "Too Many Requests"},
    )


def test_buckets_are_per_access_key_and_region(make_store):
    store = make_store(
        rates={"StartChatContact": {"rate": 0.001, "burst": 1}},
        instances=[{"id": INSTANCE, "concurrent_chats": 10, "contact_flows": [FLOW]}],
    )
    start(store, key="A")
    start(store, key="B")
    store.handle(
        "StartChatContact",
        Call(
            body={"InstanceId": INSTANCE, "ContactFlowId": FLOW, "ParticipantDetails": {"DisplayName": "x"}},
            access_key="A",
            region="eu-west-2",
        ),
    )
    assert refused(store, "StartChatContact", Call(body={}, access_key="A")).code == "TooManyRequestsException"


def test_retried_attempts_are_counted_from_the_attempt_number(make_store):
    store = make_store()
    start(store, attempt=1)
    start(store, attempt=2)
    with pytest.raises(ApiError):
        start(store, attempt=3)
    assert counters(store)["retried_attempts"] == 2
    assert counters(store)["requests"] == 3


# ---- idempotency -----------------------------------------------------------------------------------


def test_same_client_token_returns_the_same_chat_without_a_slot_but_spends_a_token(make_store):
    store = make_store(rates={"StartChatContact": {"rate": 0.001, "burst": 2}})
    first = start(store, ClientToken="abc")
    again = start(store, ClientToken="abc")
    assert again == first and set(first) >= {"ContactId", "ParticipantId", "ParticipantToken"}
    assert active(store) == 1
    assert refused(store, "StartChatContact", Call(body={}, access_key=KEY)).code == "TooManyRequestsException"
    c = counters(store)
    assert (c["accepted"], c["idempotent_replays"], c["throttled_tps"]) == (2, 1, 1)


def test_client_tokens_are_per_instance(validators):
    config = merge_config(
        EmulatorConfig(instances={}),
        {"instances": [{"id": "a", "contact_flows": ["f"]}, {"id": "b", "contact_flows": ["f"]}]},
    )
    store = ChatStore(config, clock=FakeClock(), validators=validators)
    one = store.handle(
        "StartChatContact",
        Call(
            body={
                "InstanceId": "a",
                "ContactFlowId": "f",
                "ClientToken": "t",
                "ParticipantDetails": {"DisplayName": "x"},
            },
            access_key=KEY,
        ),
    )
    two = store.handle(
        "StartChatContact",
        Call(
            body={
                "InstanceId": "b",
                "ContactFlowId": "f",
                "ClientToken": "t",
                "ParticipantDetails": {"DisplayName": "x"},
            },
            access_key=KEY,
        ),
    )
    assert one["ContactId"] != two["ContactId"]


# ---- persistent chat -----------------------------------------------------------------------------


def test_persistent_chat_needs_an_ended_source_and_continues_from_it(make_store):
    store = make_store()
    first = start(store)
    live = {"PersistentChat": {"RehydrationType": "FROM_SEGMENT", "SourceContactId": first["ContactId"]}}
    with pytest.raises(ApiError) as caught:
        start(store, **live)
    assert (caught.value.code, caught.value.status) == ("InvalidRequestException", 400)
    assert "SourceContactId" in caught.value.message
    store.handle("StopContact", Call(body={"InstanceId": INSTANCE, "ContactId": first["ContactId"]}, access_key=KEY))
    second = start(store, **live)
    assert second["ContinuedFromContactId"] == first["ContactId"]
    # ENTIRE_PAST_SESSION names the initial contact and continues from the session's latest ended one
    session = {"PersistentChat": {"RehydrationType": "ENTIRE_PAST_SESSION", "SourceContactId": first["ContactId"]}}
    with pytest.raises(ApiError, match="still active"):
        start(store, **session)
    store.handle("StopContact", Call(body={"InstanceId": INSTANCE, "ContactId": second["ContactId"]}, access_key=KEY))
    third = start(store, **session)
    assert third["ContinuedFromContactId"] == second["ContactId"]
    with pytest.raises(ApiError, match="initial contact"):
        start(store, PersistentChat={"RehydrationType": "ENTIRE_PAST_SESSION", "SourceContactId": second["ContactId"]})
    with pytest.raises(ApiError) as caught:
        start(store, PersistentChat={"RehydrationType": "FROM_SEGMENT", "SourceContactId": "unknown"})
    assert caught.value.code == "ResourceNotFoundException"
    described = store.handle(
        "DescribeContact", Call(access_key=KEY, instance_id=INSTANCE, contact_id=third["ContactId"])
    )["Contact"]
    assert described["InitialContactId"] == first["ContactId"]
    assert described["PreviousContactId"] == second["ContactId"]


# ---- participants ----------------------------------------------------------------------------------


def test_transcript_returns_the_messages_sent(make_store):
    store = make_store()
    chat = start(store, InitialMessage={"ContentType": "text/plain", "Content": "hello"})
    token = connect(store, chat)
    for text in ("one", "two"):
        store.handle("SendMessage", Call(body={"ContentType": "text/plain", "Content": text}, bearer=token))
    out = store.handle("GetTranscript", Call(body={}, bearer=token))
    assert [m["Content"] for m in out["Transcript"]] == ["hello", "one", "two"]
    assert out["InitialContactId"] == chat["ContactId"]


def test_send_message_client_token_is_idempotent(make_store):
    store = make_store()
    token = connect(store, start(store))
    body = {"ContentType": "text/plain", "Content": "x", "ClientToken": "m1"}
    first = store.handle("SendMessage", Call(body=body, bearer=token))
    assert store.handle("SendMessage", Call(body=body, bearer=token)) == first
    assert len(store.handle("GetTranscript", Call(body={}, bearer=token))["Transcript"]) == 1


def test_send_event_is_a_customer_event_item_idempotent_per_operation_and_never_prompts_the_agent(make_store):
    store = make_store(agents={"join": {"distribution": "fixed", "mean": 0}, "reply_think": 1})
    chat = start(store)
    token = connect(store, chat)
    store.clock.advance(0.5)  # the agent joins (before the greeting at 1 s)
    typing = {"ContentType": "application/vnd.amazonaws.connect.event.typing", "ClientToken": "t1"}
    first = store.handle("SendEvent", Call(body=typing, bearer=token))
    assert store.handle("SendEvent", Call(body=typing, bearer=token, attempt=2)) == first  # a retry
    message = store.handle(
        "SendMessage", Call(body={"ContentType": "text/plain", "Content": "hi", "ClientToken": "t1"}, bearer=token)
    )
    assert message["Id"] != first["Id"]  # ClientTokens are per operation
    store.clock.advance(5)
    items = store.handle("GetTranscript", Call(body={"ScanDirection": "FORWARD"}, bearer=token))["Transcript"]
    event = next(i for i in items if i["Id"] == first["Id"])
    assert event == {
        "AbsoluteTime": first["AbsoluteTime"],
        "ContentType": typing["ContentType"],
        "Id": first["Id"],
        "Type": "EVENT",
        "ParticipantId": chat["ParticipantId"],
        "DisplayName": "Ann",
        "ParticipantRole": "CUSTOMER",
        "InitialContactId": chat["ContactId"],
        "ContactId": chat["ContactId"],
    }
    assert [i["ParticipantRole"] for i in items] == ["AGENT", "CUSTOMER", "CUSTOMER", "SYSTEM", "AGENT"]
    assert sum(i.get("Content", "").startswith("Agent reply") for i in items) == 1  # for the message only
    assert counters(store, "SendEvent")["requests"] == counters(store, "SendEvent")["accepted"] == 2


def test_participant_tokens_and_throttling(make_store):
    store = make_store(participant_rates={"SendMessage": {"rate": 0.001, "burst": 1}})
    chat = start(store)
    token = connect(store, chat)
    assert refused(store, "SendMessage", Call(body={}, bearer="nope")).code == "AccessDeniedException"
    # the participant token is not a connection token
    assert refused(store, "SendMessage", Call(body={}, bearer=chat["ParticipantToken"])).status == 403
    store.handle("SendMessage", Call(body={"ContentType": "text/plain", "Content": "x"}, bearer=token))
    error = refused(store, "SendMessage", Call(body={"ContentType": "text/plain", "Content": "x"}, bearer=token))
    assert (error.code, error.status) == ("ThrottlingException", 429)
    assert counters(store, "SendMessage")["throttled_tps"] == 1
    assert counters(store, "SendMessage")["access_denied"] == 2


def test_disconnect_retry_with_the_same_client_token_is_answered_again(make_store):
    store = make_store()
    token = connect(store, start(store))
    store.handle("DisconnectParticipant", Call(body={"ClientToken": "d1"}, bearer=token))
    assert store.handle("DisconnectParticipant", Call(body={"ClientToken": "d1"}, bearer=token, attempt=2)) == {}
    assert refused(store, "DisconnectParticipant", Call(body={"ClientToken": "d2"}, bearer=token)).status == 403
    assert store.state()["chats_ended"]["CUSTOMER_DISCONNECT"] == 1


def test_start_with_connection_types_connects_at_once(make_store):
    store = make_store()
    chat = start(store, ConnectionTypes=["CONNECTION_CREDENTIALS"])
    token = chat["ConnectionCredentials"]["ConnectionToken"]
    store.clock.advance(400)  # past the unconnected timeout
    assert active(store) == 1
    store.handle("SendMessage", Call(body={"ContentType": "text/plain", "Content": "x"}, bearer=token))


# ---- memory, reset, counters -----------------------------------------------------------------------


def test_ended_contacts_are_purged_after_retention_and_memory_stays_flat(make_store):
    store = make_store(
        emulator={"retention_s": 60, "unconnected_timeout_s": 0},
        participant_rates={
            "DisconnectParticipant": {"rate": 1e6, "burst": 1e6},
            "CreateParticipantConnection": {"rate": 1e6, "burst": 1e6},
        },
        instances=[{"id": INSTANCE, "concurrent_chats": 10_000, "contact_flows": [FLOW]}],
    )
    sizes = []
    for _ in range(30):  # 30 emulated minutes, 100 chats a minute, each ended at once
        for _ in range(100):
            chat = start(store)
            store.handle("DisconnectParticipant", Call(body={}, bearer=connect(store, chat)))
        store.clock.advance(60)
        sizes.append(
            (
                len(store.contacts),
                len(store.by_participant_token),
                len(store.by_connection_token),
                len(store.expiries),
                len(store.purges),
            )
        )
    assert max(s[0] for s in sizes[5:]) <= 200
    assert sizes[-1][:3] == sizes[5][:3]
    assert max(s[3] for s in sizes) <= 2 * 1024 + 400  # stale deadlines are compacted
    assert store.state()["contacts_retained"] <= 200


def test_reset_clears_contacts_counters_and_buckets_but_keeps_config(make_store):
    store = make_store(rates={"StartChatContact": {"rate": 0.001, "burst": 1}})
    start(store)
    store.reset()
    state = store.state()
    assert state["instances"][INSTANCE]["active_chats"] == 0
    assert state["operations"]["StartChatContact"]["accepted"] == 0
    start(store)  # the bucket is full again
    assert store.config.rates["StartChatContact"].burst == 1


def test_rate_change_keeps_the_bucket_level(make_store):
    store = make_store(rates={"StartChatContact": {"rate": 0.001, "burst": 2}})
    start(store)
    store.apply_config(merge_config(store.config, {"rates": {"StartChatContact": {"rate": 0.001, "burst": 10}}}))
    start(store)  # the one token left
    assert refused(store, "StartChatContact", Call(body={}, access_key=KEY)).code == "TooManyRequestsException"


def test_time_scale_change_reaches_the_clock(make_store):
    store = make_store()
    store.apply_config(merge_config(store.config, {"emulator": {"time_scale": 30}}))
    assert store.clock.time_scale == 30
    assert store.state()["time_scale"] == 30


def test_describe_contact(make_store):
    store = make_store()
    chat = start(store, Attributes={"a": "b"}, CustomerId="cust")
    described = store.handle(
        "DescribeContact", Call(access_key=KEY, instance_id=INSTANCE, contact_id=chat["ContactId"])
    )["Contact"]
    assert described["Id"] == chat["ContactId"] and described["Channel"] == "CHAT"
    assert described["Attributes"] == {"a": "b"} and "DisconnectTimestamp" not in described
    error = refused(store, "DescribeContact", Call(access_key=KEY, instance_id=INSTANCE, contact_id="nope"))
    assert (error.code, error.status) == ("ResourceNotFoundException", 404)


def test_per_second_counts_follow_the_emulated_clock(make_store):
    store = make_store(
        rates={"StartChatContact": {"rate": 1, "burst": 2}},
        instances=[{"id": INSTANCE, "concurrent_chats": 3, "contact_flows": [FLOW]}],
    )
    epoch = int(store.clock.epoch())
    start(store)  # second 0: two accepted, the third throttled by the bucket (burst 2)
    start(store)
    assert refused(store, "StartChatContact", start_call()).code == "TooManyRequestsException"
    store.clock.advance(1.0)  # second 1: one token back, one accepted; the quota (3 chats) is then full
    start(store)
    store.clock.advance(1.0)  # second 2: a token, but 3 chats are active: the concurrency quota refuses
    assert refused(store, "StartChatContact", start_call()).code == "LimitExceededException"
    seconds = store.state()["per_second"]["StartChatContact"]
    assert seconds == {
        str(epoch): {"requests": 3, "accepted": 2, "throttled_tps": 1, "throttled_concurrency": 0},
        str(epoch + 1): {"requests": 1, "accepted": 1, "throttled_tps": 0, "throttled_concurrency": 0},
        str(epoch + 2): {"requests": 1, "accepted": 0, "throttled_tps": 0, "throttled_concurrency": 1},
    }
    store.reset()
    assert store.state()["per_second"] == {}


def start_call():
    body = {"InstanceId": INSTANCE, "ContactFlowId": FLOW, "ParticipantDetails": {"DisplayName": "Ann"}}
    return Call(body=body, access_key=KEY)
