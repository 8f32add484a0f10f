"""Hypothesis fuzz of request bodies over raw HTTP: the emulator never answers 5xx and never crashes."""

import http.client
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatload.contracts import DEFAULT_CONTACT_FLOW_ID, DEFAULT_INSTANCE_ID
from chatload.emulator_control import running_emulator

pytestmark = pytest.mark.e2e

AUTH = "AWS4-HMAC-SHA256 Credential=AKIDFUZZ/20240101/us-east-1/connect/aws4_request, SignedHeaders=host, Signature=0"
HUGE = {"rate": 1e9, "burst": 1e9}
CONFIG = {
    "rates": {"StartChatContact": HUGE, "StopContact": HUGE, "DescribeContact": HUGE},
    "participant_rates": {
        op: HUGE
        for op in ("CreateParticipantConnection", "SendMessage", "SendEvent", "DisconnectParticipant", "GetTranscript")
    },
    "instances": [{"id": DEFAULT_INSTANCE_ID, "concurrent_chats": 10**9, "contact_flows": [DEFAULT_CONTACT_FLOW_ID]}],
}
ROUTES = [
    ("PUT", "/contact/chat"),
    ("POST", "/contact/stop"),
    ("POST", "/participant/connection"),
    ("POST", "/participant/message"),
    ("POST", "/participant/event"),
    ("POST", "/participant/disconnect"),
    ("POST", "/participant/transcript"),
]

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
MEMBERS = [
    "InstanceId",
    "ContactFlowId",
    "ParticipantDetails",
    "Attributes",
    "InitialMessage",
    "ClientToken",
    "ChatDurationInMinutes",
    "SupportedMessagingContentTypes",
    "PersistentChat",
    "RelatedContactId",
    "SegmentAttributes",
    "ParticipantConfiguration",
    "CustomerId",
    "DisconnectOnCustomerExit",
    "ConnectionTypes",
    "ContactId",
    "Type",
    "ContentType",
    "Content",
    "MaxResults",
    "NextToken",
    "ScanDirection",
    "SortOrder",
    "StartPosition",
    "ConnectParticipant",
    "DisplayName",
]
VALID = {
    "InstanceId": DEFAULT_INSTANCE_ID,
    "ContactFlowId": DEFAULT_CONTACT_FLOW_ID,
    "ParticipantDetails": {"DisplayName": "fuzz"},
}
# a valid body with some members replaced by arbitrary JSON: reaches the deep rules
mutated = st.builds(
    lambda changes: json.dumps({**VALID, **changes}).encode(),
    st.dictionaries(st.sampled_from(MEMBERS), json_values, max_size=4),
)
EVENT = "application/vnd.amazonaws.connect.event."
# SendEvent bodies with a real event type and arbitrary Content: reaches the receipt rule (JSON in a string)
events = st.builds(
    lambda kind, content: json.dumps({"ContentType": EVENT + kind, "Content": content}).encode(),
    st.sampled_from(["typing", "message.read", "message.delivered", "connection.acknowledged", "nope"]),
    st.none() | st.text(max_size=20) | json_values.map(json.dumps),
)
bodies = mutated | events | json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200)


@pytest.fixture(scope="module")
def emulator():
    with running_emulator(CONFIG) as handle:
        host, port = handle.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        # one real chat, so participant routes also see valid tokens
        connection.request(
            "PUT",
            "/contact/chat",
            json.dumps({**VALID, "ConnectionTypes": ["CONNECTION_CREDENTIALS"]}),
            {"Authorization": AUTH},
        )
        chat = json.loads(connection.getresponse().read())
        yield handle, connection, chat
        connection.close()


def check(connection, method, path, body, headers):
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    assert response.status < 500, (method, path, body[:200], payload[:200])
    if response.status >= 400:
        assert response.getheader("x-amzn-ErrorType")
        assert response.getheader("x-amzn-RequestId")
        message = json.loads(payload)
        assert message.get("message") or message.get("Message")


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(route=st.sampled_from(ROUTES), body=bodies, token_kind=st.sampled_from(["participant", "connection", "junk"]))
def test_no_body_yields_a_5xx(emulator, route, body, token_kind):
    _, connection, chat = emulator
    method, path = route
    tokens = {
        "participant": chat["ParticipantToken"],
        "connection": chat["ConnectionCredentials"]["ConnectionToken"],
        "junk": "x",
    }
    if path == "/participant/disconnect" and token_kind == "connection":
        token_kind = "junk"  # keep the chat alive for the other participant routes
    headers = {"Authorization": AUTH, "X-Amz-Bearer": tokens[token_kind]}
    check(connection, method, path, body, headers)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(instance=st.text(max_size=120), contact=st.text(max_size=300))
def test_no_describe_path_yields_a_5xx(emulator, instance, contact):
    from urllib.parse import quote

    _, connection, _ = emulator
    check(
        connection,
        "GET",
        f"/contacts/{quote(instance, safe='')}/{quote(contact, safe='')}",
        b"",
        {"Authorization": AUTH},
    )


def test_the_fuzz_left_no_server_errors(emulator):
    handle, _, _ = emulator
    state = handle.state()
    assert all(counters["server_error"] == 0 for counters in state["operations"].values())
