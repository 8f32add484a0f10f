"""The wire layer: a raw ASGI app that routes rest-json requests to the model and renders answers.

Routes (one port): Connect `PUT /contact/chat`, `POST /contact/stop`, `GET /contacts/{InstanceId}/{ContactId}`;
Participant Service `POST /participant/{connection,message,event,disconnect,transcript}`; admin
`GET /_emulator/health`, `GET /_emulator/state`, `POST /_emulator/reset`, `GET|PUT /_emulator/config`;
the chat websocket (ASGI "websocket" scope, `/connect/<url token>`) is handed to websocket.py.

Every error carries its status, `x-amzn-ErrorType`, `x-amzn-RequestId` and a JSON message body, the
shape botocore parses into ClientError. Signatures are not verified: the access key and region are
read from the SigV4 `Authorization` header's Credential scope; a retry is recognised by the SDK's
`amz-sdk-request: attempt=N` header. Bodies over 1 MiB are refused (413) without being read.

Injected faults ([faults], faults.py) are carried out here, once the request is routed and before
the model sees it: a 500 or 503 answer, a connection reset (http_stack.reset_connection: a TCP RST,
no answer), or no answer at all (held until the client hangs up, or
no_answer_max_real_s). An added latency waits (asyncio, never blocking the loop) for
latency / time_scale real seconds after the model's work and before the answer, and gives up as soon
as the client hangs up. With no faults configured the only cost is one empty-dict test per request.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from chatload.contracts import (
    CREATE_CONNECTION,
    DESCRIBE_CONTACT,
    DISCONNECT,
    GET_TRANSCRIPT,
    SEND_EVENT,
    SEND_MESSAGE,
    START_CHAT,
    STOP_CONTACT,
)
from chatload.emulator.config import ConfigError, config_to_dict, merge_config
from chatload.emulator.contacts import new_uuid
from chatload.emulator.errors import ApiError
from chatload.emulator.faults import (
    ABANDONED,
    NO_ANSWER,
    NO_ANSWER_CLOSED,
    RESET,
    SERVER_ERROR,
    SERVICE_UNAVAILABLE,
    Fault,
)
from chatload.emulator.http_stack import reset_connection
from chatload.emulator.model import Call, ChatStore
from chatload.emulator.websocket import Hub

MAX_BODY = 1024 * 1024
ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

ROUTES: dict[tuple[str, str], str] = {
    ("PUT", "/contact/chat"): START_CHAT,
    ("POST", "/contact/stop"): STOP_CONTACT,
    ("POST", "/participant/connection"): CREATE_CONNECTION,
    ("POST", "/participant/message"): SEND_MESSAGE,
    ("POST", "/participant/event"): SEND_EVENT,
    ("POST", "/participant/disconnect"): DISCONNECT,
    ("POST", "/participant/transcript"): GET_TRANSCRIPT,
}
PARTICIPANT = frozenset({CREATE_CONNECTION, SEND_MESSAGE, SEND_EVENT, DISCONNECT, GET_TRANSCRIPT})

_JSON = (b"content-type", b"application/json")
_dumps = json.dumps


def _encode(payload: Any) -> bytes:
    """JSON bytes of an answer. StartChatContact's usual answer (three ids and a token made only of
    [A-Za-z0-9_-] characters by contacts.py) is formatted directly: it is the hot path."""
    if payload.__class__ is dict and len(payload) == 3 and "ParticipantToken" in payload:
        return (
            f'{{"ContactId":"{payload["ContactId"]}","ParticipantId":"{payload["ParticipantId"]}",'
            f'"ParticipantToken":"{payload["ParticipantToken"]}"}}'
        ).encode()
    return _dumps(payload).encode()


_loads = json.loads

# Set in the scope while a request waits on purpose: the server stack (http_stack.FastProtocol) may
# then close its connection at once on shutdown.
WAITING = "chatload.waiting"
RESET_WAIT_S = 1.0  # how long to wait for the stack to report a reset connection lost


def _credential(auth: bytes) -> tuple[str | None, str]:
    """(access key, region) from `AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, ...`."""
    start = auth.find(b"Credential=")
    if start < 0:
        return None, "us-east-1"
    end = auth.find(b",", start)
    parts = auth[start + 11 : end if end >= 0 else len(auth)].strip().split(b"/")
    key = parts[0].decode("latin-1")
    region = parts[2].decode("latin-1") if len(parts) > 2 and parts[2] else "us-east-1"
    return (key or None), region


def _attempt(value: bytes) -> int:
    start = value.find(b"attempt=")
    if start < 0:
        return 1
    digits = value[start + 8 :].split(b";", 1)[0].strip()
    return int(digits) if digits.isdigit() and len(digits) < 6 else 1


def make_app(store: ChatStore) -> ASGIApp:
    """The ASGI application serving `store`."""

    async def respond(send: Callable, status: int, payload: Any, error: str | None = None) -> None:
        body = _encode(payload)
        headers = [_JSON, (b"content-length", b"%d" % len(body)), (b"x-amzn-requestid", new_uuid().encode())]
        if error is not None:
            headers.append((b"x-amzn-errortype", error.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def read_body(receive: Callable, declared: int) -> bytes | None:
        """The request body, or None when it is (or is declared) over MAX_BODY."""
        if declared > MAX_BODY:
            return None
        message = await receive()
        body = message.get("body", b"")
        while message.get("more_body", False):
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                return None
        return body if len(body) <= MAX_BODY else None

    def parse(raw: bytes | None) -> Any:
        if raw is None:
            return ApiError("RequestEntityTooLargeException", "Request body exceeds the limit of 1 MiB")
        if not raw:
            return {}
        try:
            return _loads(raw)
        except (ValueError, RecursionError):
            return ApiError("SerializationException", "Could not parse the request body as JSON")

    async def admin(scope: dict, receive: Callable, send: Callable, method: str, path: str, declared: int) -> None:
        if path == "/_emulator/health" and method == "GET":
            await respond(send, 200, {"status": "ok"})
        elif path == "/_emulator/state" and method == "GET":
            await respond(send, 200, store.state())
        elif path == "/_emulator/reset" and method == "POST":
            store.reset()
            await respond(send, 200, {"status": "reset"})
        elif path == "/_emulator/config" and method == "GET":
            await respond(send, 200, config_to_dict(store.config))
        elif path == "/_emulator/config" and method == "PUT":
            patch = parse(await read_body(receive, declared))
            try:
                if isinstance(patch, ApiError):
                    raise ConfigError(f"PUT /_emulator/config: {patch.message}")
                store.apply_config(merge_config(store.config, patch, "PUT /_emulator/config"))
            except ConfigError as error:
                await respond(send, 400, {"message": str(error)}, "InvalidRequestException")
                return
            await respond(send, 200, config_to_dict(store.config))
        else:
            store.unknown_requests += 1
            await respond(send, 404, {"message": f"No admin endpoint {method} {path}"}, "UnknownOperationException")

    async def route(scope: dict, receive: Callable, send: Callable) -> tuple[str, Call] | None:
        """The operation and call of a request, or None when it was answered here (admin, unknown)."""
        method = scope["method"]
        path = scope["path"]
        operation = ROUTES.get((method, path))
        call = Call()
        declared = 0
        for name, value in scope["headers"]:
            if name == b"authorization":
                call.access_key, call.region = _credential(value)
            elif name == b"amz-sdk-request":
                call.attempt = _attempt(value)
            elif name == b"x-amz-bearer":
                call.bearer = value.decode("latin-1")
            elif name == b"host":
                call.host = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                declared = int(value) if len(value) < 16 else MAX_BODY + 1
        if operation is not None:
            call.body = parse(await read_body(receive, declared))
            return operation, call
        if path.startswith("/_emulator/"):
            await admin(scope, receive, send, method, path, declared)
            return None
        parts = scope["raw_path"].split(b"/")
        if method == "GET" and len(parts) == 4 and parts[1] == b"contacts":
            call.instance_id = unquote(parts[2].decode("latin-1"))
            call.contact_id = unquote(parts[3].decode("latin-1"))
            return DESCRIBE_CONTACT, call
        store.unknown_requests += 1
        await respond(send, 404, {"message": f"No operation {method} {path}"}, "UnknownOperationException")
        return None

    async def internal_error(send: Callable, operation: str | None) -> None:
        """A bug: log it, answer like AWS would, keep serving."""
        traceback.print_exc(file=sys.stderr)
        if operation is not None:
            store.counters[operation]["server_error"] += 1
        code = "InternalServerException" if operation in PARTICIPANT else "InternalServiceException"
        await respond(send, 500, {"Message": "Internal error in the emulator"}, code)

    faults = store.faults
    hub = Hub(store)

    async def client_left(scope: dict, receive: Callable, real_s: float) -> bool:
        """Wait up to `real_s` real seconds (without blocking the loop); True as soon as the client hangs
        up (its request body, if still unread, is drained on the way)."""

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        scope[WAITING] = True
        try:
            await asyncio.wait_for(disconnected(), real_s)
            return True
        except TimeoutError:
            return False
        finally:
            scope[WAITING] = False

    async def reset(scope: dict, receive: Callable, send: Callable) -> None:
        if reset_connection(send):
            await client_left(scope, receive, RESET_WAIT_S)  # the stack then knows it is gone: no 500

    def served(operation: str, call: Call) -> tuple[int, Any, str | None]:
        """The model's answer as (status, payload, error code), for the faulted path."""
        try:
            return 200, store.handle(operation, call), None
        except ApiError as error:
            return error.status, error.body(), error.code
        except Exception:
            traceback.print_exc(file=sys.stderr)
            store.counters[operation]["server_error"] += 1
            code = "InternalServerException" if operation in PARTICIPANT else "InternalServiceException"
            return 500, {"Message": "Internal error in the emulator"}, code

    async def faulted(scope: dict, receive: Callable, send: Callable, operation: str, call: Call, fault: Fault) -> None:
        """Carry out an injected fault (already counted by faults.decide)."""
        kind = fault.kind
        if kind == NO_ANSWER:
            faults.held += 1
            try:
                gone = await client_left(scope, receive, faults.config.no_answer_max_real_s)
            finally:
                faults.held -= 1
            if not gone:
                faults.count(operation, NO_ANSWER_CLOSED)
                await reset(scope, receive, send)
            return
        if kind == SERVER_ERROR:
            code = "InternalServerException" if operation in PARTICIPANT else "InternalServiceException"
            status, payload, error = 500, {"Message": "Internal error (injected by the emulator)"}, code
        elif kind == SERVICE_UNAVAILABLE:
            status, payload, error = 503, {"message": "Service Unavailable"}, "ServiceUnavailableException"
        elif kind is None:  # added latency only: the service does its work now and answers late
            status, payload, error = served(operation, call)
        else:
            status, payload, error = 0, None, None  # a reset: nothing to answer
        if fault.delay_s > 0 and await client_left(scope, receive, fault.delay_s / store.clock.time_scale):
            faults.count(operation, ABANDONED)
            return
        if kind == RESET:
            await reset(scope, receive, send)
            return
        await respond(send, status, payload, error)

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if hub.ticker is None:
            hub.start()
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await hub.serve(scope, receive, send)
            return
        try:
            routed = await route(scope, receive, send)
        except Exception:
            await internal_error(send, None)
            return
        if routed is None:
            return
        operation, call = routed
        if faults.plans:
            fault = faults.decide(operation)
            if fault is not None:
                await faulted(scope, receive, send, operation, call, fault)
                return
        try:
            result = store.handle(operation, call)
        except ApiError as error:
            await respond(send, error.status, error.body(), error.code)
            return
        except Exception:
            await internal_error(send, operation)
            return
        await respond(send, 200, result)

    return app
