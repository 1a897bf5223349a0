"""The demo's own settings, without a broker."""

from pathlib import Path

from stream.audience.rules import load_rules
from stream.settings import Settings
from stream.tools.demo import demo_overrides


def test_the_demo_fires_the_example_rules():
    """The demo runs the rules of ops/triggers/rules.toml, which must be found from the installed code."""
    rules = demo_overrides(Settings(), env={})["trigger_rules"]
    assert Path(rules).is_file() and Path(rules).parts[-3:] == ("ops", "triggers", "rules.toml")
    assert load_rules(rules)


def test_every_bench_agent_is_a_module_that_runs():
    """`interest-stream bench` starts its baselines with `python -m`: each module must exist."""
    import importlib.util

    from stream.tools.bench import BENCH_AGENTS, agent_module

    for name in BENCH_AGENTS:
        assert importlib.util.find_spec(agent_module(name)) is not None, name
