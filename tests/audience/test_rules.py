from pathlib import Path

import pytest

from stream.audience.rules import Condition, Rule, RuleError, load_rules, rule_fires, trigger_id, trigger_record
from stream.audience.spikes import SpikeParams
from stream.audience.windows import SegmentState, WindowSpec, partials

EXAMPLE = Path(__file__).resolve().parents[2] / "ops" / "triggers" / "rules.toml"
GOOD = """
[[rule]]
name = "airline-complaints"
campaign = "service-recovery"
segment = "interest:travel"
window = "tumbling"
min_support = 3
cooldown = "30m"
when = { negative_share = ">= 0.6", mean_sentiment = "< -0.3" }
"""


def write(tmp_path, text, name="rules.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_example_rules_file_loads():
    rules = load_rules(EXAMPLE)
    assert len(rules) >= 2 and len({r.name for r in rules}) == len(rules)
    assert all(r.campaign and r.cooldown_ms > 0 for r in rules)


def test_good_rule_is_parsed(tmp_path):
    (rule,) = load_rules(write(tmp_path, GOOD))
    assert rule == Rule(
        "airline-complaints",
        "service-recovery",
        "interest:travel",
        "tumbling",
        3,
        1_800_000,
        None,
        (Condition("negative_share", ">=", 0.6), Condition("mean_sentiment", "<", -0.3)),
    )


def test_interest_share_dotted_key_and_spike(tmp_path):
    text = """
[[rule]]
name = "fans"
campaign = "c"
segment = "hashtag:*"
spike = "volume:up"
cooldown = 600
when = { interest_share.sports = ">= 0.5" }
"""
    (rule,) = load_rules(write(tmp_path, text))
    assert rule.conditions == (Condition("interest_share.sports", ">=", 0.5),) and rule.cooldown_ms == 600_000
    w = {
        "segment": "hashtag:nfl",
        "kind": "tumbling",
        "start": 0,
        "end": 60_000,
        "volume": 9,
        "interest_share": {"sports": 0.8},
    }
    spike = {"type": "spike", "metric": "volume", "direction": "up", "z": 5.0}
    assert rule_fires(rule, w, []) is None
    assert rule_fires(rule, w, [{"metric": "volume", "direction": "down"}]) is None
    assert rule_fires(rule, w, [spike]) == {"interest_share.sports": 0.8, "volume": 9}
    assert rule_fires(rule, {**w, "interest_share": {}}, [spike]) is None
    assert rule_fires(rule, {**w, "segment": "interest:sports"}, [spike]) is None
    assert rule_fires(rule, {**w, "kind": "hopping"}, [spike]) is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'name = "r"\ncampaign = "c"\nsegment = "all"\nwhen = { negative_share = ">= x" }',
            "rules.toml: rule 'r': field 'when.negative_share': '>= x' is not a number",
        ),
        (
            'name = "r"\ncampaign = "c"\nsegment = "all"\nwhen = { negative_share = "=> 0.5" }',
            "rules.toml: rule 'r': field 'when.negative_share': '=> 0.5' is not a condition like \">= 0.6\" "
            "(operators: >, >=, <, <=, ==, !=)",
        ),
        (
            'name = "r"\ncampaign = "c"\nsegment = "all"\nwhen = { loudness = "> 1" }',
            "rules.toml: rule 'r': field 'when.loudness': unknown metric (known: volume, mean_sentiment, "
            "positive_share, neutral_share, negative_share, interest_share.<interest>)",
        ),
        (
            'name = "r"\ncampaign = "c"\nsegment = "all"\nwhen = { negative_share = "> 1.5" }',
            "rules.toml: rule 'r': field 'when.negative_share': '> 1.5' is out of range: negative_share lies in [0, 1]",
        ),
        (
            'name = "r"\ncampaign = "c"\nsegment = "all"\ncolour = "red"\nspike = "any"',
            "rules.toml: rule 'r': field 'colour': unknown field (fields: name, campaign, segment, window, "
            "min_support, cooldown, spike, when, description)",
        ),
        ('name = "r"\nsegment = "all"\nspike = "any"', "rules.toml: rule 'r': field 'campaign': missing"),
        ('campaign = "c"\nsegment = "all"\nspike = "any"', "rules.toml: rule #1: field 'name': missing"),
        (
            'name = "r"\ncampaign = "c"\nsegment = "all"\nspike = "any"\ncooldown = "soon"',
            "rules.toml: rule 'r': field 'cooldown': 'soon' is not a duration (seconds, or a number with s/m/h/d)",
        ),
        (
            'name = "r"\ncampaign = "c"\nsegment = "all"\nspike = "any"\ncooldown = -5',
            "rules.toml: rule 'r': field 'cooldown': -5 is not a duration (seconds, or a number with s/m/h/d)",
        ),
        (
            'name = "r"\ncampaign = "c"\nsegment = "user:bob"\nspike = "any"',
            "rules.toml: rule 'r': field 'segment': 'user:bob' is not \"all\" or <kind>:<name> or <kind>:* "
            "with kind one of interest, campaign, hashtag",
        ),
        (
            'name = "r"\ncampaign = "c"\nsegment = "all"\nspike = "any"\nwindow = "sliding"',
            "rules.toml: rule 'r': field 'window': 'sliding' is not one of tumbling, hopping",
        ),
        (
            'name = "r"\ncampaign = "c"\nsegment = "all"\nspike = "loud"',
            "rules.toml: rule 'r': field 'spike': 'loud' is not one of volume, sentiment, any, optionally followed "
            "by :up or :down",
        ),
        (
            'name = "r"\ncampaign = "c"\nsegment = "all"\nspike = "any"\nmin_support = 0',
            "rules.toml: rule 'r': field 'min_support': 0 is not a positive whole number of posts",
        ),
        (
            'name = "r"\ncampaign = "c"\nsegment = "all"',
            "rules.toml: rule 'r': field 'when': missing: a rule needs conditions in 'when', a 'spike', or both",
        ),
    ],
)
def test_each_bad_rule_is_one_line_naming_file_rule_and_field(tmp_path, body, message):
    path = write(tmp_path, "[[rule]]\n" + body + "\n")
    with pytest.raises(RuleError) as info:
        load_rules(path)
    assert str(info.value) == message.replace("rules.toml", str(path))
    assert "\n" not in str(info.value) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no rules (add [[rule]] tables)"),
        ("# nothing here\n", "no rules (add [[rule]] tables)"),
        (GOOD + GOOD, "rule 'airline-complaints': field 'name': duplicate rule name"),
        ("[rule]\nname = 'r'\n", "'rule' is not a list of tables (write [[rule]], not [rule])"),
        ("[[rules_]]\nname = 'r'\n", "unknown top-level key 'rules_' (expected [[rule]] tables)"),
        ("[[rule]\nname = 'r'\n", "not valid TOML:"),
    ],
)
def test_file_level_errors(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(RuleError) as info:
        load_rules(path)
    assert str(info.value).startswith(f"{path}: {message}") and "\n" not in str(info.value)


def test_missing_file_and_yaml(tmp_path):
    with pytest.raises(RuleError, match=r"nope\.toml: cannot read the rules file: No such file or directory$"):
        load_rules(tmp_path / "nope.toml")
    path = write(tmp_path, "rule:\n  - name: r\n", name="rules.yaml")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(RuleError, match=r"rules\.yaml: YAML rules need PyYAML"):
            load_rules(path)
    else:
        with pytest.raises(RuleError, match="field 'campaign': missing"):
            load_rules(path)


def test_trigger_id_is_deterministic_and_distinct():
    assert trigger_id("r", "all", "tumbling", 0) == trigger_id("r", "all", "tumbling", 0) == "f5756705b95f7171"
    ids = {
        trigger_id(*k)
        for k in [
            ("r", "all", "tumbling", 0),
            ("r", "all", "hopping", 0),
            ("r", "all", "tumbling", 60_000),
            ("s", "all", "tumbling", 0),
            ("r", "interest:x", "tumbling", 0),
        ]
    }
    assert len(ids) == 5
    rule = Rule("r", "camp", "all", conditions=(Condition("volume", ">=", 1),))
    w = {"segment": "all", "kind": "tumbling", "start": 0, "end": 60_000, "volume": 3}
    rec = trigger_record(rule, w, {"volume": 3})
    assert rec == {
        "type": "trigger",
        "id": "f5756705b95f7171",
        "rule": "r",
        "campaign": "camp",
        "segment": "all",
        "window": {"kind": "tumbling", "start": 0, "end": 60_000},
        "figures": {"volume": 3},
        "spikes": [],
        "fired_at_event_ms": 60_000,
        "schema_version": 1,
    }


# -- cooldown, through SegmentState -------------------------------------------------------------

SPEC = WindowSpec(tumbling_s=60, hopping_size_s=300, hopping_step_s=60, lateness_s=10)
RULE = Rule(
    "neg",
    "recover",
    "interest:travel",
    "tumbling",
    min_support=2,
    cooldown_ms=30 * 60_000,
    conditions=(Condition("negative_share", ">=", 0.6),),
)
OTHER = Rule("elsewhere", "x", "interest:music", "tumbling", conditions=(Condition("volume", ">=", 1),))


def minute(state, m, restore=False):
    """Three negative travel posts in minute ``m``; closes that minute's tumbling window."""
    if restore:
        state = SegmentState.from_dict(state.to_dict(), state.segment)
    posts = [(m * 60_000 + i, -1.0, "negative", "travel", None, ()) for i in range(3)]
    state.add(partials(posts, SPEC)["interest:travel"], SPEC)
    out = state.advance((m + 1) * 60_000 + 10_000, SPEC, (RULE, OTHER), SpikeParams())
    return state, list(out.triggers)


@pytest.mark.parametrize("restore", [False, True])
def test_cooldown_fires_once_then_again_after_it(restore):
    state = SegmentState.from_dict(None, "interest:travel")
    fired: list[tuple[int, str, int]] = []
    for m in range(70):
        state, triggers = minute(state, m, restore)
        fired.extend((m, t["rule"], t["window"]["end"]) for t in triggers)
    # fires at the first window, then not until 30 minutes of event time later
    assert fired == [(0, "neg", 60_000), (30, "neg", 31 * 60_000), (60, "neg", 61 * 60_000)]


def test_cooldown_survives_a_restore_and_redelivery_has_the_same_id():
    state = SegmentState.from_dict(None, "interest:travel")
    state, (first,) = minute(state, 0)
    snapshot = state.to_dict()
    assert snapshot["cooldown"] == {"neg": 60_000}
    again = SegmentState.from_dict(snapshot, "interest:travel")
    _, triggers = minute(again, 1)
    assert triggers == []
    replay = SegmentState.from_dict(None, "interest:travel")
    _, (dup,) = minute(replay, 0)
    assert dup == first
