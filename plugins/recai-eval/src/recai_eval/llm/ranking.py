"""llm-ranking.v1: the LLM ranks a candidate list (the held-out item and sampled negatives).

RecLM-eval's *ranking* task: ``n_candidates`` items (by default 1 + 19, as in RecAI's
protocol) are shown in a per-user random order; the model writes them back in its order.
Negatives are drawn by :func:`recai.data.sample_candidates` (uniformly among items the user
never interacted with; deterministic per seed and user). Beside Hit/NDCG/MRR@k the report gives
the rates of answers naming titles outside the catalog, duplicates, history items, items
outside the candidates, and answers that copy the candidates' input order.

**Generation mode under a schema** (``constrain``, default ``"auto"``): with a backend that
takes ``json_schema``, the list is asked for as ``{"ranking": [...]}`` whose items are an enum
of the prompt's candidate titles, exactly ``n_candidates`` of them (:mod:`.constrained`): a
model decoding under it (recai-hf's ``hf.v1``) can only write candidates, so every answer
grounds, and each is read as a full ranking (repeats dropped, the candidates it left out
appended in their shown order). Without ``json_schema`` (or ``constrain = "never"``) the model
writes a numbered list, parsed and grounded in the catalog, and a target it does not name is a
miss. Either way ``complete_rate`` is the share of answers that name every candidate exactly
once and nothing else.

**Scoring mode** (``mode = "score"``): instead of writing a list, the LLM scores each
candidate's title as the continuation of the prompt (one ``score_continuations`` call per user,
which recai-hf's backend answers in one batched pass sharing the prompt's cache); candidates are
ranked by that log-probability (``score_norm``: summed, per character, or calibrated by the
title's log-probability after the question alone). A 135M model that cannot write a clean list
of 20 titles can still rank this way; there is nothing to parse or ground, so the report has no
error rates besides ``failure_rate`` (a backend that returned unusable scores).

**Knowledge** (``knowledge``, a :class:`recai.KnowledgePrompter`, e.g. from recai-knowledge):
fitted on the task's training split (``ctx.fit``), it is given each user's history (every item
before the held-out one) and the candidates in their shown order, as ``ItemList`` s, and its
text goes in a system message before the question (:meth:`recai.KnowledgePrompter.augment`). The same in both modes. Answers are cached
under a key that includes the knowledge config, so runs with and without knowledge, or with
two configs, never share answers; ``info["knowledge"]`` says what was used and how many tokens
it added per prompt (four characters a token).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

import recai
from recai.data import sample_candidates
from recai.errors import RecaiError
from recai.roles import describe_component
from recai.runtime import RunContext
from recai.stats import paired_bootstrap, paired_test
from recai.types import ItemList, Message, Report

from ..metrics import MISSED
from ..peruser import per_user_file, save_per_user
from .base import Case, LLMTask, Session, sample_cases
from .constrained import (
    JSON_RANKING,
    SchemaCaller,
    ranking_schema,
    score_schema_answers,
    takes_schema,
)
from .lists import ListScores, list_metrics, score_list_answers
from .params import LLMRankingParams
from .prompts import RANKING, bulleted, numbered, render
from .runner import Answer, Caller, caller_for
from .scoring import ERROR_KINDS, ranking_values

__all__ = ["LLMRankingEvaluator", "ScoreCaller", "candidate_sets", "SCORE_RANKING", "QUESTION"]

#: The question of scoring mode; its answer, scored, is each candidate's title.
QUESTION = "Which one of the candidates is the user most likely to choose next? Answer with its title only."

#: The default prompt of scoring mode (``mode = "score"``).
SCORE_RANKING = (
    "A user has interacted with these items, oldest first:\n{history}\n\n"
    "Here are {n} candidate items, in random order:\n{candidates}\n\n" + QUESTION
)


def candidate_sets(
    s: Session,
    cases: list,
    n_candidates: int,
    strategy: Literal["uniform", "popularity"] = "uniform",
) -> tuple[list, list[list[int]], int]:
    """For each case that has enough negatives: the positive and ``n_candidates - 1`` negatives
    in a random order (per seed and user). Returns ``(kept cases, orders, dropped count)``."""
    users = np.array([c.user for c in cases], dtype=np.int64)
    cands = sample_candidates(
        s.split,
        n_negatives=n_candidates - 1,
        strategy=strategy,
        seed=s.seed,
        users=users,
        short="drop",
    )
    by_user = {
        int(u): row for u, row in zip(cands.users.tolist(), cands.items.tolist(), strict=True)
    }
    kept, orders = [], []
    for case in cases:
        row = by_user.get(int(case.user))
        if row is None:
            continue
        kept.append(case)
        orders.append([int(x) for x in s.rng(case, 1).permutation(np.asarray(row))])
    return kept, orders, len(cases) - len(kept)


class LLMRankingEvaluator(LLMTask):
    """History and candidates in, a ranking out; Hit/NDCG/MRR@k of the held-out item.

    ``template`` may use ``{history}`` (numbered titles, oldest first), ``{candidates}`` (one
    per line, bulleted, in random order) and ``{n}`` (how many). Users without enough items to
    draw negatives from are left out and counted in ``info["dropped_users"]``.
    """

    Params = LLMRankingParams
    positional = ("dataset", "llm")
    default_template = RANKING
    params: LLMRankingParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # LLMTask: params, system_prompt, template
        self.k: Sequence[int] = sorted({int(x) for x in self.params.k})

    def evaluate(self, ctx: RunContext) -> Report:
        p = self.params
        s = Session(self, ctx)
        score_mode = p.mode == "score"
        llm_name = ctx.name_of(p.llm)
        if score_mode:
            _check_can_score(p.llm, llm_name)
        constrained = not score_mode and _constrained(p.llm, llm_name, p.constrain)
        variants = self._variants(ctx, llm_name)
        for _, knowledge in variants:
            if knowledge is not None:
                ctx.fit(knowledge, s.split)
        sampled, counts = sample_cases(s.data, s.split, p.samples, s.seed)
        cases, orders, dropped = candidate_sets(s, sampled, p.n_candidates, p.negatives)
        template = self.template
        if p.template is None and (score_mode or constrained):
            template = SCORE_RANKING if score_mode else JSON_RANKING
        kinds: tuple[str, ...] = () if score_mode else ERROR_KINDS
        results: dict[str, ListScores] = {}
        added: dict[str, list[int]] = {}
        for name, knowledge in variants:
            prompts, tokens = [], []
            for c, order in zip(cases, orders, strict=True):
                prompt, extra = self._prompt(s, c, order, template, knowledge)
                prompts.append(prompt)
                tokens.append(extra)
            first, first_failure = len(s.records), len(s.failures)
            if score_mode:
                results[name] = self._scored(s, cases, orders, prompts, knowledge, name)
            elif constrained:
                results[name] = self._generated(s, cases, orders, prompts, knowledge, name)
            else:
                caller = caller_for(p.llm, s.options)
                _keyed_by(caller, knowledge)
                answers = s.runner.run(caller, prompts, desc=f"{s.stage}: ranking ({name})")
                results[name] = score_list_answers(
                    s, cases, answers, orders=orders, candidates=orders
                )
            for record in s.records[first:]:
                record["system"] = name
            for failure in s.failures[first_failure:]:
                failure["system"] = name
            added[name] = tokens
        # every metric over the samples every system answered: the systems stay paired
        metrics, intervals = {}, {}
        for name, scores in results.items():
            row, iv = list_metrics(s, cases, scores, self.k, kinds, p.bootstrap)
            if not score_mode:
                done = s.measured(cases, {"complete": scores.complete_column})["complete"]
                row["complete_rate"] = float(done.mean()) if len(done) else 0.0
            metrics[name] = row
            if iv:
                intervals[name] = iv
        effects = self._effects(s, cases, results, variants)
        self._save_per_user(s, ctx, cases, results)
        how = (
            f"the candidates are ranked by the LLM's log-probability of each title after the "
            f"prompt ({p.score_norm})"
            if score_mode
            else "the LLM writes the ranked list as JSON under a schema whose items are this "
            "prompt's candidate titles (an enum), exactly n of them; each answer read as a full "
            "ranking (a repeated title keeps its first place, the candidates left out appended "
            "in their shown order); Hit/NDCG/MRR@k by the held-out item's place in it"
            if constrained
            else f"each mention grounded in the catalog ({s.matcher.method} >= "
            f"{s.matcher.threshold}); Hit/NDCG/MRR@k by the position of the held-out item's "
            "first mention"
        )
        with_knowledge = [n for n, k in variants if k is not None]
        protocol = (
            f"leave-one-out by time; the LLM ranks {p.n_candidates} candidates (the held-out "
            f"item and {p.n_candidates - 1} {p.negatives} negatives the user never "
            f"interacted with) after the last {p.max_history} history items"
            + (
                "; with knowledge written by a prompter fitted on the training split"
                + (
                    f" ({len(with_knowledge)} prompters and none, on the same users and candidates)"
                    if len(variants) > 1
                    else ""
                )
                if with_knowledge
                else ""
            )
            + f"; {how}"
        )
        info = s.info(
            protocol,
            len(cases),
            counts,
            task="ranking",
            mode=p.mode,
            k=list(self.k),
            n_candidates=p.n_candidates,
            dropped_users=dropped,
            max_history=p.max_history,
            fields=list(p.fields),
            llm=self.describe(p.llm),
            knowledge={
                name: {
                    "component": self.describe(knowledge),
                    "mean_tokens": round(float(np.mean(added[name])), 1) if cases else 0.0,
                    "prompts_with_knowledge": int(sum(t > 0 for t in added[name])),
                }
                for name, knowledge in variants
                if knowledge is not None
            }
            or None,
        )
        if effects:
            info["knowledge_effects"] = effects
        if score_mode:
            info["score_norm"] = p.score_norm
        else:
            info["constrained"] = constrained
            info["candidates_named"] = {
                name: round(float(np.mean(s.measured(cases, {"n": np.asarray(r.named)})["n"])), 2)
                if any(s.answered(c) for c in cases)
                else 0.0
                for name, r in results.items()
            }
            info["complete_rate"] = (
                "share of the answered samples whose own answer names every candidate exactly "
                "once and nothing else"
                + ("; the others were completed by appending" if constrained else "")
                + "; candidates_named: the mean number of distinct candidates an answer names, "
                "per system"
            )
            mentions = sum(r.mentions for r in results.values())
            grounded = sum(r.grounded for r in results.values())
            info["mentions"] = {"total": mentions, "grounded": grounded}
            info["error_rates"] = (
                "share of the answered samples whose answer shows the error; "
                "unreadable answers count in failure_rate only"
            )
        notes = []
        if dropped:
            notes.append(
                f"{dropped} sampled users had too few items left to draw "
                f"{p.n_candidates - 1} negatives and were left out."
            )
        if len(variants) > 1:  # unusable answers per system (the session would add them up)
            unusable: dict[str, int] = {}
            for f in s.failures:
                if f["answered"] and f["sample"] not in s.unanswered:
                    unusable[f["system"]] = unusable.get(f["system"], 0) + 1
            s.failures = [f for f in s.failures if not f["answered"]]
            if unusable:
                said = ", ".join(f"{k} for {name}" for name, k in unusable.items())
                notes.append(
                    f"Of {len(cases)} samples, unusable answers: {said}; they count as misses "
                    "and are listed in info.failed_samples."
                )
        notes += [effect_note(name, e) for name, e in effects.items()]
        return s.report(metrics, info, intervals or None, notes)

    def _variants(
        self, ctx: RunContext, llm_name: str
    ) -> list[tuple[str, recai.KnowledgePrompter | None]]:
        """The systems: ``(name, knowledge or None)``, the one without knowledge first."""
        p = self.params
        if not p.knowledge:
            return [(llm_name, None)]
        prompters = list(p.knowledge)
        out: list[tuple[str, recai.KnowledgePrompter | None]] = []
        if len(prompters) > 1 or p.without_knowledge:
            out.append((llm_name, None))
        for name, k in zip(ctx.names_of(prompters), prompters, strict=True):
            out.append((f"{llm_name} + {name}", k))
        return out

    def _effects(
        self,
        s: Session,
        cases: Sequence[Case],
        results: dict[str, ListScores],
        variants: list[tuple[str, recai.KnowledgePrompter | None]],
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """Each knowledge system's paired difference from the system without knowledge."""
        base = next((n for n, k in variants if k is None), None)
        if base is None or len(variants) < 2:
            return {}
        resamples = max(int(self.params.bootstrap), 1000)
        cols = s.measured(cases, ranking_values(results[base].ranks, self.k))
        out = {}
        for name, knowledge in variants:
            if knowledge is None:
                continue
            other = s.measured(cases, ranking_values(results[name].ranks, self.k))
            row = {}
            for metric in cols:
                a, b = cols[metric], other[metric]
                boot = paired_bootstrap(a, b, resamples, s.seed)
                test, p_value = paired_test(a, b)
                row[metric] = {
                    "delta": float(boot["delta"][0]),
                    "low": float(boot["low"][0]),
                    "high": float(boot["high"][0]),
                    "p_bootstrap": float(boot["p"][0]),
                    "p_test": p_value,
                    "test": test,
                    "pairs": len(a),
                }
            out[name] = row
        return out

    def _save_per_user(
        self, s: Session, ctx: RunContext, cases: Sequence[Case], results: dict[str, ListScores]
    ) -> None:
        """``stages/<stage>.per_user.npz``: every system's Hit/NDCG/MRR@k per answered user,
        for ``recai eval``'s paired comparison of runs."""
        keep = np.array([s.answered(c) for c in cases], dtype=bool)
        users = np.array([c.user for c in cases], dtype=np.int64)[keep]
        values: dict[str, np.ndarray] = {}
        columns: list[str] = []
        for name, scores in results.items():
            cols = s.measured(cases, ranking_values(scores.ranks, self.k))
            columns = list(cols)
            if columns:
                values[name] = np.column_stack([cols[c] for c in columns])
        if not columns or not len(users):
            return
        try:
            save_per_user(ctx.out_dir / per_user_file(s.stage), "user", users, columns, values)
        except OSError as e:
            raise RecaiError(
                f"{s.stage}: cannot write the per-user values into {ctx.out_dir}: "
                f"{e.strerror or e}; free the path or choose another --out folder"
            ) from None

    def _prompt(
        self,
        s: Session,
        case: Case,
        order: list[int],
        template: str,
        knowledge: recai.KnowledgePrompter | None,
    ) -> tuple[list[Message], int]:
        """One user's messages, and the tokens the knowledge added (four characters each)."""
        p = self.params
        text = render(
            template,
            self.placeholders["template"],
            history=numbered(s.items(case.shown(p.max_history))),
            candidates=bulleted(s.items(order)),
            n=len(order),
        )
        messages = s.messages(text, self.system_prompt)
        if knowledge is None:
            return messages, 0
        augmented = knowledge.augment(
            messages,
            history=ItemList(np.asarray(case.history, dtype=np.int64)),
            candidates=ItemList(np.asarray(order, dtype=np.int64)),
        )
        extra = sum(len(m.content) for m in augmented) - sum(len(m.content) for m in messages)
        return augmented, math.ceil(max(extra, 0) / 4)

    def _generated(
        self,
        s: Session,
        cases: Sequence[Case],
        orders: Sequence[list[int]],
        prompts: Sequence[list[Message]],
        knowledge: recai.KnowledgePrompter | None,
        name: str,
    ) -> ListScores:
        """Generation mode under the schema of each prompt's candidate titles."""
        caller = SchemaCaller(self.params.llm, s.options)
        _keyed_by(caller, knowledge)
        requests = [
            (m, ranking_schema([s.catalog.title(int(i)) for i in order]))
            for m, order in zip(prompts, orders, strict=True)
        ]
        answers = s.runner.run(caller, requests, desc=f"{s.stage}: ranking ({name})")
        return score_schema_answers(s, cases, answers, orders)

    def _scored(
        self,
        s: Session,
        cases: Sequence[Case],
        orders: Sequence[list[int]],
        prompts: Sequence[list[Message]],
        knowledge: recai.KnowledgePrompter | None,
        name: str,
    ) -> ListScores:
        """Scoring mode: each user's candidates ranked by the titles' log-probabilities."""
        p = self.params
        caller = ScoreCaller(p.llm)
        _keyed_by(caller, knowledge)
        titles = [[s.catalog.title(int(i)) for i in order] for order in orders]
        answers = s.runner.run(
            caller,
            [(m, t) for m, t in zip(prompts, titles, strict=True)],
            desc=f"{s.stage}: scoring ({name})",
        )
        neutral: list[Answer] = []
        if p.score_norm == "calibrated":
            bare = s.messages(QUESTION, self.system_prompt)
            plain = ScoreCaller(p.llm)  # the question alone: no knowledge in the key
            neutral = s.runner.run(
                plain, [(bare, t) for t in titles], desc=f"{s.stage}: calibrating"
            )
        out = ListScores()
        for n, (case, order, answer) in enumerate(zip(cases, orders, answers, strict=True)):
            base: dict[str, Any] = {"cached": answer.cached, "candidates": list(order)}
            got = answer
            if answer.ok and neutral and not neutral[n].ok:
                got = neutral[n]
            if not got.ok:
                s.no_answer(case, "scoring", got)
                s.record(case, **base, error=got.error)
                out.ranks.append(int(MISSED))
                out.flags.append(None)
                continue
            values, error = _read_scores(answer.text, len(order))
            if error is None and neutral:
                prior, error = _read_scores(neutral[n].text, len(order))
                if prior is not None and values is not None:
                    values = values - prior
            if values is None or error is not None:
                s.fail(case, "scoring", error or "unusable scores")
                s.record(case, **base, answer=answer.text, error=error)
                out.ranks.append(int(MISSED))
                out.flags.append(None)
                continue
            if p.score_norm == "per_char":
                values = values / np.array([max(len(t), 1) for t in titles[n]], dtype=np.float64)
            ranking = [int(order[j]) for j in np.argsort(-values, kind="stable")]
            rank = ranking.index(int(case.target)) if case.target in ranking else int(MISSED)
            out.ranks.append(rank)
            out.flags.append({})
            s.record(
                case,
                **base,
                scores=[round(float(v), 4) for v in values],
                items=ranking,
                rank=None if rank == int(MISSED) else rank,
            )
        return out


