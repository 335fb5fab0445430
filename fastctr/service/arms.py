"""The models of an A/B test served side by side (``fastctr serve control.fctr --ab
challenger.fctr:0.1``).

Each arm is a :class:`~fastctr.service.served.ModelHolder` (reloaded when its file changes,
snapshotted when it learns). A request goes to the arm of its *unit*, by
:meth:`fastctr.online.abtest.ABTest.assign` (a MurmurHash3 of the unit id, so a unit always
sees the same arm): the unit is ``entities["user"]`` when the row names a user, else the
request id. The impression keeps its arm (``Impression.arm``), so its feedback is credited to,
and with ``--learn`` trains, the arm that scored it.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fastctr.online.abtest import ABTest
from fastctr.service.served import ModelHolder, ServedModel
from fastctr.service.stores import Impression

#: the name of the model given first (the one challengers are compared with)
CONTROL = "control"


def parse_ab(text: str) -> tuple[str, float]:
    """``PATH:FRACTION`` (``--ab``) as ``(path, fraction)``, 0 < fraction < 1.

    Examples
    --------
    >>> parse_ab("models/challenger.fctr:0.1")
    ('models/challenger.fctr', 0.1)
    """
    path, sep, share = text.rpartition(":")
    try:
        fraction = float(share)
    except ValueError:
        fraction = float("nan")
    if not sep or not path or not 0.0 < fraction < 1.0:
        raise ValueError(f"--ab {text!r}: expected MODEL:FRACTION with 0 < FRACTION < 1, "
                         "e.g. challenger.fctr:0.1")
    return path, fraction


def arm_names(challengers: Sequence[tuple[str, float]]) -> list[str]:
    """The challengers' arm names: their files' stems, unique and other than ``control``."""
    names = [Path(path).stem for path, _ in challengers]
    if len(set(names)) != len(names) or CONTROL in names:
        raise ValueError(f"A/B arms are named after their files' stems, which must be unique "
                         f"and not {CONTROL!r}; got {names}")
    return names


class Arms:
    """The arms of an A/B test, their models and their assignment.

    Parameters
    ----------
    control : ModelHolder
        The served model (``MODEL``), arm ``control``.
    challengers : sequence of (path, fraction)
        The other models and the share of units each gets; the control gets the rest.
    learn, mmap : as for :class:`ModelHolder`
    """

    def __init__(self, control: ModelHolder, challengers: Sequence[tuple[str, float]], *,
                 learn: bool = False, mmap: bool = False) -> None:
        names = arm_names(challengers)
        rest = 1.0 - sum(fraction for _, fraction in challengers)
        if not rest > 0:
            raise ValueError(f"the --ab fractions sum to {1 - rest:g}: the control needs a share")
        self.holders = {CONTROL: control}
        for name, (path, _) in zip(names, challengers):
            self.holders[name] = ModelHolder(path, learn=learn, mmap=mmap)
        self.test = ABTest([(CONTROL, rest)] + [(n, f) for n, (_, f) in zip(names, challengers)])

    def route(self, doc: Any, request_id: str) -> tuple[str, ServedModel]:
        """The arm of a request (``doc``: the row's JSON object) and the model it scores with."""
        arm = self.test.assign(unit_of(doc) or request_id)
        return arm, self.holders[arm].current

    def by_arm(self, impressions: list[Impression],
               clicks: list[int]) -> Iterator[tuple[ServedModel, list[Impression], list[int]]]:
        """The labelled impressions grouped by the arm that scored them, with its model."""
        for arm, holder in self.holders.items():
            picked = [i for i, imp in enumerate(impressions) if imp.arm == arm]
            if picked:
                yield holder.current, [impressions[i] for i in picked], [clicks[i] for i in picked]

    def report(self) -> dict:
        """``GET /ab``: the A/B report, each arm with its model version."""
        report = self.test.report()
        for arm in report["arms"]:
            arm["model_version"] = self.holders[arm["arm"]].current.version
        return report


def unit_of(doc: Any) -> str | None:
    """The user a row names (``entities.user``), if it names one as a string."""
    if type(doc) is dict:
        entities = doc.get("entities")
        if type(entities) is dict and type(entities.get("user")) is str:
            return entities["user"]
    return None
