"""Pure helpers of the wire layer: SigV4 credential scope, the SDK's attempt header, answer encoding."""

import json

from emulator.app import _attempt, _credential, _encode
from emulator.contacts import new_token, new_uuid


def test_credential_scope_gives_access_key_and_region():
    auth = (b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/eu-west-2/connect/aws4_request, "
            b"SignedHeaders=host;x-amz-date, Signature=abc")
    assert _credential(auth) == ("AKIDEXAMPLE", "eu-west-2")
    assert _credential(b"Bearer something") == (None, "us-east-1")
    assert _credential(b"AWS4-HMAC-SHA256 Credential=") == (None, "us-east-1")
    assert _credential(b"AWS4-HMAC-SHA256 Credential=KEY") == ("KEY", "us-east-1")


def test_attempt_header():
    assert _attempt(b"attempt=1; max=3") == 1
    assert _attempt(b"attempt=3; max=3") == 3
    assert _attempt(b"attempt=x") == 1
    assert _attempt(b"ttl=20240101T000000Z; attempt=2; max=5") == 2
    assert _attempt(b"") == 1


def test_fast_encoding_equals_json():
    answer = {"ContactId": new_uuid(), "ParticipantId": new_uuid(), "ParticipantToken": new_token()}
    assert json.loads(_encode(answer)) == answer
    other = {"Message": 'quote " and \\ and é'}
    assert json.loads(_encode(other)) == other
