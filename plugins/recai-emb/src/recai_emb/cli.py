"""``recai emb ...``: recai-emb's commands (registered by :mod:`.plugin` through the command hook).

- ``recai emb tasks``: write RecLM-emb training and evaluation examples (``train.jsonl``,
  ``test.jsonl``, ``report.json``) from a dataset component (:mod:`.tasks`).
- ``recai emb train``: fine-tune a text encoder on such examples (:mod:`.train`); under
  ``torchrun`` (``python -m torch.distributed.run --nproc_per_node 2 -m recai emb train ...``)
  the processes train data parallel.

User errors are :class:`recai.RecaiError` (one line, exit code 2): every numeric option has
bounds (checked before any data is loaded), and an empty ``--out`` or ``--examples`` is refused
rather than read as the current folder.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

MAX_COUNT = 1_000_000
"""Most examples of one task and part (--per-task, --test-per-task, --llm-per-task, --count)."""


def _flag(text: str) -> bool:
    """A boolean option's value: 1/true/yes or 0/false/no (any case)."""
    low = text.strip().lower()
    if low in ("1", "true", "yes"):
        return True
    if low in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _options_error(command: str, e: ValidationError) -> str:
    """One line naming each refused option (``--per-task``) with pydantic's reason."""
    problems = []
    for err in e.errors():
        flag = "--" + ".".join(str(x) for x in err["loc"]).replace("_", "-")
        got = err.get("input")
        text = "" if got is None or isinstance(got, dict) else str(got)
        shown = f" (got {text[:40]}{'...' if len(text) > 40 else ''})" if text else ""
        message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{flag}: {message}{shown}")
    return f"{command}: " + "; ".join(problems)


def _validated(command: str, model: type[BaseModel], given: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from recai.errors import RecaiError

    try:
        return model.model_validate(given)
    except ValidationError as e:
        raise RecaiError(_options_error(command, e)) from None


def _path_option(command: str, flag: str, value: str) -> str:
    from recai.errors import RecaiError

    if not value.strip():
        raise RecaiError(f"{command}: {flag} is empty; give a path (use '.' for this folder)")
    return value


def _tasks_options() -> type[BaseModel]:
    """The numeric options of ``recai emb tasks`` as a params model (bounds with the options)."""
    from typing import Annotated

    from pydantic import Field

    from recai.specs import Params, Seed

    class TasksOptions(Params):
        per_task: Annotated[int, Field(ge=1, le=MAX_COUNT)]
        test_per_task: Annotated[int, Field(ge=0, le=MAX_COUNT)]
        negatives: Annotated[int, Field(ge=0, le=100)]
        seed: Seed
        item_holdout: Annotated[float, Field(ge=0, lt=1)]
        holdout_seed: Seed
        max_history: Annotated[int, Field(ge=1, le=10_000)]
        llm_per_task: Annotated[int, Field(ge=0, le=MAX_COUNT)]

    return TasksOptions


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

    model = _tasks_options()
    _validated("recai emb tasks", model, {k: getattr(args, k) for k in model.model_fields})
    _path_option("recai emb tasks", "--out", args.out)
    if not args.dataset.strip():
        raise RecaiError("recai emb tasks: --dataset is empty; name a dataset component")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        raise RecaiError("recai emb tasks: --tasks names no task; give comma-separated names")
    for t in tasks:
        task_class(t)
    counts = parse_counts(args.count)
    too_many = {name: n for name, n in counts.items() if n > MAX_COUNT}
    if too_many:
        name, n = next(iter(too_many.items()))
        raise RecaiError(
            f"recai emb tasks: --count {name}={n}: at most {MAX_COUNT:,} examples per task"
        )
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
            p.add_argument(flag, type=_flag, default=None, help=f.description)
        else:
            p.add_argument(
                flag, default=None, help=f"{f.description or name} (default {f.default})"
            )
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Validate the options into a :class:`TrainConfig` and train; rank 0 prints the facts."""
    from .train import TrainConfig, train

    given: dict[str, Any] = {
        k: v for k, v in vars(args).items() if k in TrainConfig.model_fields and v is not None
    }
    config = _validated("recai emb train", TrainConfig, given)
    _path_option("recai emb train", "--examples", args.examples)
    _path_option("recai emb train", "--out", args.out)
    facts = train(config, args.examples, args.out, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in facts.items() if k != "curve"}, indent=1))
    return 0
