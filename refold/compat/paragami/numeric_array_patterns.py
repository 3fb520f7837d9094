"""``paragami.numeric_array_patterns``: :mod:`refold.patterns.numeric`."""
from refold.patterns.numeric import (  # noqa: F401
    NumericArrayPattern, NumericScalarPattern, NumericVectorPattern)

__all__ = ["NumericArrayPattern", "NumericVectorPattern",
           "NumericScalarPattern"]
