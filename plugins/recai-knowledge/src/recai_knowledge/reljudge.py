"""An LLM's judgment of which knowledge-graph relations are relevant to a recommendation.

``knowledge-kgpaths.v1`` with ``relation_llm`` asks a model, once at fit time and over the
relation vocabulary (never per request), which kinds of link between two items are a reason to
recommend one to a person who liked the other. Relations are judged by *kind*: the noun a
relation says (``film.film.directed_by`` and ``film.director.film`` are both "director"), one
question per kind.

**Scoring** (every backend with ``score_continuations``, the embedded SmolLM2 included): a
135M model cannot be trusted to write a list, but it can be read. For each kind the question
"...Two movies are linked because they have the same director (or: one is the sequel of the
other). Is that link a good reason...? Answer yes or no." is scored with the continuations
``Yes``/``yes`` and ``No``/``no`` (one batched pass); the kind's *margin* is
``log P(yes) - log P(no)`` (each the log-sum of its two spellings) minus the same margin for a
content-free question (the link ``N/A``), which removes the model's bias towards one answer
(calibration, Zhao et al. 2021). The kinds are ranked by margin; the top ``keep`` share is
kept (at least one), or, with ``margin`` given, those whose margin is at least that.

**A scored statement** (``how = "statement"``, two calls in all): the sentence "When a person
liked one of the movies, a good recommendation is another one with the same <kind>." is scored
for every kind after a request to finish it and after the content-free ``N/A``; a kind's score
is the difference (pointwise mutual information: what the request adds, not how common or long
the word is), centred on the mean over the kinds, so a margin is relative to the average kind.

**Asking** (a backend that cannot score, e.g. an OpenAI-compatible chat model without
log-probabilities): one call listing the kinds, answered under a JSON schema whose items are an
enum of the kinds (where the backend has ``json_schema``; else the JSON is found in its reply);
the kinds it names are kept.

A verdict that keeps no kind is not applied (the relations stay as the other pruning left them,
and the judgment says so): a graph without relations gives no knowledge at all.

>>> logsumexp([0.0, 0.0]) == math.log(2)
True
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import recai
from recai.errors import RecaiError
from recai.types import Message

__all__ = [
    "DEFAULT_QUESTION",
    "RelationJudgeError",
    "RelationJudgment",
    "judge_relations",
    "link_clause",
    "logsumexp",
]

log = logging.getLogger(__name__)

#: The question scored for each kind of relation: ``{domain}`` (what the items are) and
#: ``{link}`` (the kind as a clause, :func:`link_clause`).
DEFAULT_QUESTION = (
    "We recommend {domain} to a person based on the {domain} the person liked before. Two "
    "{domain} are linked because {link}. Is that link a good reason to expect that someone who "
    "liked one of them will like the other? Answer yes or no."
)
#: The link of the content-free question (calibration).
NEUTRAL = "N/A"
YES = ("Yes", "yes")
NO = ("No", "no")
#: ``relation_judge = "statement"``: the sentence whose last word is scored, one per kind.
STATEMENT = (
    "When a person liked one of the {domain}, a good recommendation is another one with the same"
)
FINISH = "Finish this sentence with the most important property: "
ASK = (
    "We recommend {domain} to a person based on the {domain} the person liked before. Two "
    "{domain} can be linked in these ways:\n{kinds}\nWhich of these links are good reasons to "
    "expect that someone who liked one of them will like the other? Answer with JSON only: "
    '{{"relevant": [the names of the relevant links, as written before the parentheses]}}.'
)
SYSTEM = "You are an expert in recommender systems. Answer briefly."


class RelationJudgeError(RecaiError):
    """The relation LLM's answer could not be used (scores missing or not numbers, no JSON)."""


