"""Offline evaluation through the *same* processor the worker runs, without Kafka.

``interest-stream evaluate --test FILE [--train FILE] [--frozen] [--task sentiment]`` learns on
``--train`` (prequentially) and then reports on ``--test``: prequentially (each post is predicted,
then learned) or, with ``--frozen``, without learning on the test stream. ``--task sentiment``
reports the sentiment the worker publishes beside the lexicon alone, on the same labels.
``interest-stream compare FILE`` runs every model candidate over one stream.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from models.factory import BASELINES, CANDIDATES, DESCRIPTIONS
from models.metrics import Evaluation
from models.online import OnlineModel
from models.sentiment import SentimentModel
from stream.pipeline.learner import Learner
from stream.pipeline.processor import Processor
from stream.pipeline.records import Message
from stream.settings import Settings

BATCH = 32  # posts predicted before the model learns from them, as in a worker's slice


def _records(events: Iterable[dict[str, Any] | bytes]) -> list[Message]:
    return [Message(e if isinstance(e, bytes) else orjson.dumps(e)) for e in events]


def run(
    processor: Processor,
    events: Sequence[dict[str, Any] | bytes],
    on_prediction: Callable[[dict[str, Any]], None] | None = None,
) -> float:
    """Feed ``events`` through ``processor`` in batches, as a worker does (each batch is predicted,
    then learned); ``on_prediction`` sees every prediction record. Returns the seconds it took."""
    messages = _records(events)
    start = time.perf_counter()
    for i in range(0, len(messages), BATCH):
        out = processor.process_posts(messages[i : i + BATCH])
        if on_prediction is not None:
            for _, value in out.predictions:
                on_prediction(orjson.loads(value))
        processor.run_locally(out)
        processor.drain_aggregates()  # windows and profiles are the worker's business: not kept here
    return time.perf_counter() - start


def scorer(
    events: Sequence[dict[str, Any] | bytes], task: str, evaluation: Evaluation
) -> Callable[[dict[str, Any]], None]:
    """A prediction callback that scores each prediction against its event's label (if it has one):
    for ``interest`` the class probabilities, for ``sentiment`` the label published."""
    truth = {str(e["id"]): e for e in events if isinstance(e, dict) and "id" in e}

    def score(record: dict[str, Any]) -> None:
        event = truth.get(record["post_id"])
        if event is None:
            return
        label = event.get(task)
        if label is None:
            return
        if task == "sentiment":
            proba = {record["sentiment"]["label"]: 1.0} if record.get("sentiment") else {}
        else:
            proba = record["scores"]
        evaluation.update(
            label,
            proba,
            int(record.get("created_at") or 0),
            {"platform": record.get("platform"), "lang": event.get("lang"), "campaign": record.get("campaign")},
        )

    return score


def split_later(events: Sequence[dict[str, Any]], fraction: float) -> tuple[list, list]:
    """Hold out, for each interest, the last ``fraction`` of its posts in event time: the posts
    written *after* those a model learns from. Both parts keep the input order; posts without an
    interest label stay in the first part.

    Event time decides, not the order of the list (here the newest posts come first):

    >>> events = [{"id": i, "interest": "ab"[i % 2], "created_at": 10 - i} for i in range(8)]
    >>> earlier, later = split_later(events, 0.25)
    >>> [e["id"] for e in earlier], [e["id"] for e in later]
    ([2, 3, 4, 5, 6, 7], [0, 1])
    """
    by_interest: dict[Any, list[tuple[int, int]]] = {}
    for i, e in enumerate(events):
        if e.get("interest") is not None:
            by_interest.setdefault(e["interest"], []).append((int(e.get("created_at") or 0), i))
    held: set[int] = set()
    for posts in by_interest.values():
        posts.sort()
        keep = len(posts) - round(len(posts) * fraction)
        held.update(i for _, i in posts[keep:])
    return ([e for i, e in enumerate(events) if i not in held], [e for i, e in enumerate(events) if i in held])


def batch_baseline(
    train: Sequence[dict[str, Any] | bytes], test: Sequence[dict[str, Any] | bytes], scored_ids: set[str]
) -> list[dict[str, Any]]:
    """The batch TF-IDF + linear SVM (:func:`models.baseline.batch_svm`) trained on the labelled
    posts of ``train`` as the worker cleans them, scored on the posts of ``test`` the worker scored."""
    from models.baseline import batch_svm
    from stream.pipeline.cleaning import CleanPost, clean_event

    def texts(events: Iterable[Any], keep: Callable[[dict[str, Any]], bool]) -> tuple[list[str], list[str]]:
        xs, ys = [], []
        for e in events:
            if not isinstance(e, dict) or e.get("interest") is None or not keep(e):
                continue
            clean = clean_event(e)
            if isinstance(clean, CleanPost):
                xs.append(clean.text)
                ys.append(e["interest"])
        return xs, ys

    return batch_svm(*texts(train, lambda e: True), *texts(test, lambda e: str(e.get("id")) in scored_ids))


def summary(processor: Processor, seconds: float, n_events: int) -> dict[str, Any]:
    q = processor.learner.quality.snapshot()
    stats = processor.stats
    return {
        "n": q["n"],
        "events": n_events,
        "accuracy": q["accuracy"],
        "macro_f1": q["macro_f1"],
        "kappa": q["kappa"],
        "rolling": q["rolling"],
        "events_per_s": n_events / seconds if seconds > 0 else 0.0,
        "us_per_event": seconds / n_events * 1e6 if n_events else 0.0,
        "dead_letters": dict(stats.dead_letters),
        "duplicates": dict(stats.duplicates),
        "classes": sorted(map(str, processor.model.classes)),
        "model": processor.model.name,
        "model_version": processor.model.version,
        "drifts": processor.model.drifts,
    }


def sentiment_summary(processor: Processor, seconds: float, n_events: int) -> dict[str, Any]:
    """The sentiment the worker publishes against the lexicon alone, on the same labels."""
    learner = processor.learner
    q, lex = learner.sentiment_quality.snapshot(), learner.lexicon_quality.snapshot()
    return {
        "task": "sentiment",
        "n": q["n"],
        "events": n_events,
        "accuracy": q["accuracy"],
        "macro_f1": q["macro_f1"],
        "kappa": q["kappa"],
        "lexicon_accuracy": lex["accuracy"],
        "lexicon_macro_f1": lex["macro_f1"],
        "lexicon_kappa": lex["kappa"],
        "rolling": q["rolling"],
        "labels_learned": learner.sentiment.n_labels,
        "events_per_s": n_events / seconds if seconds > 0 else 0.0,
    }


def evaluate(
    test: Sequence[dict[str, Any] | bytes],
    train: Sequence[dict[str, Any] | bytes] | None = None,
    frozen: bool = False,
    settings: Settings | None = None,
    task: str = "interest",
    blocks: int = 10,
    baseline: bool = False,
) -> dict[str, Any]:
    """Learn on ``train`` (if any), then score ``test``; returns the figures of the test stream for
    ``task`` (``interest``, or ``sentiment``: the worker's sentiment beside the lexicon's), and under
    ``detail`` the same predictions scored in full (:class:`models.metrics.Evaluation`: log-loss,
    calibration, per class, ``blocks`` consecutive blocks, per platform / language / campaign).
    ``baseline`` adds, under ``baseline``, a batch TF-IDF + linear SVM trained on ``train`` and scored
    on the same test posts (interest only)."""
    settings = settings or Settings.from_env()
    model = OnlineModel(settings.model, settings.hash_bits, adapt=settings.drift_adapt)
    sentiment = SentimentModel(warmup=settings.sentiment_warmup)
    report_of = sentiment_summary if task == "sentiment" else summary
    report: dict[str, Any] = {}
    if train:
        warm = Processor(settings, Learner(settings, model, sentiment=sentiment))
        seconds = run(warm, train)
        report["train"] = report_of(warm, seconds, len(train))
    proc = Processor(settings, Learner(settings, model, learn=not frozen, sentiment=sentiment))
    evaluation = Evaluation(blocks=blocks)
    score = scorer(test, task, evaluation)
    scored: set[str] = set()

    def on_prediction(record: dict[str, Any]) -> None:
        scored.add(record["post_id"])
        score(record)

    seconds = run(proc, test, on_prediction)
    report.update(report_of(proc, seconds, len(test)))
    detail = evaluation.report()
    if task == "sentiment":  # published labels only: no probabilities to take a log-loss of
        detail.pop("log_loss")
        detail.pop("calibration")
    report["detail"] = detail
    report["mode"] = "frozen" if frozen else "prequential"
    if baseline and task == "interest":
        report["baseline"] = batch_baseline(train or [], test, scored)
    return report


def compare(
    events: Sequence[dict[str, Any] | bytes],
    names: Iterable[str] = (*BASELINES, *CANDIDATES),
    settings: Settings | None = None,
) -> list[dict[str, Any]]:
    """Prequential quality, speed and size of each model candidate on the same stream."""
    settings = settings or Settings.from_env()
    rows = []
    for name in names:
        proc = Processor(settings, Learner(settings, OnlineModel(name, settings.hash_bits)))
        seconds = run(proc, events)
        row = summary(proc, seconds, len(events))
        row["size_kb"] = len(pickle.dumps(proc.model.classifier)) / 1024
        row["description"] = DESCRIPTIONS[name]
        rows.append(row)
    return rows
