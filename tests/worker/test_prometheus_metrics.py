"""The worker's ``/metrics`` page without Kafka: counters from the first second, bounded labels."""

from __future__ import annotations

import importlib.metadata
import json
import random
import re
from collections import defaultdict
from pathlib import Path

from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from stream.pipeline.processor import Processor
from stream.pipeline.records import DEAD_LETTER_REASONS
from stream.settings import Settings
from stream.stats import Stats
from stream.worker.prometheus import OUTCOMES, StatsCollector, model_gauges

ROOT = Path(__file__).resolve().parents[2]
# counters whose label values are not known at start: the model's interests, the rules' campaigns
LABELS_FROM_MODEL_OR_RULES = {"stream_predictions", "stream_triggers"}


def scrape(collector: StatsCollector) -> dict[str, Metric]:
    """The families of the ``/metrics`` text ``collector`` renders, by name (counters without ``_total``)."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def fresh_worker() -> tuple[StatsCollector, Processor]:
    """The collector a worker registers, over a processor that has seen nothing."""
    processor = Processor(Settings())
    return StatsCollector(processor.stats, lambda: model_gauges(processor, -1), model=Settings().model), processor


def test_a_fresh_worker_exports_every_counter_at_zero_and_its_build_info() -> None:
    collector, processor = fresh_worker()
    assert processor.stats.outcomes == {}  # nothing counted, nothing added to the hot path's counters
    families = scrape(collector)
    counters = {name: f for name, f in families.items() if f.type == "counter"}
    assert {
        "stream_events",
        "stream_dead_letters",
        "stream_duplicates",
        "stream_sentiment_predictions",
        "stream_windows_closed",
        "stream_spikes",
        "stream_drifts",
        "stream_event_loop_stalls",
        "stream_model_drifts",
        "stream_labels_expired",
        "stream_early_labels_expired",
    } <= set(counters)
    for name, family in counters.items():
        if name not in LABELS_FROM_MODEL_OR_RULES:
            assert family.samples, f"{name} has no series before its first increment"
        assert all(s.value == 0 for s in family.samples), name
        assert all(s.name == f"{name}_total" for s in family.samples), name
    events = {s.labels["outcome"]: s.value for s in counters["stream_events"].samples}
    assert events["posts_in"] == 0 and events["publish_errors"] == 0 and set(events) == set(OUTCOMES)
    assert {s.labels["reason"] for s in counters["stream_dead_letters"].samples} == set(DEAD_LETTER_REASONS)
    for histogram in ("stream_event_latency_seconds", "stream_event_loop_lag_seconds"):
        assert families[histogram].samples and all(s.value == 0 for s in families[histogram].samples)
    (info,) = families["stream_build_info"].samples
    assert info.value == 1 and families["stream_build_info"].type == "gauge"
    assert info.labels["version"] == importlib.metadata.version("interest-stream")
    assert info.labels["model"] == "arow" and info.labels["faust"] and info.labels["river"]
    assert re.fullmatch(r"3\.\d+\.\d+.*", info.labels["python"])


def test_monotonic_figures_are_counters_and_ratios_are_named_so() -> None:
    families = scrape(fresh_worker()[0])
    for name in ("stream_model_drifts", "stream_labels_expired", "stream_early_labels_expired", "stream_drifts"):
        assert families[name].type == "counter", name
    for name in ("stream_model_version", "stream_pending_labels", "stream_early_labels", "stream_training_offset"):
        assert families[name].type == "gauge", name
    assert {"stream_audience_positive_ratio", "stream_audience_negative_ratio"} <= set(families)
    assert not [name for name in families if name.endswith("_share")]


def exposed_names(collector: StatsCollector) -> set[str]:
    """The sample names a worker can expose: its own families and Faust's, with or without samples yet."""
    registry = CollectorRegistry()
    FaustMetrics.create(registry, "faust")
    families = [*collector.collect(), *registry.collect()]
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {f.name + suffix for f in families for suffix in suffixes[f.type]}


def test_every_metric_the_alerts_and_the_dashboard_use_is_exposed() -> None:
    texts = [(ROOT / "ops/prometheus/alerts.yml").read_text(), (ROOT / "ops/prometheus/alerts_test.yml").read_text()]
    dashboard = json.loads((ROOT / "ops/grafana/dashboards/interest-stream.json").read_text())
    texts += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for text in texts for m in re.findall(r"\b((?:stream|faust)_[a-z0-9_]*[a-z0-9])\b", text)}
    assert len(used) >= 15
    assert used <= exposed_names(fresh_worker()[0]), used - exposed_names(fresh_worker()[0])


def by_label(family: Metric, label: str, **where: str) -> dict[str, float]:
    return {
        s.labels[label]: s.value
        for s in family.samples
        if all(s.labels.get(k) == v for k, v in where.items()) and not s.name.endswith("_created")
    }


def test_campaign_and_hashtag_labels_stay_bounded_with_other_summing_the_rest() -> None:
    top, rng = 50, random.Random(7)
    stats = Stats(top_segments=top)
    collector = StatsCollector(stats, list)
    volumes = {kind: {f"{kind[0]}{i}": rng.randint(1, 100) for i in range(10_000)} for kind in ("campaign", "hashtag")}
    for kind, names in volumes.items():
        for name, volume in names.items():  # one window each, closed in no particular order of size
            stats.audience.record(kind, name, 60_000, volume, 0.5, 0.25, 0.125)
    for name, n in volumes["campaign"].items():
        stats.triggers[("launch", name)] += n
    families = scrape(collector)
    for kind, names in volumes.items():
        exported = by_label(families["stream_audience_volume"], "segment", segment_kind=kind)
        assert len(exported) <= top + 1 and "other" in exported
        assert sum(exported.values()) == sum(names.values())  # every post of the window is in one series
        assert by_label(families["stream_audience_positive_ratio"], "segment", segment_kind=kind)["other"] == 0.25
    triggers = by_label(families["stream_triggers"], "campaign", rule="launch")
    assert len(triggers) <= top + 1 and "other" in triggers
    assert sum(triggers.values()) == sum(volumes["campaign"].values())
    assert len(families["stream_triggers"].samples) <= top + 1


def test_bounded_trigger_counters_only_grow_from_scrape_to_scrape() -> None:
    rng = random.Random(3)
    stats = Stats(top_segments=3)
    collector = StatsCollector(stats, list)
    seen: dict[str, float] = {}
    for round_ in range(30):
        for _ in range(20):  # newcomers keep arriving, some busier than the campaigns kept
            stats.triggers[("rule", f"c{rng.randrange(round_ * 2 + 1)}")] += rng.randint(1, 5 + round_)
        triggers = by_label(scrape(collector)["stream_triggers"], "campaign")
        assert len(triggers) <= 4 and sum(triggers.values()) == sum(stats.triggers.values())
        for campaign, value in triggers.items():
            assert value >= seen.get(campaign, 0), (round_, campaign)
        seen = defaultdict(float, triggers)


def test_every_dead_letter_reason_the_code_gives_is_exported() -> None:
    """The reasons are the first argument of ``Rejected(...)`` and ``_Invalid(...)`` in the pipeline and
    the publisher: each must be one of ``DEAD_LETTER_REASONS`` (exported at 0 from the start)."""
    import ast
    from pathlib import Path

    given = set()
    for path in Path(__file__).resolve().parents[2].glob("stream/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) in ("Rejected", "_Invalid")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                given.add(node.args[0].value)
    assert len(given) >= 10 and given <= set(DEAD_LETTER_REASONS), given - set(DEAD_LETTER_REASONS)
