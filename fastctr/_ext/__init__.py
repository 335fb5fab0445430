"""Compiled Cython extensions built from src_ext/ (hashing, parsing, single-row scoring)."""
