"""Which endpoint a run talks to: --endpoint-url, else boto3's AWS_ENDPOINT_URL_* variables, else the
scenario's endpoint_url, else the local emulator (pure: no sockets)."""

from __future__ import annotations

from types import SimpleNamespace

from chatload.contracts import DEFAULT_EMULATOR_URL
from chatload.harness.runtime.options import endpoints, resolve

CONNECT = "http://127.0.0.1:9001"
PARTICIPANT = "http://127.0.0.1:9002"


def test_the_flag_wins_over_everything():
    env = {"AWS_ENDPOINT_URL_CONNECT": CONNECT, "AWS_ENDPOINT_URL": PARTICIPANT}
    assert endpoints("http://127.0.0.1:7000", "http://127.0.0.1:7001", "emulator", env) == (
        "http://127.0.0.1:7000",
        "http://127.0.0.1:7000",
    )


def test_each_client_takes_its_own_variable():
    env = {"AWS_ENDPOINT_URL_CONNECT": CONNECT, "AWS_ENDPOINT_URL_CONNECTPARTICIPANT": PARTICIPANT}
    assert endpoints("", None, "emulator", env) == (CONNECT, PARTICIPANT)
    assert endpoints("", None, "aws", env) == (CONNECT, PARTICIPANT)


def test_the_generic_variable_serves_both_and_the_specific_one_wins():
    assert endpoints("", None, "emulator", {"AWS_ENDPOINT_URL": CONNECT}) == (CONNECT, CONNECT)
    env = {"AWS_ENDPOINT_URL": CONNECT, "AWS_ENDPOINT_URL_CONNECTPARTICIPANT": PARTICIPANT}
    assert endpoints("", None, "emulator", env) == (CONNECT, PARTICIPANT)


def test_the_variables_win_over_the_scenario_file_and_empty_ones_do_not_count():
    scenario_url = "http://127.0.0.1:7001"
    assert endpoints("", scenario_url, "emulator", {"AWS_ENDPOINT_URL_CONNECT": CONNECT}) == (CONNECT, CONNECT)
    assert endpoints("", scenario_url, "emulator", {"AWS_ENDPOINT_URL_CONNECT": "  "}) == (scenario_url, scenario_url)


def test_without_anything_the_emulator_default_or_the_sdk_chain():
    assert endpoints("", None, "emulator", {}) == (DEFAULT_EMULATOR_URL, DEFAULT_EMULATOR_URL)
    assert endpoints("", None, "aws", {}) == (None, None)


def test_resolve_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_CONNECT", CONNECT)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CONNECTPARTICIPANT", PARTICIPANT)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    options = SimpleNamespace(scenario="ci-smoke", endpoint_url="", rate_multiplier="1")
    settings = resolve(options)
    assert (settings.endpoint_url, settings.participant_endpoint_url) == (CONNECT, PARTICIPANT)
    monkeypatch.delenv("AWS_ENDPOINT_URL_CONNECT")
    monkeypatch.delenv("AWS_ENDPOINT_URL_CONNECTPARTICIPANT")
    settings = resolve(SimpleNamespace(scenario="ci-smoke", endpoint_url="", rate_multiplier="1"))
    assert settings.endpoint_url == DEFAULT_EMULATOR_URL


def test_clients_take_their_own_endpoints():
    from chatload.harness.client import ClientSettings, make_clients

    connect, participant = make_clients(ClientSettings(endpoint_url=CONNECT, participant_endpoint_url=PARTICIPANT))
    assert (connect.meta.endpoint_url, participant.meta.endpoint_url) == (CONNECT, PARTICIPANT)
    connect, participant = make_clients(ClientSettings(endpoint_url=CONNECT))
    assert participant.meta.endpoint_url == CONNECT


def test_without_an_endpoint_boto3_reads_its_own_variables(monkeypatch):
    from chatload.harness.client import ClientSettings, make_clients

    monkeypatch.setenv("AWS_ENDPOINT_URL_CONNECT", CONNECT)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CONNECTPARTICIPANT", PARTICIPANT)
    connect, participant = make_clients(ClientSettings(target="aws", endpoint_url=None))
    assert (connect.meta.endpoint_url, participant.meta.endpoint_url) == (CONNECT, PARTICIPANT)
