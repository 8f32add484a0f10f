"""The emulator as a process, driven by real boto3 `connect` and `connectparticipant` clients."""

import http.client
import json
import time

import pytest
from botocore.exceptions import ClientError
from support import connect_client, error_of, participant_client, wait_for
from support import start_chat as start

from chatload.contracts import DEFAULT_CONTACT_FLOW_ID as FLOW
from chatload.contracts import DEFAULT_INSTANCE_ID as INSTANCE
from chatload.emulator_control import ConfigRejected, running_emulator

pytestmark = pytest.mark.e2e

ROOMY = {"rates": {"StartChatContact": {"rate": 1000, "burst": 1000}}}


@pytest.fixture(scope="module")
def emu():
    with running_emulator(ROOMY) as handle:
        yield handle


@pytest.fixture
def fresh(emu):
    emu.reset()
    return emu


def test_a_whole_chat_with_boto3(fresh):
    connect, participant = connect_client(fresh.url), participant_client(fresh.url)
    chat = start(connect, InitialMessage={"ContentType": "text/plain", "Content": "hello"})
    assert {"ContactId", "ParticipantId", "ParticipantToken"} <= set(chat)
    assert chat["ResponseMetadata"]["HTTPStatusCode"] == 200
    joined = participant.create_participant_connection(
        ParticipantToken=chat["ParticipantToken"], Type=["WEBSOCKET", "CONNECTION_CREDENTIALS"]
    )
    token = joined["ConnectionCredentials"]["ConnectionToken"]
    assert joined["Websocket"]["Url"].startswith("ws://127.0.0.1:")
    sent = participant.send_message(ConnectionToken=token, ContentType="text/plain", Content="how are you")
    assert sent["Id"] and sent["AbsoluteTime"].endswith("Z")
    transcript = participant.get_transcript(ConnectionToken=token, SortOrder="ASCENDING")
    assert [m["Content"] for m in transcript["Transcript"]] == ["hello", "how are you"]
    described = connect.describe_contact(InstanceId=INSTANCE, ContactId=chat["ContactId"])["Contact"]
    assert described["Channel"] == "CHAT" and described["InitiationTimestamp"].year >= 2024
    participant.disconnect_participant(ConnectionToken=token)
    state = fresh.state()
    assert state["instances"][INSTANCE]["active_chats"] == 0
    assert state["instances"][INSTANCE]["peak_active_chats"] == 1
    for operation in (
        "StartChatContact",
        "CreateParticipantConnection",
        "SendMessage",
        "GetTranscript",
        "DescribeContact",
        "DisconnectParticipant",
    ):
        assert state["operations"][operation]["accepted"] == 1, operation
    assert state["time_scale"] == 1.0


def test_every_error_has_code_status_message_and_request_id(fresh):
    connect, participant = connect_client(fresh.url), participant_client(fresh.url)
    cases = [
        (
            lambda: start(connect, ChatDurationInMinutes=10081),
            "InvalidParameterException",
            400,
            "ChatDurationInMinutes",
        ),
        (lambda: start(connect, Attributes={"bad key": "v"}), "InvalidParameterException", 400, "Attributes"),
        (
            lambda: connect.start_chat_contact(
                InstanceId=INSTANCE, ContactFlowId=FLOW, ParticipantDetails={"DisplayName": "x" * 257}
            ),
            "InvalidParameterException",
            400,
            "DisplayName",
        ),
        (
            lambda: start(
                connect,
                PersistentChat={"RehydrationType": "FROM_SEGMENT", "SourceContactId": "c"},
                RelatedContactId="r",
            ),
            "InvalidRequestException",
            400,
            "PersistentChat",
        ),
        (
            lambda: connect.start_chat_contact(
                InstanceId="nope", ContactFlowId=FLOW, ParticipantDetails={"DisplayName": "x"}
            ),
            "ResourceNotFoundException",
            404,
            "InstanceId",
        ),
        (
            lambda: connect.start_chat_contact(
                InstanceId=INSTANCE, ContactFlowId="nope", ParticipantDetails={"DisplayName": "x"}
            ),
            "ResourceNotFoundException",
            404,
            "ContactFlowId",
        ),
        (lambda: connect.stop_contact(InstanceId=INSTANCE, ContactId="nope"), "ContactNotFoundException", 410, "nope"),
        (
            lambda: connect.describe_contact(InstanceId=INSTANCE, ContactId="nope"),
            "ResourceNotFoundException",
            404,
            "nope",
        ),
        (
            lambda: participant.send_message(ConnectionToken="nope", ContentType="text/plain", Content="x"),
            "AccessDeniedException",
            403,
            "access",
        ),
        (
            lambda: participant.create_participant_connection(ParticipantToken="nope", Type=["WEBSOCKET"]),
            "AccessDeniedException",
            403,
            "access",
        ),
    ]
    for call, code, status, mentioned in cases:
        response = error_of(call)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert response["Error"]["Code"] == code
        assert mentioned.lower() in response["Error"]["Message"].lower()
        assert response["ResponseMetadata"]["RequestId"]
    token = participant.create_participant_connection(
        ParticipantToken=start(connect)["ParticipantToken"], Type=["CONNECTION_CREDENTIALS"]
    )["ConnectionCredentials"]["ConnectionToken"]
    response = error_of(participant.send_message, ConnectionToken=token, ContentType="text/plain", Content="x" * 1025)
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == ("ValidationException", 400)
    assert "Content" in response["Error"]["Message"]
    state = fresh.state()["operations"]
    assert state["StartChatContact"]["invalid"] == 4
    assert state["StartChatContact"]["not_found"] == 2
    assert state["StopContact"]["not_found"] == 1
    assert state["SendMessage"]["access_denied"] == 1 and state["SendMessage"]["invalid"] == 1


