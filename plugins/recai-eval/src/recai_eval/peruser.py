"""Per-user metric values of a stage, saved beside its results so runs can be compared paired.

An evaluator writes ``stages/<stage>.per_user.npz`` into the run folder: for each system the
value of every per-user metric (users x columns), keyed by the evaluated **units** (user indices
for full ranking, held-out event rows for candidate ranking). ``recai eval A B`` reads two such
files and tests the difference on the units both runs evaluated.

>>> import tempfile, numpy as np
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> values = {"pop": np.array([[1.0, 0.5], [0.0, 0.0]])}
>>> _ = save_per_user(folder / "s.npz", "user", np.array([3, 7]), ["Hit@10", "NDCG@10"], values)
>>> back = load_per_user(folder / "s.npz")
>>> back.unit, back.units.tolist(), back.columns, back.values["pop"][0].tolist()
('user', [3, 7], ['Hit@10', 'NDCG@10'], [1.0, 0.5])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recai.runtime import atomic_write_file

__all__ = ["PerUser", "save_per_user", "load_per_user", "per_user_file"]


def per_user_file(stage: str) -> str:
    """The run-relative path of a stage's per-user values: ``stages/<stage>.per_user.npz``."""
    return f"stages/{stage}.per_user.npz"


@dataclass
class PerUser:
    """Per-unit metric values of the systems of one stage."""

    unit: str
    units: np.ndarray
    columns: list[str]
    values: dict[str, np.ndarray]


def save_per_user(
    path: Path | str,
    unit: str,
    units: np.ndarray,
    columns: list[str],
    values: dict[str, np.ndarray],
) -> Path:
    """Write the values atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    systems = list(values)
    arrays: dict[str, np.ndarray] = {
        "unit": np.array(unit),
        "units": np.asarray(units, dtype=np.int64),
        "columns": np.array(columns, dtype=str),
        "systems": np.array(systems, dtype=str),
    }
    for i, name in enumerate(systems):
        v = np.asarray(values[name], dtype=np.float64)
        if v.shape != (len(units), len(columns)):
            raise ValueError(
                f"{name}: values of shape {v.shape}, need {(len(units), len(columns))}"
            )
        arrays[f"values_{i}"] = v

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]  # numpy: ** vs allow_pickle

    return atomic_write_file(path, write)


def load_per_user(path: Path | str) -> PerUser:
    """Read a file written by :func:`save_per_user` (``ValueError`` when it is not one)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            systems = [str(s) for s in z["systems"]]
            return PerUser(
                unit=str(z["unit"]),
                units=np.asarray(z["units"], dtype=np.int64),
                columns=[str(c) for c in z["columns"]],
                values={name: np.asarray(z[f"values_{i}"]) for i, name in enumerate(systems)},
            )
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: not a per-user values file ({e})") from None
