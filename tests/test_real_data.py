"""Quality on real Criteo rows (read from ../shared/data, never committed; skipped when absent)."""
import pytest

from fastctr import FeatureHasher, FTRLClassifier, read_criteo
from fastctr.online.metrics import log_loss, roc_auc


@pytest.fixture(scope="module")
def split(real_criteo):
    """Rows 1-8,000 (time order) to train, rows 8,001-10,000 to test."""
    rows = next(iter(read_criteo(real_criteo, FeatureHasher(), batch_size=20_000)))
    return rows[:8000], rows[8000:10000]


def test_default_ftrl_reaches_auc_074(split):
    train, test = split
    model = FTRLClassifier().fit(train)
    p = model.predict_proba(test)[:, 1]
    auc, loss = roc_auc(test.labels, p), log_loss(test.labels, p)
    assert auc >= 0.74, auc
    assert loss < 0.48, loss


def test_test_rows_are_not_in_training(split):
    train, test = split
    assert train.n_rows == 8000 and test.n_rows == 2000
    seen = {tuple(train.indices[train.indptr[r]:train.indptr[r + 1]]) for r in range(train.n_rows)}
    repeated = sum(tuple(test.indices[test.indptr[r]:test.indptr[r + 1]]) in seen
                   for r in range(test.n_rows))
    assert repeated == 0
