"""Reading model output: lists, lettered choices, judge verdicts and scores; grounding and flags."""

from __future__ import annotations

import pytest

from recai.data import Catalog
from recai_eval.llm.parsing import (
    listed_items,
    mention_variants,
    parse_choice,
    parse_list,
    parse_scores,
    parse_verdict,
)
from recai_eval.llm.scoring import TitleMatcher, error_flags, is_copy, mentions_title, target_rank
from recai_eval.metrics import MISSED

TITLES = [
    "Toy Story (1995)",
    "Heat (1995)",
    "Fargo (1996)",
    "Matrix, The (1999)",
    "Crouching Tiger, Hidden Dragon (2000)",
    "Seven (Se7en) (1995)",
]


@pytest.fixture(scope="module")
def matcher() -> TitleMatcher:
    return TitleMatcher(Catalog(ids=list(range(len(TITLES))), titles=TITLES))


# -- lists ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1. Heat\n2. Fargo\n3. Toy Story", ["Heat", "Fargo", "Toy Story"]),
        ("Here are my picks:\n1) Heat\n2) Fargo\nEnjoy them!", ["Heat", "Fargo"]),
        ("- **Heat**\n- `Fargo`\n* 'Toy Story'", ["Heat", "Fargo", "Toy Story"]),
        ("Heat<end>Fargo<end>Toy Story<end>", ["Heat", "Fargo", "Toy Story"]),
        ("Heat\nFargo\n\nToy Story", ["Heat", "Fargo", "Toy Story"]),
        ("Heat; Fargo; Toy Story.", ["Heat", "Fargo", "Toy Story"]),
        ("Heat, Fargo, Matrix, The (1999)", ["Heat", "Fargo", "Matrix, The (1999)"]),
        ("```\n1. Heat\n2. Fargo\n```", ["Heat", "Fargo"]),
        (
            "1. 12 Monkeys (1995)\n2. 2001: A Space Odyssey",
            ["12 Monkeys (1995)", "2001: A Space Odyssey"],
        ),
        ('1. "Heat" (1995)', ['"Heat" (1995)']),
        ("1. Heat\n2. Fargo\n\nThe user chose:\n1. Heat\n2. Babe", ["Heat", "Fargo"]),
        ("", []),
        ("   \n  ", []),
    ],
)
def test_parse_list_shapes(text: str, expected: list[str]) -> None:
    assert parse_list(text) == expected


def test_comma_lists_join_fragments_that_name_a_title(matcher: TitleMatcher) -> None:
    text = "Heat, Crouching Tiger, Hidden Dragon (2000), Fargo"
    assert parse_list(text) == ["Heat", "Crouching Tiger", "Hidden Dragon (2000)", "Fargo"]
    joined = parse_list(text, score=matcher.score, threshold=matcher.threshold)
    assert joined == ["Heat", "Crouching Tiger, Hidden Dragon (2000)", "Fargo"]


def test_listed_items_skip_prose() -> None:
    assert listed_items("Tell me more about what you like?") == []
    assert listed_items("Try these:\n1. Heat\n- Fargo\nWhat do you think?") == ["Heat", "Fargo"]


def test_mention_variants_cut_comments_and_find_quotes() -> None:
    assert mention_variants("Heat (1995): a crime epic") == [
        "Heat (1995): a crime epic",
        "Heat (1995)",
    ]
    assert "Seven" in mention_variants('I loved "Seven" so much')
    assert "Heat" in mention_variants("Heat | genres: Crime")


# -- grounding, flags, ranks ----------------------------------------------------------------------
def test_grounding_by_variants_and_threshold(matcher: TitleMatcher) -> None:
    assert matcher.ground_all(["the matrix", "Heat (1995) - a crime epic", "Mission to Mars"]) == [
        3,
        1,
        None,
    ]
    assert matcher.ground("the matrix")[1] >= matcher.threshold
    strict = TitleMatcher(matcher.catalog, threshold=1.0)
    assert strict.ground("Heat") == (None, pytest.approx(matcher.ground("Heat")[1]))
    assert matcher.among("I pick Fargo", [1, 2, 0]) == 1
    assert matcher.among("something else entirely", [1, 2, 0]) is None


def test_article_or_year_alone_names_nothing(matcher: TitleMatcher) -> None:
    # seen from SmolLM2: "6. The (1992)"; the year alone would match any title of that year
    assert matcher.ground_all(["The (1995)", "(1996)", "A"]) == [None, None, None]


def test_tfidf_baseline_is_more_tolerant_of_typos(matcher: TitleMatcher) -> None:
    tfidf = TitleMatcher(matcher.catalog, method="tfidf", threshold=0.6)
    assert tfidf.ground("Heatt (1995)")[0] == 1
    assert matcher.ground("Heatt (1995)")[0] is None  # blend punishes unknown 3-grams harder


