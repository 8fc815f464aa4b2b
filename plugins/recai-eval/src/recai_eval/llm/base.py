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

**A failure is never a result.** A sample fails in one of two ways:

- *unanswered*: a call raised (the server is down or refuses the key, a timeout, a component
  that crashed). The sample has no result: it is left out of every metric (the report states
  over how many samples they are: ``info["measured_samples"]``), it is not cached, and running
  the stage again asks exactly these samples again;
- *unusable*: the answer came but says nothing readable (no list, no option letter, no
  verdict, an empty message). That is the model's result: it counts as a miss and in
  ``failure_rate``, and the answer stays cached.

When more than ``max_failed_share`` of the samples are unanswered (default 0.1), or none got an
answer at all, the stage raises :class:`LLMStageError` instead of reporting: the runtime saves
nothing for it, and the next run asks the unanswered samples again (the answered ones come from
the cache). Its one paragraph gives the count and the first error (keys redacted). Its exit code
is 2 when that error is the user's to fix (a wrong key, an unknown model: an HTTP 4xx, or
another :class:`recai.RecaiError`) and 1 when the environment failed (no connection, a timeout,
a 5xx or 429, a component that crashed).
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
from recai.errors import DataError, RecaiError
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
    "LLMStageError",
    "LLMTask",
    "Session",
    "sample_cases",
    "error_columns",
    "fixed_text",
]


class LLMStageError(RecaiError):
    """Too many samples of an LLM stage got no answer: the stage has no result and is not saved.

    ``exit_code`` is 2 when the first error is the user's to fix, 1 when the environment failed
    (see :mod:`recai_eval.llm.base`); ``failed`` and ``samples`` are the counts.
    """

    def __init__(self, message: str, *, failed: int, samples: int, exit_code: int = 1):
        super().__init__(message)
        self.failed = failed
        self.samples = samples
        self.exit_code = exit_code


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
        self.results_path = ctx.out_dir / "llm-results" / f"{slug}.jsonl"
        #: The largest share of unanswered samples that still makes a result.
        self.max_failed_share = float(p.max_failed_share)
        if isinstance(p, AskingParams):
            cache_file = ctx.out_dir / "llm-cache" / f"{slug}.jsonl"
            self.cache = AnswerCache(cache_file if p.cache else None)
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
        #: Unanswered samples (a call raised): sample -> its first failure.
        self.unanswered: dict[int, dict[str, Any]] = {}
        self._user_errors: dict[int, bool] = {}
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
        """Record a sample whose answer is unusable (it counts as a miss; see the module
        docstring)."""
        self._failure(case, stage, error, answered=True)

    def no_answer(self, case: Case, stage: str, answer: Answer | str) -> None:
        """Record a sample that got no answer (a call raised, or ``answer`` says why): it is
        left out of the metrics, and asked again when the stage runs again."""
        error = answer if isinstance(answer, str) else (answer.error or "no answer")
        failure = self._failure(case, stage, error, answered=False)
        if case.sample not in self.unanswered:
            self.unanswered[case.sample] = failure
            user = isinstance(answer, Answer) and answer.user_error
            self._user_errors[case.sample] = user

    def _failure(self, case: Case, stage: str, error: str, *, answered: bool) -> dict[str, Any]:
        failure = {
            "sample": case.sample,
            "user": self.external_user(case.user),
            "stage": stage,
            "error": error,
            "answered": answered,
        }
        self.failures.append(failure)
        return failure

    def answered(self, case: Case) -> bool:
        """Whether ``case`` got its answers (it is not :attr:`unanswered`)."""
        return case.sample not in self.unanswered

    def measured(
        self, cases: Sequence[Case], columns: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """``columns`` (one value per case) without the rows of unanswered cases."""
        keep = np.array([self.answered(c) for c in cases], dtype=bool)
        return {name: np.asarray(col)[keep] for name, col in columns.items()}

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
        try:
            self.results_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.results_path, "\n".join(lines) + ("\n" if lines else ""))
        except OSError as e:
            raise RecaiError(
                f"{self.stage}: cannot write the per-sample results to {self.results_path}: "
                f"{e.strerror or e}; free the path or choose another --out folder"
            ) from None

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
            "unanswered_samples": len(self.unanswered),
            "measured_samples": int(n_samples) - len(self.unanswered),
            "max_failed_share": self.max_failed_share,
        }
        if self.unanswered:
            info["retry_on_rerun"] = True  # the runtime runs the stage again to ask them
        return info

    def check_answered(self, n_samples: int) -> None:
        """Raise :class:`LLMStageError` when more than ``max_failed_share`` of ``n_samples``
        (or all of them) got no answer."""
        failed = len(self.unanswered)
        if not failed or (failed < n_samples and failed / n_samples <= self.max_failed_share):
            return
        first = self.unanswered[min(self.unanswered)]
        user = self._user_errors[first["sample"]]
        limit = (
            "no sample got an answer"
            if failed >= n_samples
            else f"more than max_failed_share = {self.max_failed_share:g} of them"
        )
        again = (
            "nothing is cached, so the next run asks every sample again"
            if self.cache.path is None
            else f"the answers that came are cached in {self.cache.path}, and the next run asks "
            f"only the {failed} failed sample(s) again"
        )
        raise LLMStageError(
            f"stage {self.stage!r}: {failed} of {n_samples} samples failed ({limit}); first "
            f"(sample {first['sample']}, user {first['user']}, at {first['stage']}): "
            f"{_sentence(first['error'])} The stage has no result and is not saved; {again}."
            + (
                " Fix the setting the error names (the key, the model, the server address)."
                if user
                else " Check that what it calls (a server, a model) is up and reachable, or "
                "raise max_failed_share."
            ),
            failed=failed,
            samples=n_samples,
            exit_code=2 if user else 1,
        )

    def report(
        self,
        metrics: dict[str, dict[str, float]],
        info: dict[str, Any],
        intervals: dict[str, dict[str, tuple[float, float]]] | None = None,
        notes: Sequence[str] = (),
    ) -> Report:
        n = int(info["samples"])
        self.check_answered(n)
        self.write_records()
        notes = list(notes)
        if self.unanswered:
            failed = len(self.unanswered)
            first = self.unanswered[min(self.unanswered)]
            notes.append(
                f"{failed} of {n} samples got no answer (first: {first['error']}); the metrics "
                f"are over the other {n - failed}. They are not cached: running the stage again "
                "asks only them."
            )
        unusable = [
            f for f in self.failures if f["answered"] and f["sample"] not in self.unanswered
        ]
        if unusable:
            causes: dict[str, int] = {}
            for f in unusable:
                causes[f["stage"]] = causes.get(f["stage"], 0) + 1
            said = ", ".join(f"{k} at {stage}" for stage, k in sorted(causes.items()))
            notes.append(
                f"{len(unusable)} of {n} samples failed ({said}); they count as misses and are "
                "listed in info.failed_samples."
            )
        return Report(
            evaluator=self.stage, metrics=metrics, info=info, intervals=intervals or {}, notes=notes
        )


def _sentence(text: str) -> str:
    """``text`` ending with a full stop (unless it ends with one already, or ``?``/``!``)."""
    text = text.rstrip()
    return text if text.endswith((".", "?", "!", "...")) else text + "."


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
