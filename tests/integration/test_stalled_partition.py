"""A worker that stops reading one of its partitions fetches it again, on the real broker.

The fault is injected into Faust in the worker's own process: the first time Faust's recovery resumes
the partitions it assigned, posts partition 0 is left out, so it stays paused in Faust's consumer
while the others are read, as a partition that the consumer never fetches again after a rebalance.
"""

import subprocess
import sys
import time
import urllib.request

import orjson
import pytest

from stream.pipeline.cleaning import CleanPost, clean_event, retweet_key
from stream.settings import settings_env
from stream.tools.data import tweets_stream
from stream.tools.demo import TopicReader, WorkerProcess
from stream.tools.produce import produce
from tests.integration.conftest import unique_settings

pytestmark = pytest.mark.integration

LEFT_PAUSED = """
import runpy
import sys

import faust.transport.consumer
from faust.types import TP

resume = faust.transport.consumer.Consumer.resume_partitions
held = TP(sys.argv[1], 0)
left = []


def resume_partitions(self, tps):
    tps = set(tps)
    if held in tps and not left:  # once: Faust's recovery, at the end of the first rebalance
        left.append(held)
        tps.discard(held)
    return resume(self, tps)


faust.transport.consumer.Consumer.resume_partitions = resume_partitions
sys.argv = ["interest-stream", "worker"]
runpy.run_module("stream", run_name="__main__")  # python -m stream worker
"""


class FaultyWorker(WorkerProcess):
    """``interest-stream worker`` whose Faust leaves posts partition 0 paused after its first rebalance."""

    def start(self) -> "FaultyWorker":
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LEFT_PAUSED, self.settings.topic_posts],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=settings_env(self.settings),
            )
        return self


def test_a_partition_left_unread_is_fetched_again_and_every_post_predicted(broker, tmp_path):
    settings = unique_settings(broker, tmp_path / "data", prefix="stall", stall_timeout=5.0)
    tweets = tweets_stream()[:400]
    texts = {e["id"]: retweet_key(c.text) for e in tweets if isinstance(c := clean_event(e), CleanPost)}
    with FaultyWorker(settings, tmp_path / "worker.log") as worker:
        worker.wait_ready(learner=True)
        sent = produce(settings, tweets, rate=200, progress=False)
        assert sent.posts == len(tweets)
        reader = TopicReader(settings, settings.topic_predictions)
        predicted: dict[str, dict] = {}
        deadline = time.monotonic() + 60
        try:
            # every text predicted once (of two posts with one text, the one read first is kept)
            while set(texts.values()) - {texts[i] for i in predicted} and time.monotonic() < deadline:
                predicted.update((p["post_id"], p) for p in map(orjson.loads, reader.poll()))
        finally:
            reader.close()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics", timeout=10).read().decode()
    log = worker.log_file.read_text()
    unread = {texts[i] for i in texts} - {texts[i] for i in predicted}
    assert not unread, f"{len(unread)} posts' texts without a prediction; see {worker.log_file}"
    # the watchdog found the partition, said what Faust held of it, and fetched it again
    assert f"{settings.topic_posts}[0]: " in log and "active=False paused=True" in log, log[-3000:]
    [restarted] = [
        line
        for line in metrics.splitlines()
        if line.startswith('stream_events_total{outcome="input_partitions_restarted"')
    ]
    assert float(restarted.split()[-1]) >= 1.0
