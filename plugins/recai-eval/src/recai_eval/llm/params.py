"""The params models of the LLM task evaluators, one inheriting from another.

:class:`LLMTaskParams` holds what every task takes (the dataset, the sampled users, how items are
shown); :class:`AskingParams` adds how an LLM is asked (tokens, temperature, batching, retries,
the answer cache); :class:`GroundedParams` adds how answers are matched to catalog titles;
:class:`PromptParams` adds the one LLM under evaluation and its system prompt. Each task's model
subclasses the deepest one that fits and adds its own settings (or another default)::

    LLMTaskParams ─┬─ AskingParams ─┬─ GroundedParams ─┬─ PromptParams ─┬─ LLMRetrievalParams
                   │                │                  │                ├─ LLMRankingParams
                   │                │                  │                └─ ChoiceParams
                   │                │                  ├─ ConversationParams
                   │                │                  └─ AgentTurnParams ─┬─ AgentRetrievalParams
                   │                │                                      └─ AgentRankingParams
                   │                └─ ExplanationParams
                   └─ EmbeddingRetrievalParams ── EmbeddingRankingParams

The plugin's entry point names these models in the component specs (``params=
"recai_eval.llm.params:LLMRankingParams"``); the kernel imports them when params are first checked.

>>> fields = LLMRankingParams.model_fields
>>> fields["n_candidates"].default, fields["max_tokens"].default, fields["samples"].default
(20, 600, 100)
>>> sorted(placeholders_of(LLMRankingParams)["template"])
['candidates', 'history', 'n']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, model_validator

import recai
from recai.specs import Seed

from .parsing import DEFAULT_THRESHOLD
from .prompts import check_template

__all__ = [
    "LLMTaskParams",
    "AskingParams",
    "GroundedParams",
    "PromptParams",
    "LLMRetrievalParams",
    "LLMRankingParams",
    "ChoiceParams",
    "ExplanationParams",
    "ConversationParams",
    "AgentTurnParams",
    "AgentRetrievalParams",
    "AgentRankingParams",
    "EmbeddingRetrievalParams",
    "EmbeddingRankingParams",
    "Placeholders",
    "template_param",
    "placeholders_of",
    "DEFAULT_THRESHOLD",
    "MAX_SAMPLES",
    "MAX_TOKENS",
    "MAX_CUTOFF",
]

# -- bounds: what a recipe check accepts, a run can do -------------------------------------------
MAX_SAMPLES = 1_000_000
"""Most sampled users (each one or more LLM requests)."""
MAX_TOKENS = 1_048_576
"""Most tokens an answer may be asked for (the longest context windows of today's models)."""
MAX_CUTOFF = 10_000
"""Largest cut-off k and most items an LLM is asked to list."""
MAX_BOOTSTRAP = 20_000
"""Most bootstrap resamples (as ranking.v1)."""


class Placeholders(frozenset[str]):
    """Marks a params field as a prompt template and names the placeholders it may use."""


def template_param(*names: str) -> Any:
    """The annotation of a prompt template that may use only the placeholders ``names``; checked
    when params are validated, so a recipe error names the key."""
    allowed = Placeholders(names)

    def check(value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return check_template(value, allowed, info.field_name or "template")

    shown = ", ".join("{" + n + "}" for n in sorted(allowed)) or "no placeholders"
    return Annotated[
        str | None,
        AfterValidator(check),
        Field(description=f"replaces the default prompt text; may use {shown}"),
        allowed,
    ]


def placeholders_of(model: type[recai.Params]) -> dict[str, frozenset[str]]:
    """Field name -> the placeholders it may use, for every template field of ``model``."""
    out: dict[str, frozenset[str]] = {}
    for name, field in model.model_fields.items():
        for meta in field.metadata:
            if isinstance(meta, Placeholders):
                out[name] = frozenset(meta)
    return out


def _one_or_more(value: Any) -> Any:
    """One component (or its name) as a list of one; a list as it is."""
    if value is None or isinstance(value, (list, tuple)):
        return value
    return [value]


def _not_a_bool(value: Any) -> Any:
    """``true``/``false`` are no share (pydantic would read them as 1.0 and 0.0)."""
    if isinstance(value, bool):
        raise ValueError("a share from 0 to 1 is needed, not true or false")
    return value


# -- one annotation per setting ---------------------------------------------------------------
SystemPrompt = template_param()
Cutoffs = Annotated[
    Sequence[Annotated[int, Field(ge=1, le=MAX_CUTOFF)]],
    Field(
        min_length=1,
        max_length=32,
        description=f"cut-offs k of Hit/NDCG/MRR@k (at most 32), each 1 .. {MAX_CUTOFF:,}",
    ),
]
MaxTokens = Annotated[
    int | None,
    Field(ge=1, le=MAX_TOKENS, description=f"most tokens an answer may have (<= {MAX_TOKENS:,})"),
]
Samples = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_SAMPLES,
        description=f"users to sample (all eligible users if fewer; <= {MAX_SAMPLES:,})",
    ),
]


