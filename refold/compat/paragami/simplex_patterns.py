"""``paragami.simplex_patterns``: :mod:`refold.patterns.simplex`."""
from refold.patterns.simplex import (  # noqa: F401
    SimplexArrayPattern, logsumexp)

__all__ = ["SimplexArrayPattern", "logsumexp"]
