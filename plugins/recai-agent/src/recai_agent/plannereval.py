"""How good a planner is, measured on a labelled request set (:mod:`recai_agent.requests`).

A **planner** turns requests into plans. Three kinds are measured the same way:

- :class:`RulePlanner`: the deterministic floor, :class:`~recai_agent.slots.SlotExtractor` and
  :func:`~recai_agent.plan.plan_from_slots`;
- :class:`LLMPlanner`: any :class:`recai.LLMBackend` (``hf.v1`` with the untuned or a tuned
  model, decoded under :func:`planner_schema` by recai-hf's JSON constraint; ``openai.v1`` for
  any OpenAI-compatible server, which gets the schema as ``response_format``) given the same
  prompt (:func:`planner_messages`); with ``combine=True`` its plan is merged with the rules'
  (:func:`~recai_agent.plan.merge`, the model's values kept), as the agent can do.

:func:`score` reads each output as the agent would (the plan validated against the schema and
grounded; an invalid one repaired; one that cannot be read is no plan) and reports, for the
request set:

- ``valid``: share of outputs that are valid plans as written (no repair);
- ``exact``: share whose plan equals the gold plan (tools in order, every value; list values as
  sets; ranking's defaults filled in);
- ``tools``: share with the gold plan's tools, in order;
- per-slot precision, recall and F1 (micro over requests) for ``genres`` (wanted genres),
  ``years`` (the bounds), ``seeds`` (liked titles), ``negations`` (refused genres and unwanted
  titles), ``ranking`` (a choice other than the default: popularity, diversity, similarity), and
  ``all`` slots together;
- per request kind, the exact-plan accuracy.

Shares have Wilson 95% intervals; precision, recall and F1 have percentile bootstrap intervals
(requests resampled, ``resamples`` times, from ``np.random.default_rng(seed)``; the seed is in
the result, and one seed draws the same resamples for every planner scored on one set).

>>> from recai.data import Catalog
>>> from recai_agent.requests import generate
>>> cat = Catalog(ids=[1, 2, 3], titles=["Toy Story (1995)", "Scream (1996)", "Heat (1995)"],
...               fields={"genres": [("Animation", "Comedy"), ("Horror",), ("Action", "Crime")],
...                       "year": [1995, 1996, 1995]})
>>> reqs = generate(cat, "test", 30, seed=0)
>>> result = score(RulePlanner(cat).plan([r.request for r in reqs]), reqs, cat, resamples=200)
>>> result["valid"]["value"], result["n"]
(1.0, 30)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import recai
from recai.data import Catalog
from recai.data.grounding import Grounder
from recai.types import Message

from .plan import merge, plan_from_slots, plan_schema, repair_plan, validate_plan
from .requests import PLAN_TOOLS, Request
from .slots import CatalogFacts, SlotExtractor, Slots

__all__ = [
    "PLANNER_PROMPT",
    "PROMPTS",
    "SHORT_PROMPT",
    "SLOTS",
    "catalog_line",
    "hint_line",
    "LLMPlanner",
    "RulePlanner",
    "planner_messages",
    "planner_schema",
    "plan_slots",
    "read_output",
    "score",
    "wilson",
]

#: The planner's instructions (the request follows as the user message). A tuned planner is
#: trained on exactly this prompt (:mod:`recai_agent.tune`).
PLANNER_PROMPT = (
    "You are the planner of a movie recommender. Write a JSON plan of tool calls for the "
    "user's request.\n"
    "Tools, in this order: hard_filter (genres, not_genres, year_min, year_max), soft_filter "
    "(seeds: titles the user likes), ranking (by preference, popularity or similarity; mode "
    "accuracy or diversity; unwanted: titles the user dislikes), map (always last). For a "
    'greeting or thanks with no request, write {{"steps": []}}.\n'
    "{catalog}"
)
#: The short prompt a tuned planner is trained and run on: the plan format is in its weights, and
#: every prompt token costs training and decoding time on a CPU.
SHORT_PROMPT = "Plan the tools for this request as JSON."
#: The prompts by name (``LLMPlanner(prompt=...)``, ``tune.json``'s ``prompt``). ``"hints"`` is
#: the short prompt with the request followed by :func:`hint_line`: the genre words the slot
#: extractor found and the catalog genre each names, without saying wanted or refused (a 135M
#: model cannot learn "whodunit" or "heist" from a few thousand requests; the lexicon knows
#: them, and the model decides what the request does with them).
PROMPTS = {"full": PLANNER_PROMPT, "short": SHORT_PROMPT, "hints": SHORT_PROMPT}
#: The slots scored, besides ``all``.
SLOTS = ("genres", "years", "seeds", "negations", "ranking")
_Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of a share ``successes / n`` (95% by default); ``(nan, nan)``
    for ``n = 0``.

    >>> [round(x, 3) for x in wilson(90, 100)]
    [0.826, 0.945]
    """
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def catalog_line(catalog: Catalog) -> str:
    """The planner prompt's line about the catalog: its genres and its years."""
    facts = CatalogFacts.of(catalog)
    parts = []
    if facts.genre_field is not None:
        values = facts.categorical.get(facts.genre_field, [])
        parts.append("Genres: " + ", ".join(values[:40]) + ".")
    if facts.years is not None:
        parts.append(f"Years: {facts.years[0]}-{facts.years[1]}.")
    return " ".join(parts)


