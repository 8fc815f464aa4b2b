"""Entry point of recai-datasets: registers the dataset sources (imports nothing heavy)."""

from __future__ import annotations

import recai

_SPECS = (
    (
        "movielens-100k.v1",
        "movielens:MovieLens100K",
        "MovieLens-100K ratings, films, users and a Freebase knowledge graph (GroupLens; from the "
        "recbole wheel or the GroupLens files).",
    ),
    (
        "movielens-1m.v1",
        "movielens_1m:MovieLens1M",
        "MovieLens-1M ratings, films and users from the GroupLens ml-1m files (ratings.dat, ...).",
    ),
    (
        "movielens-latest.v1",
        "movielens_latest:MovieLensLatest",
        "MovieLens latest (ml-latest or ml-latest-small CSVs): ratings, genres, tags, IMDb links.",
    ),
    (
        "recbole-atomic.v1",
        "recbole:RecBoleAtomic",
        "Any RecBole atomic dataset folder (.inter, .item, .user, .kg, .link files).",
    ),
    (
        "amazon-2018.v1",
        "amazon:Amazon2018",
        "Amazon review data 2018 (McAuley lab): a category's reviews and metadata JSON lines.",
    ),
    (
        "amazon-2023.v1",
        "amazon:Amazon2023",
        "Amazon Reviews 2023 (McAuley lab): a category's reviews and metadata JSON lines.",
    ),
    (
        "steam.v1",
        "steam:Steam",
        "Steam reviews and game metadata (McAuley lab; SASRec's and RecAI's Steam data).",
    ),
    (
        "recai-format.v1",
        "recai_format:RecAIFormat",
        "Microsoft RecAI's format: metadata.json (line n = item n) and sequential_data.txt.",
    ),
    (
        "csv.v1",
        "generic:CsvDataset",
        "Your interactions (and items) as CSV or other delimited text, with a column mapping.",
    ),
    (
        "jsonl.v1",
        "generic:JsonlDataset",
        "Your interactions (and items) as JSON lines, with a key mapping.",
    ),
)


@recai.hookimpl
def recai_datasets():
    for name, factory, summary in _SPECS:
        yield recai.ComponentSpec(name=name, factory=f"recai_datasets.{factory}", summary=summary)
