"""What each part of a post's work costs, timed alone, beside what the simplest code for that part
costs: the peer's stock code (``stream/tools/bench_peer.py``: a regex cleaner, River's
``BagOfWords | MultinomialNB``), the stock VADER analyzer, or the bare JSON parse.

Run ``python -m stream.tools.floors [--events N] [--passes K]``: the interest and sentiment models,
and the peer's model, learn the first ``N`` demo tweets (default 8,000); each part is then timed on
the next ``N`` (at most 6,000), in slices of 64 as the worker predicts them, and the best of
``K`` passes (default 5) is given in µs per post. The references do less than the worker's code
(the regex cleaner does not repair mojibake or HTML entities, name emoji, split hashtags into words or
remove e-mail addresses and phone numbers; the bag of words has no word pairs, hashtags or hashing):
they say how far a part could fall, not what a worker could drop.

"de-duplicate" is the processor's check of each post's id and text against those it has seen (none of
these); "aggregates drained" encodes what the processor keeps of each post for the aggregating agents
(its audience entry and its profile entry) as the records of the internal topics, every 1,024 posts.
The processor drops repeated texts as a worker does (about 4% of these posts), and is still divided by
all the posts; learning is timed with the delta tracking of the learner process, without taking the
deltas (3-4 µs a label, see ``docs/performance.md``).

>>> rows = measure(events=40, passes=2)
>>> [r["part"] for r in rows][:3]
['decode + validate', 'clean', 'featurize']
>>> [r["part"] for r in rows if r["reference_us"] is None]  # doctest: +NORMALIZE_WHITESPACE
['sentiment model', 'de-duplicate', 'training record', 'aggregates drained', 'the processor',
 'audience windows', 'profiles']

Each pass gets its own input, made before its clock starts:

>>> given = []
>>> _ = _best_of(given.append, 3, 1, lambda k: [k] * (k + 1))
>>> given
[[0], [1, 1], [2, 2, 2]]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

SLICE = 64


def _best(fn: Callable[[], object], passes: int, n: int) -> float:
    """µs per post of ``fn`` over ``n`` posts: the best of ``passes`` runs."""
    return _best_of(lambda _: fn(), passes, n, lambda _: None)


def _best_of(fn: Callable[[Any], object], passes: int, n: int, prepare: Callable[[int], Any]) -> float:
    """µs per post of ``fn(prepare(k))`` over ``n`` posts, the best of ``passes`` runs ``k``; only
    ``fn`` is timed (each pass's input is made just before, and dropped after)."""
    best = float("inf")
    for k in range(passes):
        given = prepare(k)
        t = time.perf_counter()
        fn(given)
        best = min(best, time.perf_counter() - t)
        del given
    return best / max(1, n) * 1e6


def _slices(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + SLICE] for i in range(0, len(items), SLICE)]


