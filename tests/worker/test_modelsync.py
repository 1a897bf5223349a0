"""A model follower's handling of the model topic's records, without Kafka: a snapshot, then deltas."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from models import persistence
from models.persistence import dump, split
from stream.pipeline.learner import CHECKPOINT_CLASSES, Learner
from stream.pipeline.modelview import ModelView
from stream.pipeline.records import training_post
from stream.settings import Settings
from stream.worker import modelsync
from stream.worker.modelsync import Follower, encode_delta

LABELS = ["sports", "travel", "music"]
X = {0: 1.0, 7: 1.0}


def learn(learner: Learner, first: int, n: int) -> None:
    for i in range(first, first + n):
        learner.apply(i, training_post(f"p{i}", {i % 7: 1.0, 7 + i % 3: 1.0}, None, LABELS[i % 3]), 0)


def records(blob: bytes, settings: Settings, kind: str) -> list[bytes]:
    return split(blob, settings.max_message_bytes, {"kind": kind, "epoch": "e1"})


def follower_and_learner() -> tuple[Follower, Learner, Settings]:
    """A follower that has loaded the snapshot of a learner which then tracks its changes."""
    settings = Settings(hash_bits=12)
    learner = Learner(settings)
    learn(learner, 0, 30)
    key = settings.checkpoint_key.encode()
    snapshot = dump(learner.state(), {**learner.metadata(), "kind": "snapshot", "epoch": "e1"}, key, CHECKPOINT_CLASSES)
    follower = Follower(settings, ModelView(settings))
    for part in records(snapshot, settings, "snapshot"):
        asyncio.run(follower.take(part))
    learner.track()
    return follower, learner, settings


def delta_of(learner: Learner, settings: Settings) -> bytes:
    delta = learner.take_delta()
    assert delta is not None
    meta = {"kind": "delta", "epoch": "e1", "offset": learner.offset, "version": learner.model.version}
    return encode_delta(delta, meta, settings.checkpoint_key.encode())


def test_a_delta_is_decoded_in_a_thread_while_the_event_loop_goes_on(monkeypatch):
    """Decoding a delta (decompressing it, checking its signature) takes milliseconds: it is done in
    another thread, the event loop runs other tasks meanwhile, and the delta is applied."""
    follower, learner, settings = follower_and_learner()
    decoded_in: list[int] = []

    def load(*args: Any, **kwargs: Any) -> Any:
        decoded_in.append(threading.get_ident())
        return persistence.load(*args, **kwargs)

    monkeypatch.setattr(modelsync, "load", load)
    learn(learner, 30, 30)
    (record,) = records(delta_of(learner, settings), settings, "delta")

    async def take_beside_another_task() -> list[str]:
        ran: list[str] = []

        async def other() -> None:
            ran.append("other task")

        task = asyncio.ensure_future(other())
        await follower.take(record)
        ran.append("delta taken")
        await task
        return ran

    assert asyncio.run(take_beside_another_task()) == ["other task", "delta taken"]
    assert decoded_in and threading.get_ident() not in decoded_in
    assert (follower.deltas, follower.refused) == (1, 0)
    assert follower.view.model.version == learner.model.version == 60
    assert follower.view.model.predict(X) == learner.model.predict(X)


def test_a_delta_signed_with_another_key_is_refused_and_changes_nothing():
    follower, learner, settings = follower_and_learner()
    before = follower.view.model.predict(X)
    learn(learner, 30, 30)
    forged = encode_delta(learner.take_delta() or {}, {"kind": "delta", "epoch": "e1"}, b"another key")
    for part in records(forged, settings, "delta"):
        asyncio.run(follower.take(part))
    assert (follower.deltas, follower.refused) == (0, 1)
    assert follower.view.model.version == 30
    assert follower.view.model.predict(X) == before


def test_a_follower_that_predicts_nothing_reads_no_interest_model_and_reports_the_learners_figures(monkeypatch):
    """An aggregates worker's follower loads a snapshot without the interest model's arrays, and its
    gauges give the learner's version and classes, from the snapshot and then from each delta."""
    from stream.pipeline.processor import Processor
    from stream.worker.prometheus import model_gauges

    settings = Settings(hash_bits=12)
    learner = Learner(settings)
    learn(learner, 0, 30)
    key = settings.checkpoint_key.encode()
    meta = {**learner.metadata(), "kind": "snapshot", "epoch": "e1", "figures": learner.figures()}
    snapshot = dump(learner.state(), meta, key, CHECKPOINT_CLASSES)
    view = ModelView(settings, predicts=False)
    follower = Follower(settings, view)
    used: list[Any] = []  # what the follower names unread when it loads a snapshot

    def load(*args: Any, **kwargs: Any) -> Any:
        if len(args) > 3:
            used.append(args[3])
        return persistence.load(*args, **kwargs)

    monkeypatch.setattr(modelsync, "load", load)
    for part in records(snapshot, settings, "snapshot"):
        asyncio.run(follower.take(part))
    gauges = {name: value for name, _, value in model_gauges(Processor(settings, view=view), view.offset)}
    assert used == [view.unread] and view.model.version == 0  # the interest model's arrays unread, then dropped
    assert gauges["model_version"] == 30 and gauges["model_classes"] == 3
    learner.track()
    learn(learner, 30, 12)
    for part in records(delta_of(learner, settings), settings, "delta"):
        asyncio.run(follower.take(part))
    gauges = {name: value for name, _, value in model_gauges(Processor(settings, view=view), view.offset)}
    assert (follower.deltas, follower.refused, view.model.version) == (1, 0, 0)
    assert gauges["model_version"] == 42 and gauges["training_offset"] == 41
