"""What every LLM task shares: the protocol, sampled users, the run session and the report.

**Protocol.** The dataset is split leave-one-out by time (``recai.data.leave_one_out``). A
sampled user's *target* is their held-out last item; their *history* is every earlier item in
time order, of which prompts show the last ``max_history``. Users are sampled without
replacement with ``numpy.random.default_rng(seed)`` among those with a target and a long
enough history; the same seed samples the same users whatever else changes. ``seed`` defaults
to the run's seed.

**A session** (:class:`Session`) is one ``evaluate`` call: the loaded data, the answer cache
(``<run>/llm-cache/<stage>.jsonl``), a :class:`~.runner.Runner`, a
:class:`~.scoring.TitleMatcher` and the list of failed samples. Per-sample results (prompt
outputs, parsed items, flags) are written to ``<run>/llm-results/<stage>.jsonl`` for auditing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, Field

import recai
from recai.data import Dataset, Split, leave_one_out
from recai.errors import DataError
from recai.roles import describe_component
from recai.runtime import RunContext, atomic_write_text
from recai.types import Message, Report

from ..ranking import unique_names
from .cache import AnswerCache
from .parsing import DEFAULT_THRESHOLD
from .prompts import check_fields, check_template, item_text
from .runner import Answer, Runner, caller_for
from .scoring import ERROR_KINDS, TitleMatcher, rate_name

__all__ = [
    "Case",
    "LLMTask",
    "Session",
    "sample_cases",
    "unique_names",
    "error_columns",
    # shared params annotations
    "DatasetParam",
    "LLMParam",
    "Samples",
    "Seed",
    "MaxHistory",
    "Fields",
    "template_param",
    "SystemPrompt",
    "fixed_text",
    "MaxTokens",
    "Temperature",
    "GroundingMethod",
    "Threshold",
    "Concurrency",
    "BatchSize",
    "Retries",
    "UseCache",
    "Bootstrap",
    "Cutoffs",
    "DEFAULT_THRESHOLD",
]

# -- params shared by the tasks (one annotation each, so every signature reads the same) ---------
DatasetParam = Annotated[
    recai.DatasetSource, Field(description="the dataset to build prompts from")
]
LLMParam = Annotated[recai.LLMBackend, Field(description="the LLM under evaluation")]
Samples = Annotated[int, Field(ge=1, description="users to sample (all eligible users if fewer)")]
Seed = Annotated[
    int | None,
    Field(description="seed for sampling users, candidates and orders; default: the run's"),
]
MaxHistory = Annotated[int, Field(ge=1, description="most recent history items shown in prompts")]
Fields = Annotated[
    Sequence[str], Field(description="catalog fields shown after each title (e.g. genres)")
]


def template_param(*names: str) -> Any:
    """A params annotation for a prompt template that may use only the placeholders ``names``
    (checked when params are validated, so a recipe error names the key)."""
    allowed = frozenset(names)

    def check(value: str | None) -> str | None:
        return None if value is None else check_template(value, allowed)

    shown = ", ".join("{" + n + "}" for n in sorted(allowed)) or "no placeholders"
    return Annotated[
        str | None,
        AfterValidator(check),
        Field(description=f"replaces the default prompt text; may use {shown}"),
    ]


MaxTokens = Annotated[int | None, Field(ge=1, description="most tokens an answer may have")]
Temperature = Annotated[float | None, Field(ge=0, description="sampling temperature (0: greedy)")]
GroundingMethod = Annotated[
    Literal["blend", "tfidf"],
    Field(description="title matching: 'tfidf' (RecAI's char 3-gram TF-IDF) or 'blend'"),
]
Threshold = Annotated[
    float, Field(gt=0, le=1, description="lowest title-match score that names a catalog item")
]
Concurrency = Annotated[
    int, Field(ge=1, description="requests in flight at once (backends without native batching)")
]
BatchSize = Annotated[
    int, Field(ge=1, description="requests per chat_batch call (native batching)")
]
Retries = Annotated[int, Field(ge=0, description="extra tries of a request that raised")]
UseCache = Annotated[bool, Field(description="keep answers in <run>/llm-cache to reuse on reruns")]
Bootstrap = Annotated[
    int, Field(ge=0, description="bootstrap resamples for 95% intervals; 0: none")
]
Cutoffs = Annotated[
    Sequence[Annotated[int, Field(ge=1)]],
    Field(min_length=1, description="cut-offs k of Hit/NDCG/MRR@k"),
]


SystemPrompt = template_param()


def fixed_text(template: str, what: str = "system_prompt") -> str:
    """A prompt without placeholders, as sent (``{{`` becomes ``{``)."""
    return check_template(template, frozenset(), what).format()


@dataclass
class Case:
    """One sampled user: index, held-out target and full history (item indices, time order)."""

    sample: int
    user: int
    target: int
    history: np.ndarray

    def shown(self, max_history: int) -> np.ndarray:
        """The last ``max_history`` history items (what prompts show), oldest first."""
        return self.history[-max_history:]


def sample_cases(
    data: Dataset, split: Split, samples: int, seed: int, *, min_history: int = 1
) -> tuple[list[Case], dict[str, int]]:
    """Sampled users with their target and history, and counts for the report."""
    test = split.test
    if test is None or not len(test):
        raise DataError(
            f"dataset {data.name!r}: no user has a held-out item under leave-one-out "
            "(a user needs at least 2 interactions)"
        )
    order = np.argsort(test.users, kind="stable")
    users, targets = test.users[order], test.items[order]
    hist_len = data.interactions.user_counts()[users] - 1
    eligible = hist_len >= min_history
    users, targets = users[eligible], targets[eligible]
    counts = {
        "users_with_target": int(len(order)),
        "eligible_users": int(len(users)),
        "min_history": int(min_history),
    }
    if not len(users):
        raise DataError(
            f"dataset {data.name!r}: no user has a held-out item and at least {min_history} "
            "earlier interactions"
        )
    if samples < len(users):
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(users), size=samples, replace=False))
        users, targets = users[pick], targets[pick]
    cases = []
    for s, (u, t) in enumerate(zip(users.tolist(), targets.tolist(), strict=True)):
        full = data.interactions.history(u)
        if int(full[-1]) != t:  # leave_one_out holds out the last event in this very order
            raise AssertionError(f"user {u}: held-out item {t} is not the last of the history")
        cases.append(Case(s, u, t, full[:-1]))
    return cases, counts


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "stage"


class Session:
    """The state of one ``evaluate`` call (see the module docstring)."""

    def __init__(self, task: LLMTask, ctx: RunContext):
        self.task = task
        self.ctx = ctx
        self.data: Dataset = task.dataset.dataset()
        self.catalog = self.data.catalog
        check_fields(self.catalog, task.fields)
        self.seed = int(task.seed if task.seed is not None else ctx.seed)
        self.split = leave_one_out(self.data)
        self.stage = ctx.name_of(task)
        slug = _slug(self.stage)
        cache_path = ctx.path("llm-cache", f"{slug}.jsonl") if task.cache else None
        self.results_path = ctx.path("llm-results", f"{slug}.jsonl")
        self.cache = AnswerCache(cache_path)
        self.runner = Runner(
            self.cache,
            concurrency=task.concurrency,
            batch_size=task.batch_size,
            retries=task.retries,
            progress=ctx.progress if ctx.progress_enabled else None,
        )
        self.options = task.generation_options(self.seed)
        self.matcher = TitleMatcher(self.catalog, method=task.grounding, threshold=task.threshold)
        self.failures: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []

    # -- building prompts -------------------------------------------------------------------------
    def item(self, item: int) -> str:
        return item_text(self.catalog, item, self.task.fields)

    def items(self, items: Sequence[int]) -> list[str]:
        return [self.item(i) for i in items]

    def messages(self, user_text: str, system: str | None) -> list[Message]:
        msgs = [Message.system(system)] if system else []
        return msgs + [Message.user(user_text)]

    def rng(self, case: Case, salt: int = 0) -> np.random.Generator:
        """A generator for one user's draws: depends on the seed and the user only."""
        return np.random.default_rng([self.seed, int(case.user), salt])

    # -- asking -----------------------------------------------------------------------------------
    def ask(
        self,
        component: Any,
        requests: Sequence[Any],
        desc: str,
        options: dict[str, Any] | None = None,
    ) -> list[Answer]:
        """Answers of ``component`` (an LLM, agent or explainer) to ``requests``, through the
        cache; ``options`` replace the generation options where given."""
        caller = caller_for(component, {**self.options, **(options or {})})
        return self.runner.run(caller, requests, desc=f"{self.stage}: {desc}")

    # -- failures and records ---------------------------------------------------------------------
    def fail(self, case: Case, stage: str, error: str) -> None:
        """Record a failed sample (it counts as a miss)."""
        self.failures.append(
            {
                "sample": case.sample,
                "user": self.external_user(case.user),
                "stage": stage,
                "error": error,
            }
        )

    def external_user(self, user: int) -> Any:
        ids = self.data.user_ids
        value = ids[user] if ids is not None else user
        return value.item() if isinstance(value, np.generic) else value

    def record(self, case: Case, **fields: Any) -> None:
        self.records.append(
            {
                "sample": case.sample,
                "user": self.external_user(case.user),
                "target": case.target,
                "target_title": self.catalog.title(case.target),
                **fields,
            }
        )

    def write_records(self) -> None:
        lines = [json.dumps(r, ensure_ascii=False, default=_plain) for r in self.records]
        atomic_write_text(self.results_path, "\n".join(lines) + ("\n" if lines else ""))

    # -- the report -------------------------------------------------------------------------------
    def info(
        self, protocol: str, n_samples: int, counts: dict[str, int], **extra: Any
    ) -> dict[str, Any]:
        stats = dict(self.runner.stats)
        stats["seconds"] = round(float(stats["seconds"]), 3)
        info: dict[str, Any] = {
            "dataset": self.data.name,
            "protocol": protocol,
            "split": self.split.describe(),
            "samples": int(n_samples),
            "seed": self.seed,
            "catalog_items": int(self.data.n_items),
            **counts,
            **extra,
            "grounding": self.matcher.describe(),
            "generation": self.options,
            "requests": {k: (int(v) if k != "seconds" else v) for k, v in stats.items()},
            "cache": self.cache.stats(),
            "results_file": str(self.results_path),
            "failures": len(self.failures),
            "failed_samples": list(self.failures),
        }
        return info

    def report(
        self,
        metrics: dict[str, dict[str, float]],
        info: dict[str, Any],
        intervals: dict[str, dict[str, tuple[float, float]]] | None = None,
        notes: Sequence[str] = (),
    ) -> Report:
        self.write_records()
        notes = list(notes)
        if self.failures:
            causes: dict[str, int] = {}
            for f in self.failures:
                causes[f["stage"]] = causes.get(f["stage"], 0) + 1
            said = ", ".join(f"{n} at {stage}" for stage, n in sorted(causes.items()))
            notes.append(
                f"{len(self.failures)} of {info['samples']} samples failed ({said}); they count as "
                "misses and are listed in info.failed_samples."
            )
        return Report(
            evaluator=self.stage, metrics=metrics, info=info, intervals=intervals or {}, notes=notes
        )


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return repr(obj)


class LLMTask(recai.Evaluator):
    """Base of the LLM task evaluators: stores the shared params and checks prompts."""

    #: Placeholders each prompt of the task may use: ``{"template": {...}, ...}``.
    placeholders: dict[str, frozenset[str]] = {}

    def _setup(
        self,
        *,
        dataset: recai.DatasetSource,
        samples: int,
        seed: int | None,
        max_history: int,
        fields: Sequence[str],
        max_tokens: int | None,
        temperature: float | None,
        grounding: str,
        threshold: float,
        concurrency: int,
        batch_size: int,
        retries: int,
        cache: bool,
        bootstrap: int,
        prompts: dict[str, str | None] | None = None,
    ) -> None:
        if grounding not in ("blend", "tfidf"):
            raise ValueError(f"grounding must be 'blend' or 'tfidf', not {grounding!r}")
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
        for name, value in (prompts or {}).items():
            if value is not None:
                check_template(value, self.placeholders.get(name, frozenset()), name)
        self.dataset = dataset
        self.samples = int(samples)
        self.seed = seed
        self.max_history = int(max_history)
        self.fields = [str(f) for f in fields]
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.grounding: Literal["blend", "tfidf"] = grounding  # type: ignore[assignment]
        self.threshold = float(threshold)
        self.concurrency = int(concurrency)
        self.batch_size = int(batch_size)
        self.retries = int(retries)
        self.cache = bool(cache)
        self.bootstrap = int(bootstrap)

    def generation_options(self, seed: int) -> dict[str, Any]:
        """Options passed to every ``chat`` call (``None`` values are left to the backend)."""
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "seed": seed}

    @staticmethod
    def describe(component: Any) -> Any:
        return describe_component(component)


def error_columns(
    flags: Sequence[dict[str, bool] | None], kinds: Sequence[str] = ERROR_KINDS
) -> dict[str, np.ndarray]:
    """Per-sample 0/1 columns ``<kind>_rate`` (a failed sample, ``None``, has no flags)."""
    return {
        rate_name(kind): np.array([float(bool(f and f.get(kind))) for f in flags], dtype=np.float64)
        for kind in kinds
    }
