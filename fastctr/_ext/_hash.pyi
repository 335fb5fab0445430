"""Type stubs of the compiled ``fastctr._ext._hash`` (src_ext/_hash.pyx)."""
import numpy as np
import numpy.typing as npt

def murmur3_32(data: str | bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32 of ``data`` (str as UTF-8, or bytes) as an unsigned int."""

def hash_dict_rows(
    rows: list[dict[str, object]], spec: tuple, keys: tuple[str, ...], scalars_only: bool = False
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32], npt.NDArray[np.uint16]
]:
    """Hash dict rows into (indptr, indices, values, fields) CSR arrays; with
    ``scalars_only`` a value other than str, int, float or None is a TypeError."""

def check_keys(keys: object, fields: tuple[str, ...]) -> None:
    """Raise the ValueError of unknown="strict" when a key of ``keys`` (a DataFrame's
    columns, checked once per frame) is not one of ``fields``, worded as for a dict row."""
