"""The peer of ``interest-stream bench``: what a user would write instead of this worker. A Quix Streams
application (confluent-kafka underneath) with River's stock ``BagOfWords | MultinomialNB``, predict
then learn per post, a regex cleaner and one prediction record per post. Not used by the worker; a
dev dependency (Quix Streams). Run as ``python -m stream.tools.bench_peer`` with the benchmark's
``STREAM_*`` settings and ``BENCH_OUTPUT`` (the topic it publishes to).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from stream.clients import quix_connection
from stream.settings import Settings

URL = re.compile(r"https?://\S+|www\.\S+")
MENTION = re.compile(r"[@#](\w+)")
NON_WORD = re.compile(r"[^a-z0-9' ]+")


def clean(text: str) -> str:
    """A regex cleaner: no links, mentions and hashtags reduced to their word, lower case, letters
    and digits only.

    >>> clean("Loving the NEW phone!! https://t.co/x @apple #tech")
    'loving the new phone apple tech'
    """
    text = MENTION.sub(r"\1", URL.sub(" ", text)).lower()
    return " ".join(NON_WORD.sub(" ", text).split())


def build(settings: Settings, output: str) -> Any:
    from quixstreams import Application
    from river import compose, feature_extraction, naive_bayes

    app = Application(
        broker_address=quix_connection(settings),
        consumer_group=settings.app_id,
        auto_offset_reset="earliest",
        loglevel="WARNING",
        # the embedded broker completes a group join after half the session timeout
        consumer_extra_config={
            "session.timeout.ms": int(settings.session_timeout * 1000),
            "heartbeat.interval.ms": int(max(0.5, settings.session_timeout / 4) * 1000),
        },
        producer_extra_config={"enable.idempotence": False},
    )
    source = app.topic(settings.topic_posts, value_deserializer="json")
    sink = app.topic(output, value_serializer="json")
    model = compose.Pipeline(feature_extraction.BagOfWords(), naive_bayes.MultinomialNB(alpha=0.5))

    def valid(post: Any) -> bool:
        return isinstance(post, dict) and isinstance(post.get("id"), str) and isinstance(post.get("text"), str)

    def classify(post: dict[str, Any]) -> dict[str, Any]:
        text = clean(post["text"])
        predicted = model.predict_one(text)  # type: ignore[arg-type]  # BagOfWords takes a str
        if isinstance(post.get("interest"), str):
            model.learn_one(text, post["interest"])  # type: ignore[arg-type]
        return {"post_id": post["id"], "interest": predicted}

    sdf = app.dataframe(source).filter(valid).apply(classify)
    # Quix Streams gives an output the timestamp of its input; the bench reads throughput off the
    # outputs' timestamps, so they carry the time each prediction was made, as the other runs' do.
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: int(time.time() * 1000))
    sdf.to_topic(sink, key=lambda prediction: prediction["post_id"])
    return app


def main() -> None:
    build(Settings.from_env(), os.environ["BENCH_OUTPUT"]).run()


if __name__ == "__main__":
    main()