def hint_line(slots: Slots, request: str) -> str:
    """The genre words of ``request`` the slot extractor matched, in the order they are said,
    each with the catalog genre it names and not whether it is wanted or refused
    (``"Genre words: whodunits = Mystery; thriller = Thriller."``); ``""`` when none.

    >>> s = Slots(not_genres=["Horror"], genres=["Comedy"],
    ...           matched=[("funny", "genres=Comedy"), ("scary", "not genres=Horror")])
    >>> hint_line(s, "no scary stuff, something funny")
    'Genre words: scary = Horror; funny = Comedy.'
    """
    low = request.lower()
    found: list[tuple[int, str, str]] = []
    for said, label in slots.matched:
        key, _, value = label.partition("=")
        if key.strip() in ("genres", "not genres") and value:
            pos = low.find(said.lower())
            found.append((pos if pos >= 0 else len(low), said, value))
    if not found:
        return ""
    found.sort(key=lambda f: f[0])
    seen: set[tuple[str, str]] = set()
    parts = []
    for _, said, value in found:
        if (said.lower(), value) not in seen:
            seen.add((said.lower(), value))
            parts.append(f"{said} = {value}")
    return "Genre words: " + "; ".join(parts) + "."


def planner_messages(
    request: str, catalog: Catalog | str, prompt: str = "full", hints: str = ""
) -> list[Message]:
    """The planner's prompt for ``request``: the instructions (``prompt``: ``"full"``, with
    the tools and the catalog's genres and years, ``catalog`` may be that line precomputed;
    ``"short"``, :data:`SHORT_PROMPT`, for a tuned planner; ``"hints"``, the short prompt with
    ``hints``, :func:`hint_line`, on a line after the request) and the request as the user's
    message."""
    if prompt not in PROMPTS:
        raise ValueError(f"prompt must be one of {sorted(PROMPTS)}, got {prompt!r}")
    if prompt == "short":
        return [Message.system(SHORT_PROMPT), Message.user(request)]
    if prompt == "hints":
        text = f"{request}\n{hints}" if hints else request
        return [Message.system(SHORT_PROMPT), Message.user(text)]
    line = catalog if isinstance(catalog, str) else catalog_line(catalog)
    return [Message.system(PLANNER_PROMPT.format(catalog=line).strip()), Message.user(request)]


def planner_schema(catalog: Catalog) -> dict[str, Any]:
    """The plan schema over the recommend tools (:data:`~recai_agent.requests.PLAN_TOOLS`) and
    ``catalog``, plus the empty plan of chit-chat (``{"steps": []}``)."""
    schema = plan_schema(list(PLAN_TOOLS), catalog)
    steps = schema["properties"]["steps"]
    variants = list(steps["anyOf"]) if "anyOf" in steps else [steps]
    variants.append({"type": "array", "maxItems": 0})
    schema["properties"]["steps"] = {"anyOf": variants}
    return schema


