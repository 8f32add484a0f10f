"""StartChatContact and Participant Service validation: botocore's model plus the documented rules."""

import botocore.session
import pytest

from chatload.emulator.validation import INTERACTIVE, INTERACTIVE_RESPONSE, Invalid, Validators

VALID = {
    "InstanceId": "i",
    "ContactFlowId": "f",
    "ParticipantDetails": {"DisplayName": "Ann"},
}


@pytest.fixture(scope="module")
def validators():
    return Validators.from_botocore()


def invalid(validators, body, operation="StartChatContact"):
    with pytest.raises(Invalid) as caught:
        validators.check(operation, body)
    return caught.value


def test_a_minimal_and_a_full_valid_body_pass(validators):
    validators.check("StartChatContact", VALID)
    validators.check(
        "StartChatContact",
        {
            **VALID,
            "Attributes": {"customer-id_1": "x" * 100},
            "InitialMessage": {"ContentType": "text/markdown", "Content": "**hi**"},
            "ClientToken": "t" * 500,
            "ChatDurationInMinutes": 10080,
            "SupportedMessagingContentTypes": ["text/plain", "text/markdown", INTERACTIVE, INTERACTIVE_RESPONSE],
            "PersistentChat": {"RehydrationType": "FROM_SEGMENT", "SourceContactId": "c"},
            "SegmentAttributes": {"connect:Subtype": {"ValueString": "connect:Guide"}},
            "ParticipantConfiguration": {"ResponseMode": "COMPLETE"},
            "CustomerId": "c" * 128,
            "DisconnectOnCustomerExit": ["AGENT"],
        },
    )


def test_limits_come_from_botocores_model(validators):
    model = botocore.session.get_session().get_service_model("connect")
    shape = model.operation_model("StartChatContact").input_shape
    display_max = shape.members["ParticipantDetails"].members["DisplayName"].metadata["max"]
    validators.check("StartChatContact", {**VALID, "ParticipantDetails": {"DisplayName": "x" * display_max}})
    error = invalid(validators, {**VALID, "ParticipantDetails": {"DisplayName": "x" * (display_max + 1)}})
    assert error.path == "ParticipantDetails.DisplayName"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"InstanceId": ""}, "InstanceId"),
        ({"InstanceId": "i" * 101}, "InstanceId"),
        ({"ContactFlowId": "f" * 501}, "ContactFlowId"),
        ({"ContactFlowId": None}, "ContactFlowId"),
        ({"ParticipantDetails": {}}, "ParticipantDetails.DisplayName"),
        ({"ParticipantDetails": "Ann"}, "ParticipantDetails"),
        ({"ClientToken": "t" * 501}, "ClientToken"),
        ({"ChatDurationInMinutes": 59}, "ChatDurationInMinutes"),
        ({"ChatDurationInMinutes": 10081}, "ChatDurationInMinutes"),
        ({"ChatDurationInMinutes": "60"}, "ChatDurationInMinutes"),
        ({"ChatDurationInMinutes": True}, "ChatDurationInMinutes"),
        ({"Attributes": {"bad key": "v"}}, "Attributes.key"),
        ({"Attributes": {"k": 5}}, "Attributes.k"),
        ({"Attributes": {f"k{i}": "v" * 4000 for i in range(9)}}, "Attributes"),
        ({"InitialMessage": {"ContentType": "text/plain"}}, "InitialMessage.Content"),
        ({"InitialMessage": {"ContentType": "text/plain", "Content": "x" * 1025}}, "InitialMessage.Content"),
        ({"InitialMessage": {"ContentType": "application/json", "Content": "x" * 12001}}, "InitialMessage.Content"),
        ({"InitialMessage": {"ContentType": INTERACTIVE_RESPONSE, "Content": "x" * 12289}}, "InitialMessage.Content"),
        ({"InitialMessage": {"ContentType": "image/png", "Content": "x"}}, "InitialMessage.ContentType"),
        ({"SupportedMessagingContentTypes": ["text/markdown"]}, "SupportedMessagingContentTypes"),
        ({"SupportedMessagingContentTypes": ["text/plain", "text/html"]}, "SupportedMessagingContentTypes[1]"),
        ({"SupportedMessagingContentTypes": ["text/plain", ""]}, "SupportedMessagingContentTypes[1]"),
        ({"PersistentChat": {"RehydrationType": "ALL", "SourceContactId": "c"}}, "PersistentChat.RehydrationType"),
        ({"PersistentChat": {"RehydrationType": "FROM_SEGMENT"}}, "PersistentChat.SourceContactId"),
        (
            {"PersistentChat": {"RehydrationType": "FROM_SEGMENT", "SourceContactId": "c"}, "RelatedContactId": "r"},
            "PersistentChat",
        ),
        ({"RelatedContactId": "r" * 257}, "RelatedContactId"),
        (
            {"SegmentAttributes": {"connect:Subtype": {"ValueString": "connect:Guide"}}},
            "SupportedMessagingContentTypes",
        ),
        (
            {
                "SegmentAttributes": {"connect:Subtype": {"ValueString": "connect:Guide"}},
                "SupportedMessagingContentTypes": ["text/plain", INTERACTIVE],
            },
            "SupportedMessagingContentTypes",
        ),
        ({"SegmentAttributes": {"k" * 129: {"ValueString": "v"}}}, "SegmentAttributes.key"),
        ({"ParticipantConfiguration": {"ResponseMode": "FAST"}}, "ParticipantConfiguration.ResponseMode"),
        ({"CustomerId": ""}, "CustomerId"),
        ({"DisconnectOnCustomerExit": []}, "DisconnectOnCustomerExit"),
        ({"DisconnectOnCustomerExit": ["AGENT", "AGENT"]}, "DisconnectOnCustomerExit"),
        ({"DisconnectOnCustomerExit": ["CUSTOMER"]}, "DisconnectOnCustomerExit[0]"),
    ],
)
def test_each_documented_rule_names_its_field(validators, change, field):
    error = invalid(validators, {**VALID, **change})
    assert error.path == field
    assert f"'{field}'" in str(error)


