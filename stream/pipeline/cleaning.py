"""Cleaning on the fly: small pure functions, composed by :func:`clean_text` and :func:`clean_post`.

Every step is total (never raises on any ``str``) and :func:`clean_text` is idempotent; both
properties are checked with Hypothesis in ``tests/unit/test_cleaning.py``. Personal data (URLs,
@mentions, e-mail addresses, phone numbers) is removed here, before anything is published.

>>> clean_text("RT @Delta: Ã©t&eacute; #DeflateGate 😂 call +1 (555) 123-4567 http://t.co/x")
'rt : été deflate gate emoji_face_with_tears_of_joy call'
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from stream.pipeline.events import DEFAULT_LIMITS, Limits, Post, Rejected, post_from_dict

_CP1252 = {bytes([i]).decode("cp1252", "ignore") or chr(i): i for i in range(0x80, 0x100)}
# A run of characters that UTF-8 bytes become when misread as cp1252 / latin-1.
_MOJIBAKE_RUN = re.compile("[" + "".join(re.escape(c) for c in _CP1252) + "]{2,}")
_MOJIBAKE_LEAD = re.compile("[\u00c2-\u00f4]")
_BROKEN = re.compile(r"[_\ufffd]*\ufffd[_\ufffd]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_URL = re.compile(r"(?i)\b(?:https?://|www\.)\S+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# The patterns below that look behind a "@" or "#" begin with that character and look behind it
# afterwards: a pattern that begins with a literal lets the regex engine jump from one occurrence to the
# next, where a look-behind first is tried at every position (3-5 times slower on tweets). Each matches
# what its plain form would (``(?<![\w@])@\w+``, ``[\w.+-]@``, ``(?<![\w#])#(\w+)``; a test checks).
_MENTION = re.compile(r"@(?<![\w@]@)\w+")
_EMAIL_AT = re.compile(r"@(?<=[\w.+-]@)")  # what every e-mail match contains: cheaper to look for first
_PHONE = re.compile(r"(?<![\w+])(?:\+?\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]?\d{3,4}[ .-]?\d{3,4}(?!\w)")
_HASHTAG = re.compile(r"#(?<![\w#]#)(\w+)")
_ALNUM = re.compile(r"[^\W_]")  # a character that ``str.isalnum`` accepts: ``\w`` is those and "_"
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
# every phone number match has three digits in a row; written out, not as \d{3}, because a pattern that
# begins with a character class lets the regex engine skip to that class (a repeat does not: 0.6 µs a text)
_DIGITS3 = re.compile(r"\d\d\d")
# Pictographs, dingbats, symbols, flags, skin tones, joiners and variation selectors.
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\u2190-\u21ff\u3297\u3299\u303d\u3030"
    "\ufe0f\u200d\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]"
)


def _unmangle(match: re.Match[str]) -> str:
    run = match.group(0)
    if not _MOJIBAKE_LEAD.search(run):
        return run
    try:
        raw = bytes(_CP1252[c] for c in run)
        return raw.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return run


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 text that was misread as cp1252/latin-1 ("Ã©" → "é"), run by run.

    A run is left alone unless its bytes are valid UTF-8, so real text stays as it is.

    >>> repair_mojibake("cafÃ© â€œniceâ€\x9d 😂"), repair_mojibake("SÃO PAULO")
    ('café “nice” 😂', 'SÃO PAULO')
    """
    return text if text.isascii() else _MOJIBAKE_RUN.sub(_unmangle, text)


def normalize_unicode(text: str) -> str:
    """NFKC, with control characters and replacement characters (broken bytes) removed.

    >>> normalize_unicode("ﬁne\u200b_\ufffd_ｔｅｘｔ")
    'fine  text'
    """
    if text.isascii():  # nothing to normalise but ASCII control characters
        return _CONTROL.sub(" ", text)
    text = _BROKEN.sub(" ", text)
    text = _CONTROL.sub(" ", text)
    return unicodedata.normalize("NFKC", text)


