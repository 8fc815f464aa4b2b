"""SlotExtractor on MovieLens-100K: verdicts said after a title ("X was a letdown"), titles that
open a sentence, year phrases beside titles and negations, and lists of titles.

The sentences are written here, not taken from the request generator's families (the held-out
planner set measures those): each case checks a general rule, not one phrasing.
"""

from __future__ import annotations

import pytest

from recai.data import Catalog
from recai_agent.slots import SlotExtractor


@pytest.fixture(scope="module")
def ex(ml: Catalog) -> SlotExtractor:
    return SlotExtractor(ml)


def named(cat: Catalog, items: list[int]) -> list[str]:
    return [cat.title(i) for i in items]


# ---- a verdict after a title says whether it was liked -----------------------------------------


@pytest.mark.parametrize(
    ("text", "liked", "disliked"),
    [
        ("Honestly, Heat was a letdown. Any westerns?", [], ["Heat (1995)"]),
        ("Scream was honestly brilliant", ["Scream (1996)"], []),
        ("Twister wasn't good at all", [], ["Twister (1996)"]),  # a negated verdict turns
        ("I saw Titanic and it was dull", [], ["Titanic (1997)"]),  # it wins over "saw"
        ("Casablanca? loved it. more please", ["Casablanca (1942)"], []),
        ("Jumanji? hated it", [], ["Jumanji (1995)"]),
        ("Fargo? meh", [], ["Fargo (1996)"]),
        ("Heat bored me, something lighter", [], ["Heat (1995)"]),
        ("my son liked Aladdin, it was charming", ["Aladdin (1992)"], []),
        ("I loved Heat but Twister was a mess", ["Heat (1995)"], ["Twister (1996)"]),
    ],
)
def test_a_verdict_after_a_title_sets_its_polarity_for_certain(ex, ml, text, liked, disliked):
    s = ex.extract(text)
    assert (named(ml, s.liked), named(ml, s.disliked)) == (liked, disliked)
    assert s.confidence["polarity"] == 1.0  # a verdict is a cue


def test_titles_listed_before_a_verdict_share_it(ex, ml):
    s = ex.extract("Heat and Fargo were both dull")
    assert named(ml, s.disliked) == ["Heat (1995)", "Fargo (1996)"] and s.liked == []
    s = ex.extract("Jumanji, Heat and Clueless, loved them")
    assert named(ml, s.liked) == ["Jumanji (1995)", "Heat (1995)", "Clueless (1995)"]


def test_a_title_without_cue_or_verdict_stays_liked_only_by_default(ex, ml):
    s = ex.extract("Boogie Nights. Show me horror films")
    assert named(ml, s.liked) == ["Boogie Nights (1997)"]
    assert s.confidence["polarity"] == 0.5  # the model's reading may still win


def test_a_verdict_on_a_genre_word_refuses_or_keeps_that_genre(ex):
    s = ex.extract("Horror bores me, a comedy instead")
    assert (s.genres, s.not_genres, s.liked, s.disliked) == (["Comedy"], ["Horror"], [], [])
    s = ex.extract("westerns are so tedious; a thriller")
    assert (s.genres, s.not_genres) == (["Thriller"], ["Western"])


# ---- a title that opens its sentence -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "liked", "disliked"),
    [
        ("Clueless was hilarious", ["Clueless (1995)"], []),  # one word opening the sentence
        ("The Shawshank Redemptoin was superb", ["Shawshank Redemption, The (1994)"], []),
        ("Well, Twisterr was awful", [], ["Twister (1996)"]),  # misspelt, after a comma
        ("I thought Heat was great", ["Heat (1995)"], []),  # the title inside its clause
        ("so, amistad was great", ["Amistad (1997)"], []),  # lower case: a whole title
    ],
)
def test_a_title_opening_its_clause_is_grounded_when_a_verdict_follows(
    ex, ml, text, liked, disliked
):
    s = ex.extract(text)
    assert (named(ml, s.liked), named(ml, s.disliked)) == (liked, disliked)


@pytest.mark.parametrize(
    "text",
    [
        "the first one was fine but the sequel was awful",  # "Very Brady Sequel" in lower case
        "the acting was great",
        "That was great, thanks",
        "Yesterday was awful",
        "The last suggestion was awful",
    ],
)
def test_words_before_a_verdict_are_no_title_unless_they_match_one(ex, text):
    s = ex.extract(text)
    assert s.liked == [] and s.disliked == []