@dataclass
class RelationJudgment:
    """What the model said: per kind, whether it is kept and why (for the prompter's fit info)."""

    #: ``"yes-no"`` or ``"statement"`` (scored) or ``"ask"`` (one answer under a JSON schema).
    method: str
    #: The kinds judged, in the order given.
    kinds: list[str]
    #: The kinds kept.
    kept: set[str]
    #: Per kind: its calibrated margin (scored), rank (1: most relevant) and verdict text.
    detail: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The content-free question's margin (``yes-no``), subtracted from every kind's.
    baseline: float | None = None
    #: False when the verdict kept no kind and so was not applied.
    applied: bool = True
    #: The model's raw answer (``ask``), for the record.
    answer: str | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "applied": self.applied,
            "kept": [k for k in self.kinds if k in self.kept],
            "kinds": self.detail,
        }
        if self.baseline is not None:
            out["baseline_margin"] = round(self.baseline, 4)
        if self.answer is not None:
            out["answer"] = self.answer
        return out


def link_clause(kind: str, direct: bool = False) -> str:
    """The kind of relation as the clause of the question: a shared entity ("they have the
    same director") or a direct link between two items ("one is the sequel of the other").

    >>> link_clause("director"), link_clause("sequel", direct=True)
    ('they have the same director', 'one is the sequel of the other')
    """
    return f"one is the {kind} of the other" if direct else f"they have the same {kind}"


def logsumexp(values: Sequence[float]) -> float:
    """``log(sum(exp(v)))`` without overflow."""
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def judge_relations(
    llm: recai.LLMBackend,
    kinds: Sequence[str],
    *,
    domain: str,
    keep: float = 0.5,
    margin: float | None = None,
    question: str = DEFAULT_QUESTION,
    direct: Collection[str] = (),
    how: str = "yes-no",
    who: str = "relation_llm",
) -> RelationJudgment:
    """Judge ``kinds`` with ``llm``: by scoring where it can (``how``: ``"yes-no"`` or
    ``"statement"``), else by one JSON answer (see the module docstring). ``direct``: the kinds
    that link two items directly (a sequel), asked about as such; ``who`` names the param in
    messages."""
    kinds = list(dict.fromkeys(kinds))
    if not kinds:
        return RelationJudgment(how, [], set(), applied=False)
    links = {k: link_clause(k, k in direct) for k in kinds}
    try:
        if how == "statement":
            judgment = _by_statement(llm, kinds, domain, keep, margin, who)
        else:
            judgment = _by_yes_no(llm, kinds, links, domain, keep, margin, question, who)
    except NotImplementedError:
        judgment = _by_asking(llm, kinds, links, domain, who)
    if not judgment.kept:
        judgment.applied = False
        log.warning(
            "%s kept no kind of relation (%s); its verdict is not applied",
            who,
            judgment.method,
        )
    else:
        log.info(
            "%s (%s) kept %d of %d kinds of relation: %s",
            who,
            judgment.method,
            len(judgment.kept),
            len(kinds),
            ", ".join(k for k in kinds if k in judgment.kept),
        )
    return judgment


def _scores(
    llm: recai.LLMBackend, messages: list[Message], continuations: list[str], who: str
) -> list[float]:
    """``llm``'s log-probabilities of ``continuations`` after ``messages``, checked (one per
    continuation, no NaN or +inf; -inf taken as -10,000: as good as impossible)."""
    scores = llm.score_continuations(messages, continuations)
    values = [float(s) for s in scores]
    usable = all(not math.isnan(v) and v != math.inf for v in values)
    if len(values) != len(continuations) or not usable:
        raise RelationJudgeError(
            f"{who}: {type(llm).__name__}.score_continuations gave {scores!r} for the "
            f"{len(continuations)} continuations {continuations!r}; expected one "
            "log-probability each"
        )
    return [max(v, -1e4) for v in values]


def _margin(llm: recai.LLMBackend, text: str, who: str) -> float:
    values = _scores(llm, [Message.system(SYSTEM), Message.user(text)], [*YES, *NO], who)
    return logsumexp(values[: len(YES)]) - logsumexp(values[len(YES) :])


def _by_yes_no(
    llm: recai.LLMBackend,
    kinds: list[str],
    links: dict[str, str],
    domain: str,
    keep: float,
    margin: float | None,
    question: str,
    who: str,
) -> RelationJudgment:
    baseline = _margin(llm, question.format(domain=domain, link=NEUTRAL), who)
    margins = {
        k: _margin(llm, question.format(domain=domain, link=links[k]), who) - baseline
        for k in kinds
    }
    judgment = _ranked("yes-no", kinds, margins, keep, margin, who, "yes-over-no margin")
    judgment.baseline = baseline
    return judgment


