"""n-D flood fill (a drop-in for scikit-image's ``flood``/``flood_fill``); it shares nothing
with the CTR code and is imported only when used."""
from fastctr.image.flood import SeedOutOfBoundsError, flood, flood_fill

__all__ = ["SeedOutOfBoundsError", "flood", "flood_fill"]
