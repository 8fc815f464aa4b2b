"""What a recipe serves: its agents, LLM backends, rankers, retrievers and explainers, built and
fitted, and the dataset they share (:class:`Served`; :func:`served_from_recipe`).

``recai serve recipe.toml`` builds every component of the recipe but its evaluators through the
kernel's recipe runtime (:func:`recai.recipe.build`), then fits the ones that learn on all of
the dataset's interactions (:meth:`recai.data.Split.full`) through :class:`recai.RunContext`,
which caches each fit under ``<out>/artifacts/<fingerprint>`` so the next start loads it.

Idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``, unless the
environment names a policy), set before torch loads: the fit runs thousands of small parallel
regions, and the served turns run torch in several worker threads at once, each with its own
OpenMP team; spinning teams burn the CPU they share. Measured on a two-core machine shared with
other work (load about 4): the build and fit of a SASRec agent took 75.8 s (73.9 CPU s)
spinning and 11.0 s (9.8 CPU s) passive.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recai.errors import RecaiError
from recai.openmp import passive_openmp
from recai.roles import Agent, Explainer, LLMBackend, Ranker, Retriever, Role

__all__ = ["Served", "served_from_recipe"]


@dataclass
class Served:
    """The components a server answers with, by recipe name, and their dataset.

    ``dataset`` (a :class:`recai.data.Dataset`, or None) gives item ids, titles and attributes,
    and the users' histories: without it the REST routes that name items answer 400.
    """

    agents: dict[str, Agent] = field(default_factory=dict)
    backends: dict[str, LLMBackend] = field(default_factory=dict)
    rankers: dict[str, Ranker] = field(default_factory=dict)
    retrievers: dict[str, Retriever] = field(default_factory=dict)
    explainers: dict[str, Explainer] = field(default_factory=dict)
    dataset: Any = None

    def __post_init__(self) -> None:
        kinds: tuple[tuple[str, dict[str, Any], type], ...] = (
            ("agents", self.agents, Agent),
            ("backends", self.backends, LLMBackend),
            ("rankers", self.rankers, Ranker),
            ("retrievers", self.retrievers, Retriever),
            ("explainers", self.explainers, Explainer),
        )
        for what, table, cls in kinds:
            for name, obj in table.items():
                if not isinstance(obj, cls):
                    raise RecaiError(
                        f"{what}[{name!r}]: {type(obj).__name__} is not a {cls.__name__}"
                    )
        clash = set(self.agents) & set(self.backends)
        if clash:
            raise RecaiError(
                f"{sorted(clash)[0]!r} names both an agent and an LLM backend: a model name must "
                "be one of them"
            )


def served_from_recipe(
    path: str,
    *,
    component: str | None = None,
    dataset: str | None = None,
    out: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Served, Path]:
    """Build and fit what ``recai serve RECIPE`` serves; returns it and the fit cache folder.

    ``component`` serves that one agent (else every agent of the recipe). ``dataset`` names the
    recipe's dataset component when it has several. ``out`` (default ``runs/<recipe>-serve``)
    keeps the fitted models. Every problem is a :class:`~recai.errors.RecaiError` naming the
    recipe and the option. Sets ``OMP_WAIT_POLICY=PASSIVE`` first (see the module's text).
    """
    passive_openmp()
    from recai.data import Split
    from recai.plugins import get_plugin_manager
    from recai.recipe import build, check, load_recipe, pick, pick_optional, playing
    from recai.runtime import RunContext

    say = log or (lambda line: print(f"recai serve: {line}", file=sys.stderr, flush=True))
    recipe = load_recipe(path)
    pm = get_plugin_manager()
    plan = check(recipe, pm.registry())

    # every agent, or the one named: chosen as recai chat / recai mcp choose (recai.recipe.pick)
    agents = playing(plan, Role.AGENT)
    if component is not None:
        agents = [pick(plan, Role.AGENT, component, "--component", verb="serve")]
    chosen = pick_optional(
        plan, Role.DATASET, dataset, "--dataset", verb="serve the items and users of"
    )
    wanted = [n for n in plan.order if Role.EVALUATOR not in plan.resolved[n].roles]
    if component is not None:  # that agent, what it takes, and the rest of the recipe's models
        others = set(playing(plan, Role.AGENT)) - {component}
        keep = set(plan.needed_for([component]))
        wanted = [n for n in wanted if n in keep or n not in others]
    built = build(recipe, pm, only=wanted)
    served = Served(
        agents={n: built[n] for n in agents},
        backends={n: built[n] for n in playing(plan, Role.LLM_BACKEND) if n in built},
        rankers={n: built[n] for n in playing(plan, Role.RANKER) if n in built},
        retrievers={n: built[n] for n in playing(plan, Role.RETRIEVER) if n in built},
        explainers={n: built[n] for n in playing(plan, Role.EXPLAINER) if n in built},
    )
    folder = Path(out) if out is not None else Path("runs") / f"{Path(str(path)).stem}-serve"
    if chosen is None:
        return served, folder
    served.dataset = built[chosen].dataset()
    learners = [
        obj
        for table in (served.rankers, served.retrievers, served.explainers, served.agents)
        for obj in table.values()
        if callable(getattr(obj, "fit", None))
    ]
    if learners:
        seed = recipe.run.seed if recipe.run is not None else 0
        ctx = RunContext(folder, seed=seed, built=built, progress=True)
        split = Split.full(served.dataset)
        say(f"fitting on all of {served.dataset.name} (cached under {folder}/artifacts)")
        start = time.perf_counter()
        seen: set[int] = set()
        for obj in learners:
            if id(obj) not in seen:
                seen.add(id(obj))
                ctx.fit(obj, split)
        say(f"fitted in {time.perf_counter() - start:.1f} s")
    return served, folder
