"""The Criteo Kaggle TSV log: label (when labelled), 13 counts I1..I13, 26 categorical
fields C1..C26, tab-separated; read by the compiled delimited parser."""
from __future__ import annotations

from fastctr._validation import validate_params
from fastctr.io.hashing import CRITEO_FIELDS, FeatureHasher
from fastctr.io.reader import LABEL, READER_CONSTRAINTS, DelimitedReader
from fastctr.io.sources import Source, first_line


def criteo_columns(labeled: bool = True) -> tuple[str, ...]:
    """Column layout of Criteo Kaggle TSV: label (if labeled), I1..I13, C1..C26."""
    return ((LABEL,) if labeled else ()) + CRITEO_FIELDS


def read_criteo(source: Source, hasher: FeatureHasher | None = None, *, labeled: bool | None = None,
                batch_size: int = 100_000, on_error: str = "raise") -> DelimitedReader:
    """Read a Criteo Kaggle TSV log (labelled: 40 fields, unlabelled: 39) in hashed batches.

    Parameters
    ----------
    source : path, '-', binary file or iterable of bytes
        The log; gzip is detected by content.
    hasher : FeatureHasher, optional
        Defaults to ``FeatureHasher()`` (the Criteo schema, 2**22 buckets).
    labeled : bool, optional
        Whether lines start with a label. By default it is read off the first line
        (40 fields: labelled; 39: unlabelled); a source that cannot be peeked is labelled.
    batch_size, on_error
        As in :class:`DelimitedReader`.

    Examples
    --------
    >>> lines = b"1\\t3\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t\\t68fd1e64" + b"\\t" * 25 + b"\\n"
    >>> batch = next(iter(read_criteo(lines)))
    >>> batch.n_rows, batch.labels.tolist(), batch.fields.tolist()
    (1, [1.0], [0, 1, 14])
    """
    validate_params(READER_CONSTRAINTS, {"hasher": hasher, "labeled": labeled,
                                         "batch_size": batch_size, "on_error": on_error},
                    "read_criteo")
    hasher = FeatureHasher() if hasher is None else hasher
    if labeled is None:
        labeled = _sniff_labeled(source)
    return DelimitedReader(source, criteo_columns(labeled), hasher, batch_size=batch_size,
                           on_error=on_error)


def _sniff_labeled(source: Source) -> bool:
    """True when the first line of a path or bytes source has 40 fields (or is unknown)."""
    first = first_line(source)
    return first is None or first.count(b"\t") + 1 != len(CRITEO_FIELDS)
