"""What a worker of each role runs (no broker): its consumer group, agents and tables."""

import pytest

from stream.audience.rules import RuleError
from stream.pipeline.modelview import ModelView
from stream.settings import ConfigError, Settings
from stream.worker.app import create_app

POSTS_AGENTS = {"posts", "feedback", "erasure", "learner-role"}
AGGREGATES_AGENTS = {"audience", "profiles"}


@pytest.mark.parametrize(
    ("role", "group", "agents"),
    [
        ("all", "grp", POSTS_AGENTS | AGGREGATES_AGENTS),
        ("posts", "grp", POSTS_AGENTS),
        ("aggregates", "grp-aggregates", AGGREGATES_AGENTS),
    ],
)
def test_each_role_runs_its_agents_in_its_group_and_the_changelogs_keep_the_posts_groups_name(role, group, agents):
    stream = create_app(Settings(broker="127.0.0.1:9", app_id="grp", role=role))
    assert stream.app.conf.id == group
    assert set(stream.app.agents) == agents
    # a worker that predicts nothing holds no interest model (its profiles agent reads the erasures)
    view = stream.processor.view
    assert isinstance(view, ModelView) and view.predicts == ("posts" in agents)
    changelogs = {t.changelog_topic.get_topic_name() for t in stream.app.tables.values()}
    # an aggregates worker restores the tables an all worker wrote: Faust would name them grp-aggregates-...
    assert changelogs == ({"grp-audience-changelog", "grp-profiles-changelog"} if "audience" in agents else set())


def test_an_unknown_role_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"^STREAM_ROLE='learner' is not one of all, posts, aggregates$"):
        Settings.from_env({"STREAM_ROLE": "learner"})


def test_only_a_worker_that_runs_the_audience_reads_the_trigger_rules(tmp_path):
    missing = str(tmp_path / "no-such-rules.toml")  # e.g. mounted into the aggregates workers only
    create_app(Settings(broker="127.0.0.1:9", app_id="grp", role="posts", trigger_rules=missing))
    for role in ("all", "aggregates"):
        with pytest.raises(RuleError, match=r"no-such-rules\.toml"):
            create_app(Settings(broker="127.0.0.1:9", app_id="grp", role=role, trigger_rules=missing))
