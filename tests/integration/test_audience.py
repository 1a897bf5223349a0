"""What users act on, on the real broker: campaign triggers (once, not in cooldown, not again after a
restart), user-interest profiles and their erasure, and a bad rules file that stops start-up."""

import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from stream.pipeline.privacy import pseudonym
from stream.settings import settings_env
from stream.tools.broker import free_port
from stream.tools.data import tweets_stream
from stream.tools.demo import TopicReader, WorkerProcess, read_records, wait_processed
from stream.tools.produce import produce

pytestmark = pytest.mark.integration

MINUTE = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % (60 * MINUTE)  # on the hour
RULES = """
[[rule]]
name = "acme-anger"
campaign = "acme-recovery"
segment = "campaign:acme"
window = "tumbling"
min_support = 10
cooldown = "30m"
when = { negative_share = ">= 0.8" }
"""


def letters(i: int) -> str:
    """A distinct word per post (digits are cleaned away), so that no post is a duplicate text."""
    word = ""
    for _ in range(4):
        i, r = divmod(i, 26)
        word += chr(97 + r)
    return word


def angry_posts(minutes, per_minute=15, start_id=0):
    posts: list[dict[str, Any]] = []
    for m in minutes:
        for j in range(per_minute):
            i = start_id + len(posts)
            posts.append(
                {
                    "id": f"a{i}",
                    "user_id": f"u{i % 7}",
                    "campaign": "acme",
                    "text": f"Terrible awful service again, I hate this company. Worst ever {letters(i)}",
                    "created_at": T0 + m * MINUTE + j * 1000,
                }
            )
    return posts


def closer(minute, i):
    """A post that moves event time on, so that the windows before it close."""
    return {
        "id": f"c{i}",
        "user_id": "u0",
        "campaign": "acme",
        "text": f"a plain update about {letters(i)}",
        "created_at": T0 + minute * MINUTE,
    }


