"""``recai emb ...``: recai-emb's commands (registered by :mod:`.plugin` through the command hook).

- ``recai emb tasks``: write RecLM-emb training and evaluation examples (``train.jsonl``,
  ``test.jsonl``, ``report.json``) from a dataset component (:mod:`.tasks`).
- ``recai emb train``: fine-tune a text encoder on such examples (:mod:`.train`); under
  ``torchrun`` (``python -m torch.distributed.run --nproc_per_node 2 -m recai emb train ...``)
  the processes train data parallel.

User errors are :class:`recai.RecaiError` (one line, exit code 2).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    """``recai emb``: its two subcommands."""
    parser.description = "RecLM-emb: make training/evaluation examples, fine-tune a text encoder."
    sub = parser.add_subparsers(dest="emb_command", metavar="ACTION")
    tasks = sub.add_parser(
        "tasks",
        help="write RecLM-emb training and evaluation examples (JSONL) from a dataset",
        description="Write RecLM-emb training and evaluation examples (JSONL) from a dataset: "
        "train.jsonl, test.jsonl and report.json in --out.",
    )
    configure_tasks(tasks)
    train = sub.add_parser(
        "train",
        help="fine-tune a text encoder on RecLM-emb examples (InfoNCE)",
        description="Fine-tune a text encoder on RecLM-emb examples (JSONL from `recai emb "
        "tasks`). Run under torchrun for data parallel training.",
    )
    configure_train(train)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])  # type: ignore[func-returns-value]


def configure_tasks(p: argparse.ArgumentParser) -> None:
    from .tasks import RULE_TASKS, add_count_option

    p.add_argument("--dataset", default="movielens-100k.v1", help="a registered dataset component")
    p.add_argument("--out", required=True, help="folder for train.jsonl, test.jsonl, report.json")
    p.add_argument("--tasks", default=",".join(RULE_TASKS), help="comma-separated task names")
    p.add_argument("--per-task", type=int, default=1000, help="training examples per task")
    add_count_option(p)
    p.add_argument("--test-per-task", type=int, default=300, help="evaluation queries per task")
    p.add_argument("--negatives", type=int, default=1, help="hard negatives per example")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--item-holdout", type=float, default=0.2)
    p.add_argument("--holdout-seed", type=int, default=0)
    p.add_argument("--max-history", type=int, default=10)
    p.add_argument("--llm", default=None, help="an LLM backend (e.g. hf.v1) for the LLM tasks")
    p.add_argument("--llm-tasks", default="us2i,as2i,dialogue", help="comma-separated")
    p.add_argument("--llm-per-task", type=int, default=20, help="LLM examples per task and part")
    p.set_defaults(func=run_tasks)


def run_tasks(args: argparse.Namespace) -> int:
    """Write ``train.jsonl``, ``test.jsonl`` and ``report.json`` into ``args.out``."""
    import recai
    from recai.errors import RecaiError
    from recai.runtime import atomic_write_text

    from .taskdata import TaskData
    from .tasks import generate, parse_counts, task_class, write_examples

    if args.per_task < 1 or args.test_per_task < 0 or args.negatives < 0:
        raise RecaiError("--per-task must be >= 1, --test-per-task and --negatives >= 0")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        task_class(t)
    counts = parse_counts(args.count)
    dataset = recai.create("dataset", args.dataset).dataset()
    data = TaskData.from_dataset(
        dataset,
        item_holdout=args.item_holdout,
        holdout_seed=args.holdout_seed,
        max_history=args.max_history,
    )
    out = Path(args.out)
    train, train_report = generate(
        data,
        tasks,
        args.per_task,
        part="train",
        seed=args.seed,
        negatives=args.negatives,
        counts=counts,
    )
    test, test_report = generate(
        data, tasks, args.test_per_task, part="test", seed=args.seed, negatives=args.negatives
    )
    if args.llm:
        from .llmtasks import LLMTaskCache, generate_llm

        llm = recai.create("llm_backend", args.llm)
        cache = LLMTaskCache(out / "llm-answers.jsonl")
        names = [t.strip() for t in args.llm_tasks.split(",") if t.strip()]
        for part, rows, rep in (("train", train, train_report), ("test", test, test_report)):
            made, made_report = generate_llm(
                data,
                llm,
                names,
                args.llm_per_task,
                part=part,  # type: ignore[arg-type]  # "train" or "test", from the tuple above
                seed=args.seed,
                negatives=args.negatives,
                cache=cache,
            )
            rows += made
            rep.update(made_report)
    write_examples(out / "train.jsonl", train, data.texts)
    write_examples(out / "test.jsonl", test, data.texts)
    report = {
        "data": data.facts,
        "heldout_items": data.heldout_key(),
        "train": train_report,
        "test": test_report,
        "seed": args.seed,
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=str))
    print(f"{len(train)} training and {len(test)} evaluation examples in {out}")
    return 0


def configure_train(p: argparse.ArgumentParser) -> None:
    """Options of ``recai emb train``: the files, and one option per :class:`TrainConfig` field."""
    from .train import TrainConfig

    p.add_argument("--examples", required=True, help="training examples (JSONL)")
    p.add_argument("--out", required=True, help="run folder: checkpoints/ and model/")
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    for name, f in TrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if f.annotation is bool:
            p.add_argument(
                flag,
                type=lambda s: s.lower() in ("1", "true", "yes"),
                default=None,
                help=f.description,
            )
        else:
            p.add_argument(
                flag, default=None, help=f"{f.description or name} (default {f.default})"
            )
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Validate the options into a :class:`TrainConfig` and train; rank 0 prints the facts."""
    from pydantic import ValidationError

    from recai.errors import RecaiError

    from .train import TrainConfig, train

    given: dict[str, Any] = {
        k: v for k, v in vars(args).items() if k in TrainConfig.model_fields and v is not None
    }
    try:
        config = TrainConfig.model_validate(given)
    except ValidationError as e:
        problems = "; ".join(
            f"--{'.'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg']}"
            for err in e.errors()
        )
        raise RecaiError(f"recai emb train: {problems}") from None
    facts = train(config, args.examples, args.out, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in facts.items() if k != "curve"}, indent=1))
    return 0