def test_a_lone_capitalised_word_opening_a_sentence_needs_a_verdict(ex, ml):
    assert ex.extract("Twister movies please").liked == []
    assert named(ml, ex.extract("Twister was a blast").liked) == ["Twister (1996)"]


# ---- year phrases are read before titles and negations -----------------------------------------


@pytest.mark.parametrize(
    ("text", "years", "liked"),
    [
        (
            "nothing later than 1985 in the vein of Blade Runner",
            (None, 1985),
            ["Blade Runner (1982)"],
        ),
        ("comedies not before 1990, similar to Clueless", (1990, None), ["Clueless (1995)"]),
        ("westerns not after 1960 please", (None, 1960), []),  # was 'after 1960': from 1961
        ("action movies mid 80s in the same vein as Die Hard", (1983, 1986), ["Die Hard (1988)"]),
        ("a good romance 1975 at the latest", (None, 1975), []),
        ("dramas 1980 at the earliest", (1980, None), []),
        ("nothing made later than 1970", (None, 1970), []),
    ],
)
def test_year_phrases_beside_titles_and_negation_words(ex, ml, text, years, liked):
    s = ex.extract(text)
    assert (s.year_min, s.year_max) == years
    assert named(ml, s.liked) == liked and s.disliked == []


def test_a_negated_year_phrase_leaves_the_genre_it_names_refused(ex):
    s = ex.extract("no comedies later than 1990")
    assert s.not_genres == ["Comedy"] and (s.year_min, s.year_max) == (1991, None)


def test_a_year_phrase_inside_a_quoted_title_stays_in_the_title(ex, ml):
    s = ex.extract('I loved "Murder at 1600" from the 90s')
    assert named(ml, s.liked) == ["Murder at 1600 (1997)"]
    assert (s.year_min, s.year_max) == (1990, 1999)


# ---- titles in capitals, lists -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "liked"),
    [
        ("anything like Gone with the Wind", ["Gone with the Wind (1939)"]),
        ("something like Murder at 1600", ["Murder at 1600 (1997)"]),
        ("I enjoyed Stand by Me", ["Stand by Me (1986)"]),  # ends in a common word
        # but not in "The": two titles
        (
            "I loved Sense and Sensibility and The Piano",
            ["Sense and Sensibility (1995)", "Piano, The (1993)"],
        ),
        ("I liked Mr. Holland's Opus. Anything else?", ["Mr. Holland's Opus (1995)"]),
        (
            "movies like L.A. Confidential, Mr. Holland's Opus or Dead Man Walking",
            ["L.A. Confidential (1997)", "Mr. Holland's Opus (1995)", "Dead Man Walking (1995)"],
        ),
        (
            "similar to Casablanca or Sense and Sensibility",
            ["Casablanca (1942)", "Sense and Sensibility (1995)"],
        ),
        (
            "in the vein of Scream or Indiana Jones and the Last Crusade",
            ["Scream (1996)", "Indiana Jones and the Last Crusade (1989)"],
        ),
    ],
)
def test_titles_with_small_words_abbreviations_and_lists(ex, ml, text, liked):
    s = ex.extract(text)
    assert named(ml, s.liked) == liked and s.disliked == []


def test_a_capitalised_cue_word_inside_a_title_is_part_of_it(ex, ml):
    # "Like" and "Without" are cue words; written in capitals inside a title they are not
    s = ex.extract("Heat or Some Like It Hot would be nice")
    assert "Some Like It Hot (1959)" in named(ml, s.liked) and s.disliked == []
    s = ex.extract("anything close to Rebel Without a Cause")
    assert named(ml, s.liked) == ["Rebel Without a Cause (1955)"] and s.disliked == []
    # a cue word opening a sentence is still a cue
    assert named(ml, ex.extract("Like Heat, but funnier").liked) == ["Heat (1995)"]


def test_a_title_inside_a_longer_capitalised_span_is_still_found(ex, ml):
    # "for" and "with" may join a title's words now; a span that is no title as a whole is
    # searched again from its later capitalised words
    assert named(ml, ex.extract("Looking for Heat with Pacino").liked) == ["Heat (1995)"]
    assert named(ml, ex.extract("Do you know Men in Black").liked) == ["Men in Black (1997)"]


