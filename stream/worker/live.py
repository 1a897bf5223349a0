"""The live page: a bounded history of metrics snapshots and the JSON the page draws from.

The page itself (``stream/worker/static/live.html``) is plain HTML, CSS and Canvas, no CDN, served by the
worker's web server at ``/live``; it polls ``/api/live`` every second.

>>> h = LiveHistory(maxlen=3)
>>> h.record({"at": 1000, "counts": {"posts_in": 0}, "quality": {}})
>>> h.record({"at": 3000, "counts": {"posts_in": 500}, "quality": {}})
>>> [p["events_per_s"] for p in h.points]
[0.0, 250.0]
"""

from __future__ import annotations

from collections import deque
from importlib import resources
from typing import Any


class LiveHistory:
    """The last ``maxlen`` metrics snapshots, reduced to what the charts need."""

    def __init__(self, maxlen: int = 720, recent: int = 20, segments: int = 100):
        self.points: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self.latest: dict[str, Any] = {}
        self.triggers: deque[dict[str, Any]] = deque(maxlen=recent)
        self.spikes: deque[dict[str, Any]] = deque(maxlen=recent)
        self.segments = segments
        self.sentiment: dict[str, dict[str, Any]] = {}  # segment → its last closed tumbling window

    def record_audience(self, out: Any) -> None:
        """Keep the newest closed windows of interests and campaigns, and the recent spikes and triggers.

        >>> from types import SimpleNamespace as NS
        >>> h = LiveHistory()
        >>> h.record_audience(NS(windows=[{"segment": "interest:travel", "kind": "tumbling", "volume": 9,
        ...     "mean_sentiment": -0.5, "start": 0}], spikes=[], triggers=[{"rule": "r", "campaign": "c"}]))
        >>> h.view()["sentiment"]["interest:travel"]["mean_sentiment"], len(h.view()["triggers"])
        (-0.5, 1)
        """
        for w in out.windows:
            if w["kind"] == "tumbling" and w["segment"].startswith(("interest:", "campaign:")):
                self.sentiment.pop(w["segment"], None)  # re-inserted last: the dict runs oldest first
                self.sentiment[w["segment"]] = w
        while len(self.sentiment) > self.segments:  # campaigns come from the input: keep the newest
            del self.sentiment[next(iter(self.sentiment))]
        self.spikes.extend(out.spikes)
        self.triggers.extend(out.triggers)

    def record(self, snapshot: dict[str, Any]) -> None:
        counts = snapshot.get("counts", {})
        rolling = snapshot.get("quality", {}).get("rolling", {})
        rate = 0.0
        if self.points:
            prev = self.points[-1]
            dt = (snapshot["at"] - prev["at"]) / 1000.0
            if dt > 0:
                rate = max(0.0, (counts.get("posts_in", 0) - prev["posts_in"]) / dt)
        self.points.append(
            {
                "at": snapshot["at"],
                "posts_in": counts.get("posts_in", 0),
                "events_per_s": rate,
                "accuracy": rolling.get("accuracy", 0.0),
                "macro_f1": rolling.get("macro_f1", 0.0),
                "kappa": rolling.get("kappa", 0.0),
                "p99_ms": snapshot.get("latency", {}).get("p99_ms", 0.0),
            }
        )
        self.latest = snapshot

    def view(self) -> dict[str, Any]:
        """What ``/api/live`` returns."""
        return {
            "points": list(self.points),
            "latest": self.latest,
            "sentiment": self.sentiment,
            "spikes": list(self.spikes)[::-1],
            "triggers": list(self.triggers)[::-1],
        }


def page_html() -> str:
    """The live page's HTML (shipped inside the package)."""
    return resources.files("stream.worker").joinpath("static/live.html").read_text(encoding="utf-8")
