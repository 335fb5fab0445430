"""fastctr: fast online click-through-rate learning over hashed sparse rows."""

__version__ = "0.1.0"

from fastctr._rows import HashedRows
from fastctr.exceptions import DivergenceError, ModelFileError, NotFittedError
from fastctr.flood import flood, flood_fill
from fastctr.fm import FFMClassifier, FMClassifier
from fastctr.formats import hasher_for, read_csv, read_data, read_libffm, read_libsvm, read_vw
from fastctr.ftrl import FTRLClassifier
from fastctr.hashing import FeatureHasher
from fastctr.persist import load
from fastctr.readers import ParseError, read_criteo
from fastctr.scorer import Scorer
from fastctr.training import train, warm_up

__all__ = [
    "DivergenceError",
    "FFMClassifier",
    "FMClassifier",
    "FTRLClassifier",
    "FeatureHasher",
    "HashedRows",
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
