"""Hostile but valid-looking input on the real broker, two workers: one bad record never takes a worker
down, never loses a valid post, never leaks a raw user id, and never grows state without bound.

One scenario, shared by the tests below: 1,500 real tweets (each with a campaign and a hashtag of its
own: cardinality), with hostile records mixed in on the posts, feedback and erasure topics.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import time
import urllib.request
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from stream.pipeline.cleaning import CleanPost, clean_event, retweet_key
from stream.pipeline.privacy import pseudonym
from stream.tools.broker import free_port
from stream.tools.data import tweets_stream
from stream.tools.demo import WorkerProcess, read_records
from stream.tools.produce import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]  # the scenario runs once, in the first test

KEY = "hostile-test-key"
RAW_USER = "alice-raw-user-id"
N_VALID = 1500
CONTROL = "\x00\x07\u202e\u200b\x1b"


def valid_tweets(n: int) -> list[dict[str, Any]]:
    """Tweets with distinct texts (no duplicates to drop), each with its own campaign and hashtag."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for e in tweets_stream():
        clean = clean_event(e)
        if not isinstance(clean, CleanPost) or len(retweet_key(clean.text).split()) < 3:
            continue
        key = retweet_key(clean.text)
        if key in seen:
            continue
        seen.add(key)
        i = len(out)
        out.append({**e, "campaign": f"brand-{i}", "hashtags": [f"tag{i}"]})
        if len(out) == n:
            return out
    raise AssertionError("not enough distinct tweets")


def hostile_posts(t0: int) -> dict[str, bytes]:
    """Hostile records on the posts topic, by a name the tests use."""
    base = {"user_id": "h-user", "text": "a perfectly ordinary post about flights and delays", "created_at": t0}
    return {
        # a valid post whose interest label is a 50 KB string: it must never become a class
        "huge_label": orjson.dumps({**base, "id": "h-label", "interest": "x" * 50_000}),
        # ~800 KB of garbage: its dead letter would be ~1.07 MB of base64
        "garbage": b"\xff\xfe not json " * 50_000,
        # fields of ~1 MB
        "huge_id": orjson.dumps({**base, "id": "i" * 1_000_000}),
        "huge_user": orjson.dumps({**base, "id": "h-user", "user_id": "u" * 1_000_000}),
        "huge_campaign": orjson.dumps({**base, "id": "h-campaign", "campaign": "c" * 1_000_000}),
        "huge_hashtags": orjson.dumps({**base, "id": "h-tags", "hashtags": [f"t{i}" * 400 for i in range(400)]}),
        # a post from the far future: it must not become every partition's watermark
        "future": orjson.dumps({**base, "id": "h-future", "created_at": "9999-12-31T00:00:00Z"}),
        # one rule for every form of timestamp: an ISO date before 1970 is refused like a negative epoch
        "before_1970": orjson.dumps({**base, "id": "h-1969", "created_at": "1969-12-31T23:59:59Z"}),
        # a malformed record that names a real user: its dead letter must not
        "malformed_with_user": b'{"id": "h-malformed", "user_id": "' + RAW_USER.encode() + b'", "text": "oops',
        # control characters in every field that reaches an output or a label
        "control": orjson.dumps(
            {
                **base,
                "id": f"h-ctl{CONTROL}1",
                "user_id": f"h-user{CONTROL}",
                "campaign": f"acme{CONTROL}",
                "hashtags": [f"ta{CONTROL}g"],
                "text": "ordinary words here",
            }
        ),
    }


@dataclasses.dataclass
class Scenario:
    settings: Any
    tweets: list[dict[str, Any]]
    hostile: dict[str, bytes]
    exit_codes: list[int | None]
    predictions: list[dict[str, Any]]
    letters: list[dict[str, Any]]
    audience: list[dict[str, Any]]
    profiles: list[tuple[bytes, Any]]
    snapshot: dict[str, Any]
    metrics_texts: list[str]
    erased_users: list[str]


