"""fastctr: fast online click-through-rate learning over hashed sparse rows."""

__version__ = "0.1.0"
__all__ = ["__version__"]
