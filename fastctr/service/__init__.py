"""The HTTP service around a model: ``fastctr serve`` (needs ``pip install "fastctr[serve]"``).

Nothing here is imported by ``import fastctr``; the web framework and Redis client are
optional dependencies.
"""
