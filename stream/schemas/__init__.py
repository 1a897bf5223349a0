"""The event contract: JSON Schemas (draft 2020-12) of the input events and of every public output
record, shipped inside the package.

Each schema is named after the default name of its topic (topic names are settings: the schema
follows the setting, not the name). Every output record carries ``schema_version``: it stays the same
for additive changes and goes up when a field is removed, renamed or changes type.

>>> schema = load_schema("interest.predictions")
>>> schema["$schema"], schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
('https://json-schema.org/draft/2020-12/schema', True)
>>> load_schema("campaign.triggers.schema.json")["title"]
'campaign.triggers: a fired campaign trigger'
>>> load_schema("nope")
Traceback (most recent call last):
...
KeyError: "no schema 'nope'; the schemas: social.posts, social.feedback, privacy.erasure, \
interest.predictions, social.posts.dlq, audience.sentiment, campaign.triggers, user.interests, interest.metrics"
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SCHEMA_VERSION = 1
"""The version of the output records' shape; every public output record carries it as ``schema_version``."""

SUFFIX = ".schema.json"

INPUTS = (
    ("social.posts", "topic_posts"),
    ("social.feedback", "topic_feedback"),
    ("privacy.erasure", "topic_erasure"),
)
"""The input schemas, by name, with the setting that names their topic."""

OUTPUTS = (
    ("interest.predictions", "topic_predictions"),
    ("social.posts.dlq", "topic_dlq"),
    ("audience.sentiment", "topic_audience"),
    ("campaign.triggers", "topic_triggers"),
    ("user.interests", "topic_profiles"),
    ("interest.metrics", "topic_metrics"),
)
"""The public output schemas, by name, with the setting that names their topic."""


def schema_names() -> tuple[str, ...]:
    """Every shipped schema's name (its topic's default name), inputs first.

    >>> schema_names()[:3]
    ('social.posts', 'social.feedback', 'privacy.erasure')
    """
    return tuple(name for name, _ in (*INPUTS, *OUTPUTS))


def load_schema(name: str) -> dict[str, Any]:
    """The schema of a topic, by its default topic name (``"user.interests"``, with or without the
    ``.schema.json`` suffix), as a new dict; ``KeyError`` for an unknown name."""
    name = name.removesuffix(SUFFIX)
    if name not in schema_names():
        raise KeyError(f"no schema {name!r}; the schemas: {', '.join(schema_names())}")
    text = resources.files(__name__).joinpath(name + SUFFIX).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