class ScoreCaller(Caller):
    """Asks an LLM backend for the log-probability of each continuation after a prompt;
    requests are ``(messages, continuations)``, answers the scores as JSON text (so they are
    cached like any answer)."""

    def __init__(self, llm: Any, options: dict[str, Any] | None = None):
        super().__init__(llm, {"score_continuations": True, **(options or {})})

    def payload(self, request: tuple[Sequence[Message], Sequence[str]]) -> Any:
        messages, continuations = request
        return {"messages": [m.to_dict() for m in messages], "continuations": list(continuations)}

    def ask(self, request: tuple[Sequence[Message], Sequence[str]]) -> tuple[str, dict[str, Any]]:
        messages, continuations = request
        scores = self.component.score_continuations(list(messages), list(continuations))
        return json.dumps([float(x) for x in scores]), {}


def effect_note(name: str, effect: dict[str, dict[str, Any]]) -> str:
    """One line per knowledge system: its paired difference in the deepest NDCG from none."""
    ndcg = [m for m in effect if m.startswith("NDCG@")]
    metric = max(ndcg, key=lambda m: int(m.split("@")[1])) if ndcg else next(iter(effect))
    e = effect[metric]
    verdict = (
        "significant" if e["p_test"] < 0.05 and e["low"] * e["high"] > 0 else "not significant"
    )
    return (
        f"{name}: {metric} {e['delta']:+.4f} [{e['low']:+.4f}, {e['high']:+.4f}] against no "
        f"knowledge ({e['test']} p = {e['p_test']:.3g}, {int(e['pairs'])} users; {verdict} at 5%)."
    )


