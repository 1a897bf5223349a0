"""Properties of the cleaning steps: total, idempotent, and they remove personal data."""

import re
import unicodedata

from hypothesis import example, given, settings
from hypothesis import strategies as st

import stream.pipeline.cleaning as c
from stream.pipeline.cleaning import (
    _EMAIL,
    _MENTION,
    _PHONE,
    _URL,
    clean_post,
    clean_text,
    extract_hashtags,
    fold,
    normalize_unicode,
    redact,
    repair_mojibake,
    replace_emoji,
    unescape_html,
)
from stream.pipeline.events import Post, Rejected

texts = st.text(alphabet=st.characters(codec=None), max_size=300)
# Text shaped like social posts: words, entities, mentions, tags, emoji, broken bytes.
pieces = st.sampled_from(
    [
        "hello",
        "WORLD",
        "#DeflateGate",
        "@united",
        "http://t.co/abc",
        "a.b@c.org",
        "+1 555 123 4567",
        "WWW.x.org",
        "httpſ://x",
        "&amp;",
        "&lt;3",
        "😂",
        "❤️",
        "👍🏽",
        "Ã©",
        "â€œ",
        "\ufffd",
        "_",
        " ",
        "\n",
        "RT",
        ":",
        "2015",
    ]
)
posty = st.lists(st.one_of(pieces, texts), max_size=20).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(texts, posty))
def test_clean_text_is_total_and_idempotent(text):
    once = clean_text(text)
    assert clean_text(once) == once


@settings(max_examples=200, deadline=None)
@given(st.one_of(texts, posty))
def test_every_step_is_total(text):
    for step in (repair_mojibake, unescape_html, normalize_unicode, redact, replace_emoji, fold):
        assert isinstance(step(text), str)
    assert isinstance(extract_hashtags(text), list)


@settings(max_examples=200, deadline=None)
@given(posty)
def test_clean_post_never_raises_and_keeps_no_personal_data(text):
    out = clean_post(Post(id="1", user_id="u", text=text, created_at=0))
    if isinstance(out, Rejected):
        assert out.reason == "empty_text"
    else:
        for pattern in (_URL, _EMAIL, _MENTION, _PHONE):
            assert not pattern.search(out.text), (pattern, out.text)


def test_personal_data_is_removed():
    out = clean_text("Call me at (555) 123-4567 or mail jo.doe+x@mail.example.com, @jo https://x.y/z")
    assert out == "call me at or mail ,"


def test_real_tweet_noise():
    raw = "I just don't trust my life in google's hands #driverless cars_\ufffd_.no thank you"
    assert clean_text(raw) == "i just don't trust my life in google's hands driverless cars .no thank you"
    assert clean_text("@united Thanks!  I made it _\ufffd\ufffd\ufffd") == "thanks! i made it"


def test_hashtags_run_together_are_all_expanded_in_one_pass():
    """Found by the property above: expanding "#0" freed the next hashtag ("#0#0" → "0 #0")."""
    for text in ("#0#0", "#a#b#c#d#e#f"):
        once = clean_text(text)
        assert "#" not in once and clean_text(once) == once


@settings(max_examples=1000, deadline=None)
@given(st.one_of(texts, posty))
@example("call 12 345 678 or (12) 345-678")  # phone numbers with no four digits in a row
@example("see WWW.x.org or httpſ://x.y")  # upper-case www, long s (matches "s" ignoring case)
def test_the_shortcuts_change_no_result(text):
    """The steps skip patterns that cannot match (no "@", no three digits, ASCII-only text); the
    results are those of running every pattern."""
    full_redact = c._PHONE.sub(" ", c._MENTION.sub(" ", c._EMAIL.sub(" ", c._URL.sub(" ", text))))
    assert c.redact(text) == full_redact
    assert c.repair_mojibake(text) == c._MOJIBAKE_RUN.sub(c._unmangle, text)
    assert c.normalize_unicode(text) == unicodedata.normalize("NFKC", c._CONTROL.sub(" ", c._BROKEN.sub(" ", text)))
    assert c.replace_emoji(text) == c._EMOJI.sub(c._emoji_word, text)
    assert c.fold(text) == re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text.casefold())).strip()
    assert c.extract_hashtags(text) == list(dict.fromkeys(m.lower() for m in c._HASHTAG.findall(text)))


@settings(max_examples=1000, deadline=None)
@given(st.one_of(texts, posty, st.text(alphabet="@#._+-a1 é_", max_size=30)))
@example("@a@b ##c x#d é@e _@f .@g @@h")
def test_the_literal_first_patterns_match_as_their_plain_forms(text):
    """``_MENTION``, ``_EMAIL_AT`` and ``_HASHTAG`` begin with their "@" or "#" and look behind it
    afterwards (faster); they find what the plain look-behind-first forms find."""
    assert [m.span() for m in c._MENTION.finditer(text)] == [m.span() for m in re.finditer(r"(?<![\w@])@\w+", text)]
    assert [m.span() for m in c._HASHTAG.finditer(text)] == [m.span() for m in re.finditer(r"(?<![\w#])#(\w+)", text)]
    assert bool(c._EMAIL_AT.search(text)) == bool(re.search(r"[\w.+-]@", text))


@given(st.characters(codec=None))
@example("_")
@example("\u00bd")  # a numeric that is not a digit
def test_a_word_character_that_is_no_underscore_is_alphanumeric(ch):
    """``clean_post`` rejects a text with no ``str.isalnum`` character by one regex search."""
    assert bool(c._ALNUM.search(ch)) == ch.isalnum()
