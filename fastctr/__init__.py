"""fastctr: fast online click-through-rate learning over hashed sparse rows."""

__version__ = "0.1.0"

from fastctr._rows import HashedRows
from fastctr.exceptions import ModelFileError, NotFittedError
from fastctr.ftrl import FTRLClassifier
from fastctr.hashing import FeatureHasher
from fastctr.persist import load
from fastctr.readers import ParseError, read_criteo
from fastctr.scorer import Scorer
from fastctr.training import train

__all__ = [
    "FTRLClassifier",
    "FeatureHasher",
    "HashedRows",
    "ModelFileError",
    "NotFittedError",
    "ParseError",
    "__version__",
    "load",
    "read_criteo",
    "Scorer",
    "train",
]
