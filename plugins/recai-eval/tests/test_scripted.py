"""conversation.v1's scripted user (simulation = "scripted"), the shared history and the turn
costs an agent reports; on a small hand-made film catalog and on the test kit's tiny dataset."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import recai
from recai.data import Catalog, Dataset, Interactions, Split, leave_one_out
from recai.data.context import CONTEXT_NAME
from recai.errors import ParamsError
from recai.runtime import RunContext
from recai.types import Completion, Message
from recai_eval.llm.conversation import ConversationEvaluator
from recai_eval.llm.scoring import core_title, mentions_title
from recai_eval.llm.scripted import DEFAULT_SCRIPT, ScriptedUser

TITLES = [
    "Heat (1995)",  # 0
    "Casino (1995)",  # 1
    "Fargo (1996)",  # 2
    "Toy Story (1995)",  # 3
    "Alien (1979)",  # 4
    "Aliens (1986)",  # 5
    "Blade Runner (1982)",  # 6
    "Annie Hall (1977)",  # 7
    "Manhattan (1979)",  # 8
    "Goodfellas (1990)",  # 9
]
GENRES = [
    ("Action", "Crime", "Thriller"),
    ("Crime", "Drama"),
    ("Crime", "Drama", "Thriller"),
    ("Animation", "Comedy"),
    ("Horror", "Sci-Fi"),
    ("Action", "Sci-Fi"),
    ("Sci-Fi", "Thriller"),
    ("Comedy", "Romance"),
    ("Comedy", "Drama", "Romance"),
    ("Crime", "Drama"),
]
YEARS = [1995.0, 1995.0, 1996.0, 1995.0, 1979.0, 1986.0, 1982.0, 1977.0, np.nan, 1990.0]
DESCRIPTIONS = [
    "A seasoned thief and an obsessive detective circle each other across Los Angeles.",
    "Greed, deception and mobsters in the desert gambling palaces of Las Vegas.",
    "A pregnant police chief investigates a kidnapping gone wrong in snowy Minnesota.",
    "Toys come alive when nobody watches; a cowboy doll meets a space ranger.",
    "A commercial spaceship crew meets a deadly creature stowed away aboard.",
    "Marines return to the moon colony with the survivor to fight the creatures.",
    "A blade runner hunts replicants through a rainy futuristic Los Angeles.",
    "A neurotic comedian recalls his romance with a singer in Manhattan.",
    "A television writer dates a teenager while Manhattan gleams in black and white.",
    "The rise and fall of a mobster over three decades in New York.",
]
DIRECTORS = [
    "Michael Mann",
    "Martin Scorsese",
    "Joel Coen",
    "John Lasseter",
    "Ridley Scott",
    "James Cameron",
    "Ridley Scott",
    "Woody Allen",
    "Manhattan",  # a director named like the film: that clue would give the title away
    "Martin Scorsese",
]
EVENTS = {  # user -> items in time order; the last one is held out
    0: [1, 9, 2, 0],
    1: [4, 6, 3, 5],
    2: [7, 3, 2, 8],
    3: [0, 1, 6, 9],
    4: [4, 5, 7, 6],
    5: [3, 8, 9, 2],
}


def make_dataset() -> Dataset:
    users = [u for u, items in EVENTS.items() for _ in items]
    items = [i for seq in EVENTS.values() for i in seq]
    stamps = [1000 * u + t for u, seq in EVENTS.items() for t in range(len(seq))]
    catalog = Catalog(
        ids=[f"m{i}" for i in range(len(TITLES))],
        titles=TITLES,
        fields={
            "genres": np.array(GENRES, dtype=object),
            "year": np.array(YEARS),
            "description": np.array(DESCRIPTIONS, dtype=object),
            "director": np.array(DIRECTORS, dtype=object),
        },
    )
    inter = Interactions(users, items, n_users=6, n_items=len(TITLES), timestamps=stamps)
    return Dataset("films", catalog, inter, user_ids=np.array([f"u{u}" for u in EVENTS]))


@pytest.fixture(scope="module")
def films() -> Dataset:
    return make_dataset()


@pytest.fixture(scope="module")
def films_split(films: Dataset) -> Split:
    return leave_one_out(films)


def ctx_for(tmp_path: Path, name: str = "run") -> RunContext:
    return RunContext(tmp_path / name, seed=7, progress=False)


# -- the clues ------------------------------------------------------------------------------------
def test_clues_reveal_genres_decade_similar_words_and_fields_in_script_order(
    films: Dataset, films_split: Split
) -> None:
    user = ScriptedUser(films.catalog, films_split.train, seed=0)
    assert user.describe() == {
        "simulator": "scripted",
        "script": list(DEFAULT_SCRIPT),
        "genre_field": "genres",
        "year_field": "year",
        "text_field": "description",
        "other_fields": ["director"],
    }
    # user 0 wants Heat (1995): Action, Crime, Thriller; history Casino, Goodfellas, Fargo
    clues = user.clues(0, 0, [1, 9, 2])
    kinds = [c.kind for c in clues]
    assert kinds == ["genres", "decade", "similar", "words", "fields", "similar", "words"]
    text = [c.text for c in clues]
    assert "Action, Crime and Thriller" in text[0]
    assert "1990s" in text[1]
    # Fargo shares Crime and Thriller (2 of 4 values); Casino and Goodfellas only Crime
    assert "Fargo (1996)" in text[2]
    # the next: Casino and Goodfellas tie on genres (1 of 4); user 3 trained on Heat and Casino
    # (Goodfellas is their held-out item), so Casino has the user in common
    assert "Casino (1995)" in text[5]
    assert user.similar(0, [1, 9, 2]) == [2, 1, 9]
    # without users in common the more recent one comes first
    assert user.similar(0, [9, 2]) == [2, 9]
    assert "Michael Mann" in text[4] and "director" in text[4]
    # words of the description, rarest in the catalog first: "angeles" (also in Blade Runner's)
    # and "across" come after the words only Heat's description has
    first_words = set(re.findall(r"[a-z]+", text[3]))
    more_words = set(re.findall(r"[a-z]+", text[6]))
    assert first_words & {"circle", "detective", "obsessive", "seasoned", "thief", "other"}
    assert len(first_words & set(user.words(0)[:3])) == 3
    assert len(more_words & set(user.words(0)[3:6])) == 3
    assert user.words(0).index("angeles") > user.words(0).index("seasoned")
    assert all(not mentions_title(t, core_title("Heat (1995)")) for t in text)


def test_clues_skip_what_the_catalog_lacks_or_what_names_the_target(
    films: Dataset, films_split: Split
) -> None:
    user = ScriptedUser(films.catalog, films_split.train, seed=0)
    # Manhattan: no year, and its director field repeats its title
    clues = user.clues(2, 8, [7, 3, 2])
    kinds = [c.kind for c in clues]
    assert "decade" not in kinds and "fields" not in kinds
    assert all("Manhattan" not in c.text for c in clues)
    # its description says "Manhattan": the title word is never one of the words
    assert "words" in kinds


def test_messages_open_decline_answer_and_sum_up(films: Dataset, films_split: Split) -> None:
    user = ScriptedUser(films.catalog, films_split.train, ["genres", "decade"], seed=3)
    clues = user.clues(0, 0, [1, 9, 2])
    first = user.message(0, 0, clues, 1, listed=False)
    assert first.endswith(clues[0].text)
    declined = user.message(0, 0, clues, 2, listed=True)
    assert declined.endswith(clues[1].text)
    assert re.match(r"(None of those|No, not those|I don't want any)", declined)
    answered = user.message(0, 0, clues, 2, listed=False)
    assert answered.endswith(clues[1].text) and "those" not in answered
    summary = user.message(0, 0, clues, 3, listed=True)
    assert "To sum up" in summary and clues[0].text in summary and clues[1].text in summary


def test_scripted_user_is_a_function_of_the_seed(tiny_dataset: Dataset, tiny_split: Split) -> None:
    def all_messages(seed: int) -> list[str]:
        sim = ScriptedUser(tiny_dataset.catalog, tiny_split.train, seed=seed)
        out = []
        for u in range(tiny_dataset.n_users):
            history = tiny_dataset.interactions.history(u)
            clues = sim.clues(u, int(history[-1]), history[:-1].tolist())
            out += [sim.message(u, int(history[-1]), clues, t, t % 2 == 0) for t in range(1, 6)]
        return out

    assert all_messages(1) == all_messages(1)
    assert all_messages(1) != all_messages(2)  # other phrasings, same clues


# -- conversation.v1 with the scripted user -------------------------------------------------------
@dataclass
class Step:
    tool: str
    error: str | None = None


@dataclass
class Turn:
    text: str
    llm_calls: int = 2
    trace: list[Step] = field(default_factory=lambda: [Step("lookup", "bad SQL"), Step("map")])


class Silent(recai.LLMBackend):
    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        return Completion("hello")


class Oracle(recai.Agent):
    """Lists the target at turn ``hit_at[user]`` (it reads the user from the context message),
    two other films before; keeps every conversation it saw (only in this test)."""

    def __init__(self, hit_at: dict[str, int], *, respond: bool = False):
        self.hit_at = hit_at
        # private: the cache keys of a hand-built agent describe its public attributes
        self._seen: list[list[Message]] = []
        self._fitted_on: list[Split] = []
        if respond:
            self.respond = self._respond

    def fit(self, split: Split) -> None:
        self._fitted_on.append(split)

    def _text(self, conversation: Sequence[Message]) -> str:
        self._seen.append(list(conversation))
        context = json.loads(conversation[0].content) if conversation[0].name else {}
        user = context.get("user", "")
        turn = sum(m.role == "user" for m in conversation)
        target = {f"u{u}": TITLES[items[-1]] for u, items in EVENTS.items()}.get(user)
        if target is not None and self.hit_at.get(user) == turn:
            return f"Try these:\n1. {target}\n2. Toy Story (1995)"
        return "Try these:\n1. Alien (1979)\n2. Annie Hall (1977)"

    def reply(self, conversation: Sequence[Message]) -> Message:
        return Message.assistant(self._text(conversation))

    def _respond(self, conversation: Sequence[Message]) -> Turn:
        return Turn(self._text(conversation))


def test_scripted_conversation_hits_turns_and_history_by_hand(
    films: Dataset, tmp_path: Path
) -> None:
    agent = Oracle({"u0": 1, "u1": 3, "u3": 2})  # u2, u4, u5 never hit
    ev = ConversationEvaluator(
        recai.DatasetSource.of(films),
        agent,
        simulation="scripted",
        share_history=True,
        max_history=2,
        samples=6,
        max_turns=3,
        bootstrap=0,
        concurrency=1,
    )
    report = ev.evaluate(ctx_for(tmp_path))
    row = report.metrics["Oracle"]
    assert row["Hit@3"] == pytest.approx(3 / 6)
    assert row["AT@3"] == pytest.approx((1 + 3 + 2 + 4 + 4 + 4) / 6)
    assert row["leak_rate"] == 0.0 and row["failure_rate"] == 0.0
    # the misses list Alien and Annie Hall: u1 and u4 have seen Alien, u2 and u4 Annie Hall
    assert row["in_history_rate"] == pytest.approx(3 / 6)
    assert report.info["hits_by_turn"] == [1, 1, 1]
    assert report.info["simulation"] == "scripted"
    assert report.info["simulator"]["simulator"] == "scripted"
    assert report.info["requests"]["calls"] == 6 + 5 + 4  # recommender calls only
    # the agent was fitted on the leave-one-out training split
    assert len(agent._fitted_on) == 1 and agent._fitted_on[0].test is not None
    # the context message: the user's whole history (not only max_history), ids and titles
    first = agent._seen[0]
    assert first[0].role == "system" and first[0].name == CONTEXT_NAME
    body = json.loads(first[0].content)
    assert body == {
        "user": "u0",
        "history": [
            {"id": "m1", "title": "Casino (1995)"},
            {"id": "m9", "title": "Goodfellas (1990)"},
            {"id": "m2", "title": "Fargo (1996)"},
        ],
    }
    assert first[1] == Message.assistant("Hello! What are you looking for today?")
    assert first[2].role == "user" and "Action, Crime and Thriller" in first[2].content
    # no message of the scripted user names its target
    for conversation in agent._seen:
        title = json.loads(conversation[0].content)["user"]
        target = TITLES[EVENTS[int(title[1:])][-1]]
        assert not any(
            mentions_title(m.content, core_title(target)) for m in conversation if m.role == "user"
        )


def test_without_share_history_the_agent_gets_no_context(films: Dataset, tmp_path: Path) -> None:
    agent = Oracle({})
    ev = ConversationEvaluator(
        recai.DatasetSource.of(films),
        agent,
        simulation="scripted",
        samples=6,
        max_turns=2,
        bootstrap=0,
    )
    report = ev.evaluate(ctx_for(tmp_path))
    assert report.metrics["Oracle"]["Hit@2"] == 0.0
    assert all(m.name is None and m.role != "system" for c in agent._seen for m in c)


def test_scripted_runs_are_reproducible_and_need_no_llm(films: Dataset, tmp_path: Path) -> None:
    def dialogues(folder: str) -> list[Any]:
        ev = ConversationEvaluator(
            recai.DatasetSource.of(films),
            Oracle({"u3": 2}),
            simulation="scripted",
            samples=6,
            max_turns=4,
            bootstrap=0,
            cache=False,
        )
        ev.evaluate(ctx_for(tmp_path, folder))
        lines = (tmp_path / folder / "llm-results" / "ConversationEvaluator.jsonl").read_text()
        return [(r["dialogue"], r["clues"]) for r in map(json.loads, lines.splitlines())]

    first = dialogues("a")
    assert first == dialogues("b")
    assert all(clues for _, clues in first)


def test_turn_costs_an_agent_reports_are_averaged_per_turn(films: Dataset, tmp_path: Path) -> None:
    agent = Oracle({"u0": 1}, respond=True)
    ev = ConversationEvaluator(
        recai.DatasetSource.of(films),
        agent,
        simulation="scripted",
        share_history=True,
        samples=6,
        max_turns=2,
        bootstrap=200,
        concurrency=1,
    )
    report = ev.evaluate(ctx_for(tmp_path))
    row = report.metrics["Oracle"]
    assert row["llm_calls_per_turn"] == pytest.approx(2.0)
    assert row["tool_failures_per_turn"] == pytest.approx(1.0)  # one failed step per turn
    assert 0 < row["seconds_per_turn"] < 5
    assert "plan_valid_rate" not in row  # not reported by this agent
    low, high = report.intervals["Oracle"]["seconds_per_turn"]
    assert low <= row["seconds_per_turn"] <= high
    assert report.info["turn_costs"]["llm_calls_per_turn"] == {
        "dialogues": 6,
        "turns": 11,
    }  # u0 hit at 1
    # a rerun answers from the cache: no fresh turns, so no costs to report
    again = ConversationEvaluator(
        recai.DatasetSource.of(films),
        Oracle({"u0": 1}, respond=True),
        simulation="scripted",
        share_history=True,
        samples=6,
        max_turns=2,
        bootstrap=0,
    )
    rerun = again.evaluate(ctx_for(tmp_path))
    assert rerun.metrics["Oracle"]["Hit@2"] == row["Hit@2"]
    assert "llm_calls_per_turn" not in rerun.metrics["Oracle"]


def test_simulation_and_simulator_must_agree(films: Dataset) -> None:
    data = recai.DatasetSource.of(films)
    with pytest.raises(ParamsError, match=r"simulator: an LLM that plays the user is needed"):
        ConversationEvaluator(data, Oracle({}))
    with pytest.raises(ParamsError, match=r"simulator: the scripted user"):
        ConversationEvaluator(data, Oracle({}), Silent(), simulation="scripted")
    with pytest.raises(ParamsError, match=r"simulator_prompt: the scripted user"):
        ConversationEvaluator(
            data, Oracle({}), simulation="scripted", simulator_prompt="You are {target}."
        )
    with pytest.raises(ParamsError, match="script"):
        ConversationEvaluator(data, Oracle({}), simulation="scripted", script=["plot"])
    with pytest.raises(ParamsError, match="script"):
        ConversationEvaluator(data, Oracle({}), simulation="scripted", script=[])


class Lister(recai.LLMBackend):
    """An LLM recommender that lists two films; keeps its prompts privately."""

    def __init__(self) -> None:
        self._asked: list[list[Message]] = []

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        self._asked.append(list(messages))
        return Completion("1. Alien (1979)\n2. Casino (1995)")


@pytest.mark.parametrize("share", [True, False])
def test_an_llm_recommender_gets_the_history_in_its_system_prompt(
    films: Dataset, tmp_path: Path, share: bool
) -> None:
    llm = Lister()
    ev = ConversationEvaluator(
        recai.DatasetSource.of(films),
        llm,
        simulation="scripted",
        share_history=share,
        max_history=2,
        samples=6,
        max_turns=1,
        bootstrap=0,
    )
    report = ev.evaluate(ctx_for(tmp_path))
    system = next(m for m in llm._asked if "Action, Crime and Thriller" in m[-1].content)[0]
    line = "Items this user enjoyed before, oldest first: Goodfellas (1990); Fargo (1996)."
    assert system.role == "system" and "recommend 10 items" in system.content
    assert (line in system.content) is share and "Casino" not in system.content
    row = report.metrics["Lister"]
    assert row["Hit@1"] == 0.0  # "Alien (1979)" is not u1's Aliens (1986)
    # Casino is u0's and u3's, Alien u1's and u4's: in-history errors over the whole history
    # (Casino is beyond u0's max_history = 2)
    assert row["in_history_rate"] == pytest.approx(4 / 6)