def test_both_429s_are_told_apart(emu):
    with running_emulator(
        {
            "rates": {"StartChatContact": {"rate": 0.01, "burst": 3}},
            "emulator": {"throttle_message": "Too Many Requests"},
            "participant_rates": {"SendMessage": {"rate": 0.01, "burst": 1}},
            "instances": [{"id": INSTANCE, "concurrent_chats": 1, "contact_flows": [FLOW]}],
        }
    ) as e:
        connect, participant = connect_client(e.url), participant_client(e.url)
        chat = start(connect)
        quota = error_of(start, connect)
        assert (quota["Error"]["Code"], quota["ResponseMetadata"]["HTTPStatusCode"]) == ("LimitExceededException", 429)
        error_of(start, connect)
        rate = error_of(start, connect)
        assert (rate["Error"]["Code"], rate["ResponseMetadata"]["HTTPStatusCode"]) == ("TooManyRequestsException", 429)
        assert rate["Error"]["Message"] == "Too Many Requests"
        token = participant.create_participant_connection(
            ParticipantToken=chat["ParticipantToken"], Type=["CONNECTION_CREDENTIALS"]
        )["ConnectionCredentials"]["ConnectionToken"]
        participant.send_message(ConnectionToken=token, ContentType="text/plain", Content="x")
        throttled = error_of(participant.send_message, ConnectionToken=token, ContentType="text/plain", Content="x")
        assert (throttled["Error"]["Code"], throttled["ResponseMetadata"]["HTTPStatusCode"]) == (
            "ThrottlingException",
            429,
        )
        ops = e.state()["operations"]
        assert (
            ops["StartChatContact"]["accepted"],
            ops["StartChatContact"]["throttled_concurrency"],
            ops["StartChatContact"]["throttled_tps"],
        ) == (1, 2, 1)
        assert ops["SendMessage"]["throttled_tps"] == 1


def test_bucket_accuracy_offering_20_per_s_for_10_emulated_s():
    scale = 5.0  # 10 emulated seconds in 2 real seconds: 100 offers per real second
    with running_emulator(time_scale=scale) as e:
        connect = connect_client(e.url)
        accepted = throttled = 0
        first = last = 0.0
        t0 = time.perf_counter()
        for k in range(200):
            delay = t0 + k / (20 * scale) - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            now = time.perf_counter()
            first = first or now
            last = now
            try:
                start(connect)
                accepted += 1
            except ClientError as error:
                assert error.response["Error"]["Code"] == "TooManyRequestsException"
                throttled += 1
        emulated_span = (last - first) * scale
        # the bucket admits burst + rate * elapsed: 8 + 5 * 10 when the offers kept their schedule
        assert abs(accepted - (8 + 5 * emulated_span)) <= 1.5
        if emulated_span == pytest.approx(9.95, abs=0.1):
            assert abs(accepted - 58) <= 1
        state = e.state()["operations"]["StartChatContact"]
        assert (state["accepted"], state["throttled_tps"]) == (accepted, throttled)


