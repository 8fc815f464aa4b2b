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
from typing import Annotated, Any, Literal

from pydantic import Field

from recai.data import Split
from recai.errors import RecaiError
from recai.roles import DatasetSource

from .cache import cache_root
from .encoder import Encoder
from .index import IndexConfig
from .retriever import Count, EmbeddingRetriever
from .taskdata import TaskData
from .tasks import RULE_TASKS, generate, task_class, write_examples

__all__ = ["TunedEmbeddingRetriever"]


class TunedEmbeddingRetriever(EmbeddingRetriever):
    """Fine-tunes ``base`` on RecLM-emb tasks in ``fit``, then retrieves like ``embedding.v1``.

    >>> r = TunedEmbeddingRetriever(steps=10)  # doctest: +SKIP
    >>> r.fit(split); r.search("a comedy that is not a romance", 5)  # doctest: +SKIP
    """

    label = "embedding.tuned.v1"

    def __init__(
        self,
        dataset: DatasetSource | None = None,
        base: str = "minilm",
        tasks: list[str] = list(RULE_TASKS),  # noqa: B006 - copied below
        examples_per_task: Annotated[int, Field(ge=1)] = 500,
        negatives: Annotated[int, Field(ge=0, le=16)] = 1,
        steps: Annotated[int, Field(ge=1)] = 60,
        train_batch_size: Annotated[int, Field(ge=2)] = 32,
        accumulation: Annotated[int, Field(ge=1)] = 1,
        lr: Annotated[float, Field(gt=0)] = 1e-4,
        temperature: Annotated[float, Field(gt=0, le=1)] = 0.05,
        train_max_length: Annotated[int, Field(ge=8)] = 64,
        seed: int = 0,
        item_holdout: Annotated[float, Field(ge=0, lt=1)] = 0.2,
        holdout_seed: int = 0,
        out_dir: str | None = None,
        max_history: Count = 10,
        batch_size: Count = 64,
        threads: Annotated[int | None, Field(ge=1)] = None,
        runtime: Literal["torch", "onnx"] = "torch",
        index: IndexConfig | None = None,
        cache: bool = True,
        cache_dir: str | None = None,
    ) -> None:
        for t in tasks:
            task_class(t)
        super().__init__(
            dataset=dataset,
            model=base,
            batch_size=batch_size,
            threads=threads,
            runtime=runtime,
            max_history=max_history,
            index=index,
            cache=cache,
            cache_dir=cache_dir,
        )
        self.base = base
        self.tasks = list(tasks)
        self.examples_per_task = int(examples_per_task)
        self.negatives = int(negatives)
        self.steps = int(steps)
        self.train_batch_size = int(train_batch_size)
        self.accumulation = int(accumulation)
        self.lr = float(lr)
        self.temperature = float(temperature)
        self.train_max_length = int(train_max_length)
        self.seed = int(seed)
        self.item_holdout = float(item_holdout)
        self.holdout_seed = int(holdout_seed)
        self.out_dir = out_dir
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
