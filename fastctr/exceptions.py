"""Exceptions raised by fastctr."""


class NotFittedError(ValueError, AttributeError):
    """The estimator was used for prediction before it learned anything."""


class ModelFileError(ValueError):
    """A model file is truncated, corrupted, of another format or of a newer version."""
