"""Build the Cython extensions in src_ext/ into fastctr._ext.*; all metadata lives in pyproject.toml."""
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        f"fastctr._ext.{path.stem}",
        [str(path)],
        include_dirs=[np.get_include()],
        extra_compile_args=["-O3"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for path in sorted(Path("src_ext").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        include_path=["src_ext"],
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
