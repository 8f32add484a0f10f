"""boto3 client settings: retries pinned, pool size, timeouts, unsigned participant client; attempt counting."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore
import pytest

from chatload.harness.client import Api, ClientSettings, botocore_config, make_clients, retries_config


def test_retries_off_is_standard_with_one_attempt():
    assert retries_config(ClientSettings()) == {"mode": "standard", "total_max_attempts": 1}


@pytest.mark.parametrize("mode", ["standard", "adaptive", "legacy"])
def test_retry_modes_are_explicit(mode):
    assert retries_config(ClientSettings(retry_mode=mode, max_attempts=4)) == {"mode": mode, "total_max_attempts": 4}


def test_unknown_retry_mode_is_refused():
    with pytest.raises(ValueError, match="retry mode"):
        retries_config(ClientSettings(retry_mode="sometimes"))


def test_pool_timeouts_and_signing(monkeypatch):
    monkeypatch.setenv("AWS_RETRY_MODE", "legacy")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "7")
    settings = ClientSettings(endpoint_url="http://127.0.0.1:9", pool_size=250, connect_timeout_s=2, read_timeout_s=9)
    config = botocore_config(settings)
    assert config.max_pool_connections == 250
    assert (config.connect_timeout, config.read_timeout) == (2, 9)
    connect, participant = make_clients(settings)
    assert connect.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert connect.meta.config.max_pool_connections == 250
    assert participant.meta.config.signature_version is botocore.UNSIGNED
    assert connect.meta.endpoint_url == participant.meta.endpoint_url == "http://127.0.0.1:9"
    assert connect.meta.region_name == "us-east-1"
    assert connect._request_signer._credentials.access_key == "AKIDCHATLOAD"


def test_small_pools_keep_botocore_minimum():
    assert botocore_config(ClientSettings(pool_size=2)).max_pool_connections == 10


class _Throttler(BaseHTTPRequestHandler):
    """Answers 429 TooManyRequestsException to the first `fail` requests, then 200."""

    fail = 1
    seen = 0

    def do_PUT(self):
        type(self).seen += 1
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if type(self).seen <= type(self).fail:
            body, status = json.dumps({"message": "Rate exceeded"}).encode(), 429
            headers = {"x-amzn-ErrorType": "TooManyRequestsException"}
        else:
            body = json.dumps({"ContactId": "c-1", "ParticipantId": "p", "ParticipantToken": "secret-token"}).encode()
            status, headers = 200, {}
        self.send_response(status)
        for k, v in {"content-type": "application/json", "x-amzn-RequestId": "r", **headers}.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def throttler():
    _Throttler.seen = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Throttler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


START = {"InstanceId": "i", "ContactFlowId": "f", "ParticipantDetails": {"DisplayName": "d"}}


def test_retried_call_counts_attempts_and_first_outcome(throttler):
    _server, url = throttler
    settings = ClientSettings(endpoint_url=url, retry_mode="standard", max_attempts=3)
    api = Api(*make_clients(settings), settings.attempts_pinned)
    call = api.call("StartChatContact", **START)
    assert (call.outcome, call.attempts, call.first_outcome, call.http_status) == ("ok", 2, "throttled_tps", 200)
    assert _Throttler.seen == 2


def test_retries_off_sees_the_raw_429(throttler):
    _server, url = throttler
    settings = ClientSettings(endpoint_url=url)
    api = Api(*make_clients(settings), settings.attempts_pinned)
    call = api.call("StartChatContact", **START)
    assert (call.outcome, call.error_code, call.attempts, call.first_outcome) == (
        "throttled_tps",
        "TooManyRequestsException",
        1,
        "throttled_tps",
    )
    assert call.response is None and call.latency_ms > 0


def test_all_attempts_throttled(throttler):
    _server, url = throttler
    _Throttler.fail = 99
    try:
        settings = ClientSettings(endpoint_url=url, retry_mode="standard", max_attempts=3)
        api = Api(*make_clients(settings), settings.attempts_pinned)
        call = api.call("StartChatContact", **START)
    finally:
        _Throttler.fail = 1
    assert (call.outcome, call.attempts, call.first_outcome) == ("throttled_tps", 3, "throttled_tps")


def test_no_answer_is_a_connection_error():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    settings = ClientSettings(endpoint_url=f"http://127.0.0.1:{port}", retry_mode="standard", max_attempts=2)
    api = Api(*make_clients(settings), settings.attempts_pinned)
    call = api.call("StartChatContact", **START)
    assert (call.outcome, call.http_status, call.error_code) == ("connection_error", 0, "EndpointConnectionError")
    assert call.attempts == 2 and call.first_outcome == "connection_error"
