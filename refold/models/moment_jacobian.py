"""Moment Jacobians (moved to :mod:`refold.sensitivity.jacobians`).

Kept so that ``from refold.models.moment_jacobian import
MomentJacobianColouring, colour_moment_jacobian`` still works; the
machinery -- dense, coloured and detected-sparse Jacobians -- is general and
lives in the sensitivity layer.
"""
from refold.sensitivity.jacobians import (MomentJacobianColouring,
                                          colour_moment_jacobian)

__all__ = ["MomentJacobianColouring", "colour_moment_jacobian"]
