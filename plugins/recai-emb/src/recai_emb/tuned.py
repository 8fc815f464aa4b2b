"""``embedding.tuned.v1``: an ``embedding.v1`` retriever whose ``fit`` fine-tunes its encoder first.

``fit(split)`` makes the training tasks from the split (:mod:`recai_emb.tasks`: training events
and non-held-out items only), fine-tunes the base encoder on them (:mod:`recai_emb.train`), then
indexes the catalog with the fine-tuned folder, exactly as ``embedding.v1`` with
``model = "<folder>"`` would. So a recipe can put the base and the fine-tuned retriever side by
side under ``ranking.v1`` or ``embedding.tasks.v1`` (which checks that both used the same
held-out items). The run folder (``out_dir``, by default under the embedding cache, keyed by the
settings and the split) keeps the examples, checkpoints and the model: an interrupted fit
resumes, a finished one is reused (then ``fit`` only indexes the catalog).

.. code-block:: toml

    [components.tuned]
    use = "embedding.tuned.v1"
    params = { steps = 60, train_batch_size = 32 }
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from recai.data import Split
from recai.errors import RecaiError
from recai.specs import Seed

from .cache import cache_root
from .encoder import Encoder
from .retriever import EmbeddingRetriever, LocalEncoderParams, MaxHistory
from .taskdata import TaskData
from .tasks import RULE_TASKS, generate, task_class, write_examples
from .train import MAX_BATCH_TOKENS, batch_tokens_fit

__all__ = ["TunedEmbeddingRetriever", "TunedEmbeddingParams"]


def _train_tokens_fit(value: int, info: ValidationInfo) -> int:
    batch, negatives = info.data.get("train_batch_size"), info.data.get("negatives")
    if isinstance(batch, int) and isinstance(negatives, int):
        batch_tokens_fit(batch, negatives, value, "train_batch_size", "train_max_length")
    return value


class TunedEmbeddingParams(LocalEncoderParams):
    """``embedding.tuned.v1``: ``embedding.v1``'s catalog, index, cache and encoder runtime
    settings, plus how the encoder is fine-tuned. Item and query texts are written the default
    way (the fine-tuning examples are)."""

    base: str = Field(
        "minilm", description="the encoder to fine-tune: 'minilm' or a transformers folder"
    )
    tasks: list[str] = Field(
        list(RULE_TASKS),
        max_length=100,
        description="RecLM-emb tasks to make training examples from",
    )
    examples_per_task: Annotated[
        int, Field(ge=1, le=1_000_000, description="training examples per task")
    ] = 500
    negatives: Annotated[
        int, Field(ge=0, le=16, description="hard negatives per training example")
    ] = 1
    steps: Annotated[int, Field(ge=1, le=10_000_000, description="optimiser steps")] = 60
    train_batch_size: Annotated[
        int, Field(ge=2, le=65_536, description="examples per training batch")
    ] = 32
    accumulation: Annotated[
        int, Field(ge=1, le=10_000, description="batches per optimiser step")
    ] = 1
    lr: Annotated[float, Field(gt=0, le=10, description="learning rate")] = 1e-4
    temperature: Annotated[
        float, Field(gt=0, le=1, description="temperature of the contrastive (InfoNCE) loss")
    ] = 0.05
    train_max_length: Annotated[
        int,
        Field(
            ge=8,
            le=1_048_576,
            description="most query tokens while training (train_batch_size * (2 + negatives) "
            f"* train_max_length <= {MAX_BATCH_TOKENS:,})",
        ),
        AfterValidator(_train_tokens_fit),
    ] = 64
    seed: Seed = Field(0, description="seed of example generation and training")
    item_holdout: Annotated[
        float,
        Field(ge=0, lt=1, description="share of items whose texts no training example shows"),
    ] = 0.2
    holdout_seed: Seed = Field(0, description="seed of the item hold-out")
    out_dir: str | None = Field(
        None,
        description="the fine-tuning run folder (default: under the embedding cache, keyed by "
        "the settings and the split)",
    )
    max_history: MaxHistory = 10

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                task_class(name)
            except RecaiError as e:
                raise ValueError(str(e)) from None
        return value


class TunedEmbeddingRetriever(EmbeddingRetriever):
    """Fine-tunes ``base`` on RecLM-emb tasks in ``fit``, then retrieves like ``embedding.v1``.

    >>> r = TunedEmbeddingRetriever(steps=10)  # doctest: +SKIP
    >>> r.fit(split); r.search("a comedy that is not a romance", 5)  # doctest: +SKIP
    """

    label = "embedding.tuned.v1"
    Params = TunedEmbeddingParams
    positional = ("dataset", "base")
    params: TunedEmbeddingParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p = self.params
        self.model = self.base = p.base
        self.tasks = list(p.tasks)
        self.examples_per_task = p.examples_per_task
        self.negatives = p.negatives
        self.steps = p.steps
        self.train_batch_size = p.train_batch_size
        self.accumulation = p.accumulation
        self.lr = p.lr
        self.temperature = p.temperature
        self.train_max_length = p.train_max_length
        self.seed = p.seed
        self.item_holdout = p.item_holdout
        self.holdout_seed = p.holdout_seed
        self.out_dir = p.out_dir
        self._tuned: Path | None = None
        self._heldout: str | None = None
        self._train_facts: dict[str, Any] = {}

    def _settings(self) -> dict[str, Any]:
        keys = (
            "base",
            "tasks",
            "examples_per_task",
            "negatives",
            "steps",
            "train_batch_size",
            "accumulation",
            "lr",
            "temperature",
            "train_max_length",
            "seed",
            "item_holdout",
            "holdout_seed",
            "max_history",
        )
        return {k: getattr(self, k) for k in keys}

    def heldout_key(self) -> str | None:
        """Which items were held out of training (``None`` before ``fit``)."""
        return self._heldout

    def _make_encoder(self) -> Encoder:
        if self._tuned is None:
            raise RecaiError(
                f"{self.label}: not fine-tuned yet: call fit(split) first (or load a saved fit)"
            )
        self.model = str(self._tuned)
        return super()._make_encoder()

    def fit(self, split: Split) -> None:
        """Make the tasks from ``split``, fine-tune (or resume, or reuse), then index."""
        from .train import TrainConfig, train

        data = TaskData.from_dataset(
            split.dataset,
            split=split,
            item_holdout=self.item_holdout,
            holdout_seed=self.holdout_seed,
            max_history=self.max_history,
        )
        key = hashlib.sha256(
            json.dumps({**self._settings(), "split": split.fingerprint()}, sort_keys=True).encode()
        ).hexdigest()[:16]
        run = Path(self.out_dir) if self.out_dir else cache_root(self.cache_dir) / "tuned" / key
        model_dir = run / "model"
        if not (model_dir / "recai_emb_training.json").exists():
            examples, made = generate(
                data,
                self.tasks,
                self.examples_per_task,
                part="train",
                seed=self.seed,
                negatives=self.negatives,
            )
            write_examples(run / "train.jsonl", examples, data.texts)
            config = TrainConfig(
                model=self.base,
                steps=self.steps,
                batch_size=self.train_batch_size,
                accumulation=self.accumulation,
                lr=self.lr,
                temperature=self.temperature,
                negatives=self.negatives,
                max_length=self.train_max_length,
                seed=self.seed,
                threads=self.threads,
            )
            facts = train(config, run / "train.jsonl", run, progress=False)
            self._train_facts = {
                "generation": made,
                **{k: v for k, v in facts.items() if k != "curve"},
            }
        self._use(model_dir, data.heldout_key())
        super().fit(split)

    def _use(self, model_dir: Path, heldout: str) -> None:
        self._tuned, self._heldout = model_dir, heldout
        self._encoder, self._data, self._index = None, None, None

    def report(self) -> dict[str, Any]:
        return {**super().report(), "fine_tune": dict(self._train_facts)}

    def __repr__(self) -> str:
        state = str(self._tuned) if self._tuned is not None else "not fine-tuned"
        return f"TunedEmbeddingRetriever(base={self.base!r}, steps={self.steps}, {state})"