def unescape_html(text: str) -> str:
    """Resolve HTML entities, also double-escaped ones.

    >>> unescape_html("fish &amp;amp; chips &lt;3")
    'fish & chips <3'
    """
    for _ in range(8):
        new = html.unescape(text)
        if new == text:
            break
        text = new
    return text


def redact(text: str) -> str:
    """Remove URLs, e-mail addresses, @mentions and phone numbers.

    >>> redact("mail a.b@ex.com or @bob, see www.x.org, tel 555-123-4567 in 2015")
    'mail   or  , see   tel   in 2015'
    """
    # Each pattern runs only on texts that have what any of its matches must contain.
    if "://" in text or "www." in text.lower():
        text = _URL.sub(" ", text)
    if "@" in text:
        if _EMAIL_AT.search(text):  # an e-mail address has one of its characters right before its "@"
            text = _EMAIL.sub(" ", text)
        text = _MENTION.sub(" ", text)
    return _PHONE.sub(" ", text) if _DIGITS3.search(text) else text


def split_hashtag(tag: str) -> str:
    """Words of a hashtag, split at case and digit changes.

    >>> split_hashtag("DeflateGate"), split_hashtag("coachella2015"), split_hashtag("NFLPlayoffs")
    ('Deflate Gate', 'coachella 2015', 'NFL Playoffs')
    """
    return _CAMEL.sub(" ", tag).replace("_", " ")


def hashtag_key(tag: str) -> str:
    """A hashtag as the stream keys it (its audience segment, its profile entries): lower case, no ``#``.

    >>> hashtag_key("#NFL"), hashtag_key("nfl")
    ('nfl', 'nfl')
    """
    return tag.lower().lstrip("#")


def extract_hashtags(text: str) -> list[str]:
    """Lower-cased hashtags, in order of first appearance, without repeats.

    >>> extract_hashtags("#Coachella2015 is here #coachella2015 #nofilter")
    ['coachella2015', 'nofilter']
    """
    if "#" not in text:
        return []
    return list(dict.fromkeys(m.lower() for m in _HASHTAG.findall(text)))


def expand_hashtags(text: str) -> str:
    """Replace each hashtag by its words (``#DeflateGate`` → ``Deflate Gate``), hashtags written
    together included (each pass frees the next one; every pass removes a ``#``).

    >>> expand_hashtags("#GoPats#SuperBowl")
    ' Go Pats  Super Bowl '
    """
    while "#" in text:
        expanded = _HASHTAG.sub(lambda m: " " + split_hashtag(m.group(1)) + " ", text)
        if expanded == text:
            return expanded
        text = expanded
    return text


def _emoji_word(match: re.Match[str]) -> str:
    ch = match.group(0)
    name = unicodedata.name(ch, "")
    if not name or name.startswith(("VARIATION SELECTOR", "ZERO WIDTH", "EMOJI MODIFIER", "TAG ")):
        return " "
    return " emoji_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + " "


def replace_emoji(text: str) -> str:
    """Replace each emoji by a word naming it, so models and lexicons can use it.

    >>> replace_emoji("great ❤️👍🏽")
    'great  emoji_heavy_black_heart   emoji_thumbs_up_sign  '
    """
    return text if text.isascii() else _EMOJI.sub(_emoji_word, text)


def fold(text: str) -> str:
    """Case-fold and collapse white space.

    >>> fold("  Hello\\n\\tWORLD ")
    'hello world'
    """
    text = text.casefold()
    return collapse_space(text if text.isascii() else unicodedata.normalize("NFKC", text))


def collapse_space(text: str) -> str:
    """Runs of white space (any Unicode space, as ``\\s`` in a regex) as one space, none at the ends.

    >>> collapse_space(" a\\u00a0\\t b\\n")
    'a b'
    """
    return " ".join(text.split())


