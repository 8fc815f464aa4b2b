"""explanation.v1: an LLM judge compares two systems' explanations, in both orders.

RecLM-eval's *explanation* task. For each sampled user, two systems (LLM backends given the
explanation prompt, or :class:`recai.Explainer` components) explain why the user's held-out
item suits them. A judge LLM sees both explanations twice, once as (A, B) and once as (B, A),
scores each on informativeness, persuasiveness and helpfulness (1-3) and gives a verdict
(``[[A]]``, ``[[B]]`` or ``[[C]]`` for a tie). The evaluated system **wins** a sample when the
judge prefers it in both orders, **loses** when the judge prefers the baseline in both orders,
and **ties** otherwise (a tie verdict, or verdicts that flip with the order: position bias).
``consistent_verdicts`` in the report's info counts samples whose two verdicts agree.

A sample whose explanation or judge call raised has no result: it is left out of every rate
and asked again on a rerun (:mod:`.base`). A sample fails when a system gives an empty
explanation or a verdict cannot be read; it then counts as neither win, tie nor loss but in
``failure_rate`` (the four rates add up to 1 over the answered samples). Aspect scores are
means over the judgements that had readable scores (each sample gives each system two).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import recai
from recai.runtime import RunContext
from recai.types import Report

from .base import Case, LLMTask, Session, fixed_text, sample_cases
from .lists import snippet
from .params import ExplanationParams
from .parsing import parse_scores, parse_verdict
from .prompts import EXPLAIN, JUDGE, JUDGE_SYSTEM, numbered, render
from .scoring import mean_and_intervals

__all__ = ["ExplanationEvaluator", "ASPECTS"]

ASPECTS = ("informativeness", "persuasiveness", "helpfulness")


class ExplanationEvaluator(LLMTask):
    """Pairwise judged explanations: win/tie/loss of ``llm`` against ``baseline``.

    ``template`` (the explanation prompt) may use ``{history}``, ``{item}`` and ``{words}``;
    ``judge_template`` may use ``{history}``, ``{item}``, ``{answer_a}`` and ``{answer_b}``.
    """

    Params = ExplanationParams
    positional = ("dataset", "llm", "baseline", "judge")
    default_template = EXPLAIN
    params: ExplanationParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # LLMTask: params, system_prompt, template
        p = self.params
        self.judge_system_prompt = fixed_text(
            JUDGE_SYSTEM if p.judge_system_prompt is None else p.judge_system_prompt,
            "judge_system_prompt",
        )
        self.judge_template = JUDGE if p.judge_template is None else p.judge_template

    def _explain(self, s: Session, system: Any, cases: list[Case], desc: str) -> list:
        if isinstance(system, recai.LLMBackend):
            requests: list[Any] = [
                s.messages(
                    render(
                        self.template,
                        self.placeholders["template"],
                        history=numbered(s.items(c.shown(self.params.max_history))),
                        item=s.item(c.target),
                        words=self.params.words,
                    ),
                    self.system_prompt,
                )
                for c in cases
            ]
        else:
            requests = [
                ([int(i) for i in c.shown(self.params.max_history)], int(c.target)) for c in cases
            ]
        return s.ask(system, requests, desc)

    def evaluate(self, ctx: RunContext) -> Report:
        s = Session(self, ctx)
        cases, counts = sample_cases(s.data, s.split, self.params.samples, s.seed)
        names = ctx.names_of([self.params.llm, self.params.baseline])
        mine = self._explain(s, self.params.llm, cases, "explanations")
        theirs = self._explain(s, self.params.baseline, cases, "baseline explanations")

        judged: list[tuple[Case, str, str]] = []
        for case, a, b in zip(cases, mine, theirs, strict=True):
            explanations = {names[0]: a.text, names[1]: b.text}
            pairs = ((names[0], a), (names[1], b))
            raised = next(((who, x) for who, x in pairs if not x.ok), None)
            if raised is not None:
                who, answer = raised
                s.no_answer(case, f"explanation by {who}", answer)
                s.record(case, explanations=explanations, error=f"{who}: {answer.error}")
                continue
            empty = next((who for who, x in pairs if not (x.text or "").strip()), None)
            if empty is not None:
                problem = f"{empty}: empty explanation"
                s.fail(case, "explanation", problem)
                s.record(case, explanations=explanations, error=problem)
            else:
                judged.append((case, a.text or "", b.text or ""))
        requests = []
        for case, a, b in judged:
            history = numbered(s.items(case.shown(self.params.max_history)))
            for answer_a, answer_b in ((a, b), (b, a)):
                text = render(
                    self.judge_template,
                    self.placeholders["judge_template"],
                    history=history,
                    item=s.item(case.target),
                    answer_a=answer_a,
                    answer_b=answer_b,
                )
                requests.append(s.messages(text, self.judge_system_prompt))
        verdicts = s.ask(
            self.params.judge, requests, "judge", {"max_tokens": self.params.judge_max_tokens}
        )

        outcome = {
            "win": np.zeros(len(cases)),
            "tie": np.zeros(len(cases)),
            "loss": np.zeros(len(cases)),
        }
        failed = np.ones(len(cases))
        position = {c.sample: i for i, c in enumerate(cases)}
        aspect_scores: dict[str, dict[str, list[float]]] = {
            n: {a: [] for a in ASPECTS} for n in names
        }
        consistent = 0
        for j, (case, a, b) in enumerate(judged):
            first, second = verdicts[2 * j], verdicts[2 * j + 1]
            record: dict[str, Any] = {"explanations": {names[0]: a, names[1]: b}}
            bad = next((x for x in (first, second) if not x.ok), None)
            if bad is not None:
                s.no_answer(case, "judge", bad)
                s.record(case, **record, error=bad.error)
                continue
            v1, v2 = parse_verdict(first.text or ""), parse_verdict(second.text or "")
            if v1 is None or v2 is None:
                unparsed = first.text if v1 is None else second.text
                error = f"no verdict ([[A]], [[B]] or [[C]]) in the judgement: {snippet(unparsed or '')!r}"
                s.fail(case, "judge-parse", error)
                s.record(case, **record, judgements=[first.text, second.text], error=error)
                continue
            i = position[case.sample]
            failed[i] = 0
            # in order 1 the evaluated system is A; in order 2 it is B
            if v1 == "A" and v2 == "B":
                result = "win"
            elif v1 == "B" and v2 == "A":
                result = "loss"
            else:
                result = "tie"
            outcome[result][i] = 1
            consistent += (v1, v2) in {("A", "B"), ("B", "A"), ("C", "C")}
            for order, judgement in ((0, first), (1, second)):
                scores = parse_scores(judgement.text or "", ASPECTS)
                if scores is None:
                    continue
                sides = ("A", "B") if order == 0 else ("B", "A")
                for name, side in zip(names, sides, strict=True):
                    for aspect in ASPECTS:
                        aspect_scores[name][aspect].append(scores[side][aspect])
            s.record(
                case,
                **record,
                verdicts=[v1, v2],
                result=result,
                judgements=[first.text, second.text],
            )

        columns = {
            "win_rate": outcome["win"],
            "tie_rate": outcome["tie"],
            "loss_rate": outcome["loss"],
        }
        rates, intervals = mean_and_intervals(
            s.measured(cases, columns), self.params.bootstrap, s.seed
        )
        measured_failed = s.measured(cases, {"failed": failed})["failed"]
        fail_rate = float(measured_failed.mean()) if len(measured_failed) else 0.0
        metrics: dict[str, dict[str, float]] = {}
        scored: dict[str, int] = {}
        for k, name in enumerate(names):
            win, loss = ("win_rate", "loss_rate") if k == 0 else ("loss_rate", "win_rate")
            row = {
                "win_rate": rates[win],
                "tie_rate": rates["tie_rate"],
                "loss_rate": rates[loss],
                "failure_rate": fail_rate,
            }
            for aspect in ASPECTS:
                values = aspect_scores[name][aspect]
                if values:
                    row[aspect] = float(np.mean(values))
            scored[name] = len(aspect_scores[name][ASPECTS[0]])
            metrics[name] = row
        protocol = (
            f"leave-one-out by time; each system explains why the held-out item suits the user "
            f"(last {self.params.max_history} history items shown); the judge compares the two "
            "explanations in both orders; win = preferred in both orders, loss = the other system "
            "preferred in both, tie otherwise; aspects scored 1-3"
        )
        info = s.info(
            protocol,
            len(cases),
            counts,
            task="explanation",
            systems={
                names[0]: self.describe(self.params.llm),
                names[1]: self.describe(self.params.baseline),
            },
            judge=self.describe(self.params.judge),
            words=self.params.words,
            max_history=self.params.max_history,
            fields=list(self.params.fields),
            judged_samples=len(judged),
            consistent_verdicts=int(consistent),
            judgements_with_scores=scored,
        )
        intervals_by_system = {names[0]: intervals} if intervals else None
        return s.report(metrics, info, intervals_by_system)
