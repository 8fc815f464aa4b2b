"""recai.data.context: the user context message, with the optional candidates and k a ranking or
retrieval request adds (what recai-eval's one-turn agent tasks write and agents read)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from recai.data import Catalog
from recai.data.context import (
    CONTEXT_NAME,
    MAX_CONTEXT_ITEMS,
    UserContext,
    context_message,
    user_context,
)
from recai.errors import RecaiError
from recai.types import Message


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        ids=["m0", "m1", "m2", "m3"],
        titles=["Heat (1995)", "Fargo (1996)", "Alien (1979)", "Casino (1995)"],
    )


def _with(body: dict[str, Any]) -> list[Message]:
    return [Message("system", json.dumps(body), name=CONTEXT_NAME), Message.user("hi")]


def test_candidates_and_k_round_trip_in_the_order_given(catalog: Catalog) -> None:
    message = context_message("u1", [0], catalog, candidates=[3, 1, 2], k=3)
    body = json.loads(message.content)
    assert body["candidates"] == [
        {"id": "m3", "title": "Casino (1995)"},
        {"id": "m1", "title": "Fargo (1996)"},
        {"id": "m2", "title": "Alien (1979)"},
    ]
    assert body["k"] == 3
    assert user_context([message], catalog) == UserContext("u1", [0], [3, 1, 2], 3)


def test_without_candidates_or_k_the_message_is_as_before(catalog: Catalog) -> None:
    message = context_message("u1", [2, 0], catalog)
    assert set(json.loads(message.content)) == {"user", "history"}
    read = user_context([message], catalog)
    assert read == UserContext("u1", [2, 0]) and read.candidates is None and read.k is None


def test_numpy_values_are_written_as_plain_json(catalog: Catalog) -> None:
    message = context_message(
        np.int64(4), np.array([1]), catalog, candidates=np.array([2, 0]), k=np.int64(2)
    )
    body = json.loads(message.content)
    assert body["user"] == 4 and body["k"] == 2
    assert user_context([message], catalog) == UserContext(4, [1], [2, 0], 2)


def test_an_empty_candidate_list_is_kept_apart_from_none(catalog: Catalog) -> None:
    read = user_context([context_message(None, [], catalog, candidates=[])], catalog)
    assert read == UserContext(None, [], [], None)


@pytest.mark.parametrize("k", [0, -3, True, 2.5, "5"])
def test_writing_a_bad_k_names_it(catalog: Catalog, k: object) -> None:
    with pytest.raises(RecaiError, match=r"context_message: k must be a positive integer"):
        context_message("u", [], catalog, k=k)  # type: ignore[arg-type]


def test_writing_too_many_candidates_names_the_limit(catalog: Catalog) -> None:
    with pytest.raises(RecaiError, match="more than the 10,000"):
        context_message("u", [], catalog, candidates=[0] * (MAX_CONTEXT_ITEMS + 1))


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ({"history": [], "k": 0}, r"'k' is 0; it must be a positive integer"),
        ({"history": [], "k": "5"}, r"'k' is '5'; it must be a positive integer"),
        ({"history": [], "k": True}, r"'k' is True"),
        ({"history": [], "candidates": "m1"}, r"'candidates' is a str; it must be a list"),
        ({"history": [], "candidates": {"id": "m1"}}, r"'candidates' is a dict"),
        (
            {"history": [], "candidates": [{"id": "m1"}, {"id": "nope"}]},
            r"item id 'nope' \(candidates\[1\]\), which this agent's catalog does not have",
        ),
        (
            {"history": [{"id": "m0"}, {"id": "gone"}]},
            r"item id 'gone' \(history\[1\]\)",
        ),
    ],
)
def test_reading_a_bad_shape_gives_one_error_naming_the_key(
    catalog: Catalog, body: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(RecaiError, match=pattern) as info:
        user_context(_with(body), catalog)
    assert "\n" not in str(info.value) and CONTEXT_NAME in str(info.value)


def test_reading_too_many_candidates_names_the_limit(catalog: Catalog) -> None:
    body = {"history": [], "candidates": ["m0"] * (MAX_CONTEXT_ITEMS + 1)}
    with pytest.raises(RecaiError, match=r"10,001 entries, more than 10,000"):
        user_context(_with(body), catalog)


def test_bare_ids_are_read_as_entries(catalog: Catalog) -> None:
    read = user_context(
        _with({"user": "u", "history": ["m0"], "candidates": ["m2", "m1"]}), catalog
    )
    assert read == UserContext("u", [0], [2, 1], None)


def test_a_null_candidates_or_k_means_not_given(catalog: Catalog) -> None:
    read = user_context(_with({"history": [], "candidates": None, "k": None}), catalog)
    assert read == UserContext(None, [], None, None)
