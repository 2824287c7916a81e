"""sobat-matrix: a city's encrypted counselling (curhat) service as a Matrix bot."""

__version__ = "0.1.0"