@pytest.fixture(scope="module")
def scenario(make_settings, tmp_path_factory) -> Scenario:
    tmp = tmp_path_factory.mktemp("hostile")
    settings = make_settings(tmp / "data-1", pseudonym_key=KEY, batch_size=64)
    second = dataclasses.replace(settings, web_port=free_port(), data_dir=str(tmp / "data-2"))
    tweets = valid_tweets(N_VALID)
    t_future = len(tweets) // 3  # the far-future post comes a third of the way in
    hostile = hostile_posts(tweets[0]["created_at"])
    erased_users = sorted({t["user_id"] for t in tweets[:200]})[:5]
    ensure_topics(settings, [settings.topic_posts, settings.topic_feedback, settings.topic_erasure])
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, max_request_size=16 * 1024 * 1024, linger_ms=5
    )
    with WorkerProcess(settings, tmp / "worker-1.log") as w1, WorkerProcess(second, tmp / "worker-2.log") as w2:
        w1.wait_ready()
        w2.wait_ready()
        items = list(hostile.values())
        for i, tweet in enumerate(tweets):
            if i == t_future:
                producer.send(settings.topic_posts, key=b"h-future", value=hostile["future"])
            if i % 100 == 50 and items:  # the rest spread over the stream
                value = items.pop(0)
                if value is not hostile["future"]:
                    producer.send(settings.topic_posts, value=value)
            producer.send(settings.topic_posts, key=tweet["id"].encode(), value=orjson.dumps(tweet))
        for value in items:
            if value is not hostile["future"]:
                producer.send(settings.topic_posts, value=value)
        # feedback: a half-megabyte post id, a label of 50 KB, and real labels
        producer.send(settings.topic_feedback, orjson.dumps({"post_id": "p" * 500_000, "interest": "travel"}))
        producer.send(settings.topic_feedback, orjson.dumps({"post_id": tweets[0]["id"], "interest": "y" * 50_000}))
        producer.flush()
        valid = {t["id"] for t in tweets}
        predictions = wait_for(
            lambda: read_records(settings, settings.topic_predictions, at_least=N_VALID),
            lambda recs: valid <= {p["post_id"] for p in recs},
            timeout=120,
        )
        # erasures: a 1 MB user id first, then real users whose profiles exist by now
        producer.send(settings.topic_erasure, orjson.dumps({"user_id": "e" * 1_000_000}))
        for user in erased_users:
            producer.send(settings.topic_erasure, orjson.dumps({"user_id": user}))
        producer.flush()
        wanted = {pseudonym(u, KEY).encode() for u in erased_users}
        profiles = wait_for(
            lambda: read_records(settings, settings.topic_profiles, keys=True),
            lambda recs: wanted <= {k for k, v in recs if v is None},
            timeout=45,
        )
        time.sleep(2 * settings.metrics_interval)  # the last snapshots
        metrics_texts = [scrape(port) for port in (settings.web_port, second.web_port)]
        snapshot = last_snapshot(settings)
        exit_codes = [w1.proc.poll() if w1.proc else -1, w2.proc.poll() if w2.proc else -1]
        predictions = read_records(settings, settings.topic_predictions, at_least=N_VALID)
        letters = read_records(settings, settings.topic_dlq)
        audience = read_records(settings, settings.topic_audience)
    producer.close()
    return Scenario(
        settings,
        tweets,
        hostile,
        exit_codes,
        predictions,
        letters,
        audience,
        profiles,
        snapshot,
        metrics_texts,
        erased_users,
    )


def wait_for(read: Any, done: Any, timeout: float) -> Any:
    """``read()`` again until ``done(result)`` (or the timeout: then the last result, for the asserts)."""
    deadline = time.monotonic() + timeout
    result = read()
    while not done(result) and time.monotonic() < deadline:
        time.sleep(2)
        result = read()
    return result


