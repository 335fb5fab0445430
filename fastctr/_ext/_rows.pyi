"""Type stubs of the compiled ``fastctr._ext._rows`` (src_ext/_rows.pyx): checks over a
batch's entries in one C pass."""
import numpy as np
import numpy.typing as npt

def entries_are_valid(
    indices: npt.NDArray[np.int32], values: npt.NDArray[np.float32], size: int
) -> bool:
    """Whether every index lies in [0, size) and every value is finite."""
