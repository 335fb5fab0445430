"""The registry of classes a model file may name: a file says its class by name, never by
pickle, and loading looks the name up here."""
from __future__ import annotations

MODEL_CLASSES: dict[str, type] = {}


def register(cls: type) -> type:
    """Let model files name ``cls`` (estimators register themselves on definition)."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls
