"""The lean Faust monitor keeps the ``faust_*`` metrics operations use, with Faust's names."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.sensors.prometheus import FaustMetrics
from faust.types import TP
from prometheus_client import CollectorRegistry

from stream.worker.sensors import LeanPrometheusMonitor


def sample(registry: CollectorRegistry, name: str, **labels: object) -> float | None:
    return registry.get_sample_value(name, {k: str(v) for k, v in labels.items()} or None)


def monitor() -> tuple[LeanPrometheusMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    return LeanPrometheusMonitor(FaustMetrics.create(registry, "faust")), registry


def rebalance(mon: LeanPrometheusMonitor, *assigned: TP) -> tuple[Any, dict]:
    """An app (what of it the monitor reads) that was assigned ``assigned``, and a rebalance's state."""
    app: Any = SimpleNamespace(rebalancing_count=1, assignor=SimpleNamespace(assigned_actives=lambda: set(assigned)))
    return app, mon.on_rebalance_start(app)


def test_counts_messages_events_and_sends_under_faust_names() -> None:
    mon, registry = monitor()
    posts = TP("posts", 2)
    for offset in range(3):
        mon.track_tp_end_offset(posts, 10)
        mon.on_message_in(posts, offset, object())
        mon.on_stream_event_in(posts, offset, object(), object())
        mon.on_stream_event_out(posts, offset, object(), object(), None)  # this monitor keeps no per-event state
        mon.on_message_out(posts, offset, object())
        mon.on_send_initiated(None, "predictions", None, 1, 1)
        mon.on_send_completed(None, None, None)
    assert sample(registry, "faust_messages_received_total") == 3
    assert sample(registry, "faust_messages_received_per_topic_total", topic="posts") == 3
    assert sample(registry, "faust_messages_received_per_topics_partition", topic="posts", partition=2) == 2
    assert sample(registry, "faust_total_events_total") == 3
    assert sample(registry, "faust_topic_messages_sent_total", topic="topic.predictions") == 3
    assert sample(registry, "faust_total_sent_messages_total") == 3
    assert sample(registry, "faust_topic_partition_end_offset", topic="posts", partition=2) == 10
    assert mon.messages_received_total == 3 and mon.events_total == 3 and mon.messages_sent == 3


def test_lag_gauges_follow_offsets_and_survive_a_rebalance() -> None:
    mon, registry = monitor()
    tp = TP("posts", 0)
    mon.track_tp_end_offset(tp, 5)
    mon.on_tp_commit({tp: 3})
    assert sample(registry, "faust_topic_partition_end_offset", topic="posts", partition=0) == 5
    assert sample(registry, "faust_topic_partition_offset_commited", topic="posts", partition=0) == 3
    mon.on_rebalance_end(*rebalance(mon))  # Faust clears per-partition series
    assert sample(registry, "faust_topic_partition_end_offset", topic="posts", partition=0) is None
    mon.track_tp_end_offset(tp, 5)  # the same offset as before the rebalance: set again, not skipped
    mon.on_message_in(tp, 4, object())
    assert sample(registry, "faust_topic_partition_end_offset", topic="posts", partition=0) == 5
    assert sample(registry, "faust_messages_received_per_topic_total", topic="posts") == 1


def test_counters_are_exported_at_zero_from_the_start() -> None:
    mon, registry = monitor()
    for name in ("faust_messages_received_total", "faust_total_events_total", "faust_total_sent_messages_total"):
        assert sample(registry, name) == 0
    for operation in ("completed", "error"):
        assert sample(registry, "faust_assignment_operations_total", operation=operation) == 0
    mon.on_rebalance_end(*rebalance(mon, TP("posts", 0), TP("posts", 1), TP("feedback", 0)))
    assert sample(registry, "faust_messages_received_per_topic_total", topic="posts") == 0
    assert sample(registry, "faust_messages_received_per_topic_total", topic="feedback") == 0


def test_per_topic_counters_keep_counting_across_a_rebalance() -> None:
    mon, registry = monitor()
    tp = TP("posts", 0)
    for offset in range(3):
        mon.on_message_in(tp, offset, object())
        mon.on_send_initiated(None, "predictions", None, 1, 1)
    mon.on_rebalance_end(*rebalance(mon, tp))
    mon.on_message_in(tp, 3, object())
    mon.on_send_initiated(None, "predictions", None, 1, 1)
    assert sample(registry, "faust_messages_received_per_topic_total", topic="posts") == 4  # never reset
    assert sample(registry, "faust_topic_messages_sent_total", topic="topic.predictions") == 4
