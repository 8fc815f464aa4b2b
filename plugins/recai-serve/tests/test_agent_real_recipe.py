"""A tiny real recipe served end to end: InteRecAgent (interecagent.v1) with the embedded
SmolLM2-135M brain, ItemKNN and popularity on MovieLens-100K, built and fitted by
``served_from_recipe`` and served by AgentServer; the official openai client streams a turn in
a session as a user of the dataset, likes an item through /v1/feedback, and the next turn
carries the profile; the REST routes answer from the recipe's models. Slow (the brain)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest

from recai.errors import RecaiError

RECIPE = """
name = "tiny-agent"
[components.movielens]
use = "movielens-100k.v1"
[components.brain]
use = "hf.v1"
[components.pop]
use = "popularity.v1"
[components.itemknn]
use = "itemknn.v1"
params = { neighbors = 50 }
[components.agent]
use = "interecagent.v1"
params = { dataset = "movielens", llm = "brain", ranker = "pop", similarity = "itemknn", k = 3 }
"""


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.integration
def test_interecagent_from_a_recipe_chats_streams_and_takes_feedback(tmp_path: Path) -> None:
    from recai_serve.served import served_from_recipe
    from recai_serve.server import AgentServer

    (tmp_path / "tiny.toml").write_text(RECIPE)
    try:
        served, _ = served_from_recipe(str(tmp_path / "tiny.toml"), out=tmp_path / "runs")
    except RecaiError as e:  # the recipe's plugins or the embedded model are not installed
        pytest.skip(str(e))
    catalog = served.dataset.catalog
    with AgentServer(served, max_concurrency=1) as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=300)
        stream = c.chat.completions.create(
            model="agent",
            user="196",
            messages=[{"role": "user", "content": "some 1990s sci-fi films like Alien"}],
            extra_body={"session": "new"},
            stream=True,
        )
        chunks = list(stream)
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        recai = chunks[-1].model_extra["recai"]
        assert text.strip() and recai["items"], text
        for item in recai["items"]:
            index = catalog.index(item["id"])
            assert item["title"] == catalog.title(index)
            assert "genres" in item["attributes"]
        assert recai["trace"] and recai["llm_calls"] <= 2
        liked = recai["items"][0]["id"]
        profile = _post(
            server.base_url + "/feedback",
            {"model": "agent", "item": liked, "value": "like", "session": recai["session"]},
        )["profile"]
        assert liked in [x["id"] for x in profile["liked"]]
        second = c.chat.completions.create(
            model="agent",
            messages=[{"role": "user", "content": "more like that, but funny"}],
            extra_body={"session": recai["session"]},
        )
        assert liked in [x["id"] for x in second.model_extra["recai"]["profile"]["liked"]]
        similar = json.loads(
            urllib.request.urlopen(
                server.base_url + f"/items/{liked}/similar?k=3&model=itemknn", timeout=60
            ).read()
        )
        assert len(similar["items"]) == 3 and liked not in [x["id"] for x in similar["items"]]
        top = _post(server.base_url + "/recommend", {"user": "196", "k": 3, "model": "pop"})
        assert len(top["items"]) == 3
