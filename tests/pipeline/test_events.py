"""Validation: every malformed event gets a precise reason, valid ones are coerced."""

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.pipeline.events import Feedback, Post, Rejected, parse_feedback, parse_post

GOOD = {"id": "p1", "user_id": "u1", "text": "hello", "created_at": 1424777752000}


def enc(obj):
    return orjson.dumps(obj)


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (b"{not json", "malformed_json", None),
        (b"", "malformed_json", None),
        (b"[1, 2]", "not_an_object", "top level is list"),
        (enc({**GOOD, "user_id": None}), "missing_field", "user_id"),
        (enc({k: v for k, v in GOOD.items() if k != "text"}), "missing_field", "text"),
        (enc({**GOOD, "id": "  "}), "missing_field", "id is empty"),
        (enc({**GOOD, "text": ["a"]}), "wrong_type", "text: expected a string, got list"),
        (enc({**GOOD, "id": True}), "wrong_type", "id: expected a string or integer, got bool"),
        (enc({**GOOD, "likes": "many"}), "wrong_type", "likes: expected a number, got str"),
        (enc({**GOOD, "hashtags": "#a"}), "wrong_type", "hashtags: expected a list of strings, got str"),
        (enc({**GOOD, "created_at": "noon"}), "bad_timestamp", None),
        (enc({**GOOD, "created_at": -5}), "bad_timestamp", None),
        (enc({**GOOD, "sentiment": "angry"}), "bad_label", None),
    ],
)
def test_rejections_name_the_reason(raw, reason, detail):
    out = parse_post(raw)
    assert isinstance(out, Rejected)
    assert out.reason == reason
    if detail is not None:
        assert out.detail == detail


def test_coercion_and_defaults():
    post = parse_post(
        enc(
            {
                **GOOD,
                "id": 12,
                "likes": "7",
                "created_at": "1424777752",
                "platform": "Twitter",
                "interest": "Sports",
                "sentiment": "Positive",
                "hashtags": ["#Go"],
            }
        )
    )
    assert post == Post(
        id="12",
        user_id="u1",
        text="hello",
        created_at=1424777752000,
        platform="twitter",
        hashtags=("#Go",),
        likes=7.0,
        interest="sports",
        sentiment="positive",
    )


def test_feedback():
    assert parse_feedback(enc({"post_id": 3, "sentiment": "neutral"})) == Feedback("3", None, "neutral")
    rejected = parse_feedback(b"null")
    assert isinstance(rejected, Rejected) and rejected.reason == "not_an_object"


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200)
    | st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=20),
        lambda kids: (
            st.lists(kids, max_size=4)
            | st.dictionaries(
                st.sampled_from(["id", "user_id", "text", "created_at", "likes", "hashtags", "sentiment", "x"]),
                kids,
                max_size=6,
            )
        ),
        max_leaves=12,
    ).map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS))
)
def test_parse_never_raises(raw):
    assert isinstance(parse_post(raw), (Post, Rejected))
    assert isinstance(parse_feedback(raw), (Feedback, Rejected))