def _read_scores(text: str | None, n: int) -> tuple[np.ndarray | None, str | None]:
    """The scores of an answer, or why they are unusable."""
    try:
        values = np.asarray(json.loads(text or ""), dtype=np.float64)
    except (ValueError, TypeError):
        return None, f"the scores are not a list of numbers: {str(text)[:80]!r}"
    if values.shape != (n,):
        return None, f"{values.size} scores for {n} candidates"
    if np.isnan(values).any():
        return None, "a score is NaN"
    return values, None


def _constrained(llm: Any, name: str, constrain: str) -> bool:
    """Whether generation mode asks under the candidates' schema (see ``constrain``)."""
    if constrain == "never":
        return False
    if takes_schema(llm):
        return True
    if constrain == "always":
        raise RecaiError(
            f"llm-ranking.v1: constrain = 'always' asks for the ranked list under a JSON "
            f"schema, and the llm {name!r} ({type(llm).__name__}) takes none ('json_schema' is "
            "not in its capabilities); use a backend that does (recai-hf's hf.v1, recai-openai's "
            "openai.v1), or set constrain = 'auto' to ask it in words"
        )
    return False


def _check_can_score(llm: Any, name: str) -> None:
    """A backend without ``score_continuations`` cannot run scoring mode: say so at once."""
    if type(llm).score_continuations is recai.LLMBackend.score_continuations:
        raise RecaiError(
            f"llm-ranking.v1: mode = 'score' ranks by log-probabilities, and the llm {name!r} "
            f"({type(llm).__name__}) cannot score continuations; use a backend that can "
            "(recai-hf's hf.v1, or recai-openai's openai.v1 against a server that returns "
            "prompt logprobs), or set mode = 'generate'"
        )


def _keyed_by(caller: Any, knowledge: recai.KnowledgePrompter | None) -> None:
    """With knowledge, the caller's cache key names the prompter beside the LLM, so answers
    with and without knowledge (or with another prompter) are kept apart."""
    if knowledge is not None:
        caller.description = {
            "llm": caller.description,
            "knowledge": describe_component(knowledge),
        }
