"""LR covariance blocks (moved to :mod:`refold.sensitivity.inverse_blocks`).

Kept so that ``from refold.models.lr_blocks import LRCovarianceBlocks``
still works; the Schur-complement blocks of :math:`J H^{-1} J^\\top` are
general and live in the sensitivity layer.
"""
from refold.sensitivity.inverse_blocks import LRCovarianceBlocks

__all__ = ["LRCovarianceBlocks"]
