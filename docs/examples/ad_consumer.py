"""An ad system's consumer of ``campaign.triggers`` and ``user.interests``, checked against the event
contract that ships with the worker (``stream.schemas``).

Each record is validated with its topic's JSON Schema; an invalid one (not JSON, a field missing or of
the wrong type, an unknown ``schema_version``) is logged and skipped, never acted on. A tombstone on
``user.interests`` (a null value) means the user was erased: forget what you hold for the key. Each
valid record gives one action line on standard output::

    python docs/examples/ad_consumer.py --broker localhost:9092 --group ad-system

Needs ``kafka-python`` and ``jsonschema`` (and the ``interest-stream`` package for its schemas).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from stream.schemas import load_schema

log = logging.getLogger("ad_consumer")

TOPICS = {"campaign.triggers": "campaign.triggers", "user.interests": "user.interests"}
"""Topic name → schema name (rename the keys if your topics are renamed: STREAM_TOPIC_*)."""


class Handler:
    """Validates records and turns each valid one into an action line; ``None`` for a skipped one."""

    def __init__(self, topics: dict[str, str] | None = None):
        self.topics = TOPICS if topics is None else topics
        self.validators = {topic: Draft202012Validator(load_schema(name)) for topic, name in self.topics.items()}
        self.skipped = 0

    def handle(self, topic: str, key: bytes | None, value: bytes | None) -> str | None:
        """The action for one record of ``topic`` (its Kafka key and raw value)."""
        record: Any
        try:
            record = None if value is None else orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            self._skip(topic, key, f"not JSON: {exc}")
            return None
        error = next(iter(self.validators[topic].iter_errors(record)), None)
        if error is not None:
            self._skip(topic, key, f"{'/'.join(map(str, error.absolute_path)) or 'record'}: {error.message}")
            return None
        if self.topics[topic] == "campaign.triggers":
            return self.trigger(record)
        user = (key or b"").decode("utf-8", "replace")
        return f"FORGET {user}" if record is None else self.profile(record)

    def _skip(self, topic: str, key: bytes | None, why: str) -> None:
        self.skipped += 1
        log.warning("skipped an invalid record of %s (key %r): %s", topic, key, why[:200])

    @staticmethod
    def trigger(t: dict[str, Any]) -> str:
        """Launch the campaign the rule names (deduplicate on ``t["id"]``: a redelivery has the same id)."""
        figures = " ".join(f"{k}={v}" for k, v in sorted(t["figures"].items()))
        return f"LAUNCH {t['campaign']} for {t['segment']} (rule {t['rule']}, trigger {t['id']}): {figures}"

    @staticmethod
    def profile(p: dict[str, Any]) -> str:
        """Target the user with their top interests (the latest record per user is the profile)."""
        top = ", ".join(f"{i['interest']} {i['share']:.0%}" for i in p["top"]) or "no interest yet"
        return f"TARGET {p['user_id']}: {top}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--broker", default="localhost:9092", help="bootstrap servers, host:port[,host:port]")
    parser.add_argument("--group", default="ad-system", help="consumer group id")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    from kafka import KafkaConsumer

    handler = Handler()
    consumer = KafkaConsumer(
        *handler.topics, bootstrap_servers=args.broker.split(","), group_id=args.group, auto_offset_reset="earliest"
    )
    try:
        for message in consumer:
            line = handler.handle(message.topic, message.key, message.value)
            if line is not None:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