def scrape(port: int) -> str:
    """A worker's /metrics ("" when it is not up: the asserts on exit codes say why)."""
    try:
        return str(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
    except OSError:
        return ""


def last_snapshot(settings: Any) -> dict[str, Any]:
    """The newest metrics snapshot of each worker, counts summed (each worker reports its own)."""
    latest: dict[Any, dict[str, Any]] = {}
    for record in read_records(settings, settings.topic_metrics):
        if record and record.get("type") == "metrics":
            latest[record.get("worker")] = record
    counts: dict[str, int] = {}
    for record in latest.values():
        for name, n in record["counts"].items():
            counts[name] = counts.get(name, 0) + n
    newest = max(latest.values(), key=lambda r: r["at"])
    return {**newest, "counts": counts}


def letter_for(scenario: Scenario, name: str) -> dict[str, Any]:
    """The dead letter of a hostile post (matched on the hash of its bytes or on its kept prefix)."""
    original = scenario.hostile[name]
    digest = hashlib.sha256(original).hexdigest()
    for d in scenario.letters:
        kept = base64.b64decode(d["original_b64"])
        if d.get("original_sha256") == digest or (kept and original.startswith(kept) and len(kept) > 20):
            return d
    raise AssertionError(f"no dead letter for {name}: {[d['reason'] for d in scenario.letters]}")


def test_no_worker_crashes_and_every_valid_post_is_predicted_once(scenario):
    """A 50 KB label, 1 MB fields and an 800 KB garbage line: both workers stay up, no valid post is lost."""
    assert scenario.exit_codes == [None, None]
    predicted = [p["post_id"] for p in scenario.predictions]
    valid = {t["id"] for t in scenario.tweets}
    assert valid <= set(predicted), f"{len(valid - set(predicted))} valid posts without a prediction"
    assert scenario.snapshot["counts"]["posts_in"] >= N_VALID + len(scenario.hostile)


def test_a_label_is_a_short_token_and_never_becomes_a_class(scenario):
    assert letter_for(scenario, "huge_label")["reason"] == "bad_label"
    classes = scenario.snapshot["model"]["classes"]
    assert classes and all(re.fullmatch(r"[a-z0-9_-]{1,64}", c) for c in classes), classes
    for p in scenario.predictions:
        assert all(len(c) <= 64 for c in p["scores"]), "a prediction carries an over-long class"


def test_no_output_exceeds_the_producers_limit_and_oversized_input_is_dead_lettered_whole(scenario):
    garbage = letter_for(scenario, "garbage")
    assert garbage["reason"] == "malformed_json"
    assert garbage["original_size"] == len(scenario.hostile["garbage"])
    assert garbage["original_sha256"] == hashlib.sha256(scenario.hostile["garbage"]).hexdigest()
    assert scenario.hostile["garbage"].startswith(base64.b64decode(garbage["original_b64"]))
    for name in ("huge_id", "huge_user", "huge_campaign", "huge_hashtags"):
        assert letter_for(scenario, name)["reason"] == "field_too_long", name
    reasons = [d["reason"] for d in scenario.letters]
    assert reasons.count("field_too_long") >= 6  # the four posts, the feedback post id, the erasure user id
    for record in scenario.letters + scenario.predictions + scenario.audience:
        assert len(orjson.dumps(record)) < 1_000_000


def test_feedback_and_erasure_survive_oversized_requests(scenario):
    counts = scenario.snapshot["counts"]
    assert counts.get("erasure_requests", 0) == len(scenario.erased_users)
    tombstones = {k.decode() for k, v in scenario.profiles if v is None and k is not None}
    assert {pseudonym(u, KEY) for u in scenario.erased_users} <= tombstones
    assert any(
        d["reason"] == "bad_label" and d["source"]["topic"] == scenario.settings.topic_feedback
        for d in scenario.letters
    )


def test_a_far_future_post_does_not_stop_the_windows(scenario):
    assert letter_for(scenario, "future")["reason"] == "bad_timestamp"
    assert letter_for(scenario, "before_1970")["reason"] == "bad_timestamp"
    later = scenario.tweets[len(scenario.tweets) // 3 + 200]["created_at"]
    closed_after = [
        w
        for w in scenario.audience
        if w and w.get("type") == "window" and w["segment"] == "all" and w["kind"] == "tumbling" and w["start"] >= later
    ]
    assert closed_after, "no window of the posts after the far-future one ever closed"
    assert all(w["end"] < 10**13 for w in scenario.audience if w and w.get("type") == "window")


def test_dead_letters_honour_pseudonyms(scenario):
    letter = letter_for(scenario, "malformed_with_user")
    assert letter["reason"] == "malformed_json"
    for d in scenario.letters:
        assert RAW_USER.encode() not in base64.b64decode(d["original_b64"])
        assert RAW_USER not in orjson.dumps(d).decode()


def test_control_characters_never_reach_an_output_or_a_label(scenario):
    (post,) = [p for p in scenario.predictions if p["post_id"].startswith("h-ctl")]
    assert post["post_id"] == "h-ctl1" and post["campaign"] == "acme" and post["hashtags"] == ["tag"]
    everything = orjson.dumps(scenario.predictions + scenario.audience).decode() + "".join(scenario.metrics_texts)
    assert not any(c in everything for c in CONTROL)


def test_campaigns_and_hashtags_have_bounded_metrics(scenario):
    """1,500 campaigns and hashtags seen once each: each worker's Prometheus shows its 50 busiest campaigns
    and `other`."""
    for text in scenario.metrics_texts:
        series = [line for line in text.splitlines() if line and not line.startswith("#")]
        campaigns = [s for s in series if s.startswith("stream_audience_volume{") and 'segment_kind="campaign"' in s]
        assert len(campaigns) <= 51 and any('segment="other"' in s for s in campaigns), len(campaigns)
        assert len(series) < 1_000, len(series)
