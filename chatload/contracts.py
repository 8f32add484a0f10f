"""The names every part of chatload shares, defined once (pure: imports nothing of the project).

The harness writes what these name, the emulator answers by them and the analysis reads them; the
public contracts they belong to are in architecture.md (attempts columns, summary.json, exit codes,
the emulator's defaults). Extend them freely; never rename one: run folders and CI jobs depend on them.
"""

from __future__ import annotations

# ---------------------------------------------------------------- outcome classes (one per call)

OK = "ok"
THROTTLED_TPS = "throttled_tps"  # 429 TooManyRequestsException / ThrottlingException: API rate
THROTTLED_CONCURRENCY = "throttled_concurrency"  # 429 LimitExceededException: concurrent chats quota
THROTTLED_UNKNOWN = "throttled_unknown"  # any other 429, kept apart
CLIENT_ERROR = "client_error"
SERVER_ERROR = "server_error"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
DROPPED = "dropped"  # an arrival no idle customer could take on time: never a call

# In the order tables, plots and the live view show them.
CALL_OUTCOMES = (
    OK,
    THROTTLED_TPS,
    THROTTLED_CONCURRENCY,
    THROTTLED_UNKNOWN,
    CLIENT_ERROR,
    SERVER_ERROR,
    TIMEOUT,
    CONNECTION_ERROR,
)
OUTCOMES = (*CALL_OUTCOMES, DROPPED)
THROTTLES = (THROTTLED_TPS, THROTTLED_CONCURRENCY, THROTTLED_UNKNOWN)
ERRORS = (CLIENT_ERROR, SERVER_ERROR, TIMEOUT, CONNECTION_ERROR)
# What the kill switch counts as "something is wrong" (throttles the run was built to find are not).
UNEXPECTED_OUTCOMES = (THROTTLED_UNKNOWN, *ERRORS)

# ---------------------------------------------------------------- operations

START_CHAT = "StartChatContact"
STOP_CONTACT = "StopContact"
DESCRIBE_CONTACT = "DescribeContact"
CREATE_CONNECTION = "CreateParticipantConnection"
SEND_MESSAGE = "SendMessage"
SEND_EVENT = "SendEvent"
DISCONNECT = "DisconnectParticipant"
GET_TRANSCRIPT = "GetTranscript"
CONNECT_OPERATIONS = (START_CHAT, STOP_CONTACT, DESCRIBE_CONTACT)
PARTICIPANT_OPERATIONS = (CREATE_CONNECTION, SEND_MESSAGE, SEND_EVENT, DISCONNECT, GET_TRANSCRIPT)
# Calls that end a chat as the harness sees it (the first ok one ends it).
ENDING_OPERATIONS = (DISCONNECT, STOP_CONTACT)
# The customer's Participant Service websocket, as the harness measures it (one row per event; the
# analysis's "Chat experience" section): the upgrade, the subscribe frame, a sent message's echo, the
# first frame from another participant after StartChatContact, the chat.ended frame after the ending
# call; a heartbeat left unanswered (outcome timeout) and a socket closed unexpectedly (connection_error).
WEBSOCKET_CONNECT = "WebSocketConnect"
SUBSCRIBE = "Subscribe"
MESSAGE_DELIVERY = "MessageDelivery"
FIRST_RESPONSE = "FirstResponse"
CHAT_ENDED_DELIVERY = "ChatEndedDelivery"
HEARTBEAT = "Heartbeat"
WEBSOCKET_CLOSE = "WebSocketClose"
CHAT_EXPERIENCE_OPERATIONS = (
    WEBSOCKET_CONNECT,
    SUBSCRIBE,
    MESSAGE_DELIVERY,
    FIRST_RESPONSE,
    CHAT_ENDED_DELIVERY,
    HEARTBEAT,
    WEBSOCKET_CLOSE,
)

# ---------------------------------------------------------------- attempts rows (run folder)

# The attempts contract (architecture.md section 3), in order, with its types; then our own columns.
ATTEMPTS_CONTRACT_COLUMNS: dict[str, str] = {
    "t_intended": "float64",
    "t_start": "float64",
    "latency_ms": "float64",
    "operation": "string",
    "outcome": "string",
    "http_status": "int",
    "error_code": "string",
    "attempts": "int",
    "stage": "string",
    "worker": "string",
    "chat": "string",
    "contact_id": "string",
}
ATTEMPTS_EXTRA_COLUMNS: dict[str, str] = {
    "first_outcome": "string",  # outcome of the first HTTP attempt (equals outcome with retries off)
    "start_lag_ms": "float64",  # how late the call started after the pacer's intended time
    # StartChatContact's idempotency token: lets the coordinator find a chat whose answer a killed
    # worker never recorded (it authorizes nothing, so it is no secret)
    "client_token": "string",
}
ATTEMPTS_TYPES: dict[str, str] = {**ATTEMPTS_CONTRACT_COLUMNS, **ATTEMPTS_EXTRA_COLUMNS}
ATTEMPTS_COLUMNS = tuple(ATTEMPTS_TYPES)
FLOAT_COLUMNS = tuple(c for c, kind in ATTEMPTS_TYPES.items() if kind == "float64")
INT_COLUMNS = tuple(c for c, kind in ATTEMPTS_TYPES.items() if kind == "int")

