"""The event contract: every shipped schema is a valid draft 2020-12 schema, the inputs ``events.py``
accepts (and refuses) agree with the input schemas, and every output record the pure functions build
validates against its topic's schema, declares no field the schema does not know, and carries
``schema_version``; records that break the contract do not validate.

The scenario (:func:`scenario`, :data:`RULES`) is shared with ``tests/integration/test_contract.py``,
which runs it through a real worker.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from models.online import OnlineModel
from stream.audience.aggregator import Aggregator
from stream.audience.profiles import ProfileBook
from stream.audience.records import decode_partials, decode_profile_updates
from stream.audience.rules import parse_rules
from stream.audience.spikes import SpikeParams
from stream.audience.windows import WindowSpec
from stream.pipeline.events import Rejected, parse_feedback, parse_post
from stream.pipeline.privacy import parse_erasure
from stream.pipeline.processor import Outputs, Processor
from stream.pipeline.records import Message
from stream.schemas import INPUTS, OUTPUTS, SCHEMA_VERSION, SUFFIX, load_schema, schema_names
from stream.settings import Settings
from stream.tools.data import tweets_stream
from tests.integration.test_audience import letters

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "stream" / "schemas"
EXAMPLE = ROOT / "docs" / "examples" / "ad_consumer.py"

MINUTE = 60_000
WARM = 600  # demo tweets, about one per second of event time: ten one-minute windows of ~60 posts
BURST = 300  # posts in the minute after them: a volume spike of the "all" segment
FEEDBACK = 20  # warm tweets whose labels come later, on the feedback topic
SPIKE_HISTORY = 5  # windows in a spike baseline (STREAM_SPIKE_HISTORY): the burst has a baseline by then
RULES = """
[[rule]]
name = "busy-minute"
campaign = "always-on"
segment = "all"
window = "tumbling"
min_support = 10
when = { volume = ">= 10" }

[[rule]]
name = "volume-surge"
campaign = "surge-response"
segment = "all"
window = "tumbling"
spike = "volume:up"
when = { volume = ">= 100" }
"""
ERASED = "fan0"  # a burst author whose erasure is requested at the end

BAD_POSTS = (  # one per reason events.py gives, each refused by the schema too
    b'{"id": "bad1", "user_id": "u1", "text": "cut off',
    b'["not", "an", "object"]',
    b'{"id": "bad3", "text": "no author", "created_at": 1424736000000}',
    b'{"id": "bad4", "user_id": "u1", "text": 42, "created_at": 1424736000000}',
    b'{"id": "bad5", "user_id": "u1", "text": "when?", "created_at": "yesterday-ish"}',
    b'{"id": "bad6", "user_id": "u1", "text": "hi", "created_at": 1424736000000, "sentiment": "furious"}',
    b'{"id": "' + b"x" * 300 + b'", "user_id": "u1", "text": "hi", "created_at": 1424736000000}',
    b'{"id": "bad8", "user_id": "u1", "text": "hi", "created_at": 1424736000000, "hashtags": "nfl"}',
)
BAD_ERASURE = b'{"user": "who?"}'


@dataclass
class Scenario:
    """What the contract tests send: labelled demo tweets (a few with their labels held back for the
    feedback topic), a burst of unlabelled posts, malformed posts, a post that closes every window,
    and erasure requests (one valid, one malformed)."""

    warm: list[dict[str, Any]]
    feedback: list[dict[str, Any]]
    burst: list[dict[str, Any]]
    closer: dict[str, Any]
    bad: tuple[bytes, ...] = BAD_POSTS
    erasures: tuple[bytes, ...] = field(default=(orjson.dumps({"user_id": ERASED}), BAD_ERASURE))


def scenario() -> Scenario:
    """The posts, labels and erasures of the contract tests."""
    warm = [dict(t) for t in tweets_stream()[:WARM]]
    feedback = []
    for post in warm[-FEEDBACK:]:  # the labels of the last few come later, as feedback
        feedback.append({"post_id": post["id"], "interest": post.pop("interest"), "sentiment": post.pop("sentiment")})
    start = (max(p["created_at"] for p in warm) // MINUTE + 1) * MINUTE
    burst = [
        {
            "id": f"burst{i}",
            "user_id": f"fan{i % 5}",
            "campaign": "acme",
            "hashtags": ["acmefail"],
            "platform": "twitter",
            "text": f"@acme my flight got cancelled again, terrible awful service #acmefail {letters(i)}",
            "created_at": start + i * (MINUTE - 1000) // BURST,
        }
        for i in range(BURST)
    ]
    closer = {"id": "closer", "user_id": "u0", "text": "a plain update", "created_at": start + 40 * MINUTE}
    return Scenario(warm, feedback, burst, closer)


def contract_settings(**overrides: Any) -> dict[str, Any]:
    """The settings both contract tests run with (beyond the test's own names and ports)."""
    return dict(pseudonym_key="contract-key", spike_history=SPIKE_HISTORY, window_lateness=600, **overrides)


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name))