def test_a_sentence_end_after_a_title_is_not_an_abbreviation(ex, ml):
    s = ex.extract("I hated Ed. Recommend a comedy")
    assert named(ml, s.disliked) == ["Ed (1996)"] and s.genres == ["Comedy"]


# ---- genre words after a cue, misspelt phrases, courtesy, intent -------------------------------


@pytest.mark.parametrize(
    ("text", "genres", "not_genres"),
    [
        ("nothing with love stories in it", [], ["Romance"]),  # not "Mad Love"
        ("I'm into detective stories lately", ["Mystery"], []),  # not "Pet Detective"
        ("skip science fiction films tonight", [], ["Sci-Fi"]),
        ("steer clear of gangstr films", [], ["Crime"]),  # misspelt: still a value
    ],
)
def test_genre_words_after_a_cue_stay_values_not_titles(ex, text, genres, not_genres):
    s = ex.extract(text)
    assert (s.genres, s.not_genres, s.liked, s.disliked) == (genres, not_genres, [], [])


def test_a_whole_title_in_lower_case_after_a_cue_is_still_a_title(ex, ml):
    assert named(ml, ex.extract("something in the vein of crimson tide").liked) == [
        "Crimson Tide (1995)"
    ]


@pytest.mark.parametrize(
    ("text", "genres"),
    [
        ("scince fiction for tonight", ["Sci-Fi"]),  # one word of a phrase misspelt
        ("some science fictoin", ["Sci-Fi"]),
        ("a love storry", ["Romance"]),
    ],
)
def test_a_value_phrase_with_one_misspelt_word(ex, text, genres):
    assert ex.extract(text).genres == genres


def test_refusing_by_keeping_a_genre_out(ex):
    s = ex.extract("leave the westerns off my list, something funny")
    assert (s.genres, s.not_genres) == (["Comedy"], ["Western"])


def test_courtesy_words_after_a_cue_are_no_title(ex):
    s = ex.extract("a western I would enjoy thanks a lot")
    assert s.genres == ["Western"] and s.liked == [] and s.disliked == []


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("thanks so much, bye!", "chat"),
        ("this was useful, cheers", "chat"),
        ("have a great evening", "chat"),
        ("evening!", "chat"),
        ("thanks! now a comedy please", "recommend"),
        ("what might I enjoy?", "recommend"),  # the profile alone
        ("surprise me, thanks", "recommend"),
    ],
)
def test_closing_words_anywhere_are_chat_unless_something_is_asked(ex, text, intent):
    assert ex.extract(text).intent == intent


@pytest.mark.parametrize(
    ("text", "liked"),
    [
        (
            "Something like Sex, Lies, and Videotape, any dramas?",
            ["Sex, Lies, and Videotape (1989)"],
        ),
        ("I loved Paris, Texas", ["Paris, Texas (1984)"]),
        ("like Heat, Fargo or Scream", ["Heat (1995)", "Fargo (1996)", "Scream (1996)"]),  # a list
    ],
)
def test_a_title_with_commas_in_it_is_one_title(ex, ml, text, liked):
    assert named(ml, ex.extract(text).liked) == liked


# ---- what the planner does with a verdict --------------------------------------------------------


def test_a_title_judged_badly_stays_unwanted_when_merged_with_a_model_that_likes_it(ex, ml):
    from recai_agent.plan import merge, plan_schema, validate_plan

    tools = ["lookup", "hard_filter", "soft_filter", "ranking", "map"]
    model_plan = {
        "steps": [
            {"tool": "soft_filter", "input": {"seeds": ["Twister (1996)"]}},
            {"tool": "ranking", "input": {"by": "preference", "mode": "accuracy"}},
            {"tool": "map", "input": {}},
        ]
    }
    model = validate_plan(model_plan, plan_schema(tools, ml), ml, ex.grounder)[0]
    assert model is not None
    s = ex.extract("Twister was a real letdown; any westerns?")
    assert named(ml, s.disliked) == ["Twister (1996)"] and s.confidence["polarity"] == 1.0
    plan = merge(model, s)
    assert plan.step("ranking").input["unwanted"] == ["Twister (1996)"]
    soft = plan.step("soft_filter")
    assert soft is None or "Twister (1996)" not in soft.input.get("seeds", [])
    assert plan.step("hard_filter").input["genres"] == ["Western"]
