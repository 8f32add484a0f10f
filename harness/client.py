"""boto3 clients for one process, and the timed, classified call every customer makes.

In a process that runs users, `import locust` (gevent's patching) must come before this module:
the locustfile imports locust first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from greenlet import getcurrent

from chatload.contracts import (
    CREATE_CONNECTION,
    DEFAULT_ACCESS_KEY,
    DEFAULT_REGION,
    DEFAULT_SECRET_KEY,
    DISCONNECT,
    GET_TRANSCRIPT,
    RETRY_MODES,
    SEND_MESSAGE,
    START_CHAT,
    STOP_CONTACT,
)
from chatload.harness.customer import Call
from chatload.harness.outcome import classify, classify_error

# Operations a customer makes, and the client (connect or participant) that serves each.
CONNECT_OPERATIONS = {START_CHAT: "start_chat_contact", STOP_CONTACT: "stop_contact"}
PARTICIPANT_OPERATIONS = {
    CREATE_CONNECTION: "create_participant_connection",
    SEND_MESSAGE: "send_message",
    DISCONNECT: "disconnect_participant",
    GET_TRANSCRIPT: "get_transcript",
}


@dataclass(frozen=True)
class ClientSettings:
    """How this process talks to Connect. endpoint_url None = the standard AWS chain
    (AWS_ENDPOINT_URL_CONNECT, profile, region) for the aws target."""

    target: str = "emulator"
    endpoint_url: str | None = None
    participant_endpoint_url: str | None = None  # None: endpoint_url
    region: str = DEFAULT_REGION
    retry_mode: str = "off"
    max_attempts: int = 1
    pool_size: int = 10
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0

    @property
    def attempts_pinned(self) -> int:
        """HTTP attempts per call the SDK may make (1 with retries off)."""
        return 1 if self.retry_mode == "off" else max(1, self.max_attempts)


def retries_config(settings: ClientSettings) -> dict[str, Any]:
    """botocore's retries setting, always explicit so AWS_RETRY_MODE / config files cannot change it."""
    if settings.retry_mode not in RETRY_MODES:
        raise ValueError(f"retry mode {settings.retry_mode!r}: expected one of {', '.join(RETRY_MODES)}")
    if settings.retry_mode == "off":
        return {"mode": "standard", "total_max_attempts": 1}
    return {"mode": settings.retry_mode, "total_max_attempts": settings.attempts_pinned}


def botocore_config(settings: ClientSettings, *, unsigned: bool = False) -> Config:
    kwargs: dict[str, Any] = {
        "region_name": settings.region,
        "retries": retries_config(settings),
        "max_pool_connections": max(10, settings.pool_size),
        "connect_timeout": settings.connect_timeout_s,
        "read_timeout": settings.read_timeout_s,
        "tcp_keepalive": True,
    }
    if unsigned:
        kwargs["signature_version"] = botocore.UNSIGNED
    return Config(**kwargs)


# botocore's DEBUG lines carry request headers (X-Amz-Bearer: the participant and connection tokens)
# and response bodies (the tokens again): never let them reach a log, whatever --loglevel says.
SDK_LOGGERS = ("botocore", "boto3", "s3transfer")


def quiet_sdk_logs() -> None:
    """Cap the SDK's loggers at INFO, so `--loglevel DEBUG` cannot print tokens."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def make_clients(settings: ClientSettings) -> tuple[Any, Any]:
    """(connect, connectparticipant) boto3 clients. The participant client is unsigned: its calls
    authenticate by the participant or connection token header, not by SigV4."""
    quiet_sdk_logs()
    if settings.target == "emulator":
        session = boto3.session.Session(
            aws_access_key_id=DEFAULT_ACCESS_KEY,
            aws_secret_access_key=DEFAULT_SECRET_KEY,
            region_name=settings.region,
        )
    else:
        session = boto3.session.Session(region_name=settings.region)
    connect_url = settings.endpoint_url
    participant_url = settings.participant_endpoint_url or connect_url
    connect = session.client(
        "connect", config=botocore_config(settings), **({"endpoint_url": connect_url} if connect_url else {})
    )
    participant = session.client(
        "connectparticipant",
        config=botocore_config(settings, unsigned=True),
        **({"endpoint_url": participant_url} if participant_url else {}),
    )
    return connect, participant


class Api:
    """Makes calls through the two clients, timing and classifying each.

    With retries on, a `needs-retry` hook (it returns None, so it never changes the SDK's decision)
    notes the first attempt's status and code and counts attempts, also for calls that end without
    a response. With retries off there is nothing to count and no hook is installed.
    """

    def __init__(self, connect: Any, participant: Any, attempts_pinned: int = 1) -> None:
        self._methods = {op: getattr(connect, name) for op, name in CONNECT_OPERATIONS.items()}
        self._methods.update({op: getattr(participant, name) for op, name in PARTICIPANT_OPERATIONS.items()})
        self._track = attempts_pinned > 1
        self._first: dict[Any, list] = {}  # greenlet -> [attempts, first status, first code, first exc]
        if self._track:
            connect.meta.events.register("needs-retry", self._on_needs_retry)
            participant.meta.events.register("needs-retry", self._on_needs_retry)

    def _on_needs_retry(self, attempts: int, response: Any = None, caught_exception: Any = None, **_: Any) -> None:
        note = self._first.get(getcurrent())
        if note is not None:
            note[0] = attempts
            if attempts == 1:
                if response is not None:
                    http, parsed = response
                    note[1] = http.status_code
                    note[2] = (parsed or {}).get("Error", {}).get("Code", "")
                else:
                    note[3] = caught_exception
        return None

    def call(self, operation: str, **kwargs: Any) -> Call:
        method = self._methods[operation]
        note = None
        if self._track:
            note = self._first[getcurrent()] = [0, 0, "", None]
        t_start = time.time()
        t0 = time.perf_counter()
        try:
            response = method(**kwargs)
            latency_ms = (time.perf_counter() - t0) * 1000.0
            status = response["ResponseMetadata"]["HTTPStatusCode"]
            attempts = response["ResponseMetadata"].get("RetryAttempts", 0) + 1
            outcome, code = classify(status), ""
        except ClientError as exc:
            latency_ms = (time.perf_counter() - t0) * 1000.0
            response = None
            outcome, status, code = classify_error(exc)
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        except (BotoCoreError, OSError) as exc:
            latency_ms = (time.perf_counter() - t0) * 1000.0
            response = None
            outcome, status, code = classify_error(exc)
            attempts = max(1, note[0]) if note is not None else 1
        finally:
            if note is not None:
                del self._first[getcurrent()]
        first = outcome
        if note is not None and note[0] > 1:  # retried: the first attempt's outcome as the hook saw it
            first = classify_error(note[3])[0] if note[3] is not None else classify(note[1], note[2])
        return Call(operation, outcome, status, code, attempts, first, t_start, latency_ms, response)
