"""The record formats the pipeline reads and writes, in one place.

- :class:`Message`: a raw record as it came from Kafka (any input topic).
- ``social.posts.dlq``: :func:`dead_letter`.
- ``interest.predictions``: :func:`prediction_record`.
- ``interest.training``, the one-partition training log (see :mod:`stream.pipeline.learner`):
  :func:`training_post`, :func:`training_label`, :func:`training_erase`, read back by
  :func:`decode_training`.

>>> decode_training(training_label("p1", "travel"))  # doctest: +ELLIPSIS
TrainingRecord(kind='label', post_id='p1', ..., label='travel', ...)
>>> decode_training(b"{not json") is None, decode_training(b'{"k": "post"}') is None
(True, True)
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import orjson

from models.features import top_class
from models.online import Features
from models.sentiment import Sentiment
from stream.pipeline.cleaning import CleanPost
from stream.pipeline.events import Post, Rejected
from stream.pipeline.privacy import pseudonymise_user_ids
from stream.schemas import SCHEMA_VERSION

DEAD_LETTER_REASONS = (
    "malformed_json",
    "not_an_object",
    "missing_field",
    "missing_value",
    "wrong_type",
    "bad_type",
    "field_too_long",
    "bad_timestamp",
    "bad_label",
    "too_many_classes",
    "empty_text",
    "internal_error",
    "output_too_large",
)
"""Every ``reason`` a dead letter can give (a test checks the code gives no other); exported at 0."""


@dataclass(frozen=True, slots=True)
class Message:
    """A raw record as it came from Kafka."""

    value: bytes | None
    key: bytes | None = None
    topic: str = ""
    partition: int = -1
    offset: int = -1
    timestamp_ms: int | None = None


def dead_letter(
    msg: Message, rejected: Rejected, now: float, pseudonym_key: str | None = None, keep_bytes: int = 65536
) -> bytes:
    """The dead-letter record: reason, detail, source position, and the original bytes: the first
    ``keep_bytes`` of them, with the full size and SHA-256. With ``pseudonym_key``, user ids in the
    kept bytes are replaced by their pseudonyms, as in every other output.

    >>> rec = orjson.loads(dead_letter(Message(b"{oops", topic="t", partition=1, offset=7),
    ...                                Rejected("malformed_json", "x"), now=0))
    >>> rec["reason"], rec["source"], base64.b64decode(rec["original_b64"])
    ('malformed_json', {'topic': 't', 'partition': 1, 'offset': 7, 'timestamp_ms': None}, b'{oops')
    >>> rec = orjson.loads(dead_letter(Message(b"x" * 100), Rejected("malformed_json"), now=0, keep_bytes=10))
    >>> rec["original_size"], len(base64.b64decode(rec["original_b64"])), rec["original_truncated"]
    (100, 10, True)
    >>> rec = orjson.loads(dead_letter(Message(b'{"user_id": "alice", "text": '), Rejected("malformed_json"),
    ...                                now=0, pseudonym_key="k"))
    >>> b"alice" in base64.b64decode(rec["original_b64"])
    False
    """
    value = msg.value or b""
    kept = value if pseudonym_key is None else pseudonymise_user_ids(value, pseudonym_key)
    return orjson.dumps(
        {
            "reason": rejected.reason,
            "detail": rejected.detail,
            "source": {
                "topic": msg.topic,
                "partition": msg.partition,
                "offset": msg.offset,
                "timestamp_ms": msg.timestamp_ms,
            },
            "original_b64": base64.b64encode(kept[:keep_bytes]).decode("ascii"),
            "original_size": len(value),
            "original_sha256": hashlib.sha256(value).hexdigest(),
            "original_truncated": len(kept) > keep_bytes,
            "failed_at": int(now * 1000),
            "schema_version": SCHEMA_VERSION,
        }
    )


SCORE_PLACES = 5  # decimals of the probabilities a prediction record shows


class ScoredBatch(NamedTuple):
    """A batch's class probabilities as the processor uses them (see :func:`score_batch`)."""

    top: list[Any]  # each post's top class (``None``: the model knows no class yet)
    top_proba: list[float]  # its probability, as the batch gives it (0.0 without one)
    shown: list[dict[str, float]]  # the probabilities as a prediction record shows them


def score_batch(batch: Sequence[Mapping[Any, float]], places: int = SCORE_PLACES) -> ScoredBatch:
    """Each post's top class (as :func:`models.features.top_class` gives it), that class's probability,
    and the probabilities as a prediction record shows them: string keys, ``places`` decimals. In a few
    array operations when the posts list the same classes in the same order (a model's
    ``predict_many`` gives them so), else one post at a time. The classes are the model's labels:
    strings, never ``None`` (which stands for no class).

    >>> b = score_batch([{"a": 0.123456, "b": 0.876544}, {"a": 0.5, "b": 0.5}])
    >>> b.top, b.top_proba, b.shown
    (['b', 'a'], [0.876544, 0.5], [{'a': 0.12346, 'b': 0.87654}, {'a': 0.5, 'b': 0.5}])
    >>> score_batch([{"a": 1.0}, {}, {"b": 0.333333}])
    ScoredBatch(top=['a', None, 'b'], top_proba=[1.0, 0.0, 0.333333], shown=[{'a': 1.0}, {}, {'b': 0.33333}])

    The array rounding (NumPy's: the value scaled by ``10 ** places``, rounded half to even) agrees with
    Python's ``round`` except within about one ulp of a decimal tie (``5e-06`` gives ``0.0``, where
    ``round`` gives ``1e-05``), which probabilities out of a softmax do not meet in practice; the top
    class is the first of the highest, as :func:`~models.features.top_class` says:

    >>> import random; rng = random.Random(0)
    >>> batch = [{c: rng.choice((0.25, rng.random())) for c in "abc"} for _ in range(1000)]
    >>> b = score_batch(batch)
    >>> [s["a"] for s in b.shown] == [round(s["a"], 5) for s in batch], b.top == [top_class(s) for s in batch]
    (True, True)
    """
    if not batch:
        return ScoredBatch([], [], [])
    classes = tuple(batch[0])
    if not classes or any(tuple(s) != classes for s in batch):
        top = [top_class(s) for s in batch]
        shown = [{str(c): round(p, places) for c, p in s.items()} for s in batch]
    else:
        probas = np.array([list(s.values()) for s in batch], dtype=np.float64)
        top = [classes[i] for i in probas.argmax(axis=1).tolist()]
        names = [str(c) for c in classes]
        shown = [dict(zip(names, row, strict=True)) for row in np.round(probas, places).tolist()]
    return ScoredBatch(top, [0.0 if t is None else s[t] for s, t in zip(batch, top, strict=True)], shown)


