"""Exceptions raised by fastctr."""


class NotFittedError(ValueError, AttributeError):
    """The estimator was used for prediction before it learned anything."""


class ModelFileError(ValueError):
    """A model file is truncated, corrupted, of another format or of a newer version; or a
    model cannot be saved where asked (a directory, a device, a FIFO)."""


class DivergenceError(FloatingPointError, ValueError):
    """A factorization machine's margin or latent norms blew up (non-finite or > 1e8).

    Raised by ``partial_fit``/``fit`` before the offending row is learned, so the state stays
    finite. The usual causes are unscaled feature values and a learning rate too large.
    """


class ParseError(ValueError):
    """A line of a log file does not match its format, or its gzip data is damaged; the
    message names the file, the line and the field."""


class DamagedDataError(ParseError):
    """The compressed data of a source is truncated or corrupt. Raised after every complete
    line before the damage was read; ``text_bytes`` is how many bytes of text came before it
    (and a reader adds how many complete lines)."""

    def __init__(self, message: str, text_bytes: int = 0, lines: int | None = None) -> None:
        super().__init__(message)
        self.text_bytes = text_bytes
        self.lines = lines


class InvalidParameterError(ValueError, TypeError):
    """A parameter of an estimator, the hasher, a reader, ``train`` or the command line is
    invalid; the message names it, what it must be and the value it got (scikit-learn's
    wording, and like scikit-learn's error both a ValueError and a TypeError)."""
