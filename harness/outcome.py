"""Outcome classes: every API call ends in exactly one of them (pure; no sockets, no gevent).

| outcome               | when                                                                |
|-----------------------|---------------------------------------------------------------------|
| ok                    | 2xx                                                                 |
| throttled_tps         | 429 with TooManyRequestsException or ThrottlingException            |
| throttled_concurrency | 429 with LimitExceededException (the concurrent-active-chats quota) |
| throttled_unknown     | any other 429 (e.g. a bare 429, code "429"): kept apart             |
| client_error          | any other 4xx                                                       |
| server_error          | 5xx (and any other status without a class)                          |
| timeout               | botocore ReadTimeoutError / ConnectTimeoutError (no response)       |
| connection_error      | no response: refused, reset, closed, DNS, proxy, ...                |
| dropped               | an arrival no idle customer could take on time (never a call)        |
"""

from __future__ import annotations

from botocore import exceptions as bce

from chatload.contracts import (
    CLIENT_ERROR,
    CONNECTION_ERROR,
    OK,
    SERVER_ERROR,
    THROTTLED_CONCURRENCY,
    THROTTLED_TPS,
    THROTTLED_UNKNOWN,
    TIMEOUT,
)

# 429 error codes with a known meaning; any other code on a 429 is throttled_unknown.
_THROTTLE_CODES = {
    "TooManyRequestsException": THROTTLED_TPS,
    "ThrottlingException": THROTTLED_TPS,
    "LimitExceededException": THROTTLED_CONCURRENCY,
}


def classify(http_status: int, error_code: str = "") -> str:
    """The outcome of a call that got an HTTP response."""
    if 200 <= http_status < 300:
        return OK
    if http_status == 429:
        return _THROTTLE_CODES.get(error_code, THROTTLED_UNKNOWN)
    if 400 <= http_status < 500:
        return CLIENT_ERROR
    return SERVER_ERROR


def classify_error(exc: Exception) -> tuple[str, int, str]:
    """(outcome, http_status, error_code) of a call that raised `exc`.

    ClientError carries the response; a call without a response is a timeout or a connection error
    (or a client_error when the SDK refused to send it), its error_code the exception's class name
    (no message: messages may carry addresses or ids).
    """
    if isinstance(exc, bce.ClientError):
        response = exc.response
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        code = str(response.get("Error", {}).get("Code") or "")
        return classify(status, code), status, code
    if isinstance(exc, bce.ReadTimeoutError | bce.ConnectTimeoutError):
        return TIMEOUT, 0, type(exc).__name__
    if isinstance(exc, bce.ConnectionError | bce.HTTPClientError | OSError):
        return CONNECTION_ERROR, 0, type(exc).__name__
    # the SDK refused before sending (ParamValidationError, NoCredentialsError, ...): our side's error
    return CLIENT_ERROR, 0, type(exc).__name__


class CallFailed(Exception):
    """What Locust is told when a call did not succeed: only the outcome and the error code.

    Locust groups its failures table by str(exception), so one row per class and code, never one
    per message or request id; and no message text (which could carry anything) reaches a report.
    """

    def __init__(self, outcome: str, error_code: str) -> None:
        super().__init__(f"{outcome} {error_code}".rstrip())
        self.outcome = outcome
        self.error_code = error_code

    def __repr__(self) -> str:  # Locust's failures table shows repr(): keep it the bare text
        return str(self)

    def __reduce__(self):  # picklable for Locust's master/worker messages
        return (CallFailed, (self.outcome, self.error_code))