class LLMTaskParams(recai.Params):
    """What every LLM task takes: the data, the sampled users, how items are shown and how many
    samples may go unanswered (see :mod:`recai_eval.llm.base`)."""

    dataset: recai.DatasetSource = Field(description="the dataset to build prompts from")
    samples: Samples = 100
    seed: Seed | None = Field(
        None, description="seed for sampling users, candidates and orders; default: the run's"
    )
    max_history: int = Field(
        20, ge=1, le=10_000, description="most recent history items shown in prompts"
    )
    fields: Sequence[str] = Field(
        (), max_length=100, description="catalog fields shown after each title (e.g. genres)"
    )
    bootstrap: int = Field(
        1000,
        ge=0,
        le=MAX_BOOTSTRAP,
        description="bootstrap resamples for 95% intervals; 0: none",
    )
    max_failed_share: Annotated[float, BeforeValidator(_not_a_bool)] = Field(
        0.1,
        ge=0,
        le=1,
        description="largest share of samples that may get no answer (a call raised) for the "
        "stage to report; more, or none answered, fails the stage (exit code 1, or 2 for a "
        "user error such as a wrong key) and the next run asks them again",
    )


class AskingParams(LLMTaskParams):
    """A task that asks LLMs: generation options and how requests are sent."""

    max_tokens: MaxTokens = 300
    temperature: float | None = Field(
        0.0, ge=0, le=2, description="sampling temperature, 0 .. 2 (0: greedy)"
    )
    concurrency: int = Field(
        4,
        ge=1,
        le=1024,
        description="requests in flight at once (backends without native batching)",
    )
    batch_size: int = Field(
        8, ge=1, le=4096, description="requests per chat_batch call (native batching)"
    )
    retries: int = Field(0, ge=0, le=100, description="extra tries of a request that raised")
    cache: bool = Field(True, description="keep answers in <run>/llm-cache to reuse on reruns")


class GroundedParams(AskingParams):
    """A task that matches titles in answers to catalog items."""

    grounding: Literal["blend", "tfidf"] = Field(
        "blend", description="title matching: 'tfidf' (RecAI's char 3-gram TF-IDF) or 'blend'"
    )
    threshold: float = Field(
        DEFAULT_THRESHOLD,
        gt=0,
        le=1,
        description="lowest title-match score that names a catalog item",
    )


class PromptParams(GroundedParams):
    """A task that prompts one LLM under evaluation."""

    llm: recai.LLMBackend = Field(description="the LLM under evaluation")
    system_prompt: SystemPrompt = None


class LLMRetrievalParams(PromptParams):
    """``llm-retrieval.v1``: the LLM names items from a user's history."""

    n_recommend: int = Field(10, ge=1, le=MAX_CUTOFF, description="how many items the LLM names")
    k: Cutoffs = (1, 5, 10)
    template: template_param("history", "k") = None
    max_tokens: MaxTokens = 400