def test_rules_between_members_are_request_level(validators):
    both = {
        **VALID,
        "PersistentChat": {"RehydrationType": "FROM_SEGMENT", "SourceContactId": "c"},
        "RelatedContactId": "r",
    }
    assert invalid(validators, both).request_level
    assert not invalid(validators, {**VALID, "InstanceId": ""}).request_level


def test_attributes_are_limited_in_utf8_bytes_not_characters(validators):
    # 32768 bytes exactly pass; one more multi-byte character fails
    validators.check("StartChatContact", {**VALID, "Attributes": {"k": "x" * 32767}})
    error = invalid(validators, {**VALID, "Attributes": {"k": "é" * 16384}})
    assert error.path == "Attributes"
    # a lone surrogate does not crash the byte count
    invalid(validators, {**VALID, "Attributes": {"k": "\ud800" * 20000}})


def test_body_must_be_an_object(validators):
    assert invalid(validators, ["not", "an", "object"]).path == "body"


def test_participant_operations(validators):
    validators.check("SendMessage", {"ContentType": "text/plain", "Content": "hi"})
    assert invalid(validators, {"ContentType": "text/plain", "Content": ""}, "SendMessage").path == "Content"
    assert invalid(validators, {"ContentType": "text/plain", "Content": "x" * 1025}, "SendMessage").path == "Content"
    assert invalid(validators, {"ContentType": "text/csv", "Content": "x"}, "SendMessage").path == "ContentType"
    validators.check("CreateParticipantConnection", {"Type": ["CONNECTION_CREDENTIALS"]})
    assert invalid(validators, {"Type": []}, "CreateParticipantConnection").path == "Type"
    assert invalid(validators, {"Type": ["PIGEON"]}, "CreateParticipantConnection").path == "Type[0]"
    assert invalid(validators, {"MaxResults": 101}, "GetTranscript").path == "MaxResults"
    assert invalid(validators, {"SortOrder": "UP"}, "GetTranscript").path == "SortOrder"
    validators.check("DisconnectParticipant", {})


EVENT = "application/vnd.amazonaws.connect.event."


@pytest.mark.parametrize(
    "body",
    [
        {"ContentType": EVENT + "typing"},
        {"ContentType": EVENT + "typing", "Content": "anything", "ClientToken": "t"},
        {"ContentType": EVENT + "connection.acknowledged"},
        {"ContentType": EVENT + "message.read", "Content": '{"messageId": "11111111-aaaa-bbbb-cccc-EXAMPLE01234"}'},
        {"ContentType": EVENT + "message.delivered", "Content": '{"messageId": "m", "extra": 1}'},
    ],
)
def test_send_event_accepts_the_documented_types(validators, body):
    validators.check("SendEvent", body)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "ContentType"),
        ({"ContentType": "text/plain"}, "ContentType"),
        ({"ContentType": EVENT + "participant.joined"}, "ContentType"),  # the service's own events
        ({"ContentType": EVENT + "typing" + "x" * 100}, "ContentType"),  # the model's max 100
        ({"ContentType": EVENT + "typing", "Content": ""}, "Content"),
        ({"ContentType": EVENT + "typing", "Content": "x" * 16385}, "Content"),
        ({"ContentType": EVENT + "message.read"}, "Content"),
        ({"ContentType": EVENT + "message.read", "Content": "m-1"}, "Content"),
        ({"ContentType": EVENT + "message.read", "Content": '["m-1"]'}, "Content"),
        ({"ContentType": EVENT + "message.delivered", "Content": '{"messageId": ""}'}, "Content"),
        ({"ContentType": EVENT + "message.delivered", "Content": '{"messageId": 7}'}, "Content"),
        ({"ContentType": EVENT + "message.delivered", "Content": '{"id": "m-1"}'}, "Content"),
    ],
)
def test_send_event_refuses_other_types_and_receipts_without_a_message(validators, body, field):
    error = invalid(validators, body, "SendEvent")
    assert error.path == field and f"'{field}'" in str(error)
