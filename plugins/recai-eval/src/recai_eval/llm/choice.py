"""cf-ranking-mc.v1 and seq-ranking-mc.v1: multiple choice among lettered options (A-J).

RecLM-eval's two multiple-choice tasks, one positive and ``n_options - 1`` negatives (items the
user never interacted with, drawn by :func:`recai.data.sample_candidates`) in a per-user random
order, labelled with letters:

- **cf-ranking-mc** (collaborative): the shown history is shuffled (no order), one of its items
  is taken out and becomes the positive: "which of these has the user also interacted with?"
- **seq-ranking-mc** (sequential): the shown history keeps its time order and the positive is
  the held-out next item: "which will the user choose next?"

An answer is read as a letter (``B``, ``(B)``, ``Answer: b``, ``[[B]]``...) or, failing that, as
the title of one option. ``accuracy`` counts correct answers over the answered samples (a
sample whose call raised is left out and asked again on a rerun: :mod:`.base`). Beside it:
``out_of_candidates_rate`` (a letter beyond the options, or a title that is no option) and
``failure_rate`` (nothing readable in the answer); ``info["choices"]`` counts how often each
letter was chosen (position bias shows there).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from recai.runtime import RunContext
from recai.types import Report

from .base import Case, LLMTask, Session, sample_cases
from .lists import snippet
from .params import ChoiceParams
from .parsing import LETTERS, parse_choice
from .prompts import CF_CHOICE, SEQ_CHOICE, lettered, numbered, render
from .ranking import candidate_sets
from .scoring import mean_and_intervals

__all__ = ["ChoiceTask", "CFRankingMCEvaluator", "SeqRankingMCEvaluator"]


class ChoiceTask(LLMTask):
    """Shared machinery of the two multiple-choice tasks."""

    task: ClassVar[str] = ""
    Params = ChoiceParams
    positional = ("dataset", "llm")
    params: ChoiceParams

    # -- what differs between the tasks -----------------------------------------------------------
    min_history: ClassVar[int] = 1

    def question(
        self, s: Session, case: Case, negatives: list[int]
    ) -> tuple[list[int], int, list[int]] | None:
        """``(history to show, positive item, options in order)``, or ``None`` when the user's
        history cannot make a question (left out and counted)."""
        raise NotImplementedError

    def describe_protocol(self, s: Session) -> str:
        raise NotImplementedError

    # -- running ----------------------------------------------------------------------------------
    def evaluate(self, ctx: RunContext) -> Report:
        s = Session(self, ctx)
        sampled, counts = sample_cases(
            s.data, s.split, self.params.samples, s.seed, min_history=self.min_history
        )
        cases, rows, dropped = candidate_sets(s, sampled, self.params.n_options)
        letters = f"{LETTERS[0]}-{LETTERS[self.params.n_options - 1]}"
        questions, prompts, asked = [], [], []
        for case, row in zip(cases, rows, strict=True):
            negatives = [i for i in row if i != case.target]
            question = self.question(s, case, negatives)
            if question is None:
                dropped += 1
                continue
            shown, positive, options = question
            asked.append(case)
            questions.append((positive, options, set(shown)))
            text = render(
                self.template,
                self.placeholders["template"],
                history=numbered(s.items(shown)),
                options=lettered(s.items(options)),
                n=len(options),
                letters=letters,
            )
            prompts.append(s.messages(text, self.system_prompt))
        cases = asked
        answers = s.ask(self.params.llm, prompts, self.task)

        correct, outside, in_history, failed = (np.zeros(len(cases)) for _ in range(4))
        chosen: dict[str, int] = {}
        by_title = conflicts = 0
        for i, (case, answer, (positive, options, shown_set)) in enumerate(
            zip(cases, answers, questions, strict=True)
        ):
            record: dict[str, Any] = {
                "positive": positive,
                "options": options,
                "cached": answer.cached,
            }
            if not answer.ok:
                s.no_answer(case, "answer", answer)
                s.record(case, **record, error=answer.error)
                continue
            text = answer.text or ""
            index, how = parse_choice(
                text,
                len(options),
                match=lambda t, o=options: s.matcher.among(t, o),  # type: ignore[misc]
            )
            named = _named_item(s, text)
            flags = {
                "out_of_candidates": _beyond(text, len(options))
                or (named is not None and named not in options),
                "in_history": named is not None and named in shown_set,
            }
            outside[i], in_history[i] = flags["out_of_candidates"], flags["in_history"]
            if index is None and not any(flags.values()):
                error = f"no option letter or title in the answer: {snippet(text)!r}"
                s.fail(case, "parse", error)
                s.record(case, **record, answer=text, error=error)
                failed[i] = 1
                continue
            if index is None:
                s.record(case, **record, answer=text, choice=None, named=named, flags=flags)
                continue
            letter = LETTERS[index]
            chosen[letter] = chosen.get(letter, 0) + 1
            by_title += how == "title"
            conflict = named is not None and named in options and named != options[index]
            conflicts += conflict
            correct[i] = float(options[index] == positive)
            s.record(
                case,
                **record,
                answer=text,
                choice=letter,
                read_as=how,
                named=named,
                flags=flags,
                letter_title_conflict=conflict,
                correct=bool(correct[i]),
            )

        accuracy, intervals = mean_and_intervals(
            s.measured(cases, {"accuracy": correct}), self.params.bootstrap, s.seed
        )
        errors, _ = mean_and_intervals(
            s.measured(
                cases,
                {
                    "out_of_candidates_rate": outside,
                    "in_history_rate": in_history,
                    "failure_rate": failed,
                },
            ),
            0,
            s.seed,
        )
        name = ctx.name_of(self.params.llm)
        info = s.info(
            self.describe_protocol(s),
            len(cases),
            counts,
            task=self.task,
            n_options=self.params.n_options,
            chance=1.0 / self.params.n_options,
            dropped_users=dropped,
            max_history=self.params.max_history,
            fields=list(self.params.fields),
            llm=self.describe(self.params.llm),
            choices=dict(sorted(chosen.items())),
            answers_read_as_title=int(by_title),
            letter_title_conflicts=int(conflicts),
        )
        notes = []
        if dropped:
            notes.append(
                f"{dropped} sampled users were left out: too few items to draw negatives from, "
                "or (cf) fewer than two distinct items in the shown history."
            )
        return s.report(
            {name: {**accuracy, **errors}}, info, {name: intervals} if intervals else None, notes
        )


_LETTER_MARK = re.compile(r"^\W*(?:answer\W*)?[\(\[]?[A-Za-z][.):\]]\s*", re.IGNORECASE)


def _named_item(s: Session, text: str) -> int | None:
    """The catalog item an answer names by title on its first line, after any option letter
    (``"A. Heat (1995)"`` names Heat whatever option A is), or ``None``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    rest = _LETTER_MARK.sub("", lines[0], count=1).strip()
    if len(rest) > 120 or sum(c.isalpha() for c in rest) < 3:
        return None
    return s.matcher.ground(rest)[0]