class LLMRankingParams(PromptParams):
    """``llm-ranking.v1``: the LLM ranks the held-out item among sampled negatives."""

    n_candidates: int = Field(
        20, ge=2, le=100, description="candidates: the held-out item and n-1 negatives"
    )
    negatives: Literal["uniform", "popularity"] = Field(
        "uniform", description="how negatives are drawn"
    )
    k: Cutoffs = (1, 5, 10)
    template: template_param("history", "candidates", "n") = None
    max_tokens: MaxTokens = 600
    mode: Literal["generate", "score"] = Field(
        "generate",
        description="'generate': the LLM writes the ranked list, which is parsed and grounded; "
        "'score': the candidates are ranked by the LLM's log-probability of each title after "
        "the prompt (one score_continuations call per user; for small local models that cannot "
        "write a clean list)",
    )
    constrain: Literal["auto", "always", "never"] = Field(
        "auto",
        description="generation mode: how the ranked list is asked for. 'auto' (default): "
        "under a JSON schema when the llm takes one ('json_schema' in its capabilities: "
        "recai-hf's hf.v1 decodes under it, recai-openai's openai.v1 sends it as "
        "response_format), else as 'never'. The schema asks for {\"ranking\": [...]} with exactly "
        "n items, each one of this prompt's candidate titles (an enum), so every answer grounds "
        "to the candidates; a repeated title keeps its first place and the candidates left out "
        "are appended in their shown (random) order. 'never': a numbered list in words, parsed "
        "and grounded in the catalog (a target it does not name is a miss). 'always': the "
        "schema, and an error for an llm without json_schema",
    )
    score_norm: Literal["sum", "per_char", "calibrated"] = Field(
        "sum",
        description="scoring mode: a title's score is its summed log-probability ('sum'), that "
        "divided by its length in characters ('per_char'), or that minus its log-probability "
        "after the question alone, without history and candidates ('calibrated': what the "
        "context adds, one more scoring call per user)",
    )
    knowledge: Annotated[
        Sequence[recai.KnowledgePrompter] | None, BeforeValidator(_one_or_more)
    ] = Field(
        None,
        description="writes domain knowledge into every prompt, given the user's history and "
        "the candidates (as ItemLists), as a system message before the question "
        "(KnowledgePrompter.augment); fitted on the task's training split, answers cached apart "
        "per knowledge config. One prompter or a list: each ranks the same users and "
        "candidates as a system named '<llm> + <prompter>'; with two or more, also without "
        "knowledge",
    )
    without_knowledge: bool = Field(
        False,
        description="also rank without knowledge (the system named after the llm) and report "
        "each knowledge system's paired difference from it (95% paired bootstrap interval, "
        "paired t-test); implied by two or more knowledge prompters",
    )

    @model_validator(mode="after")
    def _norm_fits_mode(self) -> LLMRankingParams:
        if self.knowledge is not None and not self.knowledge:
            raise ValueError(
                "knowledge: an empty list; name one knowledge prompter or more, or leave "
                "knowledge out"
            )
        if self.without_knowledge and self.knowledge is None:
            raise ValueError(
                "without_knowledge: there is no knowledge to compare with; name a knowledge "
                "prompter, or leave without_knowledge out"
            )
        if self.mode == "score" and self.constrain != "auto":
            raise ValueError(
                f"constrain: {self.constrain!r} applies to mode = 'generate' only (scoring mode "
                "writes no list); leave constrain out, or set mode = 'generate'"
            )
        if self.mode == "generate" and self.score_norm != "sum":
            raise ValueError(
                f"score_norm: {self.score_norm!r} applies to mode = 'score' only; leave "
                "score_norm out, or set mode = 'score'"
            )
        return self


class ChoiceParams(PromptParams):
    """``cf-ranking-mc.v1`` and ``seq-ranking-mc.v1``: the LLM picks one of lettered options."""

    n_options: int = Field(10, ge=2, le=26, description="options per question (A, B, ...)")
    template: template_param("history", "options", "n", "letters") = None
    max_tokens: MaxTokens = 64


