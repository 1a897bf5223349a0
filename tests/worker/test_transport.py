"""The commit hook of the worker's consumer: what acknowledged posts left to send is drained before
the offsets to commit are taken, and sent before they are committed."""

import asyncio
from types import SimpleNamespace
from typing import Any

from stream.worker.transport import transport_class


def _consumer(log, acked, hook):
    consumer_class: Any = transport_class(50).Consumer  # faust types it as ConsumerT, without _commit_tps
    fake = SimpleNamespace(app=SimpleNamespace(before_commit=hook))

    def offsets(tps):
        log.append(("offsets", sorted(acked)))
        return dict.fromkeys(acked, 1)

    async def attached(offsets):
        log.append(("attached", sorted(offsets)))

    async def commit(offsets, start_new_transaction=True):
        log.append(("commit", sorted(offsets)))
        return True

    fake._filter_committable_offsets, fake._handle_attached, fake._commit_offsets = offsets, attached, commit
    return lambda tps: consumer_class._commit_tps(fake, tps, True)


def test_aggregates_are_drained_before_offsets_are_taken_and_sent_before_the_commit():
    log, acked = [], {"posts-0"}

    def before_commit():
        log.append("drained")

        async def send():
            await asyncio.sleep(0)  # meanwhile the posts agent acknowledges another post...
            acked.add("posts-1")
            log.append("sent")

        return send()

    assert asyncio.run(_consumer(log, acked, before_commit)(["posts-0"])) is True
    # ...whose offset is not in this commit: its aggregates were not in the drain
    assert log == ["drained", ("offsets", ["posts-0"]), "sent", ("attached", ["posts-0"]), ("commit", ["posts-0"])]


def test_without_a_hook_or_anything_acknowledged():
    log: list[Any] = []
    assert asyncio.run(_consumer(log, {"posts-0"}, None)(["posts-0"])) is True
    assert log == [("offsets", ["posts-0"]), ("attached", ["posts-0"]), ("commit", ["posts-0"])]
    log.clear()
    assert asyncio.run(_consumer(log, set(), lambda: None)([])) is False
    assert log == [("offsets", [])]


def test_no_commit_while_the_delivery_gate_says_something_is_undelivered():
    log: list[Any] = []
    answers = [False, True]

    async def gate():
        log.append("gate")
        return answers.pop(0)

    consumer_class: Any = transport_class(50).Consumer
    guard = SimpleNamespace(delivery_gate=gate, commit_started=lambda: None, commit_result=lambda ok: None)
    fake = SimpleNamespace(app=SimpleNamespace(before_commit=None, commit_guard=guard))
    fake._filter_committable_offsets = lambda tps: {"posts-0": 1}

    async def attached(offsets):
        log.append("attached")

    async def committed(offsets, start_new_transaction=True):
        log.append("commit")
        return True

    fake._handle_attached, fake._commit_offsets = attached, committed
    assert asyncio.run(consumer_class._commit_tps(fake, ["posts-0"], True)) is False
    assert log == ["gate"]  # nothing committed: the posts will be committed once their outputs are in Kafka
    assert asyncio.run(consumer_class._commit_tps(fake, ["posts-0"], True)) is True
    assert log == ["gate", "gate", "attached", "commit"]