def measure(events: int = 8000, passes: int = 5) -> list[dict[str, Any]]:
    """The parts' costs (``ours_us``) and their references' (``reference_us``, ``None``: no
    reference), in the order a post meets them."""
    from river import compose, feature_extraction, naive_bayes
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from models.features import top_class
    from models.sentiment import lexicon_scores
    from stream.audience.windows import PostTuple
    from stream.pipeline.cleaning import CleanPost, clean_post
    from stream.pipeline.events import Post, parse_post
    from stream.pipeline.processor import Processor, ProfileEntries
    from stream.pipeline.records import Message, prediction_record, score_batch, training_post
    from stream.settings import Settings
    from stream.tools.bench import aggregating_inputs, apply_partials, apply_profile_updates
    from stream.tools.bench_peer import clean as regex_clean
    from stream.tools.data import tweets_stream

    data = tweets_stream()
    learned, timed = data[:events], data[events : events + min(events, 6000)]
    settings = Settings.from_env()
    proc = Processor(settings)
    for chunk in _slices([orjson.dumps(e) for e in learned]):
        proc.run_locally(proc.process_posts([Message(v) for v in chunk]))
    peer = compose.Pipeline(feature_extraction.BagOfWords(), naive_bayes.MultinomialNB(alpha=0.5))
    for e in learned:
        if isinstance(e.get("interest"), str):
            peer.learn_one(regex_clean(e["text"]), e["interest"])  # type: ignore[arg-type]  # a str in

    raw = [orjson.dumps(e) for e in timed]
    posts = [p for p in map(parse_post, raw) if isinstance(p, Post)]
    pairs = [(p, c) for p, c in ((p, clean_post(p)) for p in posts) if isinstance(c, CleanPost)]
    model, sentiment_model = proc.model, proc.learner.sentiment
    featured = [model.features_and_words(c) for _, c in pairs]
    xs, words = [x for x, _ in featured], [w for _, w in featured]
    scores = [s for chunk in _slices(xs) for s in model.predict_many(list(chunk))]
    lexes = [lexicon_scores(p.text) for p, _ in pairs]
    scored = [score_batch(chunk) for chunk in _slices(scores)]  # as the processor scores a slice
    tops = [t for b in scored for t in b.top]
    top_probas = [p for b in scored for p in b.top_proba]
    sentiments = sentiment_model.predict_many(xs, lexes, sentiment_model.interests_of(tops, top_probas), words)
    texts = [regex_clean(p.text) for p, _ in pairs]
    bags = [peer["BagOfWords"].transform_one(t) for t in texts]
    vader = SentimentIntensityAnalyzer()
    n = len(pairs)

    def predict_ours() -> None:
        for chunk in _slices(xs):
            model.predict_many(list(chunk))

    def sentiment_ours() -> None:  # with each post's interest for it, as the processor gives them
        interests_of = sentiment_model.interests_of
        for i in range(0, n, SLICE):
            j = i + SLICE
            sentiment_model.predict_many(xs[i:j], lexes[i:j], interests_of(tops[i:j], top_probas[i:j]), words[i:j])

    def training_ours() -> None:
        for (post, _), x, w, t, lex, sent in zip(pairs, xs, words, tops, lexes, sentiments, strict=True):
            training_post(post.id, x, t, post.interest, lex, sent.label, post.sentiment, words=w)

    def record_ours() -> None:
        now = time.time()
        for i in range(0, n, SLICE):  # the scores of a slice are scored together, as the processor does
            j = i + SLICE
            top, _, shown = score_batch(scores[i:j])
            for (post, clean), t, s, sent in zip(pairs[i:j], top, shown, sentiments[i:j], strict=True):
                orjson.dumps(prediction_record(post, clean, t, s, 1, now, sent))

    def record_peer() -> None:
        for (post, _), s in zip(pairs, scores, strict=True):
            orjson.dumps({"post_id": post.id, "interest": top_class(s)})

    learner, now_ms = proc.learner, int(time.time() * 1000)
    learner.track()  # as the learner process does: each label also records what it changed, for the deltas

    def records_of(k: int) -> list[bytes]:  # a pass's posts under new ids: a post learned before is skipped
        learner.take_delta()  # taken every second in the learner process (not timed here): tracking starts afresh
        return [
            training_post(f"{p.id}/{k}", x, t, p.interest, lex, sent.label, p.sentiment, words=w)
            for (p, _), x, w, t, lex, sent in zip(pairs, xs, words, tops, lexes, sentiments, strict=True)
        ]

    offsets = iter(range(learner.offset + 1, 1 << 62))

    def learn_ours(records: list[bytes]) -> None:
        for record in records:
            learner.apply(next(offsets), record, now_ms)

    _, partials, updates = aggregating_inputs(settings, raw)  # what the aggregating agents get of these posts

    def dedup_ours(fresh: Processor) -> None:  # a processor that has seen none of these posts
        for post, clean in pairs:
            fresh._duplicate(post, clean)

    def entries_of(k: int) -> list[tuple[list[PostTuple], ProfileEntries]]:  # a pass's posts, untimed
        fresh, messages = Processor(settings, learner=proc.learner), messages_of(k)
        chunks = []
        for i in range(0, len(messages), 1024):  # drained every 1,024 posts (a worker: STREAM_AGGREGATE_INTERVAL)
            for j in range(i, min(i + 1024, len(messages)), SLICE):
                fresh.process_posts(messages[j : j + SLICE])
            chunks.append(fresh.take_aggregates())
        return chunks

    def drain_ours(
        chunks: list[tuple[list[PostTuple], ProfileEntries]],
    ) -> None:  # what the processor keeps for the aggregating agents
        for audience, profiles in chunks:
            proc.encode_aggregates(audience, profiles)

    def messages_of(k: int) -> list[Message]:  # a pass's posts, unseen by the processor (it drops repeats)
        return [Message(orjson.dumps({**e, "id": f"{e['id']}/{k}", "text": f"{e['text']} v{k}"})) for e in timed]

    def processor_ours(messages: list[Message]) -> None:  # the processor as a worker runs it
        for i in range(0, len(messages), 1024):
            for j in range(i, min(i + 1024, len(messages)), SLICE):
                proc.process_posts(messages[j : j + SLICE])
            proc.drain_aggregates()

    nb, bag = peer["MultinomialNB"], peer["BagOfWords"]
    labelled = [(b, p.interest) for b, (p, _) in zip(bags, pairs, strict=True) if isinstance(p.interest, str)]
    # (part, the worker's code timed, the reference, what the reference is)
    rows: list[tuple[str, Callable[[], float], Callable[[], object] | None, str]] = [
        (
            "decode + validate",
            lambda: _best(lambda: [parse_post(v) for v in raw], passes, n),
            lambda: [orjson.loads(v) for v in raw],
            "the JSON parse alone",
        ),
        (
            "clean",
            lambda: _best(lambda: [clean_post(p) for p in posts], passes, n),
            lambda: [regex_clean(p.text) for p in posts],
            "the peer's regex cleaner",
        ),
        (
            "featurize",
            lambda: _best(lambda: [model.features_and_words(c) for _, c in pairs], passes, n),
            lambda: [bag.transform_one(t) for t in texts],
            "River's BagOfWords (the peer's)",
        ),
        (
            "predict interest",
            lambda: _best(predict_ours, passes, n),
            lambda: [nb.predict_proba_one(b) for b in bags],
            "River's MultinomialNB, a post at a time (the peer's)",
        ),
        (
            "VADER",
            lambda: _best(lambda: [lexicon_scores(p.text) for p, _ in pairs], passes, n),
            lambda: [vader.polarity_scores(p.text) for p, _ in pairs],
            "vaderSentiment's analyzer",
        ),
        ("sentiment model", lambda: _best(sentiment_ours, passes, n), None, "none (the peer has no sentiment)"),
        (
            "de-duplicate",
            lambda: _best_of(dedup_ours, passes, n, lambda _: Processor(settings, learner=proc.learner)),
            None,
            "none (the peer predicts every post it gets)",
        ),
        ("training record", lambda: _best(training_ours, passes, n), None, "none (the peer learns in its loop)"),
        (
            "prediction record",
            lambda: _best(record_ours, passes, n),
            record_peer,
            "the peer's record (id and interest)",
        ),
        (
            "aggregates drained",
            lambda: _best_of(drain_ours, passes, n, entries_of),
            None,
            "none (the peer keeps no windows or profiles)",
        ),
        (
            "the processor",
            lambda: _best_of(processor_ours, passes, n, messages_of),
            None,
            "all of the above but learning, as a worker runs it (and the posts' partials and profile updates)",
        ),
        (
            "audience windows",
            lambda: _best(lambda: apply_partials(settings, partials), passes, n),
            None,
            "none (the peer keeps no windows)",
        ),
        (
            "profiles",
            lambda: _best(lambda: apply_profile_updates(settings, updates), passes, n),
            None,
            "none (the peer keeps no profiles)",
        ),
        (
            "learn",
            lambda: _best_of(learn_ours, passes, n, records_of),
            lambda: [nb.learn_one(b, y) for b, y in labelled],
            "River's MultinomialNB.learn_one (the peer learns in its loop, the worker in its learner process)",
        ),
    ]
    return [
        {
            "part": part,
            "ours_us": ours(),
            "reference_us": _best(reference, passes, n) if reference is not None else None,
            "reference": what,
        }
        for part, ours, reference, what in rows
    ]


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stream.tools.floors", description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=8000, help="demo tweets learned, then timed (at most 6,000)")
    ap.add_argument("--passes", type=int, default=5, help="passes timed; the best is given")
    ap.add_argument("--json", action="store_true", help="the rows as JSON")
    args = ap.parse_args(argv)
    if args.events < 1 or args.passes < 1:
        ap.error("--events and --passes must be at least 1")
    from stream.worker.collect import collect_less

    collect_less()  # the worker's garbage-collector thresholds
    rows = measure(args.events, args.passes)
    if args.json:
        print(orjson.dumps(rows).decode())
        return 0
    print(f"{'part':>18} {'ours µs':>8} {'ref µs':>8}  reference")
    for r in rows:
        print(f"{r['part']:>18} {_fmt(r['ours_us']):>8} {_fmt(r['reference_us']):>8}  {r['reference']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