_System = recai.LLMBackend | recai.Explainer


class ExplanationParams(AskingParams):
    """``explanation.v1``: a judge LLM compares two systems' explanations."""

    llm: _System = Field(
        description="the system under evaluation: an LLM backend (given the explanation "
        "prompt) or an explainer"
    )
    baseline: _System = Field(
        description="the system compared against: an LLM backend or an explainer"
    )
    judge: recai.LLMBackend = Field(description="the LLM that judges")
    samples: Samples = 50
    words: int = Field(100, ge=5, le=100_000, description="word limit asked of explanations")
    system_prompt: SystemPrompt = None
    template: template_param("history", "item", "words") = None
    judge_system_prompt: SystemPrompt = None
    judge_template: template_param("history", "item", "answer_a", "answer_b") = None
    judge_max_tokens: MaxTokens = 600


class ConversationParams(GroundedParams):
    """``conversation.v1``: a simulated user talks to a conversational recommender."""

    recommender: recai.Agent | recai.LLMBackend = Field(
        description="the conversational recommender under evaluation"
    )
    simulator: recai.LLMBackend | None = Field(
        None, description="the LLM that plays the user (needed with simulation = 'llm')"
    )
    simulation: Literal["llm", "scripted"] = Field(
        "llm",
        description="who plays the user: 'llm' (the simulator LLM, told the target) or "
        "'scripted' (no LLM: reveals one attribute of the target per turn, never its title; "
        "deterministic under the seed)",
    )
    script: Sequence[Literal["genres", "decade", "similar", "words", "fields"]] = Field(
        ("genres", "decade", "similar", "words", "fields", "similar", "words"),
        min_length=1,
        max_length=50,
        description="the clues the scripted user reveals, one per turn, in this order (a kind "
        "may repeat to reveal more: a second 'similar' names another history item)",
    )
    share_history: bool = Field(
        False,
        description="tell the recommender the user's history, as a recommender that knows its "
        "logged-in user: an agent gets a first system message named 'recai_context' (JSON: "
        "user, the whole history's ids and titles), an LLM the last max_history titles in a "
        "line of its system prompt",
    )
    samples: Samples = 50
    max_turns: int = Field(5, ge=1, le=50, description="turns per dialogue (N)")
    n_recommend: int = Field(
        10, ge=1, le=MAX_CUTOFF, description="items an LLM recommender is asked to list"
    )
    simulator_prompt: template_param("history", "target") = None
    recommender_prompt: template_param("k") = None
    greeting: SystemPrompt = None

    @model_validator(mode="after")
    def _simulator_fits_simulation(self) -> ConversationParams:
        if self.simulation == "llm" and self.simulator is None:
            raise ValueError(
                "simulator: an LLM that plays the user is needed with simulation = 'llm' (the "
                "default); name one, or set simulation = 'scripted' to use no LLM for the user"
            )
        if self.simulation == "scripted" and (
            self.simulator is not None or self.simulator_prompt is not None
        ):
            which = "simulator" if self.simulator is not None else "simulator_prompt"
            raise ValueError(
                f"{which}: the scripted user (simulation = 'scripted') asks no LLM and has no "
                f"prompt; leave {which} out, or set simulation = 'llm'"
            )
        return self


ClueKinds = Annotated[
    Sequence[Literal["genres", "decade", "similar", "words", "fields"]],
    Field(
        min_length=1,
        max_length=50,
        description="the clues about the target the request gives, in this order (the scripted "
        "user's kinds: genres, decade, similar, words, fields; a kind may repeat to say more)",
    ),
]


