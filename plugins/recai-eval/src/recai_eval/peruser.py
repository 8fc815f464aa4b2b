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

import zipfile
import zlib
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
    """Read a file written by :func:`save_per_user` (``ValueError`` naming the file and what is
    wrong when it is not one: not an ``.npz`` archive, a missing array, wrong types or shapes)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("a single array, not an .npz archive")
            unit = z["unit"]
            units, columns, systems = z["units"], z["columns"], z["systems"]
            if unit.ndim != 0 or unit.dtype.kind != "U":
                raise ValueError("'unit' is not a name")
            if units.ndim != 1 or units.dtype.kind not in "iu":
                raise ValueError("'units' is not a list of whole numbers")
            if len(np.unique(units)) != len(units):
                raise ValueError("'units' has repeats")
            for key, arr in (("columns", columns), ("systems", systems)):
                if arr.ndim != 1 or arr.dtype.kind != "U":
                    raise ValueError(f"{key!r} is not a list of names")
            shape = (len(units), len(columns))
            values = {}
            for i, name in enumerate(systems.tolist()):
                v = z[f"values_{i}"]
                if v.shape != shape or v.dtype.kind not in "fiu":
                    raise ValueError(
                        f"the values of {name!r} are {v.dtype} of shape {v.shape}, need numbers "
                        f"of shape {shape}"
                    )
                values[str(name)] = np.asarray(v, dtype=np.float64)
            return PerUser(
                unit=str(unit),
                units=np.asarray(units, dtype=np.int64),
                columns=[str(c) for c in columns.tolist()],
                values=values,
            )
    except KeyError as e:
        raise ValueError(f"{path}: not a per-user values file (no array {e})") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        detail = str(e).split("\n")[0] or type(e).__name__
        raise ValueError(f"{path}: not a per-user values file ({detail})") from None