# -- planners ---------------------------------------------------------------------------------------


class RulePlanner:
    """The rule floor: the slot extractor's plan for each request."""

    name = "rules"

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.extractor = SlotExtractor(catalog)

    def plan(self, requests: Sequence[str]) -> list[Any]:
        return [plan_from_slots(self.extractor.extract(r)).to_dict() for r in requests]


class LLMPlanner:
    """An LLM writes each plan under :func:`planner_schema` from :func:`planner_messages`
    (``prompt``: ``"full"`` or ``"short"``, the one a tuned planner was trained on; greedy,
    ``max_tokens`` each; batched through ``chat_batch``). ``constrain=False`` sends no
    schema (the model writes free text, repaired afterwards). ``combine=True`` merges each plan
    with the rules' (the model's values kept), as an agent combining both would run it; the
    output is then the merged plan (``model_values=False``: only the model's values the rules
    leave open, how to rank and vague years, as the agent merges an untrusted brain).
    ``memo``: a dict shared by planners on the same backend,
    so a planner and its ``combine=True`` twin ask the model once per request (greedy decoding:
    the same text either way)."""

    def __init__(
        self,
        llm: recai.LLMBackend,
        catalog: Catalog,
        *,
        name: str = "llm",
        prompt: str = "full",
        max_tokens: int = 160,
        constrain: bool = True,
        combine: bool = False,
        memo: dict[tuple[str, bool, str], str] | None = None,
        model_values: bool = True,
    ) -> None:
        self.llm = llm
        self.memo = memo
        self.asked = 0  # requests the model was asked (not found in the memo)
        self.model_values = model_values
        self.catalog = catalog
        self.name = name
        if prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {sorted(PROMPTS)}, got {prompt!r}")
        self.prompt = prompt
        self.max_tokens = max_tokens
        self.constrain = constrain
        self.combine = combine
        self.schema = planner_schema(catalog)
        self._line = catalog_line(catalog)
        self._extractor = SlotExtractor(catalog) if combine or prompt == "hints" else None

    def _slots(self, request: str, read: dict[str, Slots]) -> Slots:
        """The request's slots, extracted once per :meth:`plan` call (the hints and the merge
        both read them)."""
        assert self._extractor is not None
        if request not in read:
            read[request] = self._extractor.extract(request)
        return read[request]

    def _hints(self, request: str, read: dict[str, Slots]) -> str:
        if self.prompt != "hints" or self._extractor is None:
            return ""
        return hint_line(self._slots(request, read), request)

    def plan(self, requests: Sequence[str]) -> list[Any]:
        read: dict[str, Slots] = {}
        options: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": 0.0, "seed": 0}
        if self.constrain:
            options["json_schema"] = self.schema
        memo = self.memo if self.memo is not None else {}
        keys = [(self.prompt, self.constrain, r) for r in requests]
        todo = [r for r, key in zip(requests, keys, strict=True) if key not in memo]
        if todo:
            convs = [
                planner_messages(r, self._line, self.prompt, self._hints(r, read)) for r in todo
            ]
            try:
                done = self.llm.chat_batch(convs, **options)
            except recai.RecaiError as e:
                # hf.v1's StructuredOutputError: some replies are not valid for the schema (cut
                # by max_tokens); every reply is kept, and the invalid ones score as invalid
                kept: Any = getattr(e, "completions", None)
                if kept is None or len(kept) != len(todo):
                    raise
                done = list(kept)
            self.asked += len(todo)
            for r, c in zip(todo, done, strict=True):
                memo[(self.prompt, self.constrain, r)] = c.text
        texts = [memo[key] for key in keys]
        if not self.combine:
            return texts
        out: list[Any] = []
        grounder = Grounder(self.catalog)
        for request, text in zip(requests, texts, strict=True):
            plan, _ = read_output(text, self.schema, self.catalog, grounder)
            slots = self._slots(request, read)
            out.append(merge(plan, slots, model_values=self.model_values).to_dict())
        return out