# ---------------------------------------------------------------- exit codes (chatload run, Locust, report)

EXIT_OK = 0  # thresholds passed
EXIT_THRESHOLD = 1  # a threshold failed
EXIT_INVALID = 2  # invalid run or bad input (scenario, arguments)
EXIT_CODES = (EXIT_OK, EXIT_THRESHOLD, EXIT_INVALID)

# ---------------------------------------------------------------- regression gates ([thresholds.regression])

# Relative drop of each stage's accepted rate, relative rise of each operation's p95 (successful
# calls), absolute rise of each throttle class's share of StartChatContact calls, against a baseline.
REGRESSION_KEYS = ("max_accepted_rate_drop", "max_p95_increase", "max_throttle_share_increase")

# ---------------------------------------------------------------- SDK retry modes

RETRY_MODES = ("off", "standard", "adaptive", "legacy")  # "off": standard with one attempt
DEFAULT_ATTEMPTS = {"off": 1, "standard": 3, "adaptive": 3, "legacy": 5}  # botocore's defaults

# ---------------------------------------------------------------- AWS's default quotas (connect-facts.md)

# Service Quotas codes of the quotas a run is about.
START_CHAT_QUOTA_CODE = "L-AA48CD49"  # StartChatContact rate, per account per Region
CONCURRENT_CHATS_QUOTA_CODE = "L-D4BA6F6E"  # concurrent active chats, per instance

# Connect API rates per account per Region: operation -> (rate per second, burst).
DEFAULT_CONNECT_RATES: dict[str, tuple[float, float]] = {
    START_CHAT: (5.0, 8.0),
    STOP_CONTACT: (10.0, 15.0),
    DESCRIBE_CONTACT: (10.0, 15.0),
    "default": (2.0, 5.0),
}
# Participant Service rates per instance: operation -> (rate per second, burst).
DEFAULT_PARTICIPANT_RATES: dict[str, tuple[float, float]] = {
    CREATE_CONNECTION: (6.0, 9.0),
    SEND_MESSAGE: (10.0, 15.0),
    SEND_EVENT: (10.0, 15.0),
    DISCONNECT: (3.0, 5.0),
    GET_TRANSCRIPT: (8.0, 12.0),
    "default": (2.0, 5.0),
}
DEFAULT_START_CHAT_RATE, DEFAULT_START_CHAT_BURST = DEFAULT_CONNECT_RATES[START_CHAT]
DEFAULT_CONCURRENT_CHATS = 500

# ---------------------------------------------------------------- the emulator's defaults

# The emulator's built-in configuration has one instance with one contact flow; the default
# scenario targets them.
DEFAULT_INSTANCE_ID = "11111111-2222-4333-8444-555555555555"
DEFAULT_CONTACT_FLOW_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
DEFAULT_REGION = "us-east-1"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700
DEFAULT_EMULATOR_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
# Dummy credentials for talking to the emulator (it does not verify signatures).
DEFAULT_ACCESS_KEY = "AKIDCHATLOAD"
DEFAULT_SECRET_KEY = "chatload"
# The line the emulator prints once it listens; a parent process reads the port from it.
LISTENING_LINE = "chatload emulator listening on "
# boto3's own endpoint convention: the first variable set names the endpoint of each client
# (an explicit --endpoint-url wins over them).
CONNECT_ENDPOINT_ENV = ("AWS_ENDPOINT_URL_CONNECT", "AWS_ENDPOINT_URL")
PARTICIPANT_ENDPOINT_ENV = ("AWS_ENDPOINT_URL_CONNECTPARTICIPANT", "AWS_ENDPOINT_URL")


def endpoint_from_env(names: tuple[str, ...], environ: dict[str, str]) -> str | None:
    """The first of the variables `names` that is set (not empty) in `environ`, else None."""
    return next((environ[name].strip() for name in names if environ.get(name, "").strip()), None)


# ---------------------------------------------------------------- arrival processes (scenario [arrivals])

UNIFORM = "uniform"  # evenly spaced: a constant rate r starts a chat every 1/r seconds
POISSON = "poisson"  # independent customers: a Poisson process following the schedule's rate
ARRIVAL_PROCESSES = (UNIFORM, POISSON)