def prediction_record(
    post: Post,
    clean: CleanPost,
    interest: str | None,
    scores: dict[str, float],
    version: int,
    now: float,
    sentiment: Sentiment | None = None,
    user_id: str | None = None,
    cold_labels: int = 0,
) -> dict[str, Any]:
    """The body of an ``interest.predictions`` event: ``interest`` the top class, ``scores`` as
    :func:`score_batch` shows them (``cold``: the model had learned fewer than ``cold_labels``
    labels)."""
    return {
        "post_id": post.id,
        "user_id": post.user_id if user_id is None else user_id,
        "interest": interest,
        "scores": scores,
        "cold": version < cold_labels,
        "sentiment": sentiment.to_dict() if sentiment is not None else None,
        "model_version": version,
        "hashtags": list(clean.hashtags),
        "platform": post.platform,
        "campaign": post.campaign,
        "created_at": post.created_at,
        "processed_at": int(now * 1000),
        "schema_version": SCHEMA_VERSION,
    }


def training_post(
    post_id: str,
    features: Features,
    predicted: str | None,
    label: str | None,
    lex: Sequence[float] | None = None,
    sentiment_predicted: str | None = None,
    sentiment: str | None = None,
    joined: bool = False,
    words: int | None = None,
) -> bytes:
    """A ``post`` record of the training log: features, predictions, lexicon scores, known labels
    (``joined``: the labels came later, as feedback, and were joined to the post where it waited);
    ``words``: how many of the features, the first ones, are the post's words (the sentiment model
    reads those alone)."""
    rec: dict[str, Any] = {"k": "post", "id": post_id, "x": list(features.items()), "p": predicted, "y": label}
    if words is not None:
        rec["w"] = words
    if lex is not None:
        rec["l"] = list(lex)
        rec["sp"] = sentiment_predicted
        rec["s"] = sentiment
    if joined:
        rec["j"] = 1
    return orjson.dumps(rec)


def training_label(post_id: str, label: str | None, sentiment: str | None = None) -> bytes:
    """A ``label`` record of the training log: a delayed interest and/or sentiment label."""
    return orjson.dumps({"k": "label", "id": post_id, "y": label, "s": sentiment})


def training_erase(token: str) -> bytes:
    """An ``erase`` record: from here on every worker ignores the user's posts
    (``token`` is :func:`stream.pipeline.privacy.erased_token` of the user's pseudonym, never the id)."""
    return orjson.dumps({"k": "erase", "u": token})


@dataclass(frozen=True, slots=True)
class TrainingRecord:
    """One record of the training log, decoded: a ``post`` (features, predictions, known labels), a
    delayed ``label`` (interest and/or sentiment), or an ``erase`` (a user's token)."""

    kind: str
    post_id: str = ""
    features: Features | None = None
    predicted: str | None = None
    label: str | None = None
    lex: tuple[float, ...] | None = None
    sentiment_predicted: str | None = None
    sentiment: str | None = None
    user: str = ""
    joined: bool = False
    words: int | None = None  # the first ``words`` features are the post's words (None: all of them)


def decode_training(value: bytes) -> TrainingRecord | None:
    """One training-log record, or ``None`` when it is not one this version writes (not JSON, an
    unknown kind, a field missing or of the wrong type, a label record without a label).

    >>> decode_training(training_erase("t1"))
    TrainingRecord(kind='erase', post_id='', features=None, predicted=None, label=None, lex=None, \
sentiment_predicted=None, sentiment=None, user='t1', joined=False, words=None)
    >>> decode_training(b'{"k": "label", "id": "p1", "y": null, "s": null}') is None
    True
    """
    try:
        rec = orjson.loads(value)
        kind = rec["k"]
        if kind == "erase":
            return TrainingRecord("erase", user=str(rec["u"]))
        label, sentiment = rec.get("y"), rec.get("s")
        if kind == "label":
            if label is None and sentiment is None:
                return None
            return TrainingRecord("label", str(rec["id"]), label=label, sentiment=sentiment)
        if kind == "post":
            lex, words = rec.get("l"), rec.get("w")
            return TrainingRecord(
                "post",
                str(rec["id"]),
                dict(rec["x"]),
                rec.get("p"),
                label,
                tuple(lex) if lex else None,
                rec.get("sp"),
                sentiment,
                joined=bool(rec.get("j")),
                words=None if words is None else int(words),
            )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return None