def _beyond(text: str, n: int) -> bool:
    """Whether the answer is a lone letter past the last option (``K`` with ten options)."""
    found = re.fullmatch(r"\W*([A-Za-z])\W*", text.strip())
    return found is not None and found.group(1).upper() in LETTERS[n:]


class CFRankingMCEvaluator(ChoiceTask):
    """cf-ranking-mc.v1: which option did the user also interact with? (history unordered)

    The shown history (last ``max_history`` items) is shuffled per user; one of its items,
    drawn per user, is removed (every occurrence) and is the right option. Users need at least
    two distinct items in the shown history.
    """

    task = "cf_ranking_mc"
    default_template = CF_CHOICE
    min_history = 2

    def question(
        self, s: Session, case: Case, negatives: list[int]
    ) -> tuple[list[int], int, list[int]] | None:
        rng = s.rng(case, 2)
        shown = [int(x) for x in rng.permutation(case.shown(self.params.max_history))]
        distinct = sorted(set(shown))
        if len(distinct) < 2:
            return None
        positive = int(distinct[int(rng.integers(len(distinct)))])
        rest = [x for x in shown if x != positive]
        options = [positive, *negatives]
        return rest, positive, [int(x) for x in rng.permutation(np.asarray(options))]

    def describe_protocol(self, s: Session) -> str:
        return (
            f"one item of the user's last {self.params.max_history} history items (shown shuffled) is "
            f"hidden among {self.params.n_options - 1} items the user never interacted with; the LLM "
            "picks the hidden one by letter; accuracy over the answered samples"
        )


class SeqRankingMCEvaluator(ChoiceTask):
    """seq-ranking-mc.v1: which option will the user choose next? (history in time order)"""

    task = "seq_ranking_mc"
    default_template = SEQ_CHOICE

    def question(
        self, s: Session, case: Case, negatives: list[int]
    ) -> tuple[list[int], int, list[int]] | None:
        options = [case.target, *negatives]
        order = s.rng(case, 3).permutation(np.asarray(options))
        return (
            [int(x) for x in case.shown(self.params.max_history)],
            int(case.target),
            [int(x) for x in order],
        )

    def describe_protocol(self, s: Session) -> str:
        return (
            f"leave-one-out by time; the held-out next item is hidden among {self.params.n_options - 1} "
            f"items the user never interacted with; the LLM sees the last {self.params.max_history} "
            "history items in time order and picks the next one by letter; accuracy over the "
            "answered samples"
        )
