"""How ``recai mcp``'s tools read a title (:func:`recai_agent.mcpserver.title_match`): the
catalog's fuzzy matcher, a clear lead below its threshold, and a misspelt name's letters; on
the film fixture, and through a tool."""

from __future__ import annotations

import pytest
from agentkit import film_catalog

from recai.data.grounding import Grounder
from recai_agent.mcpserver import _name_key, _spelling, title_match


@pytest.fixture(scope="module")
def grounder() -> Grounder:
    return Grounder(film_catalog())


def title(grounder: Grounder, text: str) -> str | None:
    i = title_match(grounder, text)
    return None if i is None else grounder.catalog.title(i)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Fargo (1996)", "Fargo (1996)"),
        ("godfather", "Godfather, The (1972)"),  # 0.5 or more: the matcher alone
        ("Pulp Fictoin", "Pulp Fiction (1994)"),  # 0.41, ten times the runner-up
        ("Casablanka", "Casablanca (1942)"),
        ("The Shinnig", "Shining, The (1980)"),  # the article in front, two letters swapped
        ("Gattca", "Gattaca (1997)"),
        ("Terminatr", "Terminator, The (1984)"),
    ],
)
def test_misspelt_titles_name_their_film(grounder: Grounder, text: str, found: str) -> None:
    assert title(grounder, text) == found


@pytest.mark.parametrize(
    "text",
    ["Star Trek", "Zorgon the Unwatchable", "Jaws", "Titanic", "Alf", "Gatacca", "", "   "],
)
def test_titles_of_no_film_name_none(grounder: Grounder, text: str) -> None:
    """'Gatacca' is two edits from Gattaca: 0.71, under the letters' 0.8."""
    assert title(grounder, text) is None


def test_the_letters_rule_needs_a_clear_winner() -> None:
    from recai.data import Catalog

    twins = Grounder(
        Catalog(ids=["1", "2", "3"], titles=["Sleeper (1973)", "Sleepers (1996)", "Babe (1995)"])
    )
    # 'slepeer' is one swap from 'sleeper' (0.86) and two edits from 'sleepers' (0.75)
    assert title(twins, "slepeer") == "Sleeper (1973)"
    tied = Grounder(Catalog(ids=["1", "2"], titles=["Batman (1989)", "Catman (1990)"]))
    assert title(tied, "Datman") is None  # one letter from both: no winner
    assert title(tied, "Bazman") == "Batman (1989)"  # one from Batman, two from Catman


def test_name_key_and_spelling() -> None:
    assert _name_key("Omen, The (1976)") == "the omen"
    assert _name_key("Cérémonie, La (1995)") == "la cérémonie"
    assert _name_key("  When Harry Met Sally...  (1989)") == "when harry met sally..."
    assert _spelling("notoriuos", "notorious") == pytest.approx(1 - 1 / 9)
    assert _spelling("slepeer", "sleeper") == pytest.approx(1 - 1 / 7)
    assert _spelling("slepeer", "sleepers") == pytest.approx(1 - 2 / 8)
    assert _spelling("abc", "abc") == 1.0 and _spelling("", "abc") == 0.0
    assert _spelling("kitten", "sitting") == pytest.approx(1 - 3 / 7)


def test_spelling_stops_early_below_the_least_and_keeps_exact_scores_above() -> None:
    assert _spelling("abcdefghij", "abcdefghXY", 0.8) == pytest.approx(0.8)  # 2 of 10: kept
    assert _spelling("abcdefghij", "abcdefgXYZ", 0.8) == 0.0  # 3 of 10: stopped
    assert _spelling("short", "a much longer name", 0.8) == 0.0
    assert _spelling("notoriuos", "notorious", 0.8) == pytest.approx(1 - 1 / 9)
