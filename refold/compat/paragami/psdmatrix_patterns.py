"""``paragami.psdmatrix_patterns``: :mod:`refold.patterns.psd`."""
from refold.patterns.psd import PSDSymmetricMatrixPattern  # noqa: F401

__all__ = ["PSDSymmetricMatrixPattern"]
