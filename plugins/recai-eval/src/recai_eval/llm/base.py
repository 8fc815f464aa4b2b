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
from typing import Any, ClassVar, TypeVar

import numpy as np

import recai
from recai.data import Dataset, Split, leave_one_out
from recai.errors import DataError
from recai.roles import describe_component
from recai.runtime import RunContext, atomic_write_text
from recai.specs import Configurable
from recai.types import Message, Report

from .cache import AnswerCache
from .params import AskingParams, GroundedParams, LLMTaskParams, placeholders_of
from .prompts import DEFAULT_SYSTEM, check_fields, check_template, item_text
from .runner import Answer, Runner, caller_for
from .scoring import ERROR_KINDS, TitleMatcher, rate_name

P = TypeVar("P", bound=recai.Params)

__all__ = [
    "Case",
    "LLMTask",
    "Session",
    "sample_cases",
    "error_columns",
    "fixed_text",
]


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
        p = task.params
        self.task = task
        self.ctx = ctx
        self.data: Dataset = p.dataset.dataset()
        self.catalog = self.data.catalog
        self.fields = [str(f) for f in p.fields]
        check_fields(self.catalog, self.fields)
        self.seed = int(p.seed if p.seed is not None else ctx.seed)
        self.split = leave_one_out(self.data)
        self.stage = ctx.name_of(task)
        slug = _slug(self.stage)
        progress = ctx.progress if ctx.progress_enabled else None
        self.results_path = ctx.path("llm-results", f"{slug}.jsonl")
        if isinstance(p, AskingParams):
            self.cache = AnswerCache(ctx.path("llm-cache", f"{slug}.jsonl") if p.cache else None)
            self.runner = Runner(
                self.cache,
                concurrency=p.concurrency,
                batch_size=p.batch_size,
                retries=p.retries,
                progress=progress,
            )
        else:  # no LLM is asked (the embedding tasks)
            self.cache = AnswerCache(None)
            self.runner = Runner(self.cache, concurrency=1, batch_size=1, progress=progress)
        self.options = task.generation_options(self.seed)
        if isinstance(p, GroundedParams):
            self.matcher = TitleMatcher(self.catalog, method=p.grounding, threshold=p.threshold)
        else:  # tasks that take no grounding settings match titles the default way
            self.matcher = TitleMatcher(self.catalog)
        self.failures: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []

    # -- building prompts -------------------------------------------------------------------------
    def item(self, item: int) -> str:
        return item_text(self.catalog, item, self.fields)

    def items(self, items: Sequence[int] | np.ndarray) -> list[str]:
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


class LLMTask(Configurable, recai.Evaluator):
    """Base of the LLM task evaluators: built from a params model (:mod:`.params`).

    A task is built from keywords, checked against its params model (``Params``), with the
    fields named in ``positional`` also taken by position; or from a ready params model. The
    validated params are ``self.params``::

        LLMRankingEvaluator(source, llm, samples=50)
        LLMRankingEvaluator(LLMRankingParams(dataset=source, llm=llm, samples=50))

    An unknown or invalid keyword raises :class:`recai.ParamsError` naming the key (with "did you
    mean" for a misspelt one), exactly as ``recai.create`` does.
    """

    #: The params model; a subclass names its own.
    Params: ClassVar[type[LLMTaskParams]] = LLMTaskParams
    #: Fields that may also be given by position, in this order.
    positional: ClassVar[tuple[str, ...]] = ("dataset",)
    #: Placeholders each prompt of the task may use (from the template fields of ``Params``).
    placeholders: ClassVar[dict[str, frozenset[str]]] = {}
    #: The prompt used when the params leave ``template`` unset (tasks that prompt an LLM).
    default_template: ClassVar[str] = ""

    params: LLMTaskParams
    system_prompt: str
    template: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # Configurable: the signature from Params
        cls.placeholders = placeholders_of(cls.Params)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p = self.params
        fields = type(p).model_fields
        if "system_prompt" in fields and "template" in fields:  # a task that prompts an LLM
            given = getattr(p, "system_prompt")  # noqa: B009 - not every params model has it
            self.system_prompt = fixed_text(DEFAULT_SYSTEM if given is None else given)
            template = getattr(p, "template")  # noqa: B009
            self.template = self.default_template if template is None else template

    def generation_options(self, seed: int) -> dict[str, Any]:
        """Options passed to every ``chat`` call (``None`` values are left to the backend)."""
        p = self.params
        if not isinstance(p, AskingParams):
            return {"max_tokens": None, "temperature": None, "seed": seed}
        return {"max_tokens": p.max_tokens, "temperature": p.temperature, "seed": seed}

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
