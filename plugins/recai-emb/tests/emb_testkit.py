"""Helpers for recai-emb's tests: a tiny random BERT encoder written to a folder, in a second."""

from __future__ import annotations

import string
from pathlib import Path

WORDS = [
    "the",
    "a",
    "of",
    "and",
    "movie",
    "film",
    "toy",
    "story",
    "space",
    "war",
    "star",
    "mirror",
    "winter",
    "sunken",
    "electric",
    "drama",
    "comedy",
    "action",
    "feel",
    "good",
    "mystery",
    "friendship",
    "kids",
    "animated",
    "adventure",
    "thriller",
    "year",
    "genres",
    "tags",
    "price",
    "released",
    "user",
    "who",
    "has",
    "interacted",
    "with",
    "these",
    "items",
    "oldest",
    "first",
    "query",
    "passage",
]


def write_tiny_encoder(folder: Path, *, hidden: int = 32, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT and a word-piece tokenizer that can spell any word."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *WORDS,
        *chars,
        *("##" + c for c in chars),
    ]
    vocab = list(dict.fromkeys(vocab))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    BertModel(config).eval().save_pretrained(folder)
    return folder