def branch(schema: dict[str, Any], record: Any) -> dict[str, Any]:
    """The part of ``schema`` that describes ``record``: for a ``oneOf`` schema, the ``$defs`` entry
    whose ``type`` constant is the record's ``type`` (or the only object branch)."""
    if "oneOf" not in schema:
        return schema
    for option in schema["oneOf"]:
        part = schema["$defs"][option["$ref"].rsplit("/", 1)[-1]]
        if part.get("type") == "object" and part["properties"].get("type", {}).get("const", record.get("type")) == (
            record.get("type")
        ):
            return dict(part)
    raise AssertionError(f"no branch of {schema['$id']} for a record of type {record.get('type')!r}")


def undeclared(schema: dict[str, Any], record: dict[str, Any]) -> set[str]:
    """Fields of ``record`` that its schema does not declare (they would go undocumented)."""
    return set(record) - set(branch(schema, record)["properties"])


def check_output(name: str, record: Any) -> None:
    """``record`` validates against the ``name`` schema, with every field declared."""
    schema = load_schema(name)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(name).iter_errors(record)]
    assert not errors, (name, errors, record)
    if record is not None:
        assert undeclared(schema, record) == set(), (name, record)
        assert record["schema_version"] == SCHEMA_VERSION


@dataclass
class Offline:
    """Every public output record of the scenario, built by the worker's pure functions (no Kafka),
    by the default name of its topic."""

    records: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name, _ in OUTPUTS})

    def add(self, name: str, values: list[bytes | None]) -> None:
        self.records[name].extend(None if v is None else orjson.loads(v) for v in values)


def run_offline(sc: Scenario) -> Offline:
    """The scenario through a processor, an aggregator and a profile book, as a worker runs them."""
    settings = Settings(**contract_settings())
    proc = Processor(settings)
    rules = parse_rules(tomllib.loads(RULES), "rules.toml")
    spikes = SpikeParams(baseline=SPIKE_HISTORY, threshold=settings.spike_threshold, min_history=SPIKE_HISTORY)
    aggregator = Aggregator({}, WindowSpec.from_settings(settings), spikes, rules, proc.stats)
    book = ProfileBook({}, settings.profile_half_life, settings.profile_top_k, is_erased=proc.view.is_erased)
    result, offsets = Offline(), iter(range(1_000_000))

    def publish(out: Outputs) -> None:
        proc.run_locally(out)
        result.add("interest.predictions", [v for _, v in out.predictions])
        result.add("social.posts.dlq", [v for _, v in out.dead_letters])
        result.add("interest.metrics", list(out.events))
        drained = proc.drain_aggregates()
        for partition, value in drained.partials:
            segments, max_ts = decode_partials(value)
            emitted = aggregator.on_partials(partition, next(offsets), segments, max_ts)
            result.add("audience.sentiment", [orjson.dumps(r) for r in emitted.windows + emitted.spikes])
            result.add("campaign.triggers", [orjson.dumps(r) for r in emitted.triggers])
        for _, value in drained.profile_updates + out.profile_updates:
            published = book.apply_batch(decode_profile_updates(value), next(offsets))
            result.add("user.interests", [v for _, v in published])

    def posts(events: list[Any]) -> list[Message]:
        return [Message(e if isinstance(e, bytes) else orjson.dumps(e), key=None) for e in events]

    for batch in (sc.warm[:300], sc.warm[300:], list(sc.bad)):
        publish(proc.process_posts(posts(batch)))
    publish(proc.process_feedback([Message(orjson.dumps(f)) for f in sc.feedback]))
    publish(proc.process_posts(posts(sc.burst)))
    publish(proc.process_posts(posts([sc.closer])))
    publish(proc.process_erasures([Message(e) for e in sc.erasures]))
    result.add("interest.metrics", [orjson.dumps(proc.snapshot())])
    return result


