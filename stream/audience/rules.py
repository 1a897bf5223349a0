"""Declarative campaign-trigger rules: a TOML file (or YAML, with PyYAML), validated at start-up.

A rule fires on a closed window of a matching segment when every condition holds::

    [[rule]]
    name = "airline-complaints"            # unique
    campaign = "service-recovery"          # what marketing should launch
    segment = "interest:travel"            # "all", "<kind>:<name>" or "<kind>:*" (kind: interest, campaign, hashtag)
    window = "hopping"                     # "tumbling" (default) or "hopping"
    min_support = 60                       # smallest window volume (default 1)
    cooldown = "1h"                        # seconds, or a number with s/m/h/d; event time (default 0)
    spike = "sentiment:down"               # optional: volume|sentiment|any, optionally :up|:down
    when = { negative_share = ">= 0.7", mean_sentiment = "< -0.5" }   # all must hold
    description = "free text"              # optional

Metrics: ``volume``, ``mean_sentiment``, ``positive_share``, ``neutral_share``, ``negative_share``,
``interest_share.<interest>``; operators ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``. A bad file raises
:class:`RuleError` with one line naming the file, the rule and the field.

>>> rule = parse_rule({"name": "r", "campaign": "c", "segment": "hashtag:*",
...                    "when": {"negative_share": ">= 0.5"}}, 0, "x.toml")
>>> rule.matches("hashtag:nfl"), rule.matches("interest:sports")
(True, False)
>>> w = {"kind": "tumbling", "segment": "hashtag:nfl", "start": 0, "end": 60000, "volume": 8,
...      "negative_share": 0.75}
>>> rule_fires(rule, w, [])
{'negative_share': 0.75, 'volume': 8}
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import operator
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream.audience.segments import SEGMENT_KINDS, WINDOW_FIGURES, WINDOW_KINDS
from stream.audience.spikes import SPIKE_METRICS
from stream.schemas import SCHEMA_VERSION

if TYPE_CHECKING:
    from stream.settings import Settings

SPIKE_CHOICES = (*SPIKE_METRICS, "any")
_RANGES = {"volume": (0.0, math.inf), "mean_sentiment": (-1.0, 1.0)}  # shares: [0, 1]
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_CONDITION = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\S.*?)\s*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
FIELDS = ("name", "campaign", "segment", "window", "min_support", "cooldown", "spike", "when", "description")


class RuleError(ValueError):
    """A rules file is missing, unreadable or invalid; the message is one line."""


@dataclass(frozen=True, slots=True)
class Condition:
    """``metric op value``, e.g. ``negative_share >= 0.6``.

    >>> Condition("volume", ">", 10).holds({"volume": 11}), Condition("interest_share.x", ">=", 0.1).holds({})
    (True, False)
    """

    metric: str
    op: str
    value: float

    def figure(self, window: Mapping[str, Any]) -> float:
        """The window's value of the metric (an interest the window does not have: 0)."""
        if self.metric.startswith("interest_share."):
            return float(window.get("interest_share", {}).get(self.metric[len("interest_share.") :], 0.0))
        v = window.get(self.metric)
        return math.nan if v is None else v

    def holds(self, window: Mapping[str, Any]) -> bool:
        return OPERATORS[self.op](self.figure(window), self.value)


@dataclass(frozen=True, slots=True)
class Rule:
    """One validated trigger rule (see the module docstring for the file schema)."""

    name: str
    campaign: str
    segment: str
    window: str = "tumbling"
    min_support: int = 1
    cooldown_ms: int = 0
    spike: str | None = None  # "volume" | "sentiment" | "any", optionally ":up" / ":down"
    conditions: tuple[Condition, ...] = ()
    description: str = ""

    def matches(self, segment: str) -> bool:
        """Whether the rule applies to ``segment``.

        >>> r = Rule("r", "c", "interest:*")
        >>> r.matches("interest:travel"), r.matches("all"), Rule("r", "c", "all").matches("all")
        (True, False, True)
        """
        if self.segment.endswith(":*"):
            return segment.startswith(self.segment[:-1]) and len(segment) > len(self.segment) - 1
        return segment == self.segment

    def spike_matches(self, spike: Mapping[str, Any]) -> bool:
        if self.spike is None:
            return False
        metric, _, direction = self.spike.partition(":")
        return (metric in ("any", spike.get("metric"))) and direction in ("", spike.get("direction"))


