"""Framework time per turn of InterecAgent on MovieLens-100K: everything but the model calls.

The brain is an instant double (it answers a fixed plan and a fixed reply in no time), so the
measured time is what recai adds: reading the request (slots), the plan schema and its checks,
the tools over the candidate bus (SQL through CatalogDB, ItemKNN similarity, ranking), the
grounding of the reply and the evidence. Issue 18's bar: under 50 ms median per turn.

    python benchmarks/bench_agent_turn.py [--turns 200] [--ranker itemknn|sasrec]

Prints median, p90 and max framework milliseconds per turn (reply.seconds - reply.llm_seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

import recai
from recai.data import Split
from recai.types import Completion, Message

REQUESTS = [
    "some 90s sci-fi movies please",
    "I loved Star Wars and Alien, what else would I like?",
    "a comedy for kids, not animated",
    "popular thrillers from the 80s",
    "something like The Godfather but more recent",
    "hidden gems in film noir",
    "romantic films before 1970",
    "when was Fargo released?",
    "I hated Titanic. Recommend a drama",
    "more please",
]


class InstantBrain(recai.LLMBackend):
    capabilities = frozenset({"json_schema"})

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        if options.get("json_schema") is not None:
            plan = {
                "steps": [
                    {"tool": "hard_filter", "input": {"genres": ["Drama"]}},
                    {"tool": "ranking", "input": {"by": "preference", "mode": "accuracy"}},
                    {"tool": "map", "input": {}},
                ]
            }
            return Completion(json.dumps(plan))
        return Completion("Here are a few films you may enjoy. Have a good evening!")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=200)
    args = ap.parse_args()
    from recai_agent.agent import InterecAgent

    source = recai.create("dataset", "movielens-100k.v1")
    data = source.dataset()
    knn = recai.create("ranker", "itemknn.v1", neighbors=100)
    agent = InterecAgent(source, InstantBrain(), ranker=knn, similarity=knn)
    start = time.perf_counter()
    agent.fit(Split.full(data))
    agent.respond([Message.user("warm up: comedies")])
    print(f"fit + first turn: {time.perf_counter() - start:.2f} s")
    framework = []
    conversation: list[Message] = []
    for n in range(args.turns):
        text = REQUESTS[n % len(REQUESTS)]
        if n % len(REQUESTS) == 0:
            conversation = []
        conversation.append(Message.user(text))
        reply = agent.respond(conversation)
        conversation.append(Message.assistant(reply.text))
        framework.append(1000 * (reply.seconds - reply.llm_seconds))
    framework.sort()
    print(
        f"{args.turns} turns, framework ms per turn: median {statistics.median(framework):.1f}, "
        f"p90 {framework[int(0.9 * len(framework))]:.1f}, max {framework[-1]:.1f}"
    )


if __name__ == "__main__":
    main()
