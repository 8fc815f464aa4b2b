"""``knowledge-kgpaths.v1``: reasoning paths over a knowledge graph from history to candidates.

The graph is the dataset's :class:`recai.data.KnowledgeGraph` (ML-100K: the Freebase triples and
item links that ship with RecBole), read as undirected: a path may follow a triple either way.

**Pruning**, at fit time, for relevance:

- *relations* by frequency (``min_frequency`` triples at least) and informativeness: a relation
  whose shared entities are common (every US film has the country "United States") says little.
  A relation's informativeness is the mean, over its triples, of ``1 - log(d_e) / log(N)`` for
  the entity ``e`` the triple shares (the end that is not an item; ``d_e`` its degree, ``N`` the
  number of linked items); relations under ``min_informativeness`` are dropped, and
  ``relations`` / ``exclude_relations`` choose by name;
- *relations by an LLM* (``relation_llm``): of the relations left, the model judges each kind
  (the noun a relation says: director, actor, country...) once at fit time, over the relation
  vocabulary, never per request: by scoring "...the same director. Is that a good reason...?
  Answer yes or no." with yes/no log-probabilities, calibrated by a content-free question
  (``relation_judge = "statement"``: one sentence ending in each kind, scored against a
  content-free prompt), and keeping the top ``relation_keep`` share or the kinds above
  ``relation_margin``; or, when the
  backend cannot score, by one answer under a JSON schema (an enum of the kinds). See
  :mod:`recai_knowledge.reljudge`. ``relation_stats`` records, for every relation, whether it
  is kept and why; ``describe()`` the model's margins and ranks;
- *hub entities*: an entity with more than ``max_degree`` neighbours is not passed through
  (items themselves always are).

**Search**, a hop-bounded breadth-first search done for all sources at once with sparse
matrices: ``W_k[i]`` is the set of entities within ``k`` hops of item ``i`` (``W_0`` its own
entity, ``W_{k+1} = W_k + W_k G``), so items ``i`` and ``j`` are within ``a + b`` hops when
``W_a[i]`` and ``W_b[j]`` meet; per request the distances between the recent history items and
the candidates come from four small sparse products. For each candidate the closest history item
(the most recent on ties) gives the path, rebuilt hop by hop through the most informative
entities (a film in the middle of a 4-hop path is preferred, for it has a title).

**Text**: entity and relation names where the graph has them; an unnamed entity (a Freebase id)
is said by its role ("a director", "an actor")::

    Collateral (2004): shares a director with Heat (1995) (in this user's history)
    Ronin (1998): shares an actor with Taxi Driver (1976), which shares a writer with
    Raging Bull (1980) (in this user's history)

A fact's utility is the path's informativeness over its length: short paths through rare
entities first.

**Saving the fit** (``save``/``load``, the :class:`recai.Component` protocol: ``recai run`` keeps
the fit under ``artifacts/<fingerprint>/`` and loads it on the next run instead of fitting): the
graph as the fit read it, the catalog's titles, the training counts and, with ``relation_llm``,
the model's verdicts (``relation_llm.json``), each file written atomically. ``load`` rebuilds
the pruned graph from them with the saved verdicts: the model is not asked again (nor loaded),
and the prompter writes exactly what it wrote after ``fit``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

import recai
from recai.data import Catalog, KnowledgeGraph, Split
from recai.errors import DataError

from .base import Fact, FactPrompter, KnowledgeParams, NotFittedError, recent
from .reljudge import DEFAULT_QUESTION, RelationJudgment, judge_relations

__all__ = ["KGPathsKnowledge", "KGPathsParams", "relation_noun", "FAR"]

#: The distance of pairs not connected within the hop limit.
FAR = 127
#: The version of the saved fit's files (``save``/``load``).
SAVE_FORMAT = 1

#: Nouns for the relations of Freebase's film schema (the others: their last name part).
_NOUNS = {
    "film.film.actor": "actor",
    "film.actor.film": "actor",
    "film.film.directed_by": "director",
    "film.director.film": "director",
    "film.film.written_by": "writer",
    "film.writer.film": "writer",
    "film.film.produced_by": "producer",
    "film.producer.film": "producer",
    "film.film.production_companies": "production company",
    "film.production_company.films": "production company",
    "film.film.cinematography": "cinematographer",
    "film.cinematographer.film": "cinematographer",
    "film.film.genre": "genre",
    "film.film_genre.films_in_this_genre": "genre",
    "film.film.country": "country",
    "film.film.language": "language",
    "film.film.rating": "content rating",
    "film.content_rating.film": "content rating",
    "film.film.award_nomination": "award nomination",
    "film.film.award_won": "award",
    "film.film.subjects": "subject",
    "film.film_subject.films": "subject",
    "film.film.prequel": "prequel",
    "film.film.sequel": "sequel",
}


def relation_noun(name: str) -> str:
    """What an entity is to an item under relation ``name``.

    >>> relation_noun("film.film.directed_by"), relation_noun("music.album.release_type")
    ('director', 'release type')
    """
    if name in _NOUNS:
        return _NOUNS[name]
    return name.rsplit(".", 1)[-1].replace("_", " ").strip() or name


def _article(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


class KGPathsParams(KnowledgeParams):
    """``knowledge-kgpaths.v1``."""

    max_hops: int = Field(
        4, ge=1, le=4, description="longest path, in triples (2: a shared entity; 4: via a film)"
    )
    recent: int = Field(10, ge=1, le=1_000, description="most recent history items paths start at")
    max_degree: int = Field(
        100,
        ge=1,
        le=100_000_000,
        description="entities with more neighbours than this (hubs such as a country) are not "
        "passed through",
    )
    min_informativeness: float = Field(
        0.25,
        ge=0,
        le=1,
        description="relations whose informativeness is below this are dropped (on ML-100K: "
        "country 0.21, language 0.20, content rating 0.24; genre 0.34, actor 0.92)",
    )
    min_frequency: int = Field(
        1, ge=1, le=1_000_000_000, description="relations with fewer triples are dropped"
    )
    relations: Sequence[str] | None = Field(
        None, max_length=1_000, description="only these relations (default: all that pass)"
    )
    exclude_relations: Sequence[str] = Field(
        (), max_length=1_000, description="relations never followed"
    )
    relation_llm: recai.LLMBackend | None = Field(
        None,
        description="a model that judges, once at fit time, which kinds of relation left by the "
        "pruning above are a reason to recommend (scored yes/no where it can score, else one "
        "answer under a JSON schema); its verdicts are in relation_stats",
    )
    relation_judge: Literal["yes-no", "statement"] | None = Field(
        None,
        description="with relation_llm, how a scoring model is read: 'yes-no' (default: a "
        "yes/no question per kind) or 'statement' (one sentence ending in each kind, two "
        "calls in all)",
    )
    relation_keep: float | None = Field(
        None,
        gt=0,
        le=1,
        description="with relation_llm: the share of the judged kinds kept, those its "
        "calibrated yes-over-no margin ranks highest (at least one; default 0.5 unless "
        "relation_margin is given)",
    )
    relation_margin: float | None = Field(
        None,
        ge=-100,
        le=100,
        description="with relation_llm, instead of relation_keep: keep the kinds whose "
        "calibrated margin log P(yes) - log P(no) is at least this",
    )
    relation_domain: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="what the items are, in relation_llm's question (e.g. 'movies'; default "
        "'items')",
    )
    relation_question: str | None = Field(
        None,
        min_length=1,
        max_length=2_000,
        description="the yes/no question scored per kind of relation, with {domain} and {link} "
        "(a clause: 'they have the same director', 'one is the sequel of the other'); default: "
        "recai_knowledge.reljudge.DEFAULT_QUESTION",
    )
    max_facts: int = Field(8, ge=1, le=10_000, description="most candidates given a path")

    @field_validator("relation_question")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        import string

        if value is None:
            return None
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as exc:
            raise ValueError(
                f"is not a valid template ({exc}); write a literal brace as {{{{ or }}}}"
            ) from None
        unknown = names - {"domain", "link"}
        if unknown or "link" not in names:
            raise ValueError(
                "must contain {link} (the kind of link asked about, as a clause) and may use "
                "{domain}; "
                f"got {', '.join(sorted('{' + n + '}' for n in names)) or 'no placeholder'}"
            )
        return value

    @model_validator(mode="after")
    def _llm_options_need_the_llm(self) -> KGPathsParams:
        if self.relation_llm is None:
            given = [
                k
                for k in (
                    "relation_judge",
                    "relation_keep",
                    "relation_margin",
                    "relation_domain",
                    "relation_question",
                )
                if getattr(self, k) is not None
            ]
            if given:
                raise ValueError(
                    f"{given[0]}: applies only with relation_llm (the model that judges the "
                    "relations); name one, or leave it out"
                )
        if self.relation_judge == "statement" and self.relation_question is not None:
            raise ValueError(
                "relation_question: is the question of relation_judge = 'yes-no'; the "
                "'statement' judge scores a sentence instead"
            )
        if self.relation_margin is not None and self.relation_keep is not None:
            raise ValueError(
                "relation_keep and relation_margin are two rules for the same choice (the top "
                "share, or a margin); give one"
            )
        return self


class KGPathsKnowledge(FactPrompter):
    """``knowledge-kgpaths.v1`` (see the module docstring)."""

    Params = KGPathsParams
    name = "knowledge-kgpaths.v1"
    #: Catalogs up to this many items get every distance at fit time (n^2 bytes); larger
    #: ones compute a request's distances from four small sparse products.
    dense_limit: ClassVar[int] = 8_000
    default_header = "Knowledge-graph links from this user's items to the candidates:"
    params: KGPathsParams

    # -- fitting ----------------------------------------------------------------------------------
    def _fit(self, split: Split) -> None:

        kg = split.dataset.kg
        if kg is None:
            raise DataError(
                f"{self.name}: dataset {split.dataset.name!r} has no knowledge graph; load one "
                "(movielens-100k.v1 loads RecBole's Freebase graph, recbole-atomic.v1 reads "
                "<name>.kg and <name>.link)"
            )
        n_items = self.n_items
        users = np.bincount(
            np.unique(split.train.users * n_items + split.train.items) % n_items,
            minlength=n_items,
        )
        self._build(kg, users)

    def _build(
        self, kg: KnowledgeGraph, users: np.ndarray, judgment: RelationJudgment | None = None
    ) -> None:
        """The pruned graph and its distances from ``kg`` and the training counts per item
        (``users``); ``judgment``: the relation LLM's saved verdicts (``load``), not asked
        again."""
        import scipy.sparse as sp

        self.kg = kg
        self._check_relation_names(kg)
        n_ent = kg.n_entities
        ent_item = np.full(n_ent, -1, dtype=np.int64)
        linked = np.flatnonzero(kg.item_entity >= 0)
        ent_item[kg.item_entity[linked]] = linked
        self.ent_item = ent_item
        is_item = ent_item >= 0
        n_linked = max(int(is_item.sum()), 2)

        # degrees in the full undirected graph (distinct neighbours)
        full = _undirected(kg.heads, kg.tails, n_ent)
        degree = np.diff(full.indptr)

        # relation statistics: frequency and informativeness of the entity a triple shares
        shared = np.where(is_item[kg.tails] & ~is_item[kg.heads], kg.heads, kg.tails)
        idf = 1.0 - np.log(np.maximum(degree, 1)) / np.log(n_linked)
        idf = np.clip(idf, 0.0, 1.0)
        both_items = is_item[kg.heads] & is_item[kg.tails]
        triple_info = np.where(both_items, 1.0, idf[shared])
        freq = np.bincount(kg.relations, minlength=kg.n_relations)
        info_sum = np.bincount(kg.relations, weights=triple_info, minlength=kg.n_relations)
        informativeness = np.where(freq > 0, info_sum / np.maximum(freq, 1), 0.0)
        names = [str(r) for r in kg.relation_names]
        direct = np.bincount(
            kg.relations, weights=both_items.astype(float), minlength=kg.n_relations
        )
        keep_rel, why = self._prune_relations(
            names, freq, informativeness, direct > freq / 2, judgment
        )
        self.relation_stats = {
            names[r]: {
                "triples": int(freq[r]),
                "informativeness": round(float(informativeness[r]), 3),
                "kept": bool(keep_rel[r]),
                "why": why[r],
            }
            for r in range(kg.n_relations)
        }

        # the pruned graph: kept relations, no hub entity passed through (items always are)
        rows = keep_rel[kg.relations]
        heads, tails, rels = kg.heads[rows], kg.tails[rows], kg.relations[rows]
        pruned = _undirected(heads, tails, n_ent)
        pdeg = np.diff(pruned.indptr)
        open_node = is_item | (pdeg <= self.params.max_degree)
        ok = open_node[heads] & open_node[tails]
        heads, tails, rels = heads[ok], tails[ok], rels[ok]
        self._hubs = int((~open_node & (pdeg > 0)).sum())
        # one relation per ordered pair (the first triple's), for the text
        src = np.concatenate([heads, tails])
        dst = np.concatenate([tails, heads])
        rel = np.concatenate([rels, rels])
        forward = np.concatenate([np.ones(len(heads), bool), np.zeros(len(heads), bool)])
        key = src * n_ent + dst
        _, first = np.unique(key, return_index=True)
        src, dst, rel, forward = src[first], dst[first], rel[first], forward[first]
        order = np.lexsort((dst, src))
        self.g_indptr = np.zeros(n_ent + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=n_ent), out=self.g_indptr[1:])
        self.g_indices = dst[order]
        self.g_rel = rel[order]
        self.g_forward = forward[order]
        g = sp.csr_matrix(
            (np.ones(len(self.g_indices), dtype=np.float32), self.g_indices, self.g_indptr),
            shape=(n_ent, n_ent),
        )
        self.degree = np.diff(self.g_indptr)
        self.idf = np.clip(1.0 - np.log(np.maximum(self.degree, 1)) / np.log(n_linked), 0.0, 1.0)
        self._idf = self.idf.tolist()  # python lists: fast lookups of single entities
        self._ent_item = ent_item.tolist()

        # W_0, W_1, W_2: entities within 0, 1, 2 hops of each item (rows: catalog items)
        n_items = self.n_items
        rows_i = linked
        w0 = sp.csr_matrix(
            (np.ones(len(rows_i), dtype=np.float32), (rows_i, kg.item_entity[rows_i])),
            shape=(n_items, n_ent),
        )
        levels = [w0]
        for _ in range((self.params.max_hops + 1) // 2):
            nxt = levels[-1] + levels[-1] @ g
            nxt.data[:] = 1.0
            nxt = nxt.tocsr()
            nxt.sort_indices()
            levels.append(nxt)
        self.levels = levels
        self._mark = np.zeros(n_ent, dtype=bool)  # scratch for set differences
        # every item-to-item distance at once, when the catalog is small enough (n^2 bytes)
        self._dense: np.ndarray | None = None
        if n_items <= self.dense_limit:
            everyone = np.arange(n_items)
            dense = np.empty((n_items, n_items), dtype=np.int8)
            for start in range(0, n_items, 1024):  # row blocks bound the sparse products
                rows = everyone[start : start + 1024]
                dense[start : start + len(rows)] = self._distances(rows, everyone)
            self._dense = dense
        self.users = np.asarray(users, dtype=np.int64)

    def _prune_relations(
        self,
        names: list[str],
        freq: np.ndarray,
        informativeness: np.ndarray,
        direct: np.ndarray,
        saved: RelationJudgment | None = None,
    ) -> tuple[np.ndarray, list[str]]:
        """Which relations are followed, and why each is or is not: by name, frequency,
        informativeness, then (with ``relation_llm``) the model's judgment of the kinds left
        (``direct``: the relations whose triples mostly link two items, e.g. a sequel), or the
        ``saved`` judgment of a loaded fit (the model is not asked again)."""
        p = self.params
        keep = np.ones(len(names), dtype=bool)
        why = ["" for _ in names]
        for r, name in enumerate(names):
            if p.relations is not None and name not in p.relations:
                why[r] = "not in relations"
            elif name in p.exclude_relations:
                why[r] = "in exclude_relations"
            elif freq[r] < p.min_frequency:
                why[r] = f"{int(freq[r])} triples < min_frequency {p.min_frequency}"
            elif informativeness[r] < p.min_informativeness:
                why[r] = (
                    f"informativeness {float(informativeness[r]):.3f} < min_informativeness "
                    f"{p.min_informativeness:g}"
                )
            if why[r]:
                keep[r] = False
            else:
                why[r] = "passes frequency and informativeness"
        self.relation_judgment: RelationJudgment | None = None
        if p.relation_llm is None:
            return keep, why
        kinds = {r: relation_noun(names[r]) for r in np.flatnonzero(keep).tolist()}
        if saved is not None:
            judged = list(dict.fromkeys(kinds.values()))
            if saved.kinds != judged:
                raise DataError(
                    f"{self.name}: the saved relation_llm verdicts judged the kinds "
                    f"{', '.join(saved.kinds) or '(none)'}, but this graph and these params "
                    f"leave {', '.join(judged) or '(none)'}; the saved fit belongs to another "
                    "graph or other params: fit again"
                )
        judgment = saved or judge_relations(
            p.relation_llm,
            list(kinds.values()),
            domain=p.relation_domain or "items",
            keep=0.5 if p.relation_keep is None else p.relation_keep,
            margin=p.relation_margin,
            question=p.relation_question or DEFAULT_QUESTION,
            direct={kinds[r] for r in kinds if direct[r]},
            how=p.relation_judge or "yes-no",
        )
        self.relation_judgment = judgment
        for r, kind in kinds.items():
            verdict = judgment.detail.get(kind, {}).get("why", "")
            if not judgment.applied:
                why[r] += (
                    f"; relation_llm kept no kind of relation, its verdict is not applied ({verdict})"
                )
            else:
                keep[r] = kind in judgment.kept
                why[r] += f"; {verdict}"
        return keep, why

    def _check_relation_names(self, kg: KnowledgeGraph) -> None:
        names = [str(r) for r in kg.relation_names]
        for key in ("relations", "exclude_relations"):
            given = getattr(self.params, key) or ()
            for rel in given:
                if rel not in names:
                    close = difflib.get_close_matches(rel, names, n=1, cutoff=0.6)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    raise DataError(
                        f"{self.name}: {key}: the knowledge graph has no relation {rel!r}.{hint} "
                        f"Its relations: {', '.join(names)}"
                    )

    # -- distances --------------------------------------------------------------------------------
    def distances(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Hops from each source item to each target item (``FAR`` beyond ``max_hops`` or not
        linked), shape ``(len(sources), len(targets))``."""
        sources = np.asarray(sources, dtype=np.int64)
        targets = np.asarray(targets, dtype=np.int64)
        if self._dense is not None:
            return np.asarray(self._dense[np.ix_(sources, targets)], dtype=np.int64)
        return self._distances(sources, targets)

    def _distances(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        out = np.full((len(sources), len(targets)), FAR, dtype=np.int8)
        if not len(sources) or not len(targets):
            return out
        lv = self.levels
        a = [lv[k][sources] for k in range(len(lv))]
        b = [lv[k][targets] for k in range(len(lv))]
        for hops in range(1, self.params.max_hops + 1):
            left, right = (hops + 1) // 2, hops // 2
            met = (a[left] @ b[right].T).toarray() > 0
            out[met & (out == FAR)] = hops
        out[(sources[:, None] == targets[None, :]) & (out != FAR)] = 0
        return out

    # -- facts ------------------------------------------------------------------------------------
    def _facts(self, history: np.ndarray, candidates: np.ndarray, query: str | None) -> list[Fact]:
        rec = recent(history, self.params.recent)
        rec = rec[self.kg.item_entity[rec] >= 0]
        cands = candidates[self.kg.item_entity[candidates] >= 0]
        if not len(rec) or not len(cands):
            return []
        dist = self.distances(rec, cands)
        best = dist.min(axis=0)
        first = np.argmax(dist == best[None, :], axis=0)  # the most recent of the closest
        facts = []
        for j in np.flatnonzero((best > 0) & (best != FAR)).tolist():
            hops, source, cand = int(best[j]), int(rec[first[j]]), int(cands[j])
            path = self.path(source, cand, hops)
            if path is None:
                continue
            text = f"{self.title(cand)}: {self.say(path[::-1])} (in this user's history)"
            utility = min(1.0, self._quality(path) * 2.0 / hops)
            facts.append(Fact(text, utility, (cand, source)))
        return facts

    def _quality(self, path: list[int]) -> float:
        """The mean informativeness of the path's inner entities that are not items (1 when
        every inner node is an item: a direct link, or films only)."""
        idf = self._idf
        inner = [idf[e] for e in path[1:-1] if self._ent_item[e] < 0]
        return sum(inner) / len(inner) if inner else 1.0

    # -- paths ------------------------------------------------------------------------------------
    def neighbours(self, entity: int) -> np.ndarray:
        return self.g_indices[self.g_indptr[entity] : self.g_indptr[entity + 1]]

    def _best(self, nodes: np.ndarray, prefer_items: bool = False) -> int:
        """The most informative of ``nodes`` (lowest degree; an item first when asked, the most
        popular one)."""
        if prefer_items:
            items = self.ent_item[nodes]
            mask = items >= 0
            if mask.any():
                cand = nodes[mask]
                return int(cand[np.argmax(self.users[items[mask]])])
        return int(nodes[np.argmin(self.degree[nodes])])

    def path(self, source: int, target: int, hops: int) -> list[int] | None:
        """Entities of a ``hops``-long path from item ``source`` to item ``target`` (``hops``
        from :meth:`distances`), or None."""
        s, t = int(self.kg.item_entity[source]), int(self.kg.item_entity[target])
        return self._entity_path(s, t, hops, source, target)

    def _entity_path(
        self, s: int, t: int, hops: int, s_item: int = -1, t_item: int = -1
    ) -> list[int] | None:
        ns, nt = self.neighbours(s), self.neighbours(t)
        if hops == 1:
            return [s, t] if t in set(ns.tolist()) else None
        if hops == 2:
            mid = np.intersect1d(ns, nt, assume_unique=True)
            mid = mid[(mid != s) & (mid != t)]
            return [s, self._best(mid), t] if len(mid) else None
        if hops == 3:
            # v1 next to s with a neighbour next to t
            mark = self._mark
            mark[nt] = True
            ok = [v for v in ns.tolist() if v != t and mark[self.neighbours(v)].any()]
            mark[nt] = False
            if not ok:
                return None
            v1 = self._best(np.asarray(ok))
            rest = self._entity_path(v1, t, 2)
            return [s] + rest if rest is not None else None
        if hops == 4 and s_item >= 0 and t_item >= 0:
            w2 = self.levels[2]
            ws = w2.indices[w2.indptr[s_item] : w2.indptr[s_item + 1]]
            wt = w2.indices[w2.indptr[t_item] : w2.indptr[t_item + 1]]
            mid = np.intersect1d(ws, wt, assume_unique=True)
            self._mark[ns] = True
            mid = mid[~self._mark[mid] & (mid != s) & (mid != t)]
            self._mark[ns] = False
            if not len(mid):
                return None
            m = self._best(mid, prefer_items=True)
            left, right = self._entity_path(s, m, 2), self._entity_path(m, t, 2)
            if left is None or right is None:
                return None
            return left + right[1:]
        return None

    def relation(self, a: int, b: int) -> tuple[str, bool]:
        """The relation name of the edge ``a``-``b`` and whether ``a`` is its head."""
        lo, hi = self.g_indptr[a], self.g_indptr[a + 1]
        pos = lo + int(np.searchsorted(self.g_indices[lo:hi], b))
        return str(self.kg.relation_names[self.g_rel[pos]]), bool(self.g_forward[pos])

    def entity_text(self, entity: int) -> str | None:
        """An item's title, or the entity's name where the graph has one (else None)."""
        item = int(self.ent_item[entity])
        if item >= 0:
            return self.title(item)
        names = self.kg.entity_names
        if names is not None and names[entity]:
            return str(names[entity])
        return None

    def say(self, path: Sequence[int]) -> str:
        """A path (entities, starting at an item) in words: item to item segments joined by
        'which'."""
        pieces: list[str] = []
        i = 0
        while i < len(path) - 1:
            j = i + 1
            while j < len(path) - 1 and self.ent_item[path[j]] < 0:
                j += 1
            pieces.append(self._segment(path[i : j + 1]))
            i = j
        return ", which ".join(pieces)

    def _segment(self, seg: Sequence[int]) -> str:
        """One stretch from an item to the next item (or to the path's end)."""
        end = self.entity_text(seg[-1]) or "another entity"
        if len(seg) == 2:
            rel, forward = self.relation(seg[0], seg[1])
            noun = relation_noun(rel)
            if noun == "sequel":
                return f"{'has the sequel' if forward else 'is the sequel of'} {end}"
            if noun == "prequel":
                return f"{'has the prequel' if forward else 'is the prequel of'} {end}"
            return f"is linked ({noun}) to {end}"
        if len(seg) == 3:
            rel, _ = self.relation(seg[0], seg[1])
            noun = relation_noun(rel)
            name = self.entity_text(seg[1])
            what = f"the {noun} {name}" if name else _article(noun)
            return f"shares {what} with {end}"
        steps = []
        for a, b in zip(seg[:-1], seg[1:], strict=True):
            rel, _ = self.relation(a, b)
            steps.append(f"{relation_noun(rel)} {self.entity_text(b) or '(unnamed)'}")
        return "is linked through " + " -> ".join(steps)

    # -- saving the fit ---------------------------------------------------------------------------
    def save(self, directory: Path | str) -> None:
        """Write the fit into ``directory`` (see the module docstring), each file atomically:
        ``graph.npz`` (the triples, item links, names, titles and training counts),
        ``relation_llm.json`` (the model's verdicts, with ``relation_llm``) and ``fit.json``."""
        from recai.runtime import atomic_write_file, atomic_write_json

        if not self._fitted:
            raise NotFittedError(f"{self.name}: not fitted; nothing to save")
        folder = Path(directory)
        kg = self.kg
        names = kg.entity_names
        arrays: dict[str, np.ndarray] = {
            "heads": kg.heads,
            "relations": kg.relations,
            "tails": kg.tails,
            "item_entity": kg.item_entity,
            "entities": np.asarray([str(e) for e in kg.entities], dtype=str),
            "relation_names": np.asarray([str(r) for r in kg.relation_names], dtype=str),
            "entity_names": np.asarray(
                [
                    "" if names is None or names[e] is None else str(names[e])
                    for e in range(len(kg.entities))
                ],
                dtype=str,
            ),
            "named": np.asarray(
                [names is not None and names[e] is not None for e in range(len(kg.entities))],
                dtype=bool,
            ),
            "item_ids": np.asarray([str(i) for i in self.catalog.ids], dtype=str),
            "titles": np.asarray([str(t) for t in self.catalog.titles], dtype=str),
            "users": self.users,
        }

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]

        atomic_write_file(folder / "graph.npz", write)
        judgment = self.relation_judgment
        if judgment is not None:
            atomic_write_json(folder / "relation_llm.json", _judgment_dict(judgment))
        atomic_write_json(
            folder / "fit.json",
            {
                "format": SAVE_FORMAT,
                "name": self.name,
                "catalog": self.catalog.fingerprint(),
                "has_entity_names": names is not None,
                "relation_llm": judgment is not None,
            },
        )

    def load(self, directory: Path | str) -> None:
        """Read a fit written by :meth:`save` (no split needed; the relation LLM is not asked:
        its saved verdicts are applied)."""
        folder = Path(directory)
        try:
            meta = json.loads((folder / "fit.json").read_text(encoding="utf-8"))
            with np.load(folder / "graph.npz", allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
            saved = None
            if meta.get("relation_llm"):
                saved = _judgment_of(
                    json.loads((folder / "relation_llm.json").read_text(encoding="utf-8"))
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"{self.name}: cannot read the saved fit in {folder}: {exc}; delete the folder "
                "to fit again"
            ) from None
        if meta.get("format") != SAVE_FORMAT:
            raise DataError(
                f"{self.name}: the saved fit in {folder} has format {meta.get('format')!r}, "
                f"this version reads {SAVE_FORMAT}; delete the folder to fit again"
            )
        if saved is None and self.params.relation_llm is not None:
            raise DataError(
                f"{self.name}: the saved fit in {folder} has no relation_llm verdicts, but "
                "relation_llm is set; delete the folder to fit again"
            )
        named = a["named"]
        entity_names = (
            np.asarray(
                [
                    n if ok else None
                    for n, ok in zip(a["entity_names"].tolist(), named.tolist(), strict=True)
                ],
                dtype=object,
            )
            if meta.get("has_entity_names")
            else None
        )
        kg = KnowledgeGraph(
            heads=a["heads"],
            relations=a["relations"],
            tails=a["tails"],
            entities=a["entities"].astype(object),
            relation_names=a["relation_names"].astype(object),
            item_entity=a["item_entity"],
            entity_names=entity_names,
        )
        self.catalog = Catalog(ids=a["item_ids"].astype(object), titles=a["titles"].astype(object))
        self._build(kg, a["users"], saved)
        self._fitted = True

    def describe(self) -> dict[str, Any]:
        """The fit: the relations kept (``relation_stats`` says why for each), the hubs
        skipped and, with ``relation_llm``, the model's judgment per kind of relation."""
        kept = [r for r, s in self.relation_stats.items() if s["kept"]]
        out: dict[str, Any] = {"relations_kept": kept, "hub_entities_skipped": self._hubs}
        if self.relation_judgment is not None:
            out["relation_llm"] = self.relation_judgment.summary()
        return out


def _judgment_dict(j: RelationJudgment) -> dict[str, Any]:
    """A judgment as JSON (the kept kinds in the judged order)."""
    return {
        "method": j.method,
        "kinds": list(j.kinds),
        "kept": [k for k in j.kinds if k in j.kept],
        "detail": j.detail,
        "baseline": j.baseline,
        "applied": j.applied,
        "answer": j.answer,
    }


def _judgment_of(d: dict[str, Any]) -> RelationJudgment:
    return RelationJudgment(
        str(d["method"]),
        [str(k) for k in d["kinds"]],
        {str(k) for k in d["kept"]},
        dict(d["detail"]),
        None if d.get("baseline") is None else float(d["baseline"]),
        bool(d["applied"]),
        d.get("answer"),
    )


def _undirected(heads: np.ndarray, tails: np.ndarray, n: int) -> Any:
    """The symmetric 0/1 adjacency (CSR) of the triples (no self loops)."""
    import scipy.sparse as sp

    keep = heads != tails
    h, t = heads[keep], tails[keep]
    m = sp.csr_matrix(
        (np.ones(2 * len(h), dtype=np.float32), (np.concatenate([h, t]), np.concatenate([t, h]))),
        shape=(n, n),
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m
