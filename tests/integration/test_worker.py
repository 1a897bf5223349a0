"""A real worker process on the real broker: predictions, dead letters and metrics, end to end."""

import base64
import time
import urllib.request

import orjson
import pytest

from stream.pipeline.cleaning import CleanPost, clean_event, retweet_key
from stream.pipeline.processor import Processor
from stream.tools.data import FAULTS, inject_faults, tweets_stream
from stream.tools.demo import TopicReader, WorkerProcess, wait_processed
from stream.tools.evaluate import run
from stream.tools.produce import produce
from tests.integration.conftest import BackgroundLoad

pytestmark = pytest.mark.integration


def read_all(settings, topic, want, timeout=60.0):
    """Records of ``topic`` until ``want`` arrived (or the timeout)."""
    reader = TopicReader(settings, topic)
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < want and time.monotonic() < deadline:
            out.extend(reader.poll())
        time.sleep(1.0)  # and anything extra (a duplicate) that follows
        out.extend(reader.poll())
    finally:
        reader.close()
    return out


def test_worker_predicts_each_valid_post_once_and_dead_letters_the_rest(settings, tmp_path):
    tweets = tweets_stream()[:400]
    events = list(inject_faults(tweets, rate=0.05, seed=3))
    text_of = {e["id"]: retweet_key(c.text) for e in tweets if isinstance(c := clean_event(e), CleanPost)}
    # What the worker must publish, from the same processor run offline over the same records.
    offline = Processor(settings)
    run(offline, events)
    n_valid = offline.stats.outcomes["predicted"]
    n_bad = offline.stats.outcomes["dead_lettered"]
    assert n_bad >= 10 and n_valid + n_bad + offline.stats.outcomes["duplicates"] == len(events)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        worker.wait_ready(learner=True)
        # over ~3 s: the worker's replica gets the learner's model every second (STREAM_DELTA_INTERVAL)
        sent = produce(settings, events, rate=150, feedback_fraction=0.3, feedback_delay=20, progress=False)
        snapshot = wait_processed(settings, sent.posts, sent.feedback, timeout=120, progress=False)
        counts = snapshot["counts"]
        predictions = [orjson.loads(v) for v in read_all(settings, settings.topic_predictions, n_valid)]
        letters = [orjson.loads(v) for v in read_all(settings, settings.topic_dlq, n_bad)]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics").read().decode()

    # exactly one prediction per valid post (a redelivered post is dropped as a duplicate id)
    ids = [p["post_id"] for p in predictions]
    assert len(ids) == len(set(ids)) == n_valid == counts["predicted"]
    # the same posts as offline; of two copies of one text, the one that came first is kept, and which
    # came first depends on how the four partitions interleave: compare texts, not ids
    assert {text_of[i] for i in ids} == {text_of[i] for i in offline.seen_ids}
    # the model learns while the stream runs (how many posts come before the 50th label is learned and in
    # the replica depends on how fast the worker takes them in, so only that some do after it)
    trained = [p["interest"] for p in predictions if p["model_version"] >= 50]
    assert trained and counts["learned_inline"] + counts["learned_feedback"] >= 300
    assert set(trained) <= {"travel", "sports", "automotive", "technology", "music", "health"}
    # every malformed record is in the dead-letter topic, with its reason and its bytes
    assert len({(d["source"]["partition"], d["source"]["offset"]) for d in letters}) == n_bad
    assert {d["reason"] for d in letters} == {reason for reason, _ in FAULTS}
    for d in letters:  # the faults carry ids "<id>-bad<k>"; their bytes come back unchanged
        assert d["source"]["topic"] == settings.topic_posts and d["source"]["offset"] >= 0
        original = base64.b64decode(d["original_b64"])
        assert original.startswith(b'{"id":"t') and b"-bad" in original and d["detail"]
    # labels: some inline, some from the feedback topic
    assert counts["learned_inline"] > 0 and counts["learned_feedback"] > 0
    assert snapshot["quality"]["n"] > 0 and 0 < snapshot["quality"]["accuracy"] <= 1
    # the same figures on /metrics, next to Faust's own sensors
    assert f'stream_events_total{{outcome="predicted"}} {float(counts["predicted"])}' in metrics
    assert 'stream_dead_letters_total{reason="malformed_json"}' in metrics
    assert "stream_prequential_macro_f1" in metrics and "faust_messages_received" in metrics


def test_a_worker_that_gathers_larger_fetches_still_takes_a_quiet_stream(make_settings, tmp_path):
    """With ``STREAM_FETCH_MIN_BYTES`` far above what a quiet stream brings, the broker still answers each
    fetch when ``STREAM_FETCH_WAIT_MS`` runs out: every post is predicted, once."""
    settings = make_settings(tmp_path / "data", fetch_min_bytes=1_000_000, fetch_wait_ms=100)
    events = tweets_stream()[:30]  # about 10 KB in all
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        worker.wait_ready()
        sent = produce(settings, events, rate=20, progress=False)
        snapshot = wait_processed(settings, sent.posts, 0, timeout=120, progress=False)
        predictions = [orjson.loads(v) for v in read_all(settings, settings.topic_predictions, len(events))]
    ids = [p["post_id"] for p in predictions]
    assert sorted(ids) == sorted({str(e["id"]) for e in events}) and snapshot["counts"]["predicted"] == len(events)


def test_a_steady_stream_makes_the_worker_ask_each_fetch_for_more(make_settings, tmp_path):
    """With ``STREAM_FETCH_GATHER_MS``, what the worker's fetches ask for (``stream_fetch_min_bytes``)
    rises above ``STREAM_FETCH_MIN_BYTES`` while posts come, and falls back to it once they stop; every
    post is predicted, once."""
    import re

    settings = make_settings(tmp_path / "data", fetch_gather_ms=100)
    events = tweets_stream()[:1500]
    offline = Processor(settings)  # what the worker must publish: the same processor, offline
    run(offline, events)
    n_valid = offline.stats.outcomes["predicted"]

    def asked() -> float:
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics").read().decode()
        found = re.search(r"^stream_fetch_min_bytes ([0-9.e+]+)$", metrics, re.M)
        assert found, "stream_fetch_min_bytes is not on /metrics"
        return float(found.group(1))

    def until(condition, timeout: float) -> list[float]:
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen.append(asked())
            if condition(seen[-1]):
                break
            time.sleep(0.2)
        return seen

    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        worker.wait_ready()
        assert asked() == settings.fetch_min_bytes  # nothing fetched yet
        sending = BackgroundLoad(settings, events, rate=300)
        while_sending = until(lambda v: v > settings.fetch_min_bytes, timeout=60)
        sending.join()
        snapshot = wait_processed(settings, len(events), 0, timeout=120, progress=False)
        after = until(lambda v: v == settings.fetch_min_bytes, timeout=60)
        predictions = [orjson.loads(v) for v in read_all(settings, settings.topic_predictions, n_valid)]
    # 300 posts/s of ~300 bytes each: 100 ms of it is some 9 KB a fetch
    assert max(while_sending) > 1_000, while_sending
    assert after[-1] == settings.fetch_min_bytes, after
    ids = [p["post_id"] for p in predictions]
    assert len(ids) == len(set(ids)) == n_valid == snapshot["counts"]["predicted"]
