"""FastVader gives VADER's own scores: on every demo tweet, on VADER's examples, on long posts and
on random sentences made of the words VADER's rules look for."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
)

from models.vader import FastVader
from stream.tools.data import tweets_stream

STOCK = SentimentIntensityAnalyzer()
FAST = FastVader()

VADER_EXAMPLES = [
    "VADER is smart, handsome, and funny.",
    "VADER is smart, handsome, and funny!",
    "VADER is very smart, handsome, and funny.",
    "VADER is VERY SMART, handsome, and FUNNY.",
    "VADER is VERY SMART, handsome, and FUNNY!!!",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.",
    "The book was good.",
    "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today SUX!",
    "Today only kinda sux! But I'll get by, lol",
    "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁",
    "Not bad at all",
    "",
    "   ",
    "!!!",
    "no no no good",
    "never so good",
    "without doubt great",
    "the least good",
    "at least good",
    "very least bad",
    "yeah right, the bomb",
    "this is to die for",
    "I'm kind of happy",
    "it is the shit",
    "😁😁 great",
    "great😁",
    "BUT but But good bad",
    "no or nor hate",
]


@pytest.mark.parametrize("text", VADER_EXAMPLES)
def test_equal_on_vaders_examples_and_edge_cases(text):
    assert FAST.polarity_scores(text) == STOCK.polarity_scores(text)


def test_equal_on_every_demo_tweet_and_on_long_posts():
    texts = [e["text"] for e in tweets_stream()]
    assert len(texts) > 38_000
    long_posts = [" ".join(texts[i : i + 40]) for i in range(0, 4000, 40)]  # "but"s and negations far apart
    differ = [t for t in texts + long_posts if FAST.polarity_scores(t) != STOCK.polarity_scores(t)]
    assert differ == []


# Words that VADER's rules look for, mixed with lexicon words, casing and punctuation.
RULE_WORDS = sorted(
    {w for k in [*BOOSTER_DICT, *SPECIAL_CASES] for w in k.split()}
    | set(NEGATE)
    | {
        "no",
        "or",
        "nor",
        "least",
        "at",
        "very",
        "never",
        "so",
        "this",
        "without",
        "doubt",
        "but",
        "kind",
        "of",
        "good",
        "bad",
        "great",
        "hate",
        "love",
        "happy",
        "sad",
        "horrible",
        "lol",
        ":)",
        ":(",
        ":D",
        "💘",
        "😁",
        "flight",
        "the",
        "a",
        "is",
    }
)
WORD = st.builds(
    lambda w, up, p: (w.upper() if up else w) + p,
    st.sampled_from(RULE_WORDS),
    st.booleans(),
    st.sampled_from(["", "", "", "!", "?", ",", ".", "!!", "??"]),
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(WORD, max_size=14))
def test_equal_on_random_sentences_of_rule_words(words):
    text = " ".join(words)
    assert FAST.polarity_scores(text) == STOCK.polarity_scores(text)