def test_error_flags_each_kind() -> None:
    none = error_flags([0, 1], history=[5], candidates=[0, 1, 2], order=[2, 0, 1])
    assert not any(none.values())
    assert error_flags([0, None])["nonexistent"]
    assert error_flags([0, 0])["duplicate"]
    assert error_flags([5], history=[5])["in_history"]
    assert error_flags([3], candidates=[0, 1])["out_of_candidates"]
    assert "out_of_candidates" not in error_flags([3]) and "copy" not in error_flags([3])
    assert error_flags([2, 0, 1], order=[2, 0, 1, 4])["copy"]


def test_copy_needs_three_items_in_input_order() -> None:
    assert is_copy([1, 2, 3], [1, 2, 3, 4])
    assert is_copy([1, 9, 2, 2, 3], [1, 2, 3, 4])  # other items and repeats are ignored
    assert not is_copy([1, 2], [1, 2, 3, 4])
    assert not is_copy([1, 3, 2], [1, 2, 3, 4])
    assert is_copy([7, 8], [7, 8])  # a two-item input needs two
    assert not is_copy([], [])


def test_target_rank_keeps_every_slot() -> None:
    assert target_rank([None, 4, 4, 7], 7) == 3
    assert target_rank([None, 4], 7) == MISSED


def test_mentions_title_needs_whole_words() -> None:
    assert mentions_title("Have you seen THE MATRIX (1999)?", "Matrix, The (1999)")
    assert not mentions_title("Heathers is a good one", "Heat")
    assert mentions_title("what about heat", "Heat")


# -- choices --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "index", "how"),
    [
        ("C", 2, "letter"),
        (" c. ", 2, "letter"),
        ("(D)", 3, "letter"),
        ("**E**", 4, "letter"),
        ("[[F]]", 5, "letter"),
        ("Answer: g", 6, "letter"),
        ("The answer is (H) because...", 7, "letter"),
        ("I would choose option J.", 9, "letter"),
        ("B. Heat (1995)", 1, "letter"),
        ("A great pick would be D", 3, "letter"),
        ("I think it is B", 1, "letter"),
        ("A", 0, "letter"),
        ("I am not sure.", None, "none"),
        ("K", None, "none"),
        ("", None, "none"),
    ],
)
def test_parse_choice_letters(text: str, index: int | None, how: str) -> None:
    assert parse_choice(text, 10) == (index, how)


def test_parse_choice_falls_back_to_titles() -> None:
    assert parse_choice(
        "I would go with Fargo", 4, match=lambda t: 2 if "Fargo" in t else None
    ) == (
        2,
        "title",
    )
    assert parse_choice("Option K", 10) == (None, "none")
    with pytest.raises(ValueError):
        parse_choice("A", 0)


# -- judge ----------------------------------------------------------------------------------------
ASPECTS = ("informativeness", "persuasiveness", "helpfulness")


def test_parse_verdict() -> None:
    assert parse_verdict("A is fine. [[B]]") == "B"
    assert parse_verdict("[[A]] at first, but on reflection [[C]]") == "C"
    assert parse_verdict('{"overall result": "[[A]]"}') == "A"
    assert parse_verdict('"overall result": "B"') == "B"
    assert parse_verdict("Both are good.") is None


def test_parse_scores_json_and_pairs() -> None:
    text = (
        'Reasoning first. {"a": {"Informativeness": 3, "persuasiveness": 2, "helpfulness": 2}, '
        '"B": {"informativeness": 1, "persuasiveness": 1, "helpfulness": 2}, '
        '"overall result": "[[A]]"} That is all.'
    )
    assert parse_scores(text, ASPECTS) == {
        "A": {"informativeness": 3.0, "persuasiveness": 2.0, "helpfulness": 2.0},
        "B": {"informativeness": 1.0, "persuasiveness": 1.0, "helpfulness": 2.0},
    }
    pairs = "A: informativeness: 2, persuasiveness: 3, helpfulness: 1\nB: informativeness=1 persuasiveness: 1 helpfulness: 3"
    assert parse_scores(pairs, ASPECTS)["B"] == {
        "informativeness": 1.0,
        "persuasiveness": 1.0,
        "helpfulness": 3.0,
    }
    assert (
        parse_scores(
            '{"A": {"informativeness": 9, "persuasiveness": 1, "helpfulness": 1}, "B": {"informativeness": 1, "persuasiveness": 1, "helpfulness": 1}}',
            ASPECTS,
        )
        is None
    )
    assert parse_scores("no scores here", ASPECTS) is None
    assert parse_scores('{"A": {"informativeness": 2}, "B": {}}', ASPECTS) is None
