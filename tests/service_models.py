"""Small trained models and their files for the service tests (seeded, 2**18 buckets)."""
from __future__ import annotations

from pathlib import Path

from fastctr import FFMClassifier, FMClassifier, FTRLClassifier
from fastctr.io.datasets import criteo_rows

ROWS, LABELS = criteo_rows(600, seed=3)


def trained(cls=FTRLClassifier, rows: int = 400, **params):
    """A model of ``cls`` that learned the first ``rows`` rows of ROWS."""
    return cls(bits=18, **params).fit(ROWS[:rows], LABELS[:rows])


def model_file(folder: Path, model=None, name: str = "model.fctr") -> Path:
    path = folder / name
    (model if model is not None else trained()).save(path)
    return path


MODELS = {"ftrl": FTRLClassifier, "fm": FMClassifier, "ffm": FFMClassifier}


def line_of(row: dict) -> str:
    """A dict row of the Criteo schema as a tab-separated line (I1..I13, C1..C26)."""
    names = [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    return "\t".join("" if row.get(n) is None else str(row[n]) for n in names)


def positional_of(row: dict) -> dict:
    return {"numerical_features": [row.get(f"I{i}") for i in range(1, 14)],
            "categorical_features": [row.get(f"C{i}") for i in range(1, 27)]}
