"""Shared fixtures: seeded generators and the real Criteo sample (never committed)."""
import os
from pathlib import Path

import numpy as np
import pytest
from redis_server import redis_server, redis_session, redis_url  # noqa: F401  (fixtures)

from fastctr.io.datasets import make_criteo

REPO = Path(__file__).resolve().parents[1]
CRITEO_FILE = "criteo_kaggle_labeled_dedup.tsv.gz"


def real_data_dir() -> Path:
    return Path(os.environ.get("FASTCTR_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def real_criteo() -> Path:
    """Path of the real Criteo sample; the test is skipped when it is absent."""
    path = real_data_dir() / CRITEO_FILE
    if not path.exists():
        pytest.skip(f"real Criteo sample not found at {path} (set FASTCTR_DATA to its folder); "
                    "its terms forbid shipping it with fastctr")
    return path


@pytest.fixture(scope="session")
def synthetic_tsv() -> bytes:
    """20,000 labelled rows of the synthetic Criteo-schema stream, as TSV bytes."""
    return b"".join(make_criteo(20_000, seed=7))
