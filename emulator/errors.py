"""API errors the emulator answers with, and which state counter each one feeds.

The wire layer renders an ApiError as AWS's rest-json does: the HTTP status, the header
`x-amzn-ErrorType: <code>`, `x-amzn-RequestId`, and a JSON body with the message. Modelled errors
carry `Message` (botocore fills both Error.Message and the top-level Message); the front door's
throttle (TooManyRequestsException) carries API Gateway's lower-case `message`.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatload.contracts import SERVER_ERROR, THROTTLED_CONCURRENCY, THROTTLED_TPS

# code -> (HTTP status, state counter); the throttle and server-error counters are named as the
# harness's outcome classes, so that /_emulator/state is the ground truth of its classification
ERRORS: dict[str, tuple[int, str]] = {
    "TooManyRequestsException": (429, THROTTLED_TPS),
    "ThrottlingException": (429, THROTTLED_TPS),
    "LimitExceededException": (429, THROTTLED_CONCURRENCY),
    "InvalidParameterException": (400, "invalid"),
    "InvalidRequestException": (400, "invalid"),
    "ValidationException": (400, "invalid"),
    "SerializationException": (400, "invalid"),
    "RequestEntityTooLargeException": (413, "invalid"),
    "ResourceNotFoundException": (404, "not_found"),
    "ContactNotFoundException": (410, "not_found"),
    "AccessDeniedException": (403, "access_denied"),
    "MissingAuthenticationTokenException": (403, "access_denied"),
    "UnknownOperationException": (404, "not_found"),
    "InternalServiceException": (500, SERVER_ERROR),
    "InternalServerException": (500, SERVER_ERROR),
}

COUNTERS = (
    "requests",
    "accepted",
    THROTTLED_TPS,
    THROTTLED_CONCURRENCY,
    "invalid",
    "not_found",
    "access_denied",
    SERVER_ERROR,
    "retried_attempts",
    "idempotent_replays",
)

LOWERCASE_MESSAGE = frozenset({"TooManyRequestsException", "ThrottlingException"})


@dataclass
class ApiError(Exception):
    code: str
    message: str

    @property
    def status(self) -> int:
        return ERRORS[self.code][0]

    @property
    def counter(self) -> str:
        return ERRORS[self.code][1]

    def body(self) -> dict[str, str]:
        return {"message" if self.code in LOWERCASE_MESSAGE else "Message": self.message}