def read_until(settings, topic, done, timeout=60.0):
    """Records of ``topic`` (``None`` for tombstones, with their keys) until ``done(records)``."""
    reader = TopicReader(settings, topic)
    records: list[tuple[bytes | None, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for r in reader.consumer.poll(timeout_ms=200, max_records=10_000).values():
                records.extend((m.key, None if m.value is None else orjson.loads(m.value)) for m in r)
            if done(records):
                return records
    finally:
        reader.close()
    raise AssertionError(f"{topic}: condition not met within {timeout} s; got {len(records)} records")


def wait_model_version(settings, at_least, timeout=60.0):
    """Until the worker's model (its replica of the learner's) has learned ``at_least`` labels."""
    deadline = time.monotonic() + timeout
    version = 0.0
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics", timeout=10).read().decode()
        version = next(
            (float(line.split()[-1]) for line in text.splitlines() if line.startswith("stream_model_version ")), 0.0
        )
        if version >= at_least:
            return
        time.sleep(0.5)
    raise AssertionError(f"the worker's model learned {version:.0f} labels, not {at_least}, within {timeout} s")


def read_everything(settings, topic):
    """Every record of ``topic`` so far, as (key, value): read until it has been quiet for a while."""
    return read_records(settings, topic, quiet_polls=8, keys=True)


def acme_windows_through(minute):
    def done(records):
        return any(
            v
            and v.get("type") == "window"
            and v["segment"] == "campaign:acme"
            and v["kind"] == "tumbling"
            and v["start"] >= T0 + minute * MINUTE
            for _, v in records
        )

    return done


def phase(settings, posts, close_at, close_id, last_minute):
    """Send ``posts``, then a post that closes their windows; wait until the last one is published."""
    produce(settings, posts, progress=False)
    time.sleep(2)  # the closing post must come after the others (partitions are consumed independently)
    produce(settings, [closer(close_at, close_id)], progress=False)
    read_until(settings, settings.topic_audience, acme_windows_through(last_minute))


def test_a_trigger_fires_once_not_in_cooldown_not_again_after_a_restart(settings, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    # a lateness of 10 min: posts of the same phase arrive out of order across partitions
    settings = settings.replace(trigger_rules=str(rules), window_lateness=600)
    with WorkerProcess(settings, tmp_path / "w1.log") as worker:
        worker.wait_ready()
        # five angry minutes: the first window fires, the next four are within the 30 min cooldown
        phase(settings, angry_posts(range(5)), close_at=20, close_id=1, last_minute=4)
        read_until(settings, settings.topic_triggers, lambda r: len(r) >= 1)
        time.sleep(2)
        triggers = read_everything(settings, settings.topic_triggers)
    assert len(triggers) == 1, triggers
    ((key, first),) = triggers
    assert first["rule"] == "acme-anger" and first["campaign"] == "acme-recovery"
    assert first["segment"] == "campaign:acme" and key == first["id"].encode()
    assert first["window"] == {"kind": "tumbling", "start": T0, "end": T0 + MINUTE}
    assert first["figures"]["negative_share"] >= 0.8 and first["figures"]["volume"] == 15

    # a new worker restores the cooldown from the table's changelog: minutes 25-27 stay quiet ...
    with WorkerProcess(settings.replace(web_port=free_port()), tmp_path / "w2.log") as worker:
        worker.wait_ready()
        phase(settings, angry_posts(range(25, 28), start_id=1000), close_at=45, close_id=2, last_minute=27)
        time.sleep(2)
        assert read_everything(settings, settings.topic_triggers) == triggers
        # ... and once the cooldown is over the rule fires again, for the first angry window only
        phase(settings, angry_posts(range(60, 62), start_id=2000), close_at=90, close_id=3, last_minute=61)
        after = read_until(settings, settings.topic_triggers, lambda r: len(r) >= 2)
    assert [v["window"]["start"] for _, v in after] == [T0, T0 + 60 * MINUTE]


def test_profiles_are_published_and_an_erasure_removes_them(settings, tmp_path):
    settings = settings.replace(pseudonym_key="test-secret", profile_top_k=2)
    alice, bob = pseudonym("alice", "test-secret"), pseudonym("bob", "test-secret")
    warm = tweets_stream()[:60]  # labelled: the model knows the interests before alice and bob post
    mine = [
        {
            "id": f"{who}{i}",
            "user_id": who,
            "text": text + f" {letters(i + (who == 'bob') * 50)}",
            "created_at": T0 + i * 1000,
        }
        for i, (who, text) in enumerate(
            [
                ("alice", "@united my flight got delayed again at the airport"),
                ("bob", "Patriots and Brady win the Super Bowl #nfl"),
                ("alice", "@jetblue thanks for the great flight and the free drinks"),
                ("bob", "What a football game, the Seahawks defense was great"),
            ]
        )
    ]
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        worker.wait_ready(learner=True)
        produce(settings, warm, progress=False)
        wait_processed(settings, len(warm), 0, timeout=90, progress=False)
        wait_model_version(settings, len(warm) // 2)  # the learner's model has reached the worker's replica
        produce(settings, mine, progress=False)
        profiles = read_until(
            settings, settings.topic_profiles, lambda r: {alice.encode(), bob.encode()} <= {k for k, _ in r}
        )
        latest = dict(profiles)
        assert latest[alice.encode()]["posts"] == 2 and latest[bob.encode()]["posts"] == 2
        assert len(latest[bob.encode()]["top"]) == 2 and latest[bob.encode()]["user_id"] == bob

        with KafkaProducer(bootstrap_servers=settings.bootstrap_servers) as producer:
            producer.send(settings.topic_erasure, orjson.dumps({"user_id": "alice"}))
            producer.send(settings.topic_erasure, b"{not json")  # a bad request: dead letter
            producer.flush()
        tombstones = read_until(settings, settings.topic_profiles, lambda r: (alice.encode(), None) in r)
        time.sleep(2)  # the erasure reaches every worker's model replica through the training log
        later = [
            {"id": "alice9", "user_id": "alice", "text": "@united lost my bag again zzzz", "created_at": T0 + 9000},
            {"id": "bob9", "user_id": "bob", "text": "Brady throws another touchdown yyyy", "created_at": T0 + 9000},
        ]
        produce(settings, later, progress=False)
        snapshot = wait_processed(settings, len(warm) + len(mine) + 2, 0, timeout=60, progress=False)
        predictions = read_until(
            settings, settings.topic_predictions, lambda r: any(v["post_id"] == "bob9" for _, v in r)
        )
        profiles = read_until(
            settings, settings.topic_profiles, lambda r: any(k == bob.encode() and v and v["posts"] == 3 for k, v in r)
        )

    counts = snapshot["counts"]
    assert counts["erasure_requests"] == 1 and counts["erased_user_skipped"] == 1
    assert counts["profiles_erased"] == 1 and counts["erasures_applied"] == 1
    assert "alice9" not in {v["post_id"] for _, v in predictions}
    # one key is one partition, in order: alice's last record is the tombstone, bob goes on
    assert [v for k, v in profiles if k == alice.encode()][-1] is None
    assert len(tombstones) <= len(profiles)
    raw = b"".join(orjson.dumps(v) for _, v in predictions + profiles)
    assert b'"alice"' not in raw and b'"bob"' not in raw  # outputs carry pseudonyms only


def test_a_bad_rules_file_stops_start_up_with_one_line(settings, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(RULES.replace('">= 0.8"', '">= lots"'))
    env = settings_env(settings.replace(trigger_rules=str(bad)))
    proc = subprocess.run(
        [sys.executable, "-m", "stream", "worker"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"{bad}: rule 'acme-anger': field 'when.negative_share'" in lines[0]
    assert "Traceback" not in proc.stderr
