"""Patterns: fold and flatten structured parameters to and from flat vectors.

Dependencies only flow downward: this subpackage imports nothing from
``refold.sensitivity`` or ``refold.models``.
"""
from refold.patterns.base import Pattern
from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.correlation import CorrelationMatrixPattern
from refold.patterns.numeric import (
    NumericArrayPattern, NumericScalarPattern, NumericVectorPattern)
from refold.patterns.simplex import SimplexArrayPattern

__all__ = [
    "Pattern", "NumericArrayPattern", "NumericVectorPattern",
    "NumericScalarPattern", "SimplexArrayPattern", "CorrelationMatrixPattern",
    "PatternDict", "PatternArray",
]
