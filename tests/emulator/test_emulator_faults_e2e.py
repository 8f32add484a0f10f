"""Fault injection end to end: a real emulator, real boto3 clients, client-measured effects and counters."""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from support import connect_client, participant_client, wait_for
from support import start_chat as start

from chatload.contracts import DEFAULT_INSTANCE_ID as INSTANCE
from chatload.emulator_control import ConfigRejected, running_emulator

pytestmark = pytest.mark.e2e

ROOMY = {"rates": {"StartChatContact": {"rate": 1000, "burst": 1000}, "DescribeContact": {"rate": 1000, "burst": 1000}}}
NO_FAULTS = {"faults": None, "emulator": {"time_scale": 1}}


def timed(call, *args, **kwargs):
    began = time.monotonic()
    result = call(*args, **kwargs)
    return time.monotonic() - began, result


def raw_request(port, request=b"PUT /contact/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(request)
    return sock


@pytest.fixture(scope="module")
def emu():
    with running_emulator(ROOMY) as handle:
        yield handle


@pytest.fixture
def fresh(emu):
    emu.put_config(NO_FAULTS)
    emu.reset()
    yield emu
    emu.put_config(NO_FAULTS)


def test_fixed_latency_delays_that_operation_only(fresh):
    fresh.put_config({"faults": {"StartChatContact": {"latency": {"distribution": "fixed", "mean_ms": 200}}}})
    connect = connect_client(fresh.url)
    contacts = []
    for _ in range(4):
        took, chat = timed(start, connect)
        assert took >= 0.2
        contacts.append(chat["ContactId"])
    for contact in contacts:  # no faults on DescribeContact: as fast as ever
        took, _ = timed(connect.describe_contact, InstanceId=INSTANCE, ContactId=contact)
        assert took < 0.1
    state = fresh.state()
    assert state["faults"]["StartChatContact"]["delayed"] == 4
    assert state["operations"]["StartChatContact"]["accepted"] == 4  # a slow answer is still an answer
    assert set(state["faults"]["DescribeContact"].values()) == {0}


def test_delayed_calls_are_not_serialised(fresh):
    fresh.put_config({"faults": {"StartChatContact": {"latency": {"mean_ms": 500}}}})
    clients = [connect_client(fresh.url) for _ in range(10)]
    with ThreadPoolExecutor(10) as pool:
        began = time.monotonic()
        futures = [pool.submit(timed, start, client) for client in clients]
        time.sleep(0.1)
        state_took, state = timed(fresh.state)  # the event loop is free while ten answers wait
        latencies = [future.result()[0] for future in futures]
        wall = time.monotonic() - began
    assert state_took < 0.2 and state["faults"]["StartChatContact"]["delayed"] == 10
    assert min(latencies) >= 0.5
    assert wall < 1.5  # one delay, not ten (5 s)


def test_time_scale_shortens_the_delay(fresh):
    fresh.put_config({"emulator": {"time_scale": 10}, "faults": {"StartChatContact": {"latency": {"mean_ms": 3000}}}})
    connect = connect_client(fresh.url)
    for _ in range(3):
        took, _ = timed(start, connect)
        assert 0.3 <= took < 1.5  # 3 emulated seconds at 10 emulated seconds per real second


def test_server_error_and_service_unavailable_shares(fresh):
    fresh.put_config(
        {
            "faults": {
                "StartChatContact": {"server_error_share": 1.0},
                "CreateParticipantConnection": {"server_error_share": 1.0},
                "DescribeContact": {"service_unavailable_share": 1.0},
            }
        }
    )
    connect, participant = connect_client(fresh.url), participant_client(fresh.url)
    for _ in range(5):
        with pytest.raises(ClientError) as caught:
            start(connect)
        response = caught.value.response
        assert response["Error"]["Code"] == "InternalServiceException"
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert response["ResponseMetadata"]["RequestId"]
    with pytest.raises(ClientError) as caught:
        connect.describe_contact(InstanceId=INSTANCE, ContactId="c-1")
    assert caught.value.response["Error"]["Code"] == "ServiceUnavailableException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    fresh.put_config({"faults": {"StartChatContact": None}})
    token = start(connect)["ParticipantToken"]
    with pytest.raises(ClientError) as caught:
        participant.create_participant_connection(ParticipantToken=token, Type=["CONNECTION_CREDENTIALS"])
    assert caught.value.response["Error"]["Code"] == "InternalServerException"
    state = fresh.state()
    assert state["faults"]["StartChatContact"]["server_error"] == 5
    assert state["faults"]["DescribeContact"]["service_unavailable"] == 1
    assert state["faults"]["CreateParticipantConnection"]["server_error"] == 1
    # injected failures never reach the service: no token, no slot, not in `operations`
    assert state["operations"]["StartChatContact"]["requests"] == 1
    assert state["operations"]["StartChatContact"]["server_error"] == 0
    assert state["operations"]["DescribeContact"]["requests"] == 0
    assert state["operations"]["CreateParticipantConnection"]["requests"] == 0
    assert state["instances"][INSTANCE]["active_chats"] == 1


def test_reset_share_resets_the_connection(fresh):
    fresh.put_config({"faults": {"StartChatContact": {"reset_share": 1.0}}})
    connect = connect_client(fresh.url)
    for _ in range(3):
        with pytest.raises(ConnectionClosedError):
            start(connect)
    with raw_request(fresh.port) as sock, pytest.raises(ConnectionResetError):
        sock.recv(100)  # a TCP reset, not an answer and not a clean close
    state = fresh.state()
    assert state["faults"]["StartChatContact"]["reset"] == 4
    assert state["operations"]["StartChatContact"]["requests"] == 0


def test_no_answer_until_the_client_times_out(fresh):
    fresh.put_config({"faults": {"StartChatContact": {"no_answer_share": 1.0}}})
    connect = connect_client(fresh.url, read_timeout=1, connect_timeout=1)
    began = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        start(connect)
    assert time.monotonic() - began >= 1.0
    # the held request is let go as soon as its client hangs up
    assert wait_for(lambda: fresh.state()["no_answer_held"] == 0)
    with raw_request(fresh.port):
        assert wait_for(lambda: fresh.state()["no_answer_held"] == 1)
    assert wait_for(lambda: fresh.state()["no_answer_held"] == 0)
    state = fresh.state()
    assert state["faults"]["StartChatContact"]["no_answer"] == 2
    assert state["faults"]["StartChatContact"]["no_answer_closed"] == 0
    assert state["operations"]["StartChatContact"]["requests"] == 0


def test_a_never_answered_request_is_closed_at_the_cap(fresh):
    fresh.put_config({"faults": {"no_answer_max_real_s": 0.3, "StartChatContact": {"no_answer_share": 1.0}}})
    connect = connect_client(fresh.url, read_timeout=10)
    took = time.monotonic()
    with pytest.raises(ConnectionClosedError):
        start(connect)
    assert 0.3 <= time.monotonic() - took < 5
    state = fresh.state()
    assert state["faults"]["StartChatContact"]["no_answer"] == 1
    assert state["faults"]["StartChatContact"]["no_answer_closed"] == 1
    assert state["no_answer_held"] == 0


def test_a_delay_past_the_client_timeout_is_abandoned_after_the_work(fresh):
    fresh.put_config({"faults": {"StartChatContact": {"latency": {"mean_ms": 3000}}}})
    connect = connect_client(fresh.url, read_timeout=0.5)
    with pytest.raises(ReadTimeoutError):
        start(connect)
    assert wait_for(lambda: fresh.state()["faults"]["StartChatContact"]["abandoned"] == 1, timeout_s=2)
    state = fresh.state()
    assert state["faults"]["StartChatContact"]["delayed"] == 1
    assert state["operations"]["StartChatContact"]["accepted"] == 1  # done on arrival, answer lost
    assert state["instances"][INSTANCE]["active_chats"] == 1


def test_a_later_window_leaves_early_calls_untouched(fresh):
    # 5..10 emulated seconds at time_scale 10: open from 0.5 s to 1 s real after the reset
    fresh.put_config(
        {
            "emulator": {"time_scale": 10},
            "faults": {"StartChatContact": {"server_error_share": 1, "window": [5, "10s"]}},
        }
    )
    fresh.reset()
    connect = connect_client(fresh.url)
    start(connect)
    assert fresh.state()["elapsed_s"] < 5
    assert wait_for(lambda: fresh.state()["elapsed_s"] >= 5.5)
    with pytest.raises(ClientError, match="InternalServiceException"):
        start(connect)
    assert wait_for(lambda: fresh.state()["elapsed_s"] >= 10)
    start(connect)
    state = fresh.state()
    assert state["faults"]["StartChatContact"]["server_error"] == 1
    assert state["operations"]["StartChatContact"]["accepted"] == 2


def test_a_seed_reproduces_the_faults_after_a_reset(fresh):
    fresh.put_config({"faults": {"seed": 2024, "StartChatContact": {"server_error_share": 0.5}}})
    connect = connect_client(fresh.url)

    def outcomes():
        seen = []
        for _ in range(16):
            try:
                start(connect)
                seen.append("ok")
            except ClientError:
                seen.append("500")
        return seen

    first = outcomes()
    assert "ok" in first and "500" in first
    fresh.reset()
    assert outcomes() == first
    assert fresh.state()["faults"]["StartChatContact"]["server_error"] == first.count("500")


def test_put_validates_merges_and_clears_faults(fresh):
    with pytest.raises(ConfigRejected, match=r"faults\.StartChatContact\.reset_share") as caught:
        fresh.put_config({"faults": {"StartChatContact": {"reset_share": 2}}})
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigRejected, match=r"faults\.default\.latency\.distribution"):
        fresh.put_config({"faults": {"default": {"latency": {"distribution": "gauss", "mean_ms": 1}}}})
    assert set(fresh.config()["faults"]) == {"no_answer_max_real_s"}  # a refused patch changes nothing
    fresh.put_config({"faults": {"default": {"reset_share": 0.1}}})
    merged = fresh.put_config({"faults": {"default": {"window": ["60s", "90s"]}}})
    assert merged["faults"]["default"]["reset_share"] == 0.1
    assert merged["faults"]["default"]["window"] == [60.0, 90.0]
    assert fresh.put_config({"faults": None})["faults"] == {"no_answer_max_real_s": 600.0}


def test_shutdown_does_not_wait_for_held_requests():
    with running_emulator({"faults": {"default": {"no_answer_share": 1.0}}}) as emu:
        held = [raw_request(emu.port) for _ in range(3)]
        assert wait_for(lambda: emu.state()["no_answer_held"] == 3)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 1.5  # no 2 s graceful-shutdown wait
    assert emu.process.returncode == 0
    for sock in held:
        sock.close()