@pytest.fixture(scope="module")
def offline() -> Offline:
    return run_offline(scenario())


def load_example() -> ModuleType:
    """``docs/examples/ad_consumer.py``, imported from its file."""
    spec = importlib.util.spec_from_file_location("ad_consumer", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the schemas themselves ----------------------------------------------------------------------


@pytest.mark.parametrize("name", schema_names())
def test_every_schema_is_a_valid_draft_2020_12_schema(name):
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:interest-stream:schemas:{name}" and schema["title"].startswith(name + ": ")


def test_the_package_ships_exactly_the_schemas_it_names():
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(n + SUFFIX for n in schema_names())
    settings = {f for f in Settings.__dataclass_fields__ if f.startswith("topic_")}
    assert {s for _, s in (*INPUTS, *OUTPUTS)} <= settings
    assert all(getattr(Settings(), s) == name for name, s in (*INPUTS, *OUTPUTS))  # named after the defaults


def test_every_output_schema_requires_the_schema_version():
    def parts(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if "oneOf" not in schema:
            yield schema
        for option in schema.get("oneOf", []):
            part = schema["$defs"][option["$ref"].rsplit("/", 1)[-1]]
            if part.get("type") == "object":
                yield part

    for name, _ in OUTPUTS:
        for part in parts(load_schema(name)):
            assert "schema_version" in part["required"], name
            assert part["properties"]["schema_version"] == {"const": SCHEMA_VERSION}, name


def test_the_spike_in_a_trigger_is_the_spike_of_the_audience_topic():
    assert load_schema("campaign.triggers")["$defs"]["spike"] == load_schema("audience.sentiment")["$defs"]["spike"]


def test_load_schema_returns_a_fresh_copy():
    schema = load_schema("user.interests")
    schema["title"] = "changed"
    assert load_schema("user.interests")["title"] != "changed"


# -- inputs --------------------------------------------------------------------------------------


def test_the_posts_events_py_accepts_validate_and_the_ones_it_refuses_do_not():
    sc = scenario()
    posts = validator("social.posts")
    for post in [*sc.warm, *sc.burst, sc.closer, *load_schema("social.posts")["examples"]]:
        assert not isinstance(parse_post(orjson.dumps(post)), Rejected)
        assert posts.is_valid(post), post
    for raw in sc.bad:
        assert isinstance(parse_post(raw), Rejected), raw
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            continue  # not JSON: no schema can say more
        assert not posts.is_valid(value), raw


def test_feedback_and_erasures_agree_with_their_schemas():
    feedback, erasure = validator("social.feedback"), validator("privacy.erasure")
    labels: list[Any] = [*scenario().feedback, *load_schema("social.feedback")["examples"]]
    for label in labels:
        assert not isinstance(parse_feedback(orjson.dumps(label)), Rejected) and feedback.is_valid(label)
    for bad in ({"post_id": "9"}, {"interest": "travel"}, {"post_id": "9", "sentiment": "furious"}):
        assert isinstance(parse_feedback(orjson.dumps(bad)), Rejected) and not feedback.is_valid(bad)
    assert parse_erasure(orjson.dumps({"user_id": ERASED})) == ERASED and erasure.is_valid({"user_id": ERASED})
    bad_requests: list[dict[str, Any]] = [{"user": "x"}, {"user_id": ""}, {"user_id": ["x"]}]
    for request in bad_requests:
        assert isinstance(parse_erasure(orjson.dumps(request)), Rejected) and not erasure.is_valid(request)


# -- outputs, built by the pure functions --------------------------------------------------------


@pytest.mark.parametrize(("name", "setting"), OUTPUTS)
def test_every_output_record_of_the_scenario_validates(offline, name, setting):
    records = offline.records[name]
    assert records, name
    for record in records:
        check_output(name, record)


def test_the_scenario_builds_every_record_kind(offline):
    r = offline.records
    assert {a["type"] for a in r["audience.sentiment"]} == {"window", "spike"}
    assert {t["rule"] for t in r["campaign.triggers"]} == {"busy-minute", "volume-surge"}
    assert any(t["spikes"] for t in r["campaign.triggers"])
    assert None in r["user.interests"] and any(p is not None for p in r["user.interests"])
    assert {d["reason"] for d in r["social.posts.dlq"]} >= {"malformed_json", "missing_field", "wrong_type"}
    assert all(p["user_id"].startswith("p-") for p in r["interest.predictions"])


def test_a_drift_event_validates(monkeypatch):
    proc = Processor(Settings(), learner=None)
    messages = [Message(orjson.dumps(t)) for t in tweets_stream()[:50]]
    proc.run_locally(proc.process_posts(messages))
    model: OnlineModel = proc.learner.model
    monkeypatch.setattr(model, "learn", lambda x, y, predicted: model._unlearn([y], 0.5))
    out = proc.run_locally(proc.process_posts([Message(orjson.dumps(tweets_stream()[60]))]))
    (event,) = [orjson.loads(e) for e in out.events]
    assert event["type"] == "drift"
    check_output("interest.metrics", event)


# -- records that break the contract -------------------------------------------------------------


def broken(record: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Copies of ``record`` that each break the contract in one way."""
    for key in ("schema_version", "type", "user_id", "post_id", "reason", "id"):
        if key in record:
            bad = copy.deepcopy(record)
            del bad[key]
            yield f"without {key}", bad
    yield "schema_version 2", {**record, "schema_version": 2}
    yield "schema_version as a string", {**record, "schema_version": "1"}
    if "type" in record:
        yield "an unknown type", {**record, "type": record["type"] + "x"}


@pytest.mark.parametrize(("name", "setting"), OUTPUTS)
def test_a_malformed_record_does_not_validate(offline, name, setting):
    record = next(r for r in offline.records[name] if r is not None)
    v = validator(name)
    assert v.is_valid(record)
    for why, bad in broken(record):
        assert not v.is_valid(bad), (name, why)


def test_wrong_types_do_not_validate(offline):
    r = offline.records
    prediction = r["interest.predictions"][-1]
    assert not validator("interest.predictions").is_valid({**prediction, "scores": {"travel": "high"}})
    assert not validator("interest.predictions").is_valid({**prediction, "created_at": "2015-02-24"})
    window = next(a for a in r["audience.sentiment"] if a["type"] == "window")
    assert not validator("audience.sentiment").is_valid({**window, "segment": "planet:mars"})
    assert not validator("audience.sentiment").is_valid({**window, "negative_share": 1.5})
    trigger = r["campaign.triggers"][0]
    assert not validator("campaign.triggers").is_valid({**trigger, "window": {"kind": "tumbling"}})
    profile = next(p for p in r["user.interests"] if p is not None)
    assert not validator("user.interests").is_valid({**profile, "top": [{"interest": "x"}]})
    assert not validator("user.interests").is_valid("null")  # a tombstone is a null value, not the text
    letter = r["social.posts.dlq"][0]
    assert not validator("social.posts.dlq").is_valid({**letter, "original_sha256": "abc"})


# -- the example consumer ------------------------------------------------------------------------


def test_the_example_consumer_acts_on_valid_records_and_skips_the_rest(offline, caplog):
    example = load_example()
    handler = example.Handler()
    triggers, profiles = offline.records["campaign.triggers"], offline.records["user.interests"]
    lines = [handler.handle("campaign.triggers", t["id"].encode(), orjson.dumps(t)) for t in triggers]
    assert all(line.startswith(f"LAUNCH {t['campaign']} ") for line, t in zip(lines, triggers, strict=True))
    for p in profiles:
        key = (p or {"user_id": "p-erased"})["user_id"].encode()
        line = handler.handle("user.interests", key, None if p is None else orjson.dumps(p))
        assert line.startswith("FORGET " if p is None else "TARGET "), line
    assert handler.handle("campaign.triggers", b"k", b"{not json") is None
    assert handler.handle("campaign.triggers", b"k", orjson.dumps({**triggers[0], "schema_version": 2})) is None
    assert handler.handle("user.interests", b"k", orjson.dumps({"user_id": "x"})) is None
    assert handler.skipped == 3
    assert "skipped an invalid record" in caplog.text
