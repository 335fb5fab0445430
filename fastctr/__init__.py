"""fastctr: fast online click-through-rate learning over hashed sparse rows."""

from fastctr._version import __version__
from fastctr.exceptions import (
    DivergenceError,
    InvalidParameterError,
    ModelFileError,
    NotFittedError,
    ParseError,
)
from fastctr.io.criteo import read_criteo
from fastctr.io.csv import read_csv
from fastctr.io.detect import hasher_for, read_data
from fastctr.io.hashing import FeatureHasher
from fastctr.io.rows import HashedRows
from fastctr.io.sparse import read_libffm, read_libsvm, read_vw
from fastctr.models.fm import FFMClassifier, FMClassifier
from fastctr.models.ftrl import FTRLClassifier
from fastctr.online.training import train, warm_up
from fastctr.serving.factors import FactorScorer
from fastctr.serving.files import load
from fastctr.serving.scorer import Scorer

__all__ = [
    "DivergenceError",
    "FactorScorer",
    "FFMClassifier",
    "FMClassifier",
    "FTRLClassifier",
    "FeatureHasher",
    "HashedRows",
    "InvalidParameterError",
    "ModelFileError",
    "NotFittedError",
    "ParseError",
    "__version__",
    "flood",
    "flood_fill",
    "load",
    "hasher_for",
    "read_criteo",
    "read_csv",
    "read_data",
    "read_libffm",
    "read_libsvm",
    "read_vw",
    "Scorer",
    "train",
    "warm_up",
]


def __getattr__(name: str):
    # The flood fill shares nothing with the CTR code: import it on first use only.
    if name in ("flood", "flood_fill"):
        from fastctr import image

        return getattr(image, name)
    raise AttributeError(f"module 'fastctr' has no attribute {name!r}")