# -- reading and scoring --------------------------------------------------------------------------


def read_output(
    output: Any, schema: Mapping[str, Any], catalog: Catalog, grounder: Grounder | None = None
) -> tuple[dict[str, Any] | None, bool]:
    """``(plan, valid)``: the plan an output stands for, as the agent would run it, and whether
    it was valid as written. A valid plan comes back grounded (catalog titles); an invalid one is
    repaired; ``(None, False)`` when nothing can be read. ``{"steps": []}`` is chit-chat's
    valid empty plan."""
    obj: Any = output
    if isinstance(output, str):
        try:
            obj = json.loads(output)
        except ValueError:
            obj = output
    if isinstance(obj, dict) and obj.get("steps") == [] and set(obj) == {"steps"}:
        return {"steps": []}, True
    plan, _ = validate_plan(obj, schema, catalog, grounder)
    if plan is not None:
        return plan.to_dict(), True
    repaired = repair_plan(obj, schema, catalog, grounder)
    return (repaired.to_dict() if repaired is not None else None), False


def _canonical(plan: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    if plan is None:
        return None
    out = []
    for st in plan.get("steps", []):
        tool = st.get("tool")
        inp = dict(st.get("input") or {})
        if tool == "ranking":
            inp.setdefault("by", "preference")
            inp.setdefault("mode", "accuracy")
        items = []
        for k, v in sorted(inp.items()):
            if isinstance(v, list):
                if not v:
                    continue
                v = frozenset(map(str, v))
            items.append((k, v))
        out.append((tool, tuple(items)))
    return tuple(out)


def plan_slots(plan: Mapping[str, Any] | None) -> dict[str, set[tuple[str, Any]]]:
    """The scored slots of a plan: ``{"genres": {("genre", "Comedy")}, "years": {("min",
    1990)}, ...}`` (see :data:`SLOTS`)."""
    out: dict[str, set[tuple[str, Any]]] = {k: set() for k in SLOTS}
    if plan is None:
        return out
    for st in plan.get("steps", []):
        inp = st.get("input") or {}
        tool = st.get("tool")
        if tool == "hard_filter":
            out["genres"] |= {("genre", str(v)) for v in inp.get("genres") or []}
            out["negations"] |= {("genre", str(v)) for v in inp.get("not_genres") or []}
            for key, side in (("year_min", "min"), ("year_max", "max")):
                if inp.get(key) is not None:
                    out["years"].add((side, int(inp[key])))
        elif tool == "soft_filter":
            out["seeds"] |= {("title", str(v)) for v in inp.get("seeds") or []}
        elif tool == "ranking":
            out["negations"] |= {("title", str(v)) for v in inp.get("unwanted") or []}
            if inp.get("by", "preference") != "preference":
                out["ranking"].add(("by", inp["by"]))
            if inp.get("mode", "accuracy") != "accuracy":
                out["ranking"].add(("mode", inp["mode"]))
    return out


def _tools(plan: Mapping[str, Any] | None) -> list[str] | None:
    return None if plan is None else [str(s.get("tool")) for s in plan.get("steps", [])]


def _prf(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 from ``(..., 3)`` summed counts (tp, fp, fn); an empty side is 1."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
        r = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 1.0)
        f = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    return p, r, f


def _share(hits: Sequence[bool]) -> dict[str, float]:
    k, n = int(sum(hits)), len(hits)
    low, high = wilson(k, n)
    return {"value": k / n if n else float("nan"), "low": low, "high": high}


def score(
    outputs: Sequence[Any],
    requests: Sequence[Request],
    catalog: Catalog,
    *,
    schema: Mapping[str, Any] | None = None,
    seed: int = 0,
    resamples: int = 1000,
) -> dict[str, Any]:
    """The metrics of a planner's ``outputs`` (texts or plan dicts, one per request) against
    the gold plans of ``requests`` (see the module's docstring). Also ``rows``: per request, the
    plan read, whether valid, exact and with the right tools, and the slot counts."""
    if len(outputs) != len(requests):
        raise ValueError(f"{len(outputs)} outputs for {len(requests)} requests")
    schema = planner_schema(catalog) if schema is None else schema
    grounder = Grounder(catalog)
    n = len(requests)
    keys = (*SLOTS, "all")
    counts = np.zeros((n, len(keys), 3), dtype=np.int64)
    valid, exact, tools_ok, rows = [], [], [], []
    for row, (out, req) in enumerate(zip(outputs, requests, strict=True)):
        plan, ok = read_output(out, schema, catalog, grounder)
        gold = req.plan
        is_exact = plan is not None and _canonical(plan) == _canonical(gold)
        same_tools = plan is not None and _tools(plan) == _tools(gold)
        got, want = plan_slots(plan), plan_slots(gold)
        for j, k in enumerate(SLOTS):
            tp, fp, fn = len(got[k] & want[k]), len(got[k] - want[k]), len(want[k] - got[k])
            counts[row, j] = (tp, fp, fn)
        counts[row, -1] = counts[row, :-1].sum(axis=0)
        valid.append(ok)
        exact.append(is_exact)
        tools_ok.append(same_tools)
        rows.append(
            {
                "id": req.id,
                "kind": req.kind,
                "request": req.request,
                "plan": plan,
                "valid": ok,
                "exact": is_exact,
                "tools": same_tools,
                "counts": {k: counts[row, j].tolist() for j, k in enumerate(keys)},
            }
        )
    totals = counts.sum(axis=0)  # (keys, 3)
    p, r, f = _prf(totals.astype(float))
    slots: dict[str, dict[str, float]] = {}
    if n and resamples > 0:
        rng = np.random.default_rng(seed)
        boot = np.empty((resamples, len(keys), 3))
        for b0 in range(0, resamples, 200):
            c = min(200, resamples - b0)
            draws = rng.integers(0, n, size=(c, n))
            w = np.stack([np.bincount(d, minlength=n) for d in draws]).astype(float)
            boot[b0 : b0 + c] = np.einsum("bn,nkc->bkc", w, counts.astype(float))
        bp, br, bf = _prf(boot)
        q = np.percentile(np.stack([bp, br, bf]), [2.5, 97.5], axis=1)  # (2, 3, keys)
    for j, k in enumerate(keys):
        entry = {
            "precision": float(p[j]),
            "recall": float(r[j]),
            "f1": float(f[j]),
            "support": int(totals[j, 0] + totals[j, 2]),
        }
        if n and resamples > 0:
            for m, name in enumerate(("precision", "recall", "f1")):
                entry[f"{name}_low"] = float(q[0, m, j])
                entry[f"{name}_high"] = float(q[1, m, j])
        slots[k] = entry
    kinds: dict[str, dict[str, float]] = {}
    for kind in sorted({req.kind for req in requests}):
        hits = [e for e, req in zip(exact, requests, strict=True) if req.kind == kind]
        kinds[kind] = {"n": len(hits), **_share(hits)}
    return {
        "n": n,
        "valid": _share(valid),
        "exact": _share(exact),
        "tools": _share(tools_ok),
        "slots": slots,
        "kinds": kinds,
        "seed": seed,
        "resamples": resamples,
        "intervals": "Wilson 95% for shares; percentile bootstrap 95% over requests for P/R/F1",
        "rows": rows,
    }


def run(
    planner: Any, requests: Sequence[Request], catalog: Catalog, *, batch: int = 16, **kw: Any
) -> dict[str, Any]:
    """Plan every request with ``planner`` (in batches of ``batch``), time it and
    :func:`score` it; the result adds ``planner``, ``seconds`` and ``seconds_per_request``."""
    texts = [r.request for r in requests]
    outputs: list[Any] = []
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        outputs += planner.plan(texts[i : i + batch])
    seconds = time.perf_counter() - start
    result = score(outputs, requests, catalog, **kw)
    result["planner"] = getattr(planner, "name", type(planner).__name__)
    result["seconds"] = seconds
    result["seconds_per_request"] = seconds / max(1, len(texts))
    return result
