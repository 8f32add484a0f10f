"""Classification of every call into exactly one outcome class (no sockets)."""

import pytest
from botocore import exceptions as bce

from chatload.contracts import CALL_OUTCOMES
from chatload.harness.outcome import CallFailed, classify, classify_error


def client_error(status: int, code: str) -> bce.ClientError:
    response = {"Error": {"Code": code, "Message": "Rate exceeded"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return bce.ClientError(response, "StartChatContact")


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (200, "", "ok"),
        (204, "", "ok"),
        (429, "TooManyRequestsException", "throttled_tps"),
        (429, "ThrottlingException", "throttled_tps"),
        (429, "LimitExceededException", "throttled_concurrency"),
        (429, "429", "throttled_unknown"),
        (429, "", "throttled_unknown"),
        (429, "SlowDown", "throttled_unknown"),
        (400, "InvalidRequestException", "client_error"),
        (403, "AccessDeniedException", "client_error"),
        (404, "ResourceNotFoundException", "client_error"),
        (410, "ContactNotFoundException", "client_error"),
        (500, "InternalServiceException", "server_error"),
        (503, "ServiceUnavailableException", "server_error"),
    ],
)
def test_responses_are_classified_by_status_and_code(status, code, outcome):
    assert classify(status, code) == outcome
    assert classify_error(client_error(status, code)) == (outcome, status, code)


def test_limit_exceeded_is_only_concurrency_on_a_429():
    assert classify(400, "LimitExceededException") == "client_error"


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (bce.ReadTimeoutError(endpoint_url="http://x"), "timeout"),
        (bce.ConnectTimeoutError(endpoint_url="http://x"), "timeout"),
        (bce.EndpointConnectionError(endpoint_url="http://x"), "connection_error"),
        (bce.ConnectionClosedError(endpoint_url="http://x"), "connection_error"),
        (ConnectionResetError(104, "reset"), "connection_error"),
        (bce.ParamValidationError(report="bad"), "client_error"),
    ],
)
def test_calls_without_a_response(exc, outcome):
    got, status, code = classify_error(exc)
    assert (got, status, code) == (outcome, 0, type(exc).__name__)


def test_every_class_is_reachable():
    seen = {
        classify(s, c)
        for s, c in [
            (200, ""),
            (429, "ThrottlingException"),
            (429, "LimitExceededException"),
            (429, "429"),
            (400, "X"),
            (500, "X"),
        ]
    }
    seen |= {
        classify_error(bce.ReadTimeoutError(endpoint_url="u"))[0],
        classify_error(bce.EndpointConnectionError(endpoint_url="u"))[0],
    }
    assert seen == set(CALL_OUTCOMES)


def test_locust_failure_text_is_class_and_code_only():
    failure = CallFailed("throttled_tps", "TooManyRequestsException")
    assert str(failure) == repr(failure) == "throttled_tps TooManyRequestsException"
    assert str(CallFailed("timeout", "")) == "timeout"
    import pickle

    assert str(pickle.loads(pickle.dumps(failure))) == str(failure)
