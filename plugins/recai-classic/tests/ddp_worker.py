"""Trains one model on seeded synthetic data and saves it (rank 0): run alone, or by torchrun.

    python ddp_worker.py MODEL OUT                                  # one process
    torchrun --standalone --nproc_per_node=2 ddp_worker.py MODEL OUT  # two, data parallel

MODEL is bpr, sasrec or sasrec-bce. Used by test_distributed.py (not a test module itself).
"""

from __future__ import annotations

import sys

import torch

from recai.data import leave_one_out, synthetic_dataset

MODELS = {
    "bpr": ("recai_classic.bpr:BPR", {"factors": 16, "epochs": 4, "batch_size": 200, "lr": 0.01}),
    "sasrec": (
        "recai_classic.sasrec:SASRec",
        {"hidden": 16, "blocks": 2, "max_len": 12, "dropout": 0.0, "epochs": 4, "batch_size": 24},
    ),
    "sasrec-bce": (
        "recai_classic.sasrec:SASRec",
        {
            "hidden": 16,
            "blocks": 1,
            "max_len": 12,
            "dropout": 0.0,
            "loss": "bce",
            "epochs": 4,
            "batch_size": 24,
        },
    ),
}


def main() -> None:
    name, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    target, params = MODELS[name]
    module, cls = target.split(":")
    model = getattr(__import__(module, fromlist=[cls]), cls)(**params, patience=100)
    split = leave_one_out(synthetic_dataset(n_users=150, n_items=50, mean_length=12, seed=5))
    model.fit(split)
    model.save(out)


if __name__ == "__main__":
    main()
