"""Bad arguments and settings: one line on stderr, no traceback, a non-zero exit."""

import subprocess
import sys

import orjson
import pytest

from models.factory import CANDIDATES


def run(*args, env=None):
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "stream", *args], capture_output=True, text=True, env=full_env, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["demo", "--events", "ten"], None, "argument --events: 'ten' is not a whole number"),
        (["produce", "x.jsonl", "--rate", "-1"], None, "argument --rate: -1 must be positive"),
        (["nonsense"], None, "invalid choice: 'nonsense'"),
        (["evaluate", "--test", "/nonexistent.jsonl"], None, "/nonexistent.jsonl: no such file"),
        (["evaluate", "--test", "tweets"], {"STREAM_MODEL": "bert"}, "STREAM_MODEL='bert' is not one of"),
        (["produce", "README.md"], {"STREAM_BROKER": "127.0.0.1:1"}, "unknown format"),
        (["compare", "tweets", "--models", "nb,gpt"], None, "unknown model 'gpt'"),
        (["bench", "--events", "0"], None, "argument --events: 0 must be at least 1"),
        (["bench", "--repeat", "0"], None, "argument --repeat: 0 must be at least 1"),
        (["evaluate", "--test", "tweets", "--holdout", "cooking"], None, "--holdout 'cooking' is not an interest"),
        (["evaluate", "--test", "tweets", "--task", "mood"], None, "argument --task: invalid choice: 'mood'"),
        (["evaluate", "--test", "tweets", "--later", "1"], None, "argument --later: 1 is not strictly between 0 and 1"),
        (["evaluate", "--test", "tweets", "--later", "0.2", "--holdout", "music"], None, "choose one"),
        (["evaluate", "--test", "tweets", "--baseline"], None, "--baseline needs posts to train on"),
        (["evaluate", "--test", "forum", "--task", "sentiment"], None, "forum has no sentiment labels to score"),
        (["produce", "tweets", "--fast"], {"STREAM_BROKER": "127.0.0.1:1"}, "unrecognized arguments: --fast"),
        (["worker", "-l", "loud"], {"STREAM_BROKER": "127.0.0.1:1"}, "worker -l 'loud' is not one of"),
        (["worker"], {"STREAM_BROKER": "kafka.example.com:9092"}, "STREAM_CHECKPOINT_KEY is the public default"),
        (["worker"], {"STREAM_BROKER": "SASL_SSL://k:9092"}, "(and STREAM_SECURITY_PROTOCOL=SASL_SSL)"),
        (["demo"], {"STREAM_LOG_LEVEL": "verbose"}, "STREAM_LOG_LEVEL='verbose' is not one of"),
    ],
)
def test_errors_are_one_line(args, env, expected):
    res = run(*args, env=env)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert expected in lines[0] and "Traceback" not in res.stderr


def test_evaluate_json_on_a_small_file(tmp_path):
    from stream.tools.data import tweets_stream

    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in tweets_stream()[:600]) + b"\n{broken\n")
    res = run("evaluate", "--test", str(path), "--json")
    assert res.returncode == 0, res.stderr
    report = orjson.loads(res.stdout)
    assert {"n", "accuracy", "macro_f1", "kappa", "events_per_s"} <= set(report)
    assert report["dead_letters"] == {"malformed_json": 1} and 0.3 < report["accuracy"] <= 1
    res = run("evaluate", "--test", str(path), "--task", "sentiment", "--json")
    assert res.returncode == 0, res.stderr
    report = orjson.loads(res.stdout)
    assert report["n"] > 500 and 0 < report["lexicon_macro_f1"] < 1 and 0 < report["macro_f1"] < 1
    assert {"accuracy", "lexicon_accuracy"} <= set(report) and len(report["detail"]["blocks"]) == 10


def test_every_model_of_the_factory_is_a_valid_setting_and_no_other():
    from stream.settings import ConfigError, Settings

    for name in CANDIDATES:
        Settings(model=name).validate()
    with pytest.raises(ConfigError, match="STREAM_MODEL='bayes' is not one of"):
        Settings(model="bayes").validate()


def test_evaluate_later_posts_against_the_batch_baseline(tmp_path):
    from stream.tools.data import tweets_stream

    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in tweets_stream()[:1000]))
    res = run("evaluate", "--test", str(path), "--later", "0.2", "--baseline", "--json")
    assert res.returncode == 0, res.stderr
    report = orjson.loads(res.stdout)
    assert report["mode"] == "frozen" and report["train"]["n"] > 700 and 150 < report["n"] <= 200
    assert [b["features"] for b in report["baseline"]] == ["words", "words and bigrams"]
    assert all(b["n"] == report["n"] and 0.3 < b["macro_f1"] <= 1 for b in report["baseline"])


def test_bench_stage_breakdown_runs_the_processor_offline():
    from stream.settings import Settings
    from stream.tools.bench import STAGES, expected_outputs
    from stream.tools.data import tweets_stream

    events = tweets_stream()[:300]
    predicted, stages = expected_outputs(Settings(), events)
    assert 250 < predicted <= 300
    assert tuple(stages) == STAGES
    assert all(v > 0 for v in stages.values()), stages


def test_bench_memory_run_reports_rss_along_the_stream():
    from stream.settings import Settings
    from stream.tools.bench import format_memory, memory_run

    rows = memory_run(Settings(feedback_capacity=50), 400, reports=4)
    assert [r["events"] for r in rows] == [100, 200, 300, 400, 400] and rows[-1]["after_gc"]
    assert all(r["rss_mb"] > 0 for r in rows)
    assert rows[-2]["pending"] == 50  # unlabelled posts wait, up to the capacity
    assert format_memory(rows).startswith("RSS after 100 events: ")


def test_sigterm_to_the_broker_command_stops_the_broker_it_started():
    """`interest-stream broker` runs the broker binary as a child: SIGTERM must not leave it listening."""
    import os
    import signal
    import socket
    import time

    from stream.tools.broker import free_port, wait_for_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream", "broker", "--port", str(port)],
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "STREAM_BROKER"},
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (0, 130)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the broker still listens on {port} after SIGTERM")
    finally:
        proc.kill()


def test_bench_memory_run_with_a_flood_of_one_off_campaigns_keeps_the_audience_bounded():
    from stream.settings import Settings
    from stream.tools.bench import memory_run

    rows = memory_run(Settings(max_segments=50, top_segments=5), 600, reports=2, distinct=True)
    assert rows[-2]["audience_series"] <= 5 + 1 + 1 + 6  # top campaigns, other, all, the interests
    # 600 one-off campaigns and 600 one-off hashtags: rows for the first 50 of each, the heavy hitters among
    # the tweets' own hashtags, `all` and the interests
    assert rows[-2]["audience_rows"] < 200
