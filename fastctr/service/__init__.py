"""The HTTP service around a model: ``fastctr serve`` (needs ``pip install "fastctr[serve]"``).

Nothing here is imported by ``import fastctr``; the web framework and Redis client are
optional dependencies.
"""

__all__ = ["Settings", "create_app"]


def __getattr__(name: str):
    # FastAPI is imported when the app is asked for, not by the stores or the breaker
    if name in __all__:
        from fastctr.service import app

        return getattr(app, name)
    raise AttributeError(f"module 'fastctr.service' has no attribute {name!r}")
