"""The audience's vocabulary, defined once: segments, window kinds and the figures of a window.

A *segment* is ``"all"`` or ``"<kind>:<name>"`` with a kind from :data:`SEGMENT_KINDS`.

>>> segment_kind("interest:travel"), segment_kind("all")
('interest', 'all')
"""

from __future__ import annotations

ALL = "all"
SEGMENT_KINDS = ("interest", "campaign", "hashtag")
GAUGE_SEGMENT_KINDS = (ALL, "interest", "campaign")  # shown as Prometheus gauges (bounded cardinality)
WINDOW_KINDS = ("tumbling", "hopping")
WINDOW_FIGURES = ("volume", "mean_sentiment", "positive_share", "neutral_share", "negative_share")
"""The figures of a closed window record that trigger rules can test."""


def segment_kind(segment: str) -> str:
    """``"all"`` or the kind of a ``"<kind>:<name>"`` segment."""
    return segment.partition(":")[0]
