"""The demo's picture: the live page's charts as one PNG (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stream.worker.live import LiveHistory


def write_png(snapshots: Sequence[dict[str, Any]], report: dict[str, Any], path: Path) -> Path:
    """Throughput, model quality over time, interest mix and dead letters, from the metrics
    snapshots the worker published during the run; audience sentiment per interest and the
    campaign triggers fired, from what the demo read back."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = LiveHistory(maxlen=len(snapshots) + 1)
    for snap in snapshots:
        history.record(snap)
    points = list(history.points)
    t0 = points[0]["at"] if points else 0
    secs = [(p["at"] - t0) / 1000 for p in points]

    fig, axes = plt.subplots(3, 2, figsize=(13, 12), dpi=100)
    fig.suptitle(
        f"interest-stream demo: {report['events_in']:,} posts, model {report['model'].get('name')} "
        f"v{report['model'].get('version')}, prequential macro-F1 "
        f"{report['prequential']['macro_f1']:.3f}",
        fontsize=13,
    )
    ax = axes[0][0]
    ax.plot(secs, [p["events_per_s"] for p in points], color="#3b6fd8")
    ax.set(title="Throughput", xlabel="seconds", ylabel="posts/s")
    ax = axes[0][1]
    for key, color in (("accuracy", "#3b6fd8"), ("macro_f1", "#e0752d"), ("kappa", "#2aa876")):
        ax.plot(secs, [p[key] for p in points], label=key, color=color)
    ax.set(title=f"Prequential quality (last {report['rolling'].get('window')} labels)", xlabel="seconds", ylim=(0, 1))
    ax.legend(loc="lower right")
    ax = axes[1][0]
    mix = sorted(((k, v) for k, v in report["predicted_interest"].items() if k != "None"), key=lambda kv: kv[1])
    ax.barh([k for k, _ in mix], [v for _, v in mix], color="#2aa876")
    ax.set(title="Interest mix (predictions)", xlabel="posts")
    ax = axes[1][1]
    reasons = sorted(report["dead_lettered"].items(), key=lambda kv: kv[1])
    dups = sorted(report["duplicates_dropped"].items(), key=lambda kv: kv[1])
    labels = [f"dead letter: {k}" for k, _ in reasons] + [f"duplicate: {k}" for k, _ in dups]
    ax.barh(labels or ["none"], [v for _, v in reasons + dups] or [0], color="#c94f7c")
    ax.set(title="Rejected and dropped", xlabel="posts")
    audience = report.get("audience", {})
    ax = axes[2][0]
    senti = sorted(audience.get("mean_sentiment_by_interest", {}).items(), key=lambda kv: kv[1])
    ax.barh(
        [k for k, _ in senti] or ["none"],
        [v for _, v in senti] or [0],
        color=["#c94f4f" if v < 0 else "#2aa876" for _, v in senti] or ["#2aa876"],
    )
    ax.axvline(0, color="#7a7f8c", linewidth=0.8)
    ax.set(title="Audience sentiment per interest (mean score over the closed minutes)", xlabel="score (-1..1)")
    ax = axes[2][1]
    fired = sorted(audience.get("triggers_by_rule", {}).items(), key=lambda kv: kv[1])
    ax.barh([k for k, _ in fired] or ["none"], [v for _, v in fired] or [0], color="#8a62c9")
    ax.set(title=f"Campaign triggers fired ({audience.get('triggers_fired', 0)})", xlabel="triggers")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