def test_quota_is_released_by_each_way_a_chat_ends():
    config = {"instances": [{"id": INSTANCE, "concurrent_chats": 1, "contact_flows": [FLOW]}], **ROOMY}
    with running_emulator(config) as e:
        connect, participant = connect_client(e.url), participant_client(e.url)

        def slot_taken():
            return error_of(start, connect)["Error"]["Code"] == "LimitExceededException"

        def ended(reason):
            return e.state()["chats_ended"][reason]

        # 1. the customer's DisconnectParticipant
        chat = start(connect)
        assert slot_taken()
        token = participant.create_participant_connection(
            ParticipantToken=chat["ParticipantToken"], Type=["CONNECTION_CREDENTIALS"]
        )["ConnectionCredentials"]["ConnectionToken"]
        participant.disconnect_participant(ConnectionToken=token)
        assert ended("CUSTOMER_DISCONNECT") == 1
        # 2. StopContact
        chat = start(connect)
        assert slot_taken()
        connect.stop_contact(InstanceId=INSTANCE, ContactId=chat["ContactId"])
        assert ended("API") == 1
        # 3. ChatDurationInMinutes running out (a connected chat; 60 emulated minutes pass in ~0.25 s)
        chat = start(connect, ChatDurationInMinutes=60)
        participant.create_participant_connection(
            ParticipantToken=chat["ParticipantToken"], Type=["CONNECTION_CREDENTIALS"]
        )
        assert slot_taken()
        e.put_config({"emulator": {"time_scale": 14400}})
        assert wait_for(lambda: ended("EXPIRED") == 1)
        e.put_config({"emulator": {"time_scale": 1}})
        # 4. no CreateParticipantConnection within unconnected_timeout_s (300 emulated s in ~0.3 s)
        chat = start(connect)
        assert slot_taken()
        e.put_config({"emulator": {"time_scale": 1000}})
        assert wait_for(lambda: ended("CUSTOMER_CONNECTION_NOT_ESTABLISHED") == 1)
        e.put_config({"emulator": {"time_scale": 1}})
        start(connect)
        state = e.state()
        assert state["instances"][INSTANCE]["active_chats"] == 1
        assert state["operations"]["StartChatContact"]["throttled_concurrency"] == 4
        assert state["operations"]["StartChatContact"]["accepted"] == 5


def test_same_client_token_returns_the_same_chat(fresh):
    connect = connect_client(fresh.url)
    first = start(connect, ClientToken="order-42")
    again = start(connect, ClientToken="order-42")
    keys = ("ContactId", "ParticipantId", "ParticipantToken")
    assert [first[k] for k in keys] == [again[k] for k in keys]
    state = fresh.state()
    assert state["instances"][INSTANCE]["active_chats"] == 1
    assert state["operations"]["StartChatContact"]["idempotent_replays"] == 1
    assert state["operations"]["StartChatContact"]["accepted"] == 2


def test_persistent_chat_rehydrates_only_from_an_ended_contact(fresh):
    connect = connect_client(fresh.url)
    first = start(connect)
    source = {"RehydrationType": "ENTIRE_PAST_SESSION", "SourceContactId": first["ContactId"]}
    live = error_of(start, connect, PersistentChat=source, SupportedMessagingContentTypes=["text/plain"])
    assert (live["Error"]["Code"], live["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidRequestException", 400)
    assert "SourceContactId" in live["Error"]["Message"]
    connect.stop_contact(InstanceId=INSTANCE, ContactId=first["ContactId"])
    second = start(connect, PersistentChat=source)
    assert second["ContinuedFromContactId"] == first["ContactId"]
    connect.stop_contact(InstanceId=INSTANCE, ContactId=second["ContactId"])
    third = start(connect, PersistentChat={"RehydrationType": "FROM_SEGMENT", "SourceContactId": second["ContactId"]})
    assert third["ContinuedFromContactId"] == second["ContactId"]


def test_retried_attempts_are_counted_from_the_sdk_header():
    with running_emulator({"rates": {"StartChatContact": {"rate": 0.001, "burst": 1}}}) as e:
        connect = connect_client(e.url, max_attempts=2)
        start(connect)
        response = error_of(start, connect)
        assert response["Error"]["Code"] == "TooManyRequestsException"
        assert response["ResponseMetadata"]["RetryAttempts"] == 1
        ops = e.state()["operations"]["StartChatContact"]
        assert (ops["requests"], ops["accepted"], ops["throttled_tps"], ops["retried_attempts"]) == (3, 1, 2, 1)


def test_buckets_are_per_access_key(fresh):
    with running_emulator({"rates": {"StartChatContact": {"rate": 0.001, "burst": 1}}}) as e:
        start(connect_client(e.url, access_key="AKIDONE"))
        start(connect_client(e.url, access_key="AKIDTWO"))
        assert error_of(start, connect_client(e.url, access_key="AKIDONE"))["Error"]["Code"] == (
            "TooManyRequestsException"
        )
        accounts = {b.get("account") for b in e.state()["buckets"] if b["operation"] == "StartChatContact"}
        assert accounts == {"account-1", "account-2"}  # numbered, never the access keys


def raw(url, method, path, body=b"", headers=None):
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


AUTH = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDCHATLOAD/20240101/us-east-1/connect/aws4_request, "
    "SignedHeaders=host, Signature=0"
}