def clean_text(text: str, max_chars: int = 20_000) -> str:
    """The whole text cleaning, composed from the steps above (idempotent, never raises)."""
    text = text[:max_chars]
    text = repair_mojibake(text)
    text = unescape_html(text)
    text = collapse_space(normalize_unicode(text))
    for _ in range(4):  # removing one item can bring two others together: repeat until stable
        redacted = collapse_space(redact(text))
        if redacted == text:
            break
        text = redacted
    text = fold(replace_emoji(expand_hashtags(text)))
    if text.isascii():  # folded ASCII has no mojibake or emoji, and folds to itself: the tail is a no-op
        return text
    for _ in range(3):  # case folding can form new mojibake ("À¡" → "à¡"): repeat the tail until stable
        again = fold(replace_emoji(repair_mojibake(text)))
        if again == text:
            break
        text = again
    return text


def scale_count(v: float, cap: float = 1e9) -> float:
    """Engagement counts clipped to ``[0, cap]`` and log-scaled: ``log1p``.

    >>> scale_count(-3), round(scale_count(99), 3), scale_count(1e30) == scale_count(1e9)
    (0.0, 4.605, True)
    """
    return math.log1p(min(max(v, 0.0), cap))


@dataclass(frozen=True, slots=True)
class CleanPost:
    """A post after cleaning: what the features, the model and the outputs see."""

    post: Post
    text: str
    hashtags: tuple[str, ...]
    engagement: tuple[float, float, float, float]  # log1p of likes, shares, replies, followers


def clean_post(post: Post, max_chars: int = 20_000, limits: Limits = DEFAULT_LIMITS) -> CleanPost | Rejected:
    """Clean one validated post; a post with no words left is rejected as ``empty_text``.

    >>> p = Post(id="1", user_id="u", text="@bob #GoPats http://t.co/x", created_at=0, likes=-2)
    >>> c = clean_post(p); (c.text, c.hashtags, c.engagement[0])
    ('go pats', ('gopats',), 0.0)
    >>> clean_post(Post(id="2", user_id="u", text=" @bob http://t.co ", created_at=0))
    Rejected(reason='empty_text', detail='no words left after cleaning')
    """
    raw = post.text[:max_chars]
    found = [*extract_hashtags(raw), *(hashtag_key(t) for t in post.hashtags)]
    # hashtags become segments, table rows and keys: bounded in length and number
    tags = tuple(dict.fromkeys(t for t in found if t and len(t) <= limits.name_chars))[: limits.hashtags]
    text = clean_text(raw, max_chars)
    if not _ALNUM.search(text):  # no letter or digit: ``str.isalnum`` of no character
        return Rejected("empty_text", "no words left after cleaning")
    eng = (scale_count(post.likes), scale_count(post.shares), scale_count(post.replies), scale_count(post.followers))
    return CleanPost(post, text, tags, eng)


def retweet_key(text: str) -> str:
    """The text a retweet shares with its original, for duplicate detection.

    >>> retweet_key(clean_text("RT @nfl: Brady speaks")), retweet_key("brady speaks")
    ('brady speaks', 'brady speaks')
    """
    t = text.strip()
    while t.startswith(("rt ", "rt:")):
        t = t[3:].lstrip(" :")
    return t


def clean_event(
    event: dict[str, Any], max_chars: int = 20_000, limits: Limits = DEFAULT_LIMITS
) -> CleanPost | Rejected:
    """Validate and clean a post given as a dict (offline tools and tests: the worker's own steps).

    >>> clean_event({"id": "1", "user_id": "u", "text": "Go #Pats", "created_at": 0}).text
    'go pats'
    >>> clean_event({"id": "1", "text": "no user"}).reason
    'missing_field'
    """
    post = post_from_dict(event, limits)
    return post if isinstance(post, Rejected) else clean_post(post, max_chars, limits)
