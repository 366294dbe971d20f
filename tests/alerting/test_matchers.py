"""Matchers: Alertmanager's four operators, anchored regexes, missing labels, parse errors."""

from __future__ import annotations

import pytest

from detector.alerting.matchers import Matcher, matches_all, parse_matcher, parse_matchers
from detector.errors import ConfigError

LABELS = {"market": "DE", "kind": "dip", "alertname": "orders"}

MATCH_CASES = [
    # (id, matcher text, labels, expected)
    ("eq", "market=DE", LABELS, True),
    ("eq-other", "market=FR", LABELS, False),
    ("eq-quoted", 'market="DE"', LABELS, True),
    ("neq", "market!=FR", LABELS, True),
    ("neq-same", "market!=DE", LABELS, False),
    ("re", 'kind=~"dip|missing"', LABELS, True),
    ("re-anchored-prefix", "kind=~di", LABELS, False),
    ("re-anchored-suffix", "kind=~ip", LABELS, False),
    ("re-alternation-anchored", "kind=~dip|x", {"kind": "dipx"}, False),
    ("re-dot-star", "kind=~.*", LABELS, True),
    ("nre", 'kind!~"spike|missing"', LABELS, True),
    ("nre-hit", "kind!~d.*", LABELS, False),
    ("missing-eq-empty", 'team=""', LABELS, True),
    ("missing-eq-value", "team=pay", LABELS, False),
    ("missing-neq", "team!=pay", LABELS, True),
    ("missing-re-empty-ok", "team=~|pay", LABELS, True),
    ("missing-re", "team=~pay", LABELS, False),
    ("missing-nre", "team!~pay", LABELS, True),
    ("present-neq-empty", 'market!=""', LABELS, True),
    ("absent-neq-empty", 'team!=""', LABELS, False),
    ("value-with-spaces", "city=New York", {"city": "New York"}, True),
    ("value-with-equals", "q=a=b", {"q": "a=b"}, True),
    ("escaped-quote", r'q="say \"hi\""', {"q": 'say "hi"'}, True),
    ("spaces-around-op", 'market = "DE"', LABELS, True),
]


@pytest.mark.parametrize(("text", "labels", "expected"), [c[1:] for c in MATCH_CASES],
                         ids=[c[0] for c in MATCH_CASES])  # fmt: skip
def test_matcher_semantics(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


ROUND_TRIP = [
    "market=DE",
    'kind=~"dip|missing"',
    "team!=x",
    'q!~"a\\"b"',
    'v="line\\nbreak"',
    r'p="back\\slash"',
    'e=""',
]


@pytest.mark.parametrize("text", ROUND_TRIP, ids=ROUND_TRIP)
def test_str_round_trips(text: str) -> None:
    m = parse_matcher(text)
    assert parse_matcher(str(m)) == m


ERRORS = [
    # (id, text, words the message must contain)
    ("no-operator", "market", ["'market'", "no operator"]),
    ("empty", "  ", ["empty"]),
    ("no-name", '="DE"', ["no label name"]),
    ("bad-name", "1market=DE", ["label name '1market'"]),
    ("bad-regex", "kind=~(dip", ["'kind=~(dip'", "invalid regular expression"]),
    ("unterminated", 'market="DE', ["unterminated"]),
    ("after-quote", 'market="DE"x', ["after the closing quote"]),
    ("bad-escape", r'market="\d"', ["unknown escape"]),
    ("stray-quote", 'market=D"E', ["stray quote"]),
]


@pytest.mark.parametrize(("text", "words"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_parse_errors_name_the_text_and_the_problem(text: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_matcher(text)
    for word in words:
        assert word in str(info.value)


LISTS = [
    ("braces", '{market="DE", kind=~"dip|missing"}', ['market="DE"', 'kind=~"dip|missing"']),
    ("no-braces", "market=DE,kind=dip", ['market="DE"', 'kind="dip"']),
    ("comma-in-quotes", '{q="a,b", r=c}', ['q="a,b"', 'r="c"']),
    ("trailing-comma", "{a=1,}", ['a="1"']),
    ("empty-braces", "{}", []),
    ("list-of-texts", ["market=DE", "kind!=dip"], ['market="DE"', 'kind!="dip"']),
    ("list-entry-with-several", ["a=1, b=2", "c=3"], ['a="1"', 'b="2"', 'c="3"']),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in LISTS], ids=[c[0] for c in LISTS])
def test_parse_matchers(spec: str | list[str], expected: list[str]) -> None:
    assert [str(m) for m in parse_matchers(spec)] == expected


def test_list_errors() -> None:
    with pytest.raises(ConfigError, match="missing closing"):
        parse_matchers("{a=1")
    with pytest.raises(ConfigError, match=r"'b'.*no operator"):
        parse_matchers("{a=1, b}")


def test_matches_all_and_direct_construction() -> None:
    ms = [Matcher("market", "=", "DE"), Matcher("kind", "=~", "dip|spike")]
    assert matches_all(ms, LABELS)
    assert not matches_all([*ms, Matcher("alertname", "!=", "orders")], LABELS)
    assert matches_all([], LABELS)
    with pytest.raises(ConfigError, match="invalid regular expression"):
        Matcher("kind", "=~", "(")
    with pytest.raises(ConfigError, match="unknown operator"):
        Matcher("kind", "==", "x")  # type: ignore[arg-type]
