"""The event contract on the real broker: a worker takes demo posts, malformed posts, delayed labels,
erasure requests and trigger rules, and every record of every public output topic validates against
its shipped schema (each topic had records, each record kind of the audience topic came)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from stream.schemas import OUTPUTS
from stream.settings import Settings
from stream.tools.demo import WorkerProcess, read_records, wait_processed
from stream.tools.produce import produce
from tests.integration.test_audience import read_until, wait_model_version
from tests.test_schemas import RULES, check_output, contract_settings, load_example, scenario, validator

pytestmark = pytest.mark.integration


def send(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    with KafkaProducer(bootstrap_servers=settings.bootstrap_servers) as producer:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush()


def test_every_public_output_record_validates_against_its_schema(settings, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    settings = settings.replace(**contract_settings(trigger_rules=str(rules)))
    sc = scenario()
    for post in [*sc.warm, *sc.burst, sc.closer]:  # what is sent follows the input contract
        assert validator("social.posts").is_valid(post)
    for label in sc.feedback:
        assert validator("social.feedback").is_valid(label)
    assert validator("privacy.erasure").is_valid(orjson.loads(sc.erasures[0]))

    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        worker.wait_ready(learner=True)
        sent = produce(settings, [*sc.warm, *sc.bad], progress=False).posts
        send(settings, settings.topic_feedback, [(f["post_id"].encode(), orjson.dumps(f)) for f in sc.feedback])
        wait_processed(settings, sent, len(sc.feedback), timeout=120, progress=False)
        wait_model_version(settings, len(sc.warm) // 2)  # profiles need the model's interests
        sent += produce(settings, sc.burst, progress=False).posts
        wait_processed(settings, sent, len(sc.feedback), timeout=120, progress=False)
        sent += produce(settings, [sc.closer], progress=False).posts  # closes every window
        read_until(settings, settings.topic_audience, lambda r: any(v and v["type"] == "spike" for _, v in r))
        read_until(settings, settings.topic_profiles, lambda r: any(v for _, v in r))
        send(settings, settings.topic_erasure, [(None, e) for e in sc.erasures])
        read_until(settings, settings.topic_profiles, lambda r: any(v is None for _, v in r))
        wait_processed(settings, sent, len(sc.feedback), timeout=60, progress=False)
        time.sleep(2)  # a metrics snapshot after the last record
        topics: dict[str, list[tuple[bytes | None, Any]]] = {
            name: read_records(settings, getattr(settings, setting), keys=True) for name, setting in OUTPUTS
        }

    (tmp_path / "records.json").write_bytes(orjson.dumps({n: [v for _, v in r] for n, r in topics.items()}))
    for name, records in topics.items():
        assert records, f"{name}: no records"
        for _, value in records:
            check_output(name, value)
    audience = [v for _, v in topics["audience.sentiment"]]
    assert {a["type"] for a in audience} == {"window", "spike"}
    triggers = [v for _, v in topics["campaign.triggers"]]
    assert {t["rule"] for t in triggers} == {"busy-minute", "volume-surge"}
    assert any(t["spikes"] for t in triggers)
    profiles = topics["user.interests"]
    assert any(v is None for _, v in profiles) and any(v is not None for _, v in profiles)
    reasons = {d["reason"] for _, d in topics["social.posts.dlq"]}
    assert {"malformed_json", "missing_field", "wrong_type", "bad_timestamp", "bad_label"} <= reasons
    assert any(d["source"]["topic"] == settings.topic_erasure for _, d in topics["social.posts.dlq"])
    assert {m["type"] for _, m in topics["interest.metrics"]} >= {"metrics"}

    # the example ad consumer acts on every real trigger and profile, and forgets the erased user
    handler = load_example().Handler(
        {settings.topic_triggers: "campaign.triggers", settings.topic_profiles: "user.interests"}
    )
    lines = [handler.handle(settings.topic_triggers, k, orjson.dumps(v)) for k, v in topics["campaign.triggers"]]
    lines += [
        handler.handle(settings.topic_profiles, k, None if v is None else orjson.dumps(v))
        for k, v in topics["user.interests"]
    ]
    assert handler.skipped == 0 and all(lines)
    assert any(line.startswith("FORGET p-") for line in lines)
