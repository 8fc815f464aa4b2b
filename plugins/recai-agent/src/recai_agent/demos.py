"""Dynamic demonstrations: request -> plan examples shown to the brain, chosen per request.

InteRecAgent puts a few request -> plan examples in the planning prompt, chosen by similarity to
the request, and grows its pool with a generator and a filter. Here:

- :data:`FILM_DEMOS`: seed demonstrations for films written by this project (MovieLens-100K
  genres and titles; varied: genres, refusals, decades, liked and disliked titles, popularity,
  diversity, look-ups, text descriptions);
- :class:`DemoSelector`: the ``k`` demonstrations nearest a request, by an encoder given as a
  function (texts -> vectors, e.g. an embedding model's ``encode``) or, without one, by
  character n-gram TF-IDF (:class:`~recai.data.grounding.FuzzyIndex`, no model, microseconds);
  with a catalog, the requests' slots count too (the values they name, the kinds of slot they
  fill), so "a funny cartoon" finds "an animated comedy" with no shared word; a demonstration
  whose plan is not valid for the catalog (a genre or title it lacks) is left out, so the film
  seeds never mislead an agent over games;
- :func:`generate_demos`: new demonstrations through any :class:`recai.LLMBackend`. Plans are
  drawn from the catalog (valid by construction: real values, real titles, the skeleton's order)
  and the LLM writes the request each plan answers; :func:`keep_demo` keeps a pair only when the
  plan obeys the tool order and the request reads back (the slot extractor finds the plan's
  values in it), and only when it adds diversity (not a near-copy of a kept request; no
  skeleton more than its share).

>>> from recai.data import Catalog
>>> cat = Catalog(ids=[1, 2], titles=["Toy Story (1995)", "Heat (1995)"],
...               fields={"genres": [("Animation", "Comedy"), ("Action", "Crime")],
...                       "year": [1995, 1995]})
>>> sel = DemoSelector(FILM_DEMOS, catalog=cat)
>>> [d.request for d in sel.select("a funny cartoon", k=1)]
['an animated comedy']
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recai.data import Catalog
from recai.data.grounding import FuzzyIndex, Grounder
from recai.types import Message

from .plan import ORDER, plan_schema, validate_plan
from .slots import CatalogFacts, SlotExtractor

__all__ = [
    "FILM_DEMOS",
    "Demo",
    "DemoSelector",
    "format_demos",
    "generate_demos",
    "keep_demo",
    "skeleton",
]


@dataclass(frozen=True)
class Demo:
    """One demonstration: a user request and the plan that answers it."""

    request: str
    plan: dict[str, Any]

    def text(self) -> str:
        return f"Request: {self.request}\nPlan: {json.dumps(self.plan, ensure_ascii=False)}"


def _p(*steps: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"steps": [{"tool": t, "input": i} for t, i in steps]}


_RANK = ("ranking", {"by": "preference", "mode": "accuracy"})
_POP = ("ranking", {"by": "popularity", "mode": "accuracy"})
_DIV = ("ranking", {"by": "preference", "mode": "diversity"})
_SIM = ("ranking", {"by": "similarity", "mode": "accuracy"})
_MAP: tuple[str, dict[str, Any]] = ("map", {})

#: Seed demonstrations for films (MovieLens-100K values and titles), written for this project.
FILM_DEMOS: tuple[Demo, ...] = (
    Demo("an animated comedy", _p(("hard_filter", {"genres": ["Animation", "Comedy"]}), _RANK, _MAP)),
    Demo("recommend me a good thriller", _p(("hard_filter", {"genres": ["Thriller"]}), _RANK, _MAP)),
    Demo("sci-fi from the 80s", _p(("hard_filter", {"genres": ["Sci-Fi"], "year_min": 1980, "year_max": 1989}), _RANK, _MAP)),
    Demo("something like Toy Story", _p(("soft_filter", {"seeds": ["Toy Story (1995)"]}), _RANK, _MAP)),
    Demo("movies similar to Fargo and Pulp Fiction", _p(("soft_filter", {"seeds": ["Fargo (1996)", "Pulp Fiction (1994)"]}), _SIM, _MAP)),
    Demo("a horror film like Scream but from the 80s", _p(("hard_filter", {"genres": ["Horror"], "year_min": 1980, "year_max": 1989}), ("soft_filter", {"seeds": ["Scream (1996)"]}), _RANK, _MAP)),
    Demo("no horror please, something funny", _p(("hard_filter", {"not_genres": ["Horror"], "genres": ["Comedy"]}), _RANK, _MAP)),
    Demo("anything but romance", _p(("hard_filter", {"not_genres": ["Romance"]}), _RANK, _MAP)),
    Demo("the most popular westerns", _p(("hard_filter", {"genres": ["Western"]}), _POP, _MAP)),
    Demo("what are the best-known films of the 1970s?", _p(("hard_filter", {"year_min": 1970, "year_max": 1979}), _POP, _MAP)),
    Demo("some hidden gems among dramas", _p(("hard_filter", {"genres": ["Drama"]}), _DIV, _MAP)),
    Demo("give me a varied mix of adventure films", _p(("hard_filter", {"genres": ["Adventure"]}), _DIV, _MAP)),
    Demo("a war movie, but not a drama", _p(("hard_filter", {"genres": ["War"], "not_genres": ["Drama"]}), _RANK, _MAP)),
    Demo("kids' films released after 1990", _p(("hard_filter", {"genres": ["Children's"], "year_min": 1991}), _RANK, _MAP)),
    Demo("I loved The Godfather, what next?", _p(("soft_filter", {"seeds": ["Godfather, The (1972)"]}), _RANK, _MAP)),
    Demo("I hated Titanic; a romance that is nothing like it", _p(("hard_filter", {"genres": ["Romance"]}), ("ranking", {"by": "preference", "mode": "accuracy", "unwanted": ["Titanic (1997)"]}), _MAP)),
    Demo("who directed Fargo?", _p(("lookup", {"sql": "SELECT title, year, genres FROM items WHERE title LIKE 'Fargo%'"}))),
    Demo("what year did Braveheart come out?", _p(("lookup", {"sql": "SELECT title, year FROM items WHERE title LIKE 'Braveheart%'"}))),
    Demo("is Casablanca a romance?", _p(("lookup", {"sql": "SELECT title, genres FROM items WHERE title LIKE 'Casablanca%'"}))),
    Demo("how many film-noir movies do you have?", _p(("lookup", {"sql": "SELECT COUNT(*) FROM item_genres WHERE value = 'Film-Noir'"}))),
    Demo("a film about a heist that goes wrong", _p(("soft_filter", {"text": "a heist that goes wrong"}), _RANK, _MAP)),
    Demo("movies with time travel", _p(("soft_filter", {"text": "time travel"}), _RANK, _MAP)),
    Demo("a musical from the fifties", _p(("hard_filter", {"genres": ["Musical"], "year_min": 1950, "year_max": 1959}), _RANK, _MAP)),
    Demo("early 90s crime movies like Reservoir Dogs", _p(("hard_filter", {"genres": ["Crime"], "year_min": 1990, "year_max": 1993}), ("soft_filter", {"seeds": ["Reservoir Dogs (1992)"]}), _RANK, _MAP)),
    Demo("a documentary", _p(("hard_filter", {"genres": ["Documentary"]}), _RANK, _MAP)),
    Demo("mysteries from before 1960", _p(("hard_filter", {"genres": ["Mystery"], "year_max": 1959}), _RANK, _MAP)),
    Demo("a fantasy film for the whole family", _p(("hard_filter", {"genres": ["Fantasy", "Children's"]}), _RANK, _MAP)),
    Demo("recommend something, anything good", _p(_RANK, _MAP)),
    Demo("what's popular right now?", _p(_POP, _MAP)),
    Demo("more like Star Wars but not Return of the Jedi", _p(("soft_filter", {"seeds": ["Star Wars (1977)"]}), ("ranking", {"by": "similarity", "mode": "accuracy", "unwanted": ["Return of the Jedi (1983)"]}), _MAP)),
    Demo("action films from the late 90s, no sci-fi", _p(("hard_filter", {"genres": ["Action"], "not_genres": ["Sci-Fi"], "year_min": 1996, "year_max": 1999}), _RANK, _MAP)),
    Demo("a scary movie similar to The Shining", _p(("hard_filter", {"genres": ["Horror"]}), ("soft_filter", {"seeds": ["Shining, The (1980)"]}), _RANK, _MAP)),
)  # fmt: skip


def skeleton(plan: dict[str, Any]) -> tuple[str, ...]:
    """The tools of a plan, in order (``("hard_filter", "ranking", "map")``)."""
    steps = plan.get("steps", []) if isinstance(plan, dict) else []
    return tuple(str(s.get("tool")) for s in steps if isinstance(s, dict))


def format_demos(demos: Sequence[Demo]) -> str:
    """Demonstrations as prompt text, one request and its plan each."""
    return "\n\n".join(d.text() for d in demos)


Encoder = Callable[[list[str]], Any]


class DemoSelector:
    """The demonstrations nearest a request.

    ``encode``: texts -> vectors (rows; cosine similarity), such as an embedding model's
    ``encode``; without it, character 3-gram TF-IDF over the requests. With ``catalog`` (and
    optionally ``tools``), demonstrations whose plans are not valid there are left out
    (:attr:`dropped` counts them).
    """

    def __init__(
        self,
        demos: Sequence[Demo] = FILM_DEMOS,
        *,
        encode: Encoder | None = None,
        catalog: Catalog | None = None,
        tools: Sequence[Any] = ("lookup", *ORDER),
        grounder: Grounder | None = None,
    ):
        kept = list(demos)
        self.dropped = 0
        if catalog is not None:
            schema = plan_schema(tools, catalog)
            g = grounder if grounder is not None else Grounder(catalog)
            kept = [d for d in kept if validate_plan(d.plan, schema, catalog, g)[1] == []]
            self.dropped = len(demos) - len(kept)
        self.demos = kept
        self.encode = encode
        self._index: FuzzyIndex | None = None
        self._vectors: np.ndarray | None = None
        self.extractor: SlotExtractor | None = None
        self._signatures: list[set[str]] = []
        if not kept:
            return
        if encode is None:
            self._index = FuzzyIndex([d.request for d in kept])
            if catalog is not None:  # what the requests ask for, in catalog terms
                self.extractor = SlotExtractor(catalog, g)
                self._signatures = [self._signature(d.request) for d in kept]
        else:
            self._vectors = _unit(np.asarray(encode([d.request for d in kept]), dtype=np.float64))

    def __len__(self) -> int:
        return len(self.demos)

    def _signature(self, request: str) -> set[str]:
        """A request's slots as features: the values it wants and refuses, and which kinds of
        slot it fills (so "a funny cartoon" is near "an animated comedy")."""
        assert self.extractor is not None
        s = self.extractor.extract(request)
        out = {f"intent:{s.intent}"}
        out |= {f"g:{v}" for vs in s.fields.values() for v in vs}
        out |= {f"not:{v}" for vs in s.not_fields.values() for v in vs}
        if s.year_min is not None or s.year_max is not None:
            out.add("years")
        if s.liked:
            out.add("liked")
        if s.disliked:
            out.add("disliked")
        if s.mentioned:
            out.add("mentioned")
        if s.popular is not None:
            out.add(f"popular:{s.popular}")
        if s.text:
            out.add("text")
        return out

    def select(self, request: str, k: int = 3) -> list[Demo]:
        """The ``k`` demonstrations nearest ``request``, nearest first, at most one per
        skeleton until every skeleton present is used (so the brain sees varied plans)."""
        if not self.demos or k <= 0:
            return []
        if self._index is not None:
            scores = self._index.scores(request)
            if self._signatures:
                mine = self._signature(request)
                overlap = np.array(
                    [len(mine & sig) / max(1, len(mine | sig)) for sig in self._signatures]
                )
                scores = 0.4 * scores + 0.6 * overlap
        else:
            assert self._vectors is not None and self.encode is not None
            q = _unit(np.asarray(self.encode([request]), dtype=np.float64))[0]
            scores = self._vectors @ q
        order = np.lexsort((np.arange(len(scores)), -scores))
        chosen: list[int] = []
        seen: set[tuple[str, ...]] = set()
        for i in order.tolist():  # first pass: a new skeleton each
            sk = skeleton(self.demos[i].plan)
            if sk not in seen:
                chosen.append(i)
                seen.add(sk)
            if len(chosen) == k:
                break
        for i in order.tolist():
            if len(chosen) >= k:
                break
            if i not in chosen:
                chosen.append(i)
        chosen.sort(key=lambda i: (-scores[i], i))
        return [self.demos[i] for i in chosen[:k]]


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.atleast_2d(m)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


# -- generation and the filter ---------------------------------------------------------------------


def _order_ok(plan: dict[str, Any]) -> bool:
    sk = skeleton(plan)
    if sk == ("lookup",):
        return True
    if "lookup" in sk or len(set(sk)) != len(sk) or not set(sk) <= set(ORDER):
        return False
    return list(sk) == sorted(sk, key=ORDER.index) and sk[-2:] == ("ranking", "map")


def keep_demo(
    demo: Demo,
    extractor: SlotExtractor,
    kept: Sequence[Demo] = (),
    *,
    max_similarity: float = 0.8,
    max_share: float = 0.4,
) -> tuple[bool, str]:
    """Whether a generated demonstration joins the pool, and why not.

    It must obey the tool order; its request must read back (the slot extractor finds the plan's
    genre values, refusals, years and seed titles in it: a request that does not say what the
    plan does teaches the brain to invent); and it must add diversity: no request closer than
    ``max_similarity`` (character TF-IDF cosine) to a kept one, and no skeleton above
    ``max_share`` of the pool (once the pool has five)."""
    if not _order_ok(demo.plan):
        return False, f"tools out of order: {list(skeleton(demo.plan))}"
    slots = extractor.extract(demo.request)
    steps = {s["tool"]: s.get("input") or {} for s in demo.plan["steps"]}
    hard = steps.get("hard_filter", {})
    for key, said in (("genres", slots.genres), ("not_genres", slots.not_genres)):
        missing = set(hard.get(key, [])) - set(said)
        if missing:
            return False, f"the request does not say {key} {sorted(missing)}"
    for key, got in (("year_min", slots.year_min), ("year_max", slots.year_max)):
        if key in hard and got != hard[key]:
            return False, f"the request does not say {key} {hard[key]}"
    seeds = steps.get("soft_filter", {}).get("seeds", [])
    titles = {extractor.catalog.title(i) for i in slots.liked}
    if set(seeds) - titles:
        return False, f"the request does not name {sorted(set(seeds) - titles)}"
    if kept:
        index = FuzzyIndex([d.request for d in kept])
        best = float(index.scores(demo.request).max())
        if best > max_similarity:
            return False, f"too close to a kept request (similarity {best:.2f})"
        if len(kept) >= 5:
            share = Counter(skeleton(d.plan) for d in kept)[skeleton(demo.plan)] / len(kept)
            if share > max_share:
                return (
                    False,
                    f"skeleton {list(skeleton(demo.plan))} is already {share:.0%} of the pool",
                )
    return True, ""


def sample_plan(
    catalog: Catalog, rng: random.Random, facts: CatalogFacts | None = None
) -> dict[str, Any]:
    """A random recommend plan over real catalog values and titles, in skeleton order."""
    facts = facts if facts is not None else CatalogFacts.of(catalog)
    steps: list[tuple[str, dict[str, Any]]] = []
    hard: dict[str, Any] = {}
    genres = facts.categorical.get(facts.genre_field, []) if facts.genre_field else []
    if genres and rng.random() < 0.7:
        hard["genres"] = rng.sample(genres, 1 if rng.random() < 0.7 else min(2, len(genres)))
    if genres and rng.random() < 0.25:
        rest = [g for g in genres if g not in hard.get("genres", [])]
        if rest:
            hard["not_genres"] = [rng.choice(rest)]
    if facts.years is not None and rng.random() < 0.4:
        lo, hi = facts.years
        decade = rng.randrange(lo // 10 * 10, hi + 1, 10)
        hard["year_min"], hard["year_max"] = decade, decade + 9
    if hard:
        steps.append(("hard_filter", hard))
    if rng.random() < 0.35 and catalog.n_items:
        steps.append(("soft_filter", {"seeds": [catalog.title(rng.randrange(catalog.n_items))]}))
    by = rng.choice(["preference", "preference", "popularity"])
    steps += [
        ("ranking", {"by": by, "mode": rng.choice(["accuracy", "accuracy", "diversity"])}),
        ("map", {}),
    ]
    return _p(*steps)


GENERATE_PROMPT = (
    "You write what a user of a recommender types. Given a plan of tool calls over a catalog, "
    "write the one short request (one sentence, everyday words, no JSON, no tool names) that the "
    "plan answers: name every genre, refused genre, decade and title the plan uses."
)


def generate_demos(
    llm: Any,
    catalog: Catalog,
    n: int,
    *,
    seed: int = 0,
    pool: Sequence[Demo] = (),
    tries: int | None = None,
    max_tokens: int = 60,
) -> tuple[list[Demo], Counter[str]]:
    """Up to ``n`` new demonstrations written through ``llm`` (any :class:`recai.LLMBackend`):
    a plan is drawn from the catalog (:func:`sample_plan`), the LLM writes its request, and
    :func:`keep_demo` decides (``pool`` counts for diversity). Returns the kept demonstrations
    and why the others were refused (reason -> count). At most ``tries`` LLM calls (``4 * n``)."""
    rng = random.Random(seed)
    facts = CatalogFacts.of(catalog)
    extractor = SlotExtractor(catalog)
    kept: list[Demo] = []
    refused: Counter[str] = Counter()
    for _ in range(tries if tries is not None else 4 * n):
        if len(kept) >= n:
            break
        plan = sample_plan(catalog, rng, facts)
        reply = llm.chat(
            [Message.system(GENERATE_PROMPT), Message.user(json.dumps(plan, ensure_ascii=False))],
            max_tokens=max_tokens,
            temperature=0.7,
            seed=rng.randrange(2**31),
        )
        request = " ".join(str(getattr(reply, "text", reply)).split()).strip().strip('"')[:300]
        if not request:
            refused["empty request"] += 1
            continue
        ok, why = keep_demo(Demo(request, plan), extractor, [*pool, *kept])
        if ok:
            kept.append(Demo(request, plan))
        else:
            refused[why.split(" [")[0].split(" (")[0]] += 1
    return kept, refused
