"""Patterns: fold and flatten structured parameters to and from flat vectors.

Dependencies only flow downward: this subpackage imports nothing from
``refold.sensitivity`` or ``refold.models``.
"""
from refold.patterns.base import Pattern
from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.numeric import (
    NumericArrayPattern, NumericScalarPattern, NumericVectorPattern)

__all__ = [
    "Pattern", "NumericArrayPattern", "NumericVectorPattern",
    "NumericScalarPattern", "PatternDict", "PatternArray",
]
