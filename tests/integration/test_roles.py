"""Worker roles on the real broker: a ``posts`` worker and an ``aggregates`` worker side by side do
what one ``all`` worker does, and the aggregates worker carries on from the profiles the ``all``
worker left (the changelogs keep the posts workers' group name; the aggregates workers' own group
reads ``user.updates`` again from the start, and what was applied already is skipped)."""

import time
import urllib.error
import urllib.request

import pytest

from stream.pipeline.privacy import pseudonym
from stream.tools.broker import free_port
from stream.tools.data import tweets_stream
from stream.tools.demo import WorkerProcess, wait_processed
from stream.tools.produce import produce
from tests.integration.test_audience import T0, letters, read_everything, read_until, wait_model_version
from tests.integration.test_query_api import http_get

pytestmark = pytest.mark.integration
KEY = "roles-secret"


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def alice_posts(start: int, n: int) -> list[dict]:
    return [
        {
            "id": f"alice{i}",
            "user_id": "alice",
            "text": f"@united my flight got delayed again at the airport {letters(i)}",
            "created_at": T0 + i * 1000,
        }
        for i in range(start, start + n)
    ]


def alice_counts(records, alice: str) -> list[int]:
    """The post counts of alice's profile records, in order (one key is one partition)."""
    return [v["posts"] for k, v in records if k == alice.encode() and v]


def alice_has(posts: int):
    return lambda records: posts in alice_counts(records, pseudonym("alice", KEY))


def test_a_posts_and_an_aggregates_worker_carry_on_from_one_worker(settings, tmp_path):
    settings = settings.replace(pseudonym_key=KEY)
    alice = pseudonym("alice", KEY)
    warm = tweets_stream()[:60]  # labelled: the model knows the interests before alice posts
    with WorkerProcess(settings, tmp_path / "all.log") as worker:
        worker.wait_ready(learner=True)
        produce(settings, warm, progress=False)
        wait_processed(settings, len(warm), 0, timeout=90, progress=False)
        wait_model_version(settings, len(warm) // 2)
        produce(settings, alice_posts(0, 2), progress=False)
        read_until(settings, settings.topic_profiles, alice_has(2))
        time.sleep(2)
        before = alice_counts(read_everything(settings, settings.topic_profiles), alice)

    aggregates = settings.replace(role="aggregates", web_port=free_port())
    posts = settings.replace(role="posts", web_port=free_port())
    with (
        WorkerProcess(aggregates, tmp_path / "aggregates.log") as aggregator,
        WorkerProcess(posts, tmp_path / "posts.log") as worker,
    ):
        worker.wait_ready(learner=True)
        aggregator.wait_ready()
        produce(settings, alice_posts(2, 3), progress=False)
        # 2 posts restored from the changelog the all worker wrote + 3 new ones (the 2 old updates,
        # read again by the aggregates workers' new group, are skipped: the profile remembers them)
        read_until(settings, settings.topic_profiles, alice_has(5))
        wait_model_version(aggregates, len(warm) // 2)  # its gauges: the learner's figures, not its own model
        time.sleep(2)  # a double count would come after the right one
        profiles = read_everything(settings, settings.topic_profiles)
        # the aggregates worker wrote its table's changes where the all worker did
        changelog = read_everything(settings, f"{settings.app_id}-profiles-changelog")
        status, _, profile = http_get(aggregates.web_port, f"/profiles/{alice}")
        not_here = http_status(posts.web_port, f"/profiles/{alice}")
        _, _, posts_ready = http_get(posts.web_port, "/ready")
        _, _, aggregates_ready = http_get(aggregates.web_port, "/ready")

    # the aggregates worker went on from the restored profile: a rebuild from the replayed updates
    # would have published alice's first counts again
    after = alice_counts(profiles, alice)
    assert after[: len(before)] == before and before[-1] == 2
    assert all(n > 2 for n in after[len(before) :]) and after[-1] == 5
    assert [v["posts"] for k, v in changelog if k == f'"{alice}"'.encode()][-1] == 5
    assert status == 200 and profile["posts"] == 5
    assert not_here == 404  # the posts worker keeps no profiles
    assert posts_ready["learner"] and not aggregates_ready["learner"]  # the learner is a posts worker's
