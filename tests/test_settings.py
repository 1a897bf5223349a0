import dataclasses
from pathlib import Path

import pytest

from stream.settings import ConfigError, Settings, describe


def test_defaults_and_env():
    s = Settings.from_env({"STREAM_BROKER": "a:1,b:2", "STREAM_BATCH_WITHIN": "0.5", "STREAM_MODEL": "pa"})
    assert s.bootstrap_servers == ["a:1", "b:2"]
    assert s.broker_url == "kafka://a:1;kafka://b:2"
    assert (s.batch_within, s.model, s.topic_posts) == (0.5, "pa", "social.posts")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STREAM_MODEL": "gpt"}, "STREAM_MODEL='gpt' is not one of"),
        ({"STREAM_WEB_PORT": "70000"}, "STREAM_WEB_PORT=70000 is not a port number"),
        ({"STREAM_METRICS_INTERVAL": "0"}, "STREAM_METRICS_INTERVAL=0.0 must be positive"),
        ({"STREAM_AGGREGATE_INTERVAL": "-1"}, "STREAM_AGGREGATE_INTERVAL=-1.0 must be positive"),
        ({"STREAM_HASH_BITS": "40"}, "STREAM_HASH_BITS=40 must be between 8 and 28"),
        ({"STREAM_BROKER": " "}, "STREAM_BROKER is set but empty"),
        ({"STREAM_FETCH_MIN_BYTES": "0"}, "STREAM_FETCH_MIN_BYTES=0 must be between 1 and STREAM_MAX_MESSAGE_BYTES"),
        ({"STREAM_FETCH_GATHER_MS": "-5"}, "STREAM_FETCH_GATHER_MS=-5 must be between 0 and 10000"),
        ({"STREAM_FETCH_GATHER_MS": "nan"}, "STREAM_FETCH_GATHER_MS=nan must be between 0 and 10000"),
        ({"STREAM_STALL_TIMEOUT": "2"}, "STREAM_STALL_TIMEOUT=2 must be 0 (off) or between 5 and 86400"),
        ({"STREAM_STALL_TIMEOUT": "nan"}, "STREAM_STALL_TIMEOUT=nan must be 0 (off) or between 5 and 86400"),
    ],
)
def test_bad_values_are_one_line_errors(env, message):
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_frozen_and_documented():
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.partitions = 3  # type: ignore[misc]
    names = [name for name, _, _ in describe()]
    assert "STREAM_BROKER" in names and all(doc for _, _, doc in describe())
    table = Path("docs/configuration.md").read_text(encoding="utf-8")
    missing = [n for n in names if f"| `{n}` |" not in table]
    assert not missing, f"settings not in docs/configuration.md: {missing}"
