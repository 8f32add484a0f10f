"""Emulator configuration: defaults, the TOML file, errors and live merges."""

import pytest

from chatload.contracts import DEFAULT_CONTACT_FLOW_ID, DEFAULT_INSTANCE_ID
from chatload.emulator.config import ConfigError, EmulatorConfig, Rate, config_to_dict, load_config, merge_config
from chatload.emulator_control import to_toml


def test_built_in_default_is_one_instance_with_aws_quotas():
    config = load_config(None)
    assert list(config.instances) == [DEFAULT_INSTANCE_ID]
    instance = config.instances[DEFAULT_INSTANCE_ID]
    assert instance.contact_flows == (DEFAULT_CONTACT_FLOW_ID,)
    assert instance.concurrent_chats == 500
    assert config.rates["StartChatContact"] == Rate(5, 8)
    assert config.rates["StopContact"] == config.rates["DescribeContact"] == Rate(10, 15)
    assert config.connect_rate("SomethingElse") == Rate(2, 5)
    assert config.participant_rates["CreateParticipantConnection"] == Rate(6, 9)
    assert config.participant_rates["SendMessage"] == Rate(10, 15)
    assert config.participant_rates["SendEvent"] == Rate(10, 15)  # shares SendMessage's quota figures
    assert config.participant_rates["DisconnectParticipant"] == Rate(3, 5)
    assert config.participant_rates["GetTranscript"] == Rate(8, 12)
    assert (config.time_scale, config.unconnected_timeout_s, config.retention_s) == (1.0, 300.0, 3600.0)
    assert config.throttle_message == "Rate exceeded"


def test_the_architecture_example_file_loads(tmp_path):
    path = tmp_path / "emulator.toml"
    path.write_text("""
[emulator]
time_scale = 60.0
unconnected_timeout_s = 0
retention_s = 10
throttle_message = "Too Many Requests"

[rates]
StartChatContact = { rate = 50, burst = 80 }

[participant_rates]
SendMessage = { rate = 100, burst = 150 }

[[instances]]
id = "inst-a"
concurrent_chats = 3
contact_flows = ["flow-1", "flow-2"]
""")
    config = load_config(path)
    assert config.time_scale == 60.0 and config.unconnected_timeout_s == 0 and config.retention_s == 10
    assert config.throttle_message == "Too Many Requests"
    assert config.rates["StartChatContact"] == Rate(50, 80)
    assert config.rates["StopContact"] == Rate(10, 15)  # untouched keys keep their defaults
    assert config.participant_rates["SendMessage"] == Rate(100, 150)
    assert list(config.instances) == ["inst-a"]  # a file listing instances replaces the default one
    assert config.instances["inst-a"].contact_flows == ("flow-1", "flow-2")


def test_round_trip_through_dict_and_toml(tmp_path):
    config = merge_config(EmulatorConfig(), {"instances": [{"id": "x", "concurrent_chats": 1}]})
    path = tmp_path / "c.toml"
    path.write_text(to_toml(config_to_dict(config)))
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[emulator]\ntime_scale = 0\n", "emulator.time_scale"),
        ("[emulator]\ntime_scale = 'fast'\n", "emulator.time_scale"),
        ("[emulator]\nretention_s = -1\n", "emulator.retention_s"),
        ("[emulator]\ncolour = 'red'\n", "emulator.colour"),
        ("[rates]\nStartChatContact = { rate = 5, burst = 'x' }\n", "rates.StartChatContact.burst"),
        ("[rates]\nStartChatContact = { rate = 5, bust = 8 }\n", "rates.StartChatContact.bust"),
        ("[rates]\nNewOp = { rate = 5 }\n", "rates.NewOp"),
        ("[[instances]]\nconcurrent_chats = 5\n", "instances[0].id"),
        ("[[instances]]\nid = 'a'\nconcurrent_chats = -5\n", "instances[0].concurrent_chats"),
        ("[[instances]]\nid = 'a'\ncontact_flows = 'f'\n", "instances[0].contact_flows"),
        ("[limits]\nx = 1\n", "limits"),
        ("[emulator\n", "not valid TOML"),
    ],
)
def test_bad_files_give_one_line_naming_file_and_key(tmp_path, text, where):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and where in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_merge_instances_by_id_and_rates_key_by_key():
    config = EmulatorConfig()
    merged = merge_config(
        config,
        {
            "instances": [{"id": DEFAULT_INSTANCE_ID, "concurrent_chats": 1000}, {"id": "second"}],
            "rates": {"StartChatContact": {"rate": 20}},
            "emulator": {"time_scale": 10},
        },
    )
    assert merged.instances[DEFAULT_INSTANCE_ID].concurrent_chats == 1000
    assert merged.instances[DEFAULT_INSTANCE_ID].contact_flows == (DEFAULT_CONTACT_FLOW_ID,)
    assert merged.instances["second"].concurrent_chats == 500
    assert merged.rates["StartChatContact"] == Rate(20, 8)
    assert merged.time_scale == 10
    assert config.instances[DEFAULT_INSTANCE_ID].concurrent_chats == 500  # the original is unchanged
