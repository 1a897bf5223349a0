"""The learner role and a model follower in one event loop, on the embedded broker: what the learner
learns reaches the follower, whatever the order of its deltas and snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from stream.clients import kafka_producer
from stream.pipeline.modelview import ModelView
from stream.pipeline.records import training_post
from stream.stats import Stats
from stream.tools.produce import ensure_topics
from stream.worker.modelsync import Follower, LearnerRole
from tests.integration.conftest import unique_settings

pytestmark = pytest.mark.integration
LABELS = ["sports", "travel", "music"]


async def wait_for(check, timeout: float, what: str, detail) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {detail()}")
        await asyncio.sleep(0.1)


async def test_labels_learned_just_before_a_snapshot_still_reach_the_followers(broker, tmp_path):
    """Snapshots every 0.2 s, deltas every 3 s: a periodic snapshot almost always comes between the
    labels and the next delta. A follower skips snapshots of the epoch it follows, so the labels can
    only reach it in that delta, which must not be dropped because a snapshot was written."""
    settings = unique_settings(
        broker, tmp_path / "data", prefix="ms", checkpoint_interval=0.2, delta_interval=3.0, hash_bits=12
    )
    ensure_topics(settings, [settings.topic_training, settings.topic_model], partitions=1)
    role, view = LearnerRole(settings, Stats(), on_event=lambda _: asyncio.sleep(0)), ModelView(settings)
    follower = Follower(settings, view)
    following = asyncio.ensure_future(follower.run())
    role.start()
    try:
        await asyncio.wait_for(role.caught_up.wait(), 60)
        producer = kafka_producer(settings)
        for i in range(30):
            record = training_post(f"p{i}", {i % 7: 1.0, 7 + i % 3: 1.0}, None, LABELS[i % 3])
            producer.send(settings.topic_training, record, partition=0)
        producer.flush()
        producer.close()
        learner = role.learner
        assert learner is not None
        await wait_for(lambda: learner.model.version == 30, 30, "the learner", role.status)
        await wait_for(
            lambda: view.model.version == 30,
            15,  # the next delta is due 3 s after the last one
            "the follower to apply what the learner learned",
            lambda: {"follower": follower.status(), "view_version": view.model.version, "learner": role.status()},
        )
        assert role.snapshots_sent >= 2  # the takeover's and at least one periodic snapshot were written
        assert view.model.predict({0: 1.0, 7: 1.0}) == learner.model.predict({0: 1.0, 7: 1.0})
    finally:
        await role.stop()
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