def _by_statement(
    llm: recai.LLMBackend,
    kinds: list[str],
    domain: str,
    keep: float,
    margin: float | None,
    who: str,
) -> RelationJudgment:
    start = STATEMENT.format(domain=domain)
    conts = [f"{start} {k}." for k in kinds]
    asked = _scores(
        llm, [Message.system(SYSTEM), Message.user(FINISH + start + " ...")], conts, who
    )
    neutral = _scores(llm, [Message.system(SYSTEM), Message.user(NEUTRAL)], conts, who)
    pmi = [a - b for a, b in zip(asked, neutral, strict=True)]
    mean = sum(pmi) / len(pmi)
    margins = {k: v - mean for k, v in zip(kinds, pmi, strict=True)}
    return _ranked("statement", kinds, margins, keep, margin, who, "statement score")


def _ranked(
    method: str,
    kinds: list[str],
    margins: dict[str, float],
    keep: float,
    margin: float | None,
    who: str,
    what: str,
) -> RelationJudgment:
    """Rank ``kinds`` by ``margins`` (ties: the given order) and keep the top ``keep`` share
    (at least one) or those at ``margin`` or above."""
    order = sorted(kinds, key=lambda k: (-margins[k], kinds.index(k)))
    if margin is None:
        n_keep = max(1, math.ceil(keep * len(kinds) - 1e-9))
        kept = set(order[:n_keep])
        rule = f"top {n_keep} of {len(kinds)} kept (relation_keep {keep:g})"
    else:
        kept = {k for k in kinds if margins[k] >= margin}
        rule = f"kept at margin >= {margin:g}"
    detail = {}
    for rank, k in enumerate(order, 1):
        verdict = "kept" if k in kept else "dropped"
        detail[k] = {
            "margin": round(margins[k], 4),
            "rank": rank,
            "kept": k in kept,
            "why": f"{who}: {what} {margins[k]:+.2f} (calibrated), rank {rank}; {verdict}: {rule}",
        }
    return RelationJudgment(method, kinds, kept, detail)


def _schema(kinds: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "relevant": {
                "type": "array",
                "items": {"type": "string", "enum": kinds},
                "uniqueItems": True,
                "maxItems": len(kinds),
            }
        },
        "required": ["relevant"],
        "additionalProperties": False,
    }


def _by_asking(
    llm: recai.LLMBackend, kinds: list[str], links: dict[str, str], domain: str, who: str
) -> RelationJudgment:
    from recai.jsontext import extract_json

    text = ASK.format(domain=domain, kinds="\n".join(f"- {k} ({links[k]})" for k in kinds))
    messages = [Message.system(SYSTEM), Message.user(text)]
    constrained = "json_schema" in getattr(llm, "capabilities", ())
    completion = llm.chat(
        messages,
        max_tokens=24 + 8 * len(kinds),
        temperature=0.0,
        json_schema=_schema(kinds) if constrained else None,
    )
    reply = completion.text
    try:
        value = extract_json(reply, kind="object").value
    except RecaiError as exc:
        raise RelationJudgeError(
            f"{who}: {type(llm).__name__} cannot score continuations, so it was asked which "
            f"relations are relevant, and its reply has no JSON object ({exc}); reply: "
            f"{reply[:200]!r}"
        ) from None
    chosen = value.get("relevant")
    if not isinstance(chosen, list):
        raise RelationJudgeError(
            f"{who}: the reply's JSON has no list 'relevant' (the relevant relations); reply: "
            f"{reply[:200]!r}"
        )
    wanted = {str(c).strip().lower() for c in chosen}
    kept = {k for k in kinds if k.lower() in wanted}
    how = "asked once under a JSON schema" if constrained else "asked once for JSON"
    detail = {
        k: {
            "kept": k in kept,
            "why": f"{who} ({how}) {'named' if k in kept else 'did not name'} it as relevant",
        }
        for k in kinds
    }
    return RelationJudgment("ask", kinds, kept, detail, answer=reply[:500])