class AgentTurnParams(GroundedParams):
    """``agent-retrieval.v1`` and ``agent-ranking.v1``: one request describing a hidden target,
    one reply of an agent (see :mod:`recai_eval.llm.onestep`)."""

    agent: recai.Agent = Field(description="the agent under evaluation")
    simulation: Literal["scripted", "llm"] = Field(
        "scripted",
        description="who writes the request: 'scripted' (no LLM: the scripted user's clues "
        "about the target in one message, deterministic under the seed) or 'llm' (the simulator "
        "LLM rewrites those clues as a request; one that names the target is replaced by the "
        "scripted request and counted in leak_rate)",
    )
    simulator: recai.LLMBackend | None = Field(
        None, description="the LLM that writes the requests (needed with simulation = 'llm')"
    )
    script: ClueKinds = ("genres", "decade", "similar")
    share_history: bool = Field(
        True,
        description="tell the agent the user's history in its 'recai_context' message (as a "
        "recommender that knows its logged-in user); false: the message names no user and an "
        "empty history (it still carries k, and the candidates of a ranking request)",
    )
    simulator_prompt: template_param("attributes") = None
    max_tokens: MaxTokens = 120

    @model_validator(mode="after")
    def _simulator_fits_simulation(self) -> AgentTurnParams:
        if self.simulation == "llm" and self.simulator is None:
            raise ValueError(
                "simulator: an LLM that writes the requests is needed with simulation = 'llm'; "
                "name one, or leave simulation at 'scripted' to write them without an LLM"
            )
        if self.simulation == "scripted" and (
            self.simulator is not None or self.simulator_prompt is not None
        ):
            which = "simulator" if self.simulator is not None else "simulator_prompt"
            raise ValueError(
                f"{which}: the scripted requests (simulation = 'scripted') ask no LLM and have "
                f"no prompt; leave {which} out, or set simulation = 'llm'"
            )
        return self


class AgentRetrievalParams(AgentTurnParams):
    """``agent-retrieval.v1``: the agent recommends over the whole catalog; Recall@k."""

    n_recommend: int = Field(
        5, ge=1, le=MAX_CUTOFF, description="items the agent is asked to list (the context's k)"
    )
    k: Cutoffs = (5,)

    @model_validator(mode="after")
    def _cutoffs_within_the_list(self) -> AgentRetrievalParams:
        beyond = [int(k) for k in self.k if k > self.n_recommend]
        if beyond:
            raise ValueError(
                f"k: cut-off {beyond[0]} is beyond n_recommend = {self.n_recommend} (the agent "
                f"is asked for {self.n_recommend} items); raise n_recommend or drop the cut-off"
            )
        return self


class AgentRankingParams(AgentTurnParams):
    """``agent-ranking.v1``: the agent orders the target and sampled negatives; NDCG and Hit."""

    n_candidates: int = Field(
        20, ge=2, le=1000, description="candidates: the held-out item and n-1 negatives"
    )
    negatives: Literal["uniform", "popularity"] = Field(
        "uniform", description="how negatives are drawn (never from the user's items)"
    )
    k: Cutoffs = (1, 5)
    list_candidates: bool = Field(
        False,
        description="also list the candidates in the request text (for an agent that does not "
        "read the 'candidates' of its context message)",
    )

    @model_validator(mode="after")
    def _cutoffs_within_the_candidates(self) -> AgentRankingParams:
        beyond = [int(k) for k in self.k if k > self.n_candidates]
        if beyond:
            raise ValueError(
                f"k: cut-off {beyond[0]} is beyond n_candidates = {self.n_candidates}; lower it "
                "or raise n_candidates"
            )
        return self


class EmbeddingRetrievalParams(LLMTaskParams):
    """``embedding-retrieval.v1``: a text retriever searches the catalog (no LLM is asked)."""

    retriever: recai.Retriever = Field(description="a retriever that takes free-text queries")
    k: Cutoffs = (1, 5, 10)
    query_template: template_param("history") = None


class EmbeddingRankingParams(EmbeddingRetrievalParams):
    """``embedding-ranking.v1``: a text retriever ranks sampled candidates."""

    n_candidates: int = Field(
        20, ge=2, le=1000, description="candidates: the held-out item and n-1 negatives"
    )
