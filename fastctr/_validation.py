"""Declarative parameter constraints and their one check, in scikit-learn's style.

Every public entry point (estimators, the hasher, the readers, ``train``, the command line)
declares its parameters as ``{name: [constraint, ...]}``; a value is valid when it satisfies
any constraint of its list, and :func:`validate_params` raises
:class:`~fastctr.exceptions.InvalidParameterError` (a ``ValueError`` and a ``TypeError``) worded
as scikit-learn words it::

    The 'bits' parameter of FTRLClassifier must be an int in the range [18, 30]. Got -1 instead.

``None`` in a list stands for the value None. This module imports nothing of fastctr but the
exceptions, so that every layer can use it.

Examples
--------
>>> from numbers import Integral
>>> rules = {"bits": [Interval(Integral, 18, 30, closed="both")], "seed": [None, Booleans()]}
>>> validate_params(rules, {"bits": 20, "seed": None}, "demo")
>>> try:
...     validate_params(rules, {"bits": 17, "seed": None}, "demo")
... except ValueError as e:
...     print(e)
The 'bits' parameter of demo must be an int in the range [18, 30]. Got 17 instead.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np

from fastctr.exceptions import InvalidParameterError

__all__ = [
    "Booleans",
    "Constraint",
    "Interval",
    "InstanceOf",
    "InvalidParameterError",
    "Options",
    "PairSequence",
    "StrSequence",
    "describe",
    "is_valid",
    "validate_params",
]


class Constraint:
    """A set of valid values: ``is_satisfied_by(value)`` and a description for messages."""

    def is_satisfied_by(self, value: Any) -> bool:
        raise NotImplementedError

    def __str__(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self}>"


class _NoneConstraint(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


def _is_int(value: Any) -> bool:
    # bool is an Integral to Python, never a count or a size to us; `type is` first: the ABC
    # check is slow and estimators check their parameters at every fit and predict
    return type(value) is int or (isinstance(value, Integral)
                                  and not isinstance(value, (bool, np.bool_)))


def _is_real(value: Any) -> bool:
    return type(value) in (float, int) or (isinstance(value, Real)
                                           and not isinstance(value, (bool, np.bool_)))


class Interval(Constraint):
    """Numbers of ``type`` (``Integral`` or ``Real``) between ``left`` and ``right``.

    ``None`` bounds are infinite; ``closed`` is ``"left"``, ``"right"``, ``"both"`` or
    ``"neither"`` (which ends belong to the interval). Bools are never numbers here; NaN is in
    no interval, and an infinity only in one whose infinite end is closed by a finite bound.
    """

    def __init__(self, type: type, left: float | None, right: float | None, *,
                 closed: str) -> None:
        if type not in (Integral, Real):
            raise TypeError("type must be numbers.Integral or numbers.Real")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError("closed must be 'left', 'right', 'both' or 'neither'")
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if not (_is_int(value) if self.type is Integral else _is_real(value)):
            return False
        if value != value:  # NaN
            return False
        left, right = self.left, self.right
        if left is not None and (value < left or (value == left and self.closed in ("right", "neither"))):
            return False
        if right is not None and (value > right or (value == right and self.closed in ("left", "neither"))):
            return False
        # an unbounded end is open: infinities are never valid floats
        return not math.isinf(value)

    def __str__(self) -> str:
        what = "an int" if self.type is Integral else "a float"
        left = "-inf" if self.left is None else _bound(self.left, self.type)
        right = "inf" if self.right is None else _bound(self.right, self.type)
        lb = "[" if self.closed in ("left", "both") else "("
        rb = "]" if self.closed in ("right", "both") else ")"
        return f"{what} in the range {lb}{left}, {right}{rb}"


def _bound(value: float, type: type) -> str:
    return str(int(value)) if type is Integral else str(float(value))


class Options(Constraint):
    """One of a finite set of values of ``type`` (e.g. the strings a mode accepts)."""

    def __init__(self, type: type, options: Iterable) -> None:
        self.type, self.options = type, tuple(options)

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, self.type) and value in self.options

    def __str__(self) -> str:
        return f"a {self.type.__name__} among {{{', '.join(map(repr, self.options))}}}"


class InstanceOf(Constraint):
    """Instances of a class (e.g. the estimator a function trains)."""

    def __init__(self, type: type) -> None:
        self.type = type

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, self.type)

    def __str__(self) -> str:
        return f"an instance of {self.type.__name__!r}"


class Booleans(Constraint):
    """``True`` or ``False`` (numpy's bools too); not 0 or 1, not strings."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))

    def __str__(self) -> str:
        return "a bool"


def _is_sequence(value: Any) -> bool:
    # lists, tuples, pandas Index, 1-D arrays...; not a str (a sequence of characters)
    return (hasattr(value, "__len__") and hasattr(value, "__iter__")
            and not isinstance(value, (str, bytes, Mapping)))


class StrSequence(Constraint):
    """A sequence (list, tuple, pandas Index...) of non-empty str: ``distinct`` ones, at
    least ``min_len`` of them."""

    def __init__(self, *, distinct: bool = True, min_len: int = 0) -> None:
        self.distinct, self.min_len = distinct, min_len

    def is_satisfied_by(self, value: Any) -> bool:
        return (_is_sequence(value) and len(value) >= self.min_len
                and all(isinstance(v, str) and v for v in value)
                and (not self.distinct or len(set(value)) == len(value)))

    def __str__(self) -> str:
        what = "distinct non-empty str" if self.distinct else "non-empty str"
        at_least = f" (at least {self.min_len})" if self.min_len else ""
        return f"a sequence of {what}{at_least}"


class PairSequence(Constraint):
    """A sequence of (str, str) pairs, e.g. the field pairs to cross."""

    def is_satisfied_by(self, value: Any) -> bool:
        return _is_sequence(value) and all(
            _is_sequence(p) and len(p) == 2 and all(isinstance(v, str) for v in p)
            for p in value)

    def __str__(self) -> str:
        return "a sequence of (str, str) pairs"


def _as_constraints(constraints: list) -> list[Constraint]:
    return [_NoneConstraint() if c is None else c for c in constraints]


def is_valid(value: Any, constraints: list) -> bool:
    """Whether ``value`` satisfies any of ``constraints``."""
    for c in constraints:
        if (value is None) if c is None else c.is_satisfied_by(value):
            return True
    return False


def describe(constraints: list) -> str:
    """``constraints`` in words, as the error messages say them ("an int ... or None")."""
    words = [str(c) for c in _as_constraints(constraints)]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def error_message(name: str, value: Any, constraints: list, caller: str) -> str:
    """The scikit-learn style message for an invalid ``value`` of parameter ``name``."""
    return (f"The {name!r} parameter of {caller} must be {describe(constraints)}. "
            f"Got {value!r} instead.")


def validate_params(constraints: Mapping[str, list], params: Mapping[str, Any],
                    caller: str) -> None:
    """Check every parameter of ``params`` that ``constraints`` names.

    Parameters
    ----------
    constraints : mapping of str to list of Constraint or None
        The valid values of each parameter: a value is valid if any item accepts it.
    params : mapping of str to object
        The values to check; names without constraints are left alone.
    caller : str
        What the parameters belong to, as the message names it (a class or a function).

    Raises
    ------
    InvalidParameterError
        (a ValueError and a TypeError) naming the first invalid parameter, what it must be
        and the value it got.
    """
    for name, value in params.items():
        allowed = constraints.get(name)
        if allowed is not None and not is_valid(value, allowed):
            raise InvalidParameterError(error_message(name, value, allowed, caller))
