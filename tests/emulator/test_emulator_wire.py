"""Pure helpers of the wire layer: SigV4 credential scope, the SDK's attempt header, answer encoding."""

import json

from chatload.emulator.app import _attempt, _credential, _encode
from chatload.emulator.contacts import new_token, new_uuid


def test_credential_scope_gives_access_key_and_region():
    auth = (
        b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/eu-west-2/connect/aws4_request, "
        b"SignedHeaders=host;x-amz-date, Signature=abc"
    )
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


def call_app(app, method, path, body=b"", headers=()):
    """Run one request through the ASGI app in-process; (status, headers dict, JSON body)."""
    import asyncio

    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }
    asyncio.run(app(scope, receive, send))
    start, answer = sent
    return start["status"], dict(start["headers"]), json.loads(answer["body"])


AUTH = ("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/connect/aws4_request, S=1")


def make_test_app():
    from chatload.emulator.app import make_app
    from chatload.emulator.clock import FakeClock
    from chatload.emulator.config import EmulatorConfig
    from chatload.emulator.model import ChatStore

    store = ChatStore(EmulatorConfig(), clock=FakeClock())
    return store, make_app(store)


def test_a_bug_is_a_500_with_the_error_shape_and_counted():
    store, app = make_test_app()

    def broken(call, now):
        raise RuntimeError("bug")

    store._ops["StopContact"] = broken
    status, headers, body = call_app(app, "POST", "/contact/stop", b"{}", [AUTH])
    assert status == 500 and headers[b"x-amzn-errortype"] == b"InternalServiceException"
    assert body["Message"] and headers[b"x-amzn-requestid"]
    assert store.counters["StopContact"]["server_error"] == 1
    assert store.counters["StopContact"]["requests"] == 1


def test_describe_contact_path_members_are_unquoted():
    from chatload.contracts import DEFAULT_INSTANCE_ID

    _, app = make_test_app()
    arn = f"arn:aws:connect:us-east-1:000000000000:instance/{DEFAULT_INSTANCE_ID}"
    status, headers, body = call_app(app, "GET", f"/contacts/{arn.replace('/', '%2F')}/missing", b"", [AUTH])
    assert (status, headers[b"x-amzn-errortype"]) == (404, b"ResourceNotFoundException")
    assert "missing" in body["Message"]  # the instance (given as an ARN) was found, the contact was not


def test_an_absurd_content_length_is_refused_as_too_large():
    _, app = make_test_app()
    status, headers, _ = call_app(app, "PUT", "/contact/chat", b"{}", [AUTH, ("Content-Length", "9" * 40)])
    assert (status, headers[b"x-amzn-errortype"]) == (413, b"RequestEntityTooLargeException")