def test_malformed_oversized_and_unknown_requests_get_4xx_with_the_error_shape(fresh):
    cases = [
        ("PUT", "/contact/chat", b"{not json", AUTH, 400, "InvalidRequestException"),
        ("POST", "/participant/message", b"{not json", {}, 403, "AccessDeniedException"),
        ("PUT", "/contact/chat", b"[1, 2]", AUTH, 400, "InvalidParameterException"),
        ("PUT", "/contact/chat", b"{}", {}, 403, "MissingAuthenticationTokenException"),
        ("PUT", "/contact/chat", b"{" + b" " * (1024 * 1024 + 10) + b"}", AUTH, 413, "RequestEntityTooLargeException"),
        ("POST", "/participant/message", b"{}", {"X-Amz-Bearer": "nope"}, 403, "AccessDeniedException"),
        ("GET", "/contact/chat", b"", AUTH, 404, "UnknownOperationException"),
        ("DELETE", "/somewhere", b"", {}, 404, "UnknownOperationException"),
    ]
    for method, path, body, headers, status, code in cases:
        got, response_headers, payload = raw(fresh.url, method, path, body, headers)
        lowered = {k.lower(): v for k, v in response_headers.items()}
        assert (got, lowered.get("x-amzn-errortype")) == (status, code), (method, path)
        assert lowered.get("x-amzn-requestid")
        assert json.loads(payload)


def test_raw_attempt_header_counts_as_a_retry(fresh):
    headers = {**AUTH, "amz-sdk-request": "attempt=3; max=3"}
    status, _, _ = raw(
        fresh.url,
        "PUT",
        "/contact/chat",
        json.dumps(
            {"InstanceId": INSTANCE, "ContactFlowId": FLOW, "ParticipantDetails": {"DisplayName": "x"}}
        ).encode(),
        headers,
    )
    assert status == 200
    assert fresh.state()["operations"]["StartChatContact"]["retried_attempts"] == 1


def test_admin_api(fresh):
    assert fresh.health() == {"status": "ok"}
    start(connect_client(fresh.url))
    state = fresh.state()
    assert state["instances"][INSTANCE] == {
        "active_chats": 1,
        "peak_active_chats": 1,
        "concurrent_chats": 500,
        "contact_flows": [FLOW],
    }
    expected = {"accepted", "throttled_tps", "throttled_concurrency", "invalid", "not_found", "retried_attempts"}
    assert expected <= set(state["operations"]["StartChatContact"])
    merged = fresh.put_config(
        {
            "instances": [{"id": INSTANCE, "concurrent_chats": 900}, {"id": "second-instance"}],
            "rates": {"StartChatContact": {"rate": 2000}},
        }
    )
    by_id = {i["id"]: i for i in merged["instances"]}
    assert by_id[INSTANCE]["concurrent_chats"] == 900 and by_id[INSTANCE]["contact_flows"] == [FLOW]
    assert "second-instance" in by_id
    assert merged["rates"]["StartChatContact"] == {"rate": 2000, "burst": 1000}
    assert fresh.state()["instances"][INSTANCE]["concurrent_chats"] == 900
    with pytest.raises(ConfigRejected, match=r"emulator\.time_scale"):
        fresh.put_config({"emulator": {"time_scale": -1}})
    fresh.reset()
    state = fresh.state()
    assert state["instances"][INSTANCE]["active_chats"] == 0
    assert state["operations"]["StartChatContact"]["accepted"] == 0
    fresh.put_config({"instances": [{"id": INSTANCE, "concurrent_chats": 500}], **ROOMY})