def parse_duration_ms(value: Any) -> int:
    """Milliseconds of a duration: seconds (a number) or a string with an ``s``/``m``/``h``/``d`` suffix.

    >>> parse_duration_ms("30m"), parse_duration_ms(90), parse_duration_ms("1.5h"), parse_duration_ms("0")
    (1800000, 90000, 5400000, 0)
    >>> parse_duration_ms("soon")
    Traceback (most recent call last):
    ...
    ValueError: 'soon' is not a duration (seconds, or a number with s/m/h/d)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{value!r} is not a duration (seconds, or a number with s/m/h/d)")
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"{value!r} is not a duration (seconds, or a number with s/m/h/d)")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a duration (seconds, or a number with s/m/h/d)")
    return round(seconds * 1000)


def parse_condition(metric: str, text: Any) -> Condition:
    """A condition from a metric name and ``"<op> <number>"``.

    >>> parse_condition("mean_sentiment", "< -0.3")
    Condition(metric='mean_sentiment', op='<', value=-0.3)
    >>> parse_condition("negative_share", ">= x")
    Traceback (most recent call last):
    ...
    ValueError: '>= x' is not a number
    >>> parse_condition("positive_share", "> 2")
    Traceback (most recent call last):
    ...
    ValueError: '> 2' is out of range: positive_share lies in [0, 1]
    """
    base = metric.partition(".")[0] if metric.startswith("interest_share.") else metric
    if base not in WINDOW_FIGURES and not (base == "interest_share" and len(metric) > len("interest_share.")):
        raise ValueError(f"unknown metric (known: {', '.join(WINDOW_FIGURES)}, interest_share.<interest>)")
    if not isinstance(text, str):
        raise ValueError(f'{text!r} is not a condition like ">= 0.6"')
    m = _CONDITION.match(text)
    if not m:
        raise ValueError(f'{text!r} is not a condition like ">= 0.6" (operators: >, >=, <, <=, ==, !=)')
    try:
        value = float(m.group(2))
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    lo, hi = _RANGES.get(base, (0.0, 1.0))
    if not (math.isfinite(value) and lo <= value <= hi):
        span = "[0, inf)" if hi == math.inf else f"[{lo:g}, {hi:g}]"
        raise ValueError(f"{text!r} is out of range: {base} lies in {span}")
    return Condition(metric, m.group(1), value)


def _flatten(when: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    # TOML reads ``interest_share.travel = "..."`` as a nested table: flatten it back to a dotted name.
    out: list[tuple[str, Any]] = []
    for key, value in when.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def parse_rule(raw: Any, index: int, source: str) -> Rule:
    """Validate one rule table (``index`` counts from 0; messages count from 1)."""
    label = f"rule #{index + 1}"

    def fail(field: str | None, problem: str) -> RuleError:
        where = f"{source}: {label}" + (f": field '{field}'" if field else "")
        return RuleError(_one_line(f"{where}: {problem}"))

    if not isinstance(raw, Mapping):
        raise fail(None, "is not a table")
    name = raw.get("name")
    if isinstance(name, str) and name.strip():
        label = f"rule '{name}'"
    else:
        raise fail("name", "missing" if name is None else f"{name!r} is not a non-empty string")
    for key in raw:
        if key not in FIELDS:
            raise fail(str(key), f"unknown field (fields: {', '.join(FIELDS)})")

    def text(field: str, required: bool, default: str = "") -> str:
        v = raw.get(field)
        if v is None:
            if required:
                raise fail(field, "missing")
            return default
        if not isinstance(v, str) or not v.strip():
            raise fail(field, f"{v!r} is not a non-empty string")
        return v.strip()

    campaign = text("campaign", True)
    segment = text("segment", True)
    kind, sep, seg_name = segment.partition(":")
    if segment != "all" and not (sep and kind in SEGMENT_KINDS and seg_name):
        raise fail(
            "segment",
            f'{segment!r} is not "all" or <kind>:<name> or <kind>:* with kind one of {", ".join(SEGMENT_KINDS)}',
        )
    window = text("window", False, "tumbling")
    if window not in WINDOW_KINDS:
        raise fail("window", f"{window!r} is not one of {', '.join(WINDOW_KINDS)}")
    support = raw.get("min_support", 1)
    if isinstance(support, bool) or not isinstance(support, int) or support < 1:
        raise fail("min_support", f"{support!r} is not a positive whole number of posts")
    try:
        cooldown = parse_duration_ms(raw.get("cooldown", 0))
    except ValueError as exc:
        raise fail("cooldown", str(exc)) from None
    spike = raw.get("spike")
    if spike is not None:
        metric, _, direction = spike.partition(":") if isinstance(spike, str) else ("", "", "")
        if metric not in SPIKE_CHOICES or direction not in ("", "up", "down"):
            raise fail(
                "spike", f"{spike!r} is not one of {', '.join(SPIKE_CHOICES)}, optionally followed by :up or :down"
            )
    when = raw.get("when", {})
    if not isinstance(when, Mapping):
        raise fail("when", 'is not a table of metric = "<op> <number>"')
    conditions = []
    for metric, cond in _flatten(when):
        try:
            conditions.append(parse_condition(metric, cond))
        except ValueError as exc:
            raise fail(f"when.{metric}", str(exc)) from None
    if not conditions and spike is None:
        raise fail("when", "missing: a rule needs conditions in 'when', a 'spike', or both")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise fail("description", f"{description!r} is not a string")
    return Rule(name.strip(), campaign, segment, window, support, cooldown, spike, tuple(conditions), description)


def parse_rules(doc: Any, source: str) -> tuple[Rule, ...]:
    """Validate a parsed rules document: ``{"rule": [table, ...]}`` (``rules`` is accepted too).

    >>> parse_rules({}, "r.toml")
    Traceback (most recent call last):
    ...
    stream.audience.rules.RuleError: r.toml: no rules (add [[rule]] tables)
    """
    if not isinstance(doc, Mapping):
        raise RuleError(f"{source}: not a table of [[rule]] entries")
    unknown = [k for k in doc if k not in ("rule", "rules")]
    if unknown:
        raise RuleError(_one_line(f"{source}: unknown top-level key {unknown[0]!r} (expected [[rule]] tables)"))
    if "rule" in doc and "rules" in doc:
        raise RuleError(f"{source}: both 'rule' and 'rules' given; use one")
    raws = doc.get("rule", doc.get("rules"))
    if raws is None or (isinstance(raws, list) and not raws):
        raise RuleError(f"{source}: no rules (add [[rule]] tables)")
    if not isinstance(raws, list):
        raise RuleError(f"{source}: 'rule' is not a list of tables (write [[rule]], not [rule])")
    rules = tuple(parse_rule(raw, i, source) for i, raw in enumerate(raws))
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise RuleError(f"{source}: rule '{rule.name}': field 'name': duplicate rule name")
        seen.add(rule.name)
    return rules


def configured_rules(settings: Settings) -> tuple[Rule, ...]:
    """The rules of ``STREAM_TRIGGER_RULES`` (none when it is not set); see :func:`load_rules`."""
    return load_rules(settings.trigger_rules) if settings.trigger_rules else ()


def load_rules(path: str | Path) -> tuple[Rule, ...]:
    """Read and validate a rules file: TOML, or YAML when it ends in ``.yml``/``.yaml`` and PyYAML
    is installed. Every problem is a :class:`RuleError` with a one-line message."""
    path = Path(path)
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RuleError(_one_line(f"{source}: cannot read the rules file: {exc.strerror or exc}")) from None
    if path.suffix.lower() in (".yml", ".yaml"):
        if importlib.util.find_spec("yaml") is None:
            raise RuleError(f"{source}: YAML rules need PyYAML (pip install pyyaml); or write them in TOML")
        import yaml

        try:
            doc = yaml.safe_load(data.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise RuleError(_one_line(f"{source}: not valid YAML: {exc}")) from None
        if doc is None:
            doc = {}
    else:
        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise RuleError(_one_line(f"{source}: not valid TOML: {exc}")) from None
    return parse_rules(doc, source)


def rule_fires(
    rule: Rule, window: Mapping[str, Any], spikes: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any] | None:
    """The figures that fire ``rule`` on a closed ``window`` record, or ``None``.

    ``spikes`` are the spike records of that window. The figures are the metrics the conditions
    use, plus ``volume``. Cooldowns are not checked here (see ``SegmentState.advance``).

    >>> r = Rule("r", "c", "all", min_support=10, spike="volume:up",
    ...          conditions=(Condition("positive_share", ">=", 0.5),))
    >>> w = {"kind": "tumbling", "segment": "all", "volume": 12, "positive_share": 0.6}
    >>> rule_fires(r, w, []), rule_fires(r, w, [{"metric": "volume", "direction": "up"}])
    (None, {'positive_share': 0.6, 'volume': 12})
    """
    if window.get("kind") != rule.window or not rule.matches(str(window.get("segment"))):
        return None
    volume = window.get("volume", 0)
    if volume < rule.min_support:
        return None
    if rule.spike is not None and not any(rule.spike_matches(s) for s in spikes):
        return None
    figures: dict[str, Any] = {}
    for cond in rule.conditions:
        if not cond.holds(window):
            return None
        figures[cond.metric] = cond.figure(window)
    figures["volume"] = volume
    return figures


def trigger_id(rule: str, segment: str, kind: str, start: int) -> str:
    """Deterministic id of a trigger: the same window fires the same id on a redelivery.

    >>> trigger_id("r", "all", "tumbling", 0)
    'f5756705b95f7171'
    """
    key = f"{rule}\x1f{segment}\x1f{kind}\x1f{start}".encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()


def trigger_record(
    rule: Rule, window: Mapping[str, Any], figures: Mapping[str, Any], spikes: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The JSON record of a fired trigger; ``spikes``: the window's spikes (only the ones the rule
    asked for, if it asked for one)."""
    if rule.spike is not None:
        spikes = [s for s in spikes if rule.spike_matches(s)]
    return {
        "type": "trigger",
        "id": trigger_id(rule.name, window["segment"], window["kind"], window["start"]),
        "rule": rule.name,
        "campaign": rule.campaign,
        "segment": window["segment"],
        "window": {"kind": window["kind"], "start": window["start"], "end": window["end"]},
        "figures": dict(figures),
        "spikes": [dict(s) for s in spikes],
        "fired_at_event_ms": window["end"],
        "schema_version": SCHEMA_VERSION,
    }
