"""Every estimator class passes every contract check of fastctr.models.checks.

The classes are discovered, not listed: a model class added later (registered for model files,
or any concrete OnlineClassifier subclass) is checked without editing this file."""
import inspect

import pytest

import fastctr  # noqa: F401  (defines and registers every model class)
from fastctr import FeatureHasher, FFMClassifier, FMClassifier, FTRLClassifier, read_criteo
from fastctr.io.datasets import make_criteo
from fastctr.models.base import OnlineClassifier
from fastctr.models.checks import ALL_CHECKS
from fastctr.serving.registry import MODEL_CLASSES

BITS = 18


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def estimator_classes() -> list[type]:
    """Concrete estimators: the registry's and OnlineClassifier's subclasses, recursively,
    without abstract bases and non-estimators (e.g. the Scorer, also in the registry)."""
    candidates = set(MODEL_CLASSES.values()) | _subclasses(OnlineClassifier)
    return sorted((c for c in candidates
                   if issubclass(c, OnlineClassifier) and not inspect.isabstract(c)),
                  key=lambda c: c.__name__)


CLASSES = estimator_classes()


def test_every_model_class_is_discovered():
    assert {FTRLClassifier, FMClassifier, FFMClassifier} <= set(CLASSES)


@pytest.fixture(scope="module")
def rows():
    return next(iter(read_criteo(make_criteo(300, seed=3), FeatureHasher(bits=BITS), batch_size=300)))


@pytest.fixture(params=CLASSES, ids=lambda c: c.__name__)
def estimator(request):
    """A fresh, unfitted estimator of each class, with the small table every class accepts."""
    return request.param(bits=BITS)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_contract(check, estimator, rows):
    check(estimator, rows)
