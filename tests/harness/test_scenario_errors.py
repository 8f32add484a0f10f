"""Every way a scenario file can be wrong gives one line: `FILE: KEY: problem`."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatload.harness.scenario.files import adhoc_scenario, load_scenario
from chatload.harness.scenario.schema import ScenarioError

STAGE = '[[stages]]\nname = "s"\nduration = "10s"\ntarget_rate = 2\n'


def fail(tmp_path: Path, text: str, **kwargs) -> ScenarioError:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert "Traceback" not in message
    return info.value


# (file text, key named in the message, words expected in the problem)
CASES = [
    # top level
    ('nmae = "x"\n' + STAGE, "nmae", "did you mean 'name'?"),
    ('name = "has space"\n' + STAGE, "name", "letters, digits"),
    ("name = 3\n" + STAGE, "name", "must be a string, got 3"),
    ('purpose = "a\\nb"\n' + STAGE, "purpose", "one line"),
    ("users = 0\n" + STAGE, "users", "whole number from 1"),
    ("users = 2.5\n" + STAGE, "users", "whole number"),
    ("[chat]\n", "stages", "missing"),
    ("stages = []\n", "stages", "at least one"),
    ('stages = "fast"\n', "stages", "array of tables"),
    ('chat = "x"\n' + STAGE, "chat", "must be a table"),
    # stages
    (
        '[[stages]]\nduration = "10s"\ntarget_rate = "fast"\n',
        "stages[0].target_rate",
        'must be a number from 0 to 100000 (chats/s), got "fast"',
    ),
    ('[[stages]]\nduration = "10s"\ntarget_rate = -1\n', "stages[0].target_rate", "from 0 to"),
    ('[[stages]]\nduration = "10s"\ntarget_rate = true\n', "stages[0].target_rate", "got true"),
    ('[[stages]]\nduration = "10s"\ntarget_rate = inf\n', "stages[0].target_rate", "got inf"),
    ('[[stages]]\nduration = "10s"\n', "stages[0].target_rate", "missing"),
    ("[[stages]]\ntarget_rate = 1\n", "stages[0].duration", "missing"),
    ('[[stages]]\nduration = "0s"\ntarget_rate = 1\n', "stages[0].duration", "longer than 0"),
    ('[[stages]]\nduration = "soon"\ntarget_rate = 1\n', "stages[0].duration", 'got "soon"'),
    ('[[stages]]\nduration = "10s"\ntarget_rate = 1\nramp = "lineer"\n', "stages[0].ramp", "did you mean 'linear'?"),
    (
        '[[stages]]\nduration = "10s"\ntarget_rate = 1\nstart_rate = 1\n',
        "stages[0].start_rate",
        'only for ramp = "linear"',
    ),
    (
        '[[stages]]\nduration = "10s"\ntarget_rate = 1\nramp = "linear"\nstart_rate = -2\n',
        "stages[0].start_rate",
        "from 0 to",
    ),
    ('[[stages]]\nduration = "10s"\ntarget_rat = 1\n', "stages[0].target_rat", "did you mean 'target_rate'?"),
    (STAGE + STAGE, "stages[1].name", "already the name of stages[0]"),
    (STAGE.replace("= 2", "= 0"), "stages", "at least one must start chats"),
    (STAGE + '[[stages]]\nduration = "1s"\ntarget_rate = 1\nextra = 1\n', "stages[1].extra", "unknown key"),
    # chat
    (STAGE + "[chat]\nconect = true\n", "chat.conect", "did you mean 'connect'?"),
    (STAGE + '[chat]\nconnect = "yes"\n', "chat.connect", "true or false"),
    (STAGE + '[chat]\nconnect_delay = "5m"\n', "chat.connect_delay", "under 300 s"),
    (STAGE + '[chat]\nconnect_delay = "6m"\n', "chat.connect_delay", "within 5 minutes"),
    (STAGE + "[chat]\nmessages = -1\n", "chat.messages", "whole number"),
    (STAGE + "[chat]\nconnect = false\nmessages = 2\n", "chat.messages", "needs connect = true"),
    (STAGE + '[chat]\nconnect = false\nend_by = "disconnect"\n', "chat.end_by", '"stop_contact"'),
    (STAGE + '[chat]\nend_by = "hangup"\n', "chat.end_by", 'one of "disconnect", "stop_contact"'),
    (STAGE + '[chat]\npersistent = "ENTIRE_PAST_SESSIONS"\n', "chat.persistent", "did you mean 'ENTIRE_PAST_SESSION'?"),
    (STAGE + "[chat]\nchat_duration_minutes = 30\n", "chat.chat_duration_minutes", "from 60 to 10080"),
    (STAGE + '[chat]\nmessage_content_type = "text/html"\n', "chat.message_content_type", "one of"),
    (STAGE + '[chat]\nmessage_interval = "-1s"\n', "chat.message_interval", "duration"),
    (STAGE + '[chat]\nhold = "forever"\n', "chat.hold", "duration"),
    (STAGE + '[chat.hold]\ndistribution = "poisson"\nmean = "1s"\n', "chat.hold.distribution", "one of"),
    (STAGE + '[chat.hold]\ndistribution = "exponential"\n', "chat.hold.mean", "missing"),
    (STAGE + '[chat.hold]\ndistribution = "exponential"\nmean = 0\n', "chat.hold.mean", "longer than 0"),
    (STAGE + '[chat.hold]\ndistribution = "lognormal"\nmean = "5s"\nsigma = 0\n', "chat.hold.sigma", "> 0"),
    (STAGE + '[chat.hold]\ndistribution = "lognormal"\nmean = "5s"\nsigma = 9\n', "chat.hold.sigma", "<= 3"),
    (STAGE + '[chat.hold]\ndistribution = "exponential"\nmean = "5s"\nsigma = 1\n', "chat.hold.sigma", "lognormal"),
    (
        STAGE + '[chat.hold]\ndistribution = "exponential"\nmean = "5s"\nmax = "2s"\n',
        "chat.hold.max",
        "at least the mean",
    ),
    (STAGE + '[chat.hold]\nmean = "5s"\nmaximum = "9s"\n', "chat.hold.maximum", "did you mean 'max'?"),
    # retry
    (STAGE + '[retry]\nmode = "standart"\n', "retry.mode", "did you mean 'standard'?"),
    (STAGE + '[retry]\nmode = "standard"\nmax_attempts = 11\n', "retry.max_attempts", "from 1 to 10"),
    (STAGE + '[retry]\nmode = "standard"\nmax_attempts = 0\n', "retry.max_attempts", "from 1 to 10"),
    (STAGE + "[retry]\nmax_attempts = 3\n", "retry.max_attempts", 'must be 1 when mode = "off"'),
    # target
    (STAGE + '[target]\nkind = "amazon"\n', "target.kind", 'one of "emulator", "aws"'),
    (STAGE + '[target]\nkind = "aws"\n', "target.region", "missing"),
    (STAGE + '[target]\nkind = "aws"\nregion = "eu-west-2"\n', "target.instance_id", "missing"),
    (
        STAGE + '[target]\nkind = "aws"\nregion = "eu-west-2"\ninstance_id = "i"\n',
        "target.contact_flow_id",
        "missing",
    ),
    (
        STAGE
        + '[target]\nkind = "aws"\nregion = "eu-west-2"\ninstance_id = "i"\ncontact_flow_id = "f"\n'
        + "[target.emulator_config.rates]\nStartChatContact = { rate = 9, burst = 9 }\n",
        "target.emulator_config",
        'only for kind = "emulator"',
    ),
    (STAGE + '[target]\nregion = "Europe"\n', "target.region", 'such as "us-east-1"'),
    (STAGE + '[target]\ninstance_id = ""\n', "target.instance_id", "must not be empty"),
    (STAGE + '[target]\nendpoint_url = "localhost:8700"\n', "target.endpoint_url", "http://"),
    (STAGE + '[target]\nconfirm = "yes"\n', "target.confirm", "true or false"),
    (STAGE + '[target]\ninstance = "x"\n', "target.instance", "did you mean 'instance_id'?"),
    (STAGE + '[target]\nemulator_config = "fast"\n', "target.emulator_config", "must be a table"),
    (STAGE + "[target.emulator_config.rate]\nStartChatContact = 1\n", "target.emulator_config.rate", "'rates'"),
    (STAGE + "[target.emulator_config]\nrates = 5\n", "target.emulator_config.rates", "must be a table"),
    (STAGE + "[target.emulator_config.instances]\nid = 1\n", "target.emulator_config.instances", "array of tables"),
    # thresholds
    (STAGE + "[thresholds]\nmax_p95_ms = 0\n", "thresholds.max_p95_ms", "> 0"),
    (STAGE + "[thresholds]\nmin_success_share = 1.5\n", "thresholds.min_success_share", "from 0 to 1"),
    (STAGE + "[thresholds]\nmax_dropped_share = -0.1\n", "thresholds.max_dropped_share", "from 0 to 1"),
    (STAGE + "[thresholds]\nmax_p90_ms = 5\n", "thresholds.max_p90_ms", "did you mean"),
    (
        STAGE + "[thresholds.max_outcome_share]\nserver_eror = 0\n",
        "thresholds.max_outcome_share.server_eror",
        "'server_error'",
    ),
    (STAGE + "[thresholds.max_outcome_share]\nnonsense = 0\n", "thresholds.max_outcome_share.nonsense", "outcomes: ok"),
    (
        STAGE + "[thresholds.max_outcome_share]\nthrottled_tps = 2\n",
        "thresholds.max_outcome_share.throttled_tps",
        "0 to 1",
    ),
    # safety
    (STAGE + "[safety]\nmax_chats = 0\n", "safety.max_chats", ">= 1"),
    (STAGE + "[safety]\nmax_rate = 0\n", "safety.max_rate", "> 0"),
    (STAGE + "[safety]\nmax_error_share = 2\n", "safety.max_error_share", "0 to 1"),
    (STAGE + "[safety]\nmax_chat = 5\n", "safety.max_chat", "did you mean 'max_chats'?"),
]


@pytest.mark.parametrize(("text", "key", "words"), CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_each_mistake_names_file_and_key(tmp_path, text, key, words):
    error = fail(tmp_path, text)
    assert str(error).startswith(f"{tmp_path / 'bad.toml'}: {key}: "), str(error)
    assert error.key == key
    assert words in str(error), str(error)


def test_toml_syntax_error_gives_the_line(tmp_path):
    error = fail(tmp_path, '# purpose\n[[stages]]\nduration = "10s"\ntarget_rate = = 2\n')
    assert "line 4" in str(error) and "TOML syntax error" in str(error)


def test_unreadable_files(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "missing.toml")
    assert str(info.value).startswith(f"{tmp_path / 'missing.toml'}: cannot read the file")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"# caf\xe9\n" + STAGE.encode())
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert "UTF-8" in str(info.value)


def test_rate_multiplier_must_be_positive(tmp_path):
    error = fail(tmp_path, STAGE, rate_multiplier=0)
    assert "rate multiplier: must be a number > 0" in str(error)


def test_adhoc_errors_name_the_command_line():
    with pytest.raises(ScenarioError) as info:
        adhoc_scenario(-1, 10)
    assert str(info.value).startswith("command line: stages[0].target_rate:")
    with pytest.raises(ScenarioError) as info:
        adhoc_scenario(1, 0)
    assert str(info.value).startswith("command line: stages[0].duration:")
