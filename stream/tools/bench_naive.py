"""The naive baseline of ``interest-stream bench``: the textbook Faust agent doing the same work per
event as the pipeline, one event at a time, with the stock libraries (River's ``BagOfWords |
MultinomialNB``, vaderSentiment's ``SentimentIntensityAnalyzer``) and an ``await topic.send()`` per
event. Not used by the worker; run as ``python -m stream.tools.bench_naive`` with the benchmark's
``STREAM_*`` settings and ``BENCH_OUTPUT`` (the topic it publishes to).
"""

from __future__ import annotations

import json
import os
import sys

import faust
from river import compose, feature_extraction, naive_bayes
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from models.sentiment import LEXICON_MAX_CHARS, lexicon_label
from stream.pipeline.cleaning import CleanPost, clean_post
from stream.pipeline.events import Post, parse_post
from stream.settings import Settings


def build(settings: Settings, output: str) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        autodiscover=False,
        store="memory://",
        web_host=settings.web_host,
        web_port=settings.web_port,
        datadir=settings.data_dir,
        broker_session_timeout=settings.session_timeout,
        consumer_auto_offset_reset="earliest",
        broker_heartbeat_interval=max(0.5, settings.session_timeout / 4),
    )
    source = app.topic(settings.topic_posts, value_serializer="raw")
    sink = app.topic(output, value_serializer="raw", partitions=settings.partitions)
    model = compose.Pipeline(feature_extraction.BagOfWords(), naive_bayes.MultinomialNB(alpha=0.5))
    vader = SentimentIntensityAnalyzer()

    @app.agent(source, name="naive")
    async def naive(stream: faust.StreamT) -> None:
        async for value in stream:
            post = parse_post(value)
            if not isinstance(post, Post):
                continue
            clean = clean_post(post)
            if not isinstance(clean, CleanPost):
                continue
            predicted = model.predict_one(clean.text)  # type: ignore[arg-type]  # BagOfWords takes a str
            sentiment = lexicon_label(vader.polarity_scores(post.text[:LEXICON_MAX_CHARS])["compound"])
            if post.interest is not None:
                model.learn_one(clean.text, post.interest)  # type: ignore[arg-type]  # BagOfWords takes a str
            await sink.send(
                key=post.id.encode(),
                value=json.dumps({"post_id": post.id, "interest": predicted, "sentiment": sentiment}).encode(),
            )

    return app


def main() -> None:
    app = build(Settings.from_env(), os.environ["BENCH_OUTPUT"])
    sys.argv = ["bench-naive", "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
