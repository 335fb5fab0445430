"""A DivergenceError says where it happened, what the row held, and every possible cause with
its fix, not only the feature values (issue 13, defect 9)."""
import re

import numpy as np
import pytest

from fastctr import DivergenceError, FFMClassifier, FMClassifier
from fastctr.io.rows import HashedRows

ROWS = [{"a": "x", "b": "y"}, {"a": "z", "b": "w"}] * 10
LABELS = [1, 0] * 10
CAUSES = [r"\(1\) a learning rate too high for the data: lower eta \(latent factors, eta=[\d.]+\) "
          r"and/or alpha \(linear part, alpha=[\d.]+\), e\.g\. by 10x",
          r"\(2\) huge or non-finite feature values: scale numeric features \(numeric_transform="
          r"'log1p' or 'bin'",
          r"\(3\) a huge importance weight \(sample_weight or a VW importance",
          r"\(4\) model weights already huge .*: start from a fresh model"]


def _message(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    for cause in CAUSES:
        assert re.search(cause, message), cause
    return message


@pytest.mark.parametrize("cls", [FMClassifier, FFMClassifier])
def test_huge_latent_weights_are_named_with_the_row_its_weight_and_label(cls):
    # the features are fine (all 1) and so is the weight: the state is what blew up
    model = cls(fields=["a", "b"], bits=18).fit(ROWS, LABELS)
    k = model.vg_.shape[-1] // 2
    model.vg_[..., :k] *= 1e6
    weights = np.full(20, 1.0)
    weights[:3] = 2.5
    with pytest.raises(DivergenceError) as error:
        model.partial_fit(ROWS, LABELS, sample_weight=weights)
    message = _message(error)
    assert f"{cls.__name__} diverged at row 0 of this batch (row 20 overall" in message
    assert "largest |feature value| 1, importance weight 2.5, label 1, largest |latent factor| " \
           "of its buckets " in message
    latent = re.search(r"largest \|latent factor\| of its buckets ([-+.e\d]+)\. ", message)
    assert float(latent[1]) > 1e3


def test_a_huge_feature_value_is_named_with_its_row():
    model = FMClassifier(fields=["a", "b"], bits=18, init_std=0.1)
    rows = model.fit(ROWS, LABELS).hasher_.transform(ROWS)
    values = rows.values.copy()
    values[rows.indptr[5] + 1] = 1e7
    bad = HashedRows(rows.indptr, rows.indices, values, rows.fields, np.asarray(LABELS, np.float32))
    with pytest.raises(DivergenceError) as error:
        model.partial_fit(bad)
    message = _message(error)
    assert "at row 5 of this batch (row 25 overall" in message
    assert "largest |feature value| 1e+07, importance weight 1, label 0" in message
